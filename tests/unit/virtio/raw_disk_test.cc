// The device over a real raw disk file (storage::OpenRawDisk, both I/O
// engines): what the VMM runs. Fault injection and flush counting stay with
// MemoryDisk in the other tests.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fd.h"
#include "support/temp_dir.h"
#include "test_driver.h"

namespace vm::test {
namespace {

using ferry_test::TempDir;

constexpr uint64_t kDiskBytes = 1 << 20;

class RawDiskTest : public ::testing::TestWithParam<storage::IoEngine> {
 protected:
  void SetUp() override {
    path_ = dir_.File("disk.img");
    auto fd = base::Fd::Open(path_, O_RDWR | O_CREAT, 0644);
    ASSERT_TRUE(fd.has_value()) << fd.error().ToString();
    ASSERT_EQ(::ftruncate(fd->get(), kDiskBytes), 0);
    auto memory = GuestMemory::Create(4ull << 20);
    ASSERT_TRUE(memory.has_value());
    memory_ = std::move(*memory);
  }
  void Open(bool read_only) {
    driver_.reset();
    device_.reset();
    auto disk = storage::OpenRawDisk(path_, read_only, GetParam());
    ASSERT_TRUE(disk.has_value()) << disk.error().ToString();
    device_ = std::make_unique<VirtioBlk>(*memory_, std::move(*disk));
    driver_ = std::make_unique<TestDriver>(*memory_, *device_);
    driver_->Init();
  }
  void Fill(uint64_t gpa, size_t len, uint8_t seed) {
    std::vector<uint8_t> v(len);
    for (size_t i = 0; i < len; ++i) v[i] = uint8_t(seed ^ (i * 13));
    ASSERT_TRUE(driver_->Store(gpa, v.data(), len));
  }
  std::vector<uint8_t> Guest(uint64_t gpa, size_t len) {
    return {memory_->base() + gpa, memory_->base() + gpa + len};
  }
  std::vector<uint8_t> File(uint64_t offset, size_t len) {
    std::vector<uint8_t> v(len);
    auto fd = base::Fd::Open(path_, O_RDONLY);
    EXPECT_TRUE(fd.has_value());
    EXPECT_EQ(::pread(fd->get(), v.data(), len, off_t(offset)), ssize_t(len));
    return v;
  }

  TempDir dir_;
  std::string path_;
  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<VirtioBlk> device_;
  std::unique_ptr<TestDriver> driver_;
};

TEST_P(RawDiskTest, CapacityIsTheFileSize) {
  Open(false);
  EXPECT_EQ(driver_->Read32(kRegConfig), kDiskBytes / 512);
}

TEST_P(RawDiskTest, WriteFlushReadRoundTripLandsInTheFile) {
  Open(false);
  Fill(kDataGpa, 16384, 0x3c);
  ASSERT_EQ(driver_->Request(kBlkTOut, 64, kDataGpa, 16384), kBlkSOk);
  ASSERT_EQ(driver_->Request(kBlkTFlush, 0, 0, 0), kBlkSOk);
  EXPECT_EQ(File(64 * 512, 16384), Guest(kDataGpa, 16384));
  ASSERT_EQ(driver_->Request(kBlkTIn, 64, 0x80000, 16384), kBlkSOk);
  EXPECT_EQ(Guest(0x80000, 16384), Guest(kDataGpa, 16384));
}

TEST_P(RawDiskTest, DataSurvivesReopen) {
  Open(false);
  Fill(kDataGpa, 4096, 0x11);
  ASSERT_EQ(driver_->Request(kBlkTOut, 2040, kDataGpa, 4096), kBlkSOk);  // the last 4 KiB
  ASSERT_TRUE(device_->Drain().has_value());
  Open(false);
  ASSERT_EQ(driver_->Request(kBlkTIn, 2040, 0x90000, 4096), kBlkSOk);
  EXPECT_EQ(Guest(0x90000, 4096), Guest(kDataGpa, 4096));
}

TEST_P(RawDiskTest, OutOfRangeIsIoErrAndFileKeepsItsSize) {
  Open(false);
  EXPECT_EQ(driver_->Request(kBlkTOut, kDiskBytes / 512, kDataGpa, 512), kBlkSIoErr);
  EXPECT_EQ(driver_->Request(kBlkTIn, kDiskBytes / 512 - 1, kDataGpa, 1024), kBlkSIoErr);
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(uint64_t(st.st_size), kDiskBytes);
}

TEST_P(RawDiskTest, ReadOnlyRefusesWritesLeavesFileUnchanged) {
  Open(false);
  Fill(kDataGpa, 512, 0x77);
  ASSERT_EQ(driver_->Request(kBlkTOut, 0, kDataGpa, 512), kBlkSOk);
  Open(true);
  EXPECT_TRUE(driver_->DeviceFeatures() & kBlkFRo);
  Fill(kDataGpa + 4096, 512, 0x01);
  EXPECT_EQ(driver_->Request(kBlkTOut, 0, kDataGpa + 4096, 512), kBlkSIoErr);
  EXPECT_EQ(File(0, 512), Guest(kDataGpa, 512));
  ASSERT_EQ(driver_->Request(kBlkTIn, 0, 0xa0000, 512), kBlkSOk);
  EXPECT_EQ(Guest(0xa0000, 512), Guest(kDataGpa, 512));
}

INSTANTIATE_TEST_SUITE_P(Engines, RawDiskTest,
                         ::testing::Values(storage::IoEngine::kSync, storage::IoEngine::kIoUring),
                         [](const ::testing::TestParamInfo<storage::IoEngine>& p) {
                           return p.param == storage::IoEngine::kSync ? "Sync" : "IoUring";
                         });

}  // namespace
}  // namespace vm::test
