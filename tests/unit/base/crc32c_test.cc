#include "base/crc32c.h"

#include <gtest/gtest.h>

#include <string>

namespace base {
namespace {

TEST(Crc32cTest, KnownVectors) {
  // RFC 3720 B.4 test vectors.
  uint8_t zeros[32] = {};
  EXPECT_EQ(Crc32c(zeros, sizeof zeros), 0x8a9136aau);
  uint8_t ones[32];
  for (auto& b : ones) b = 0xff;
  EXPECT_EQ(Crc32c(ones, sizeof ones), 0x62a8ab43u);
  uint8_t inc[32];
  for (int i = 0; i < 32; ++i) inc[i] = uint8_t(i);
  EXPECT_EQ(Crc32c(inc, sizeof inc), 0x46dd794eu);
  EXPECT_EQ(Crc32c("123456789", 9), 0xe3069283u);
}

TEST(Crc32cTest, ExtendEqualsWhole) {
  std::string s(1000, 'x');
  for (size_t i = 0; i < s.size(); ++i) s[i] = char(i * 31);
  uint32_t whole = Crc32c(s.data(), s.size());
  for (size_t cut : {0u, 1u, 7u, 8u, 9u, 500u, 999u}) {
    uint32_t part = Crc32c(s.data(), cut);
    EXPECT_EQ(Crc32c(s.data() + cut, s.size() - cut, part), whole) << cut;
  }
}

}  // namespace
}  // namespace base
