#include "base/escape.h"

#include <gtest/gtest.h>

namespace base {
namespace {

TEST(EscapeTest, PrintableTextIsUnchanged) {
  EXPECT_EQ(Escaped("/srv/disks/web-1.base.qcow2"), "/srv/disks/web-1.base.qcow2");
  EXPECT_EQ(Escaped(""), "");
  EXPECT_EQ(Escaped(" ~"), " ~");
}

TEST(EscapeTest, ControlCharactersAndHighBytesBecomeHex) {
  EXPECT_EQ(Escaped("a\nb"), "a\\x0ab");
  EXPECT_EQ(Escaped("\x1b[2Jx"), "\\x1b[2Jx") << "a terminal escape sequence is defused";
  EXPECT_EQ(Escaped(std::string_view("\0\x7f\x80\xff", 4)), "\\x00\\x7f\\x80\\xff");
  EXPECT_EQ(Escaped("\r\t"), "\\x0d\\x09");
}

TEST(EscapeTest, BackslashIsDoubledSoEscapesCannotBeForged) {
  // A name that spells "\x0a" itself must not print like one that holds a newline.
  EXPECT_EQ(Escaped("a\\x0a"), "a\\\\x0a");
  EXPECT_NE(Escaped("a\\x0a"), Escaped("a\n"));
}

}  // namespace
}  // namespace base
