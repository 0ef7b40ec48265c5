// GuestMemory: bounds checks that a guest cannot overflow, and the record of
// VMM writes that a live move merges with KVM's dirty log.
#include "guest_memory.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>

namespace vm {
namespace {

constexpr uint64_t kBytes = 4ull << 20;

std::unique_ptr<GuestMemory> Make() {
  auto m = GuestMemory::Create(kBytes);
  EXPECT_TRUE(m.has_value()) << m.error().ToString();
  return m.has_value() ? std::move(*m) : nullptr;
}

bool Bit(const std::vector<uint64_t>& bits, uint64_t page) {
  return (bits[page / 64] >> (page % 64)) & 1;
}

TEST(GuestMemoryTest, CreateRejectsSizesNotMultipleOf2MiB) {
  for (uint64_t bytes : {0ull, 4096ull, (2ull << 20) + 4096}) {
    auto m = GuestMemory::Create(bytes);
    ASSERT_FALSE(m.has_value()) << bytes;
    EXPECT_EQ(m.error().code(), base::Code::kInvalidArgument);
  }
}

TEST(GuestMemoryTest, ZeroFilledMemfdOfTheRightSizeWithCloexec) {
  auto m = Make();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->size(), kBytes);
  struct stat st;
  ASSERT_EQ(fstat(m->memfd(), &st), 0);
  EXPECT_EQ(uint64_t(st.st_size), kBytes);
  EXPECT_TRUE(fcntl(m->memfd(), F_GETFD) & FD_CLOEXEC);
  EXPECT_EQ(m->base()[0], 0);
  EXPECT_EQ(m->base()[kBytes - 1], 0);
}

TEST(GuestMemoryTest, AtChecksEveryByteOfTheRange) {
  auto m = Make();
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->At(0, kBytes).has_value());
  EXPECT_TRUE(m->At(kBytes - 1, 1).has_value());
  EXPECT_TRUE(m->At(kBytes, 0).has_value());
  EXPECT_FALSE(m->At(kBytes - 1, 2).has_value());
  EXPECT_FALSE(m->At(kBytes, 1).has_value());
  EXPECT_FALSE(m->At(kBytes + 1, 0).has_value());
  auto wrap = m->At(~0ull - 10, 100);  // gpa + len overflows
  ASSERT_FALSE(wrap.has_value());
  EXPECT_EQ(wrap.error().code(), base::Code::kOutOfRange);
  EXPECT_NE(wrap.error().message().find("outside guest RAM"), std::string::npos);
  EXPECT_FALSE(m->At(16, ~0ull - 8).has_value());
}

TEST(GuestMemoryTest, ReadWriteRoundTripAndMapping) {
  auto m = Make();
  ASSERT_TRUE(m);
  const char msg[] = "hello guest";
  ASSERT_TRUE(m->Write(0x1234, msg, sizeof(msg)).has_value());
  EXPECT_EQ(std::memcmp(m->base() + 0x1234, msg, sizeof(msg)), 0);
  char back[sizeof(msg)] = {};
  ASSERT_TRUE(m->Read(0x1234, back, sizeof(back)).has_value());
  EXPECT_STREQ(back, msg);
  EXPECT_FALSE(m->Write(kBytes - 4, msg, sizeof(msg)).has_value());
  EXPECT_FALSE(m->Read(kBytes - 4, back, sizeof(back)).has_value());
  // The memfd and the mapping are the same memory (the VMM hands the fd to KVM).
  char via_fd[sizeof(msg)] = {};
  ASSERT_EQ(pread(m->memfd(), via_fd, sizeof(via_fd), 0x1234), ssize_t(sizeof(via_fd)));
  EXPECT_STREQ(via_fd, msg);
}

TEST(GuestMemoryTest, WritesAreRecordedPerPageAndTakeClears) {
  auto m = Make();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->TakeVmmDirty(), std::vector<uint64_t>(kBytes / kPageSize / 64, 0));
  uint8_t buf[8] = {};
  ASSERT_TRUE(m->Write(3 * kPageSize - 4, buf, 8).has_value());  // straddles pages 2 and 3
  m->MarkDirty(100 * kPageSize, 1);
  auto bits = m->TakeVmmDirty();
  ASSERT_EQ(bits.size(), kBytes / kPageSize / 64);
  EXPECT_FALSE(Bit(bits, 1));
  EXPECT_TRUE(Bit(bits, 2));
  EXPECT_TRUE(Bit(bits, 3));
  EXPECT_FALSE(Bit(bits, 4));
  EXPECT_TRUE(Bit(bits, 100));
  int count = 0;
  for (uint64_t w : bits) count += __builtin_popcountll(w);
  EXPECT_EQ(count, 3);
  EXPECT_EQ(m->TakeVmmDirty(), std::vector<uint64_t>(bits.size(), 0)) << "taking clears";
}

TEST(GuestMemoryTest, FailedWriteRecordsNothingAndMarkDirtyClamps) {
  auto m = Make();
  ASSERT_TRUE(m);
  uint8_t buf[16] = {};
  EXPECT_FALSE(m->Write(kBytes - 8, buf, 16).has_value());
  m->MarkDirty(kBytes, 4096);            // wholly outside: ignored
  m->MarkDirty(kBytes - 1, 1ull << 40);  // clamped to the last page
  auto bits = m->TakeVmmDirty();
  int count = 0;
  for (uint64_t w : bits) count += __builtin_popcountll(w);
  EXPECT_EQ(count, 1);
  EXPECT_TRUE(Bit(bits, kBytes / kPageSize - 1));
}

}  // namespace
}  // namespace vm
