// Disk failures under a running guest: the request gets IOERR (the guest's
// to handle), and the device counts the failure per kind and keeps the first
// one with its cause, for the admin (Machine::stats, ferry vm show).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "blk_fixture.h"
#include "storage/qcow2.h"
#include "support/temp_dir.h"

namespace vm::test {
namespace {

using ferry_test::TempDir;

class DiskErrorTest : public VirtioBlkTest {
 protected:
  void SetUp() override {
    VirtioBlkTest::SetUp();
    driver_->Init();
  }
};

TEST_F(DiskErrorTest, ReadWriteAndFlushFailuresAreCountedAndTheFirstIsKept) {
  disk_.fail_io = true;
  EXPECT_EQ(driver_->Request(kBlkTIn, 16, kDataGpa, 4096), kBlkSIoErr);
  EXPECT_EQ(driver_->Request(kBlkTIn, 32, kDataGpa, 512), kBlkSIoErr);
  EXPECT_EQ(driver_->Request(kBlkTOut, 8, kDataGpa, 1024), kBlkSIoErr);
  EXPECT_EQ(driver_->Request(kBlkTFlush, 0, 0, 0), kBlkSIoErr);
  VirtioBlkCounters c = device_->counters();
  EXPECT_EQ(c.read_errors, 2u);
  EXPECT_EQ(c.write_errors, 1u);
  EXPECT_EQ(c.flush_errors, 1u);
  EXPECT_EQ(c.errors, 4u);
  EXPECT_EQ(c.first_error, "read at offset 8192 (4096 bytes): injected I/O failure (unavailable)");
  EXPECT_GT(c.first_error_unix_ms, 0);

  // The device keeps serving: once the disk recovers, requests succeed and
  // the first error stays what it was.
  disk_.fail_io = false;
  EXPECT_EQ(driver_->Request(kBlkTIn, 16, kDataGpa, 4096), kBlkSOk);
  c = device_->counters();
  EXPECT_EQ(c.reads, 1u);
  EXPECT_EQ(c.read_errors, 2u);
  EXPECT_EQ(c.first_error, "read at offset 8192 (4096 bytes): injected I/O failure (unavailable)");
}

TEST_F(DiskErrorTest, MalformedRequestsAreNotDiskErrors) {
  const uint64_t sectors = kTestDiskBytes / 512;
  EXPECT_EQ(driver_->Request(kBlkTIn, sectors, kDataGpa, 512), kBlkSIoErr);
  VirtioBlkCounters c = device_->counters();
  EXPECT_EQ(c.errors, 1u) << "the guest asked past the end: its error, not the disk's";
  EXPECT_EQ(c.read_errors, 0u);
  EXPECT_TRUE(c.first_error.empty());
}

TEST_F(DiskErrorTest, CountersAreReadSafelyWhileVcpusFail) {
  // vCPU threads update the counters under the device mutex; the control
  // thread reads them at any time (ferry vm show). Run under TSan/ASan.
  disk_.fail_io = true;
  std::thread reader([&] {
    for (int i = 0; i < 200; ++i) (void)device_->counters().first_error.size();
  });
  for (int i = 0; i < 200; ++i)
    EXPECT_EQ(driver_->Request(kBlkTIn, uint64_t(i), kDataGpa, 512), kBlkSIoErr);
  reader.join();
  EXPECT_EQ(device_->counters().read_errors, 200u);
}

// Big-endian helpers for patching the image file by hand.
uint64_t GetBe64At(int fd, uint64_t offset) {
  uint8_t b[8];
  EXPECT_EQ(::pread(fd, b, 8, off_t(offset)), 8);
  uint64_t v = 0;
  for (uint8_t x : b) v = v << 8 | x;
  return v;
}
void PutBe64At(int fd, uint64_t offset, uint64_t v) {
  uint8_t b[8];
  for (int i = 7; i >= 0; --i, v >>= 8) b[i] = uint8_t(v);
  EXPECT_EQ(::pwrite(fd, b, 8, off_t(offset)), 8);
}

// A real qcow2 whose L2 entry for guest cluster 1 points far past the end of
// the file: opening it succeeds (L2 tables are read when used), the guest's
// read of that cluster fails with the storage layer's kDataLoss message.
TEST(DiskErrorQcow2Test, DamagedL2EntryReachesTheFirstErrorWithItsCause) {
  TempDir dir;
  const std::string path = dir.File("damaged.qcow2");
  storage::Qcow2CreateOptions o;
  o.size = 1 << 20;
  ASSERT_TRUE(storage::CreateQcow2(path, o).has_value());
  {
    auto d = storage::OpenQcow2Disk(path, false);
    ASSERT_TRUE(d.has_value()) << d.error().ToString();
    std::vector<uint8_t> data(2 * 65536, 0x5a);
    ASSERT_TRUE((*d)->Write(data.data(), data.size(), 0).has_value());
  }
  {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    const uint64_t l1 = GetBe64At(fd, 40);
    const uint64_t l2 = GetBe64At(fd, l1) & 0x00fffffffffffe00ull;
    ASSERT_NE(l2, 0u);
    PutBe64At(fd, l2 + 8, 0x8000000000000000ull | (1ull << 40));  // copied, 1 TiB: past EOF
    ::close(fd);
  }
  auto memory = GuestMemory::Create(kTestMemoryBytes);
  ASSERT_TRUE(memory.has_value());
  auto disk = storage::OpenDisk(path, config::DiskFormat::kQcow2, false);
  ASSERT_TRUE(disk.has_value()) << disk.error().ToString();
  VirtioBlk device(**memory, std::move(*disk), "disk 0 (" + path + ")");
  TestDriver driver(**memory, device);
  driver.Init();

  EXPECT_EQ(driver.Request(kBlkTIn, 0, kDataGpa, 4096), kBlkSOk) << "cluster 0 is intact";
  EXPECT_EQ(driver.Request(kBlkTIn, 65536 / 512, kDataGpa, 4096), kBlkSIoErr);
  EXPECT_EQ(driver.Request(kBlkTOut, 65536 / 512 + 8, kDataGpa, 4096), kBlkSIoErr);
  VirtioBlkCounters c = device.counters();
  EXPECT_EQ(c.reads, 1u);
  EXPECT_EQ(c.read_errors, 1u);
  EXPECT_EQ(c.write_errors, 1u);
  EXPECT_EQ(c.first_error.rfind(
                "read at offset 65536 (4096 bytes): " + path + ": L2 entry 1 of table at ", 0),
            0u)
      << c.first_error;
  EXPECT_NE(c.first_error.find("points past end of file (data-loss)"), std::string::npos)
      << c.first_error;
}

}  // namespace
}  // namespace vm::test
