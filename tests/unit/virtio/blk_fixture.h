// Fixture: a VirtioBlk over a MemoryDisk in 4 MiB of real GuestMemory, and a
// TestDriver to talk to it.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "guest_memory.h"
#include "memory_disk.h"
#include "test_driver.h"
#include "virtio_blk.h"

namespace vm::test {

inline constexpr uint64_t kTestMemoryBytes = 4ull << 20;
inline constexpr size_t kTestDiskBytes = 1 << 20;  // 2048 sectors

class VirtioBlkTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(/*read_only=*/false); }

  void Make(bool read_only) {
    disk_.bytes.assign(kTestDiskBytes, 0);
    disk_.read_only = read_only;
    auto memory = GuestMemory::Create(kTestMemoryBytes);
    ASSERT_TRUE(memory.has_value()) << memory.error().ToString();
    driver_.reset();
    device_.reset();
    memory_ = std::move(*memory);
    device_ = std::make_unique<VirtioBlk>(*memory_, std::make_unique<MemoryDisk>(&disk_));
    driver_ = std::make_unique<TestDriver>(*memory_, *device_);
  }

  // Fills [gpa, gpa+len) with a pattern derived from seed.
  void FillGuest(uint64_t gpa, size_t len, uint8_t seed) {
    std::vector<uint8_t> v(len);
    for (size_t i = 0; i < len; ++i) v[i] = uint8_t(seed + i * 7 + (i >> 9));
    ASSERT_TRUE(driver_->Store(gpa, v.data(), len));
  }
  std::vector<uint8_t> GuestBytes(uint64_t gpa, size_t len) {
    std::vector<uint8_t> v(len);
    EXPECT_TRUE(memory_->Read(gpa, v.data(), len).has_value());
    return v;
  }
  std::vector<uint8_t> DiskBytes(uint64_t offset, size_t len) {
    return {disk_.bytes.begin() + offset, disk_.bytes.begin() + offset + len};
  }

  // Declaration order matters: the device borrows memory_ and disk_, the
  // driver borrows both, so they are destroyed first.
  MemoryDisk::Shared disk_;
  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<VirtioBlk> device_;
  std::unique_ptr<TestDriver> driver_;
};

}  // namespace vm::test
