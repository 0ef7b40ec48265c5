#include "base/le.h"

#include <gtest/gtest.h>

namespace base {
namespace {

TEST(LeTest, GoldenBytes) {
  LeWriter w;
  w.U16(0x0102);
  w.U32(0x03040506);
  w.U64(0x0708090a0b0c0d0eull);
  w.Blob("hi");
  const std::string expected(
      "\x02\x01\x06\x05\x04\x03\x0e\x0d\x0c\x0b\x0a\x09\x08\x07\x02\x00\x00\x00hi", 20);
  EXPECT_EQ(w.data(), expected);
  LeReader r(w.data());
  EXPECT_EQ(*r.U16(), 0x0102);
  EXPECT_EQ(*r.U32(), 0x03040506u);
  EXPECT_EQ(*r.U64(), 0x0708090a0b0c0d0eull);
  EXPECT_EQ(*r.Blob(16), "hi");
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(LeTest, TruncationAndOversizeAreErrors) {
  LeWriter w;
  w.U32(100);  // a blob claiming 100 bytes with none following
  LeReader r(w.data());
  auto blob = r.Blob(1000);
  ASSERT_FALSE(blob.has_value());
  EXPECT_EQ(blob.error().code(), Code::kDataLoss);
  LeReader r2(w.data());
  EXPECT_FALSE(r2.Blob(10).has_value());  // over the limit
  LeReader r3("\x01", 1);
  EXPECT_FALSE(r3.U32().has_value());
}

}  // namespace
}  // namespace base
