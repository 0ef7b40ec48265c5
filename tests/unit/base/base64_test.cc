#include "base/base64.h"

#include <gtest/gtest.h>

namespace base {
namespace {

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

TEST(Base64Test, EncodesRfc4648Vectors) {
  EXPECT_EQ(Base64Encode(Bytes("")), "");
  EXPECT_EQ(Base64Encode(Bytes("f")), "Zg==");
  EXPECT_EQ(Base64Encode(Bytes("fo")), "Zm8=");
  EXPECT_EQ(Base64Encode(Bytes("foo")), "Zm9v");
  EXPECT_EQ(Base64Encode(Bytes("foob")), "Zm9vYg==");
  EXPECT_EQ(Base64Encode(Bytes("fooba")), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode(Bytes("foobar")), "Zm9vYmFy");
}

TEST(Base64Test, DecodesWhatItEncodes) {
  std::vector<uint8_t> all(256);
  for (size_t i = 0; i < all.size(); ++i) all[i] = uint8_t(i);
  for (size_t n = 0; n <= all.size(); n += 37) {
    std::vector<uint8_t> part(all.begin(), all.begin() + long(n));
    auto decoded = Base64Decode(Base64Encode(part), "test");
    ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
    EXPECT_EQ(*decoded, part);
  }
}

TEST(Base64Test, RefusesMalformedTextNamingIt) {
  for (std::string_view bad : {"Zg=", "Z===", "Zg=a", "Zm9v!", "Zm=v", "=m9v"}) {
    auto decoded = Base64Decode(bad, "kerberos token");
    ASSERT_FALSE(decoded.has_value()) << bad;
    EXPECT_EQ(decoded.error().code(), Code::kInvalidArgument);
    EXPECT_NE(decoded.error().message().find("kerberos token: not base64"), std::string::npos)
        << decoded.error().message();
  }
}

}  // namespace
}  // namespace base
