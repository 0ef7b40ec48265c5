// Block requests through a correctly initialised queue: data round trips,
// flush, GET_ID, range checks, read-only disks, I/O errors and dirty pages.
#include <gtest/gtest.h>

#include <cstring>

#include "blk_fixture.h"

namespace vm::test {
namespace {

class RequestTest : public VirtioBlkTest {
 protected:
  void SetUp() override {
    VirtioBlkTest::SetUp();
    driver_->Init();
  }
};

TEST_F(RequestTest, WriteThenReadRoundTrip) {
  FillGuest(kDataGpa, 8192, 3);
  ASSERT_EQ(driver_->Request(kBlkTOut, 16, kDataGpa, 8192), kBlkSOk);
  EXPECT_EQ(DiskBytes(16 * 512, 8192), GuestBytes(kDataGpa, 8192));

  const uint64_t back = kDataGpa + 0x10000;
  ASSERT_EQ(driver_->Request(kBlkTIn, 16, back, 8192), kBlkSOk);
  EXPECT_EQ(GuestBytes(back, 8192), GuestBytes(kDataGpa, 8192));
  auto [id, len] = driver_->UsedElem(uint16_t(driver_->UsedIdx() - 1));
  EXPECT_EQ(len, 8192u + 1) << "used length counts the data and the status byte";

  VirtioBlkCounters c = device_->counters();
  EXPECT_EQ(c.writes, 1u);
  EXPECT_EQ(c.reads, 1u);
  EXPECT_EQ(c.errors, 0u);
}

TEST_F(RequestTest, LastSectorIsReachable) {
  FillGuest(kDataGpa, 512, 9);
  const uint64_t last = kTestDiskBytes / 512 - 1;
  ASSERT_EQ(driver_->Request(kBlkTOut, last, kDataGpa, 512), kBlkSOk);
  EXPECT_EQ(DiskBytes(last * 512, 512), GuestBytes(kDataGpa, 512));
}

TEST_F(RequestTest, FlushReachesTheDisk) {
  ASSERT_EQ(driver_->Request(kBlkTFlush, 0, 0, 0), kBlkSOk);
  EXPECT_EQ(disk_.flushes, 1);
  EXPECT_EQ(device_->counters().flushes, 1u);
}

TEST_F(RequestTest, GetIdWritesNulPaddedId) {
  const uint8_t junk[20] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  ASSERT_TRUE(driver_->Store(kDataGpa, junk, 20));
  ASSERT_EQ(driver_->Request(kBlkTGetId, 0, kDataGpa, 20), kBlkSOk);
  auto id = GuestBytes(kDataGpa, 20);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(id.data())), "ferry-virtio-blk");
  for (size_t i = sizeof(kBlkIdString) - 1; i < 20; ++i) EXPECT_EQ(id[i], 0) << i;
}

TEST_F(RequestTest, UnknownTypeIsUnsupported) {
  EXPECT_EQ(driver_->Request(99, 0, 0, 0), kBlkSUnsupp);
  // Offered, but this driver did not negotiate it (discard_test.cc has more).
  EXPECT_EQ(driver_->Request(kBlkTDiscard, 0, 0, 0), kBlkSUnsupp);
}

TEST_F(RequestTest, SectorBeyondCapacityIsIoErr) {
  const uint64_t sectors = kTestDiskBytes / 512;
  EXPECT_EQ(driver_->Request(kBlkTIn, sectors, kDataGpa, 512), kBlkSIoErr);
  EXPECT_EQ(driver_->Request(kBlkTIn, sectors - 1, kDataGpa, 1024), kBlkSIoErr) << "straddles end";
  EXPECT_EQ(driver_->Request(kBlkTOut, sectors + 7, kDataGpa, 512), kBlkSIoErr);
  EXPECT_EQ(device_->counters().errors, 3u);
}

TEST_F(RequestTest, SectorOverflowIsIoErr) {
  // sector * 512 wraps around 2^64 to a small offset; it must not be served.
  EXPECT_EQ(driver_->Request(kBlkTIn, 1ull << 55, kDataGpa, 512), kBlkSIoErr);
  EXPECT_EQ(driver_->Request(kBlkTOut, ~0ull, kDataGpa, 512), kBlkSIoErr);
  EXPECT_EQ(DiskBytes(0, 512), std::vector<uint8_t>(512, 0));
}

TEST_F(RequestTest, LengthNotMultipleOfSectorIsIoErr) {
  EXPECT_EQ(driver_->Request(kBlkTIn, 0, kDataGpa, 100), kBlkSIoErr);
  EXPECT_EQ(driver_->Request(kBlkTOut, 0, kDataGpa, 513), kBlkSIoErr);
}

TEST_F(RequestTest, DiskFailureIsIoErr) {
  disk_.fail_io = true;
  EXPECT_EQ(driver_->Request(kBlkTIn, 0, kDataGpa, 512), kBlkSIoErr);
  EXPECT_EQ(driver_->Request(kBlkTOut, 0, kDataGpa, 512), kBlkSIoErr);
  EXPECT_EQ(driver_->Request(kBlkTFlush, 0, 0, 0), kBlkSIoErr);
  disk_.fail_io = false;
  EXPECT_EQ(driver_->Request(kBlkTFlush, 0, 0, 0), kBlkSOk) << "the device keeps working";
  EXPECT_EQ(device_->counters().errors, 3u);
}

TEST_F(RequestTest, HeaderSplitAcrossDescriptorsAndScatteredData) {
  // Header in two pieces, data in three uneven writable pieces.
  driver_->WriteHeader(kBlkTOut, 4);
  FillGuest(kDataGpa, 4096, 42);
  driver_->PostChain({{kHeaderGpa, 8, 0},
                      {kHeaderGpa + 8, 8, 0},
                      {kDataGpa, 512, 0},
                      {kDataGpa + 512, 1024, 0},
                      {kDataGpa + 1536, 2560, 0},
                      {kStatusGpa, 1, kDescFWrite}});
  driver_->Notify();
  ASSERT_EQ(driver_->UsedIdx(), 1);
  EXPECT_EQ(driver_->StatusByte(), kBlkSOk);
  EXPECT_EQ(DiskBytes(4 * 512, 4096), GuestBytes(kDataGpa, 4096));

  // Read it back scattered over non-adjacent buffers, status in the last
  // byte of the final data buffer.
  driver_->WriteHeader(kBlkTIn, 4);
  const uint64_t a = 0x40000, b = 0x50000;
  driver_->PostChain({{kHeaderGpa, 16, 0}, {a, 1536, kDescFWrite}, {b, 2560 + 1, kDescFWrite}}, 6);
  driver_->Notify();
  ASSERT_EQ(driver_->UsedIdx(), 2);
  EXPECT_EQ(driver_->StatusByte(b + 2560), kBlkSOk);
  auto got = GuestBytes(a, 1536);
  auto rest = GuestBytes(b, 2560);
  got.insert(got.end(), rest.begin(), rest.end());
  EXPECT_EQ(got, DiskBytes(4 * 512, 4096));
  auto [id, len] = driver_->UsedElem(1);
  EXPECT_EQ(id, 6u);
  EXPECT_EQ(len, 4096u + 1);
}

TEST_F(RequestTest, ManyRequestsWrapTheRing) {
  // 40 requests through a 16-entry ring: slots and indices wrap.
  for (int i = 0; i < 40; ++i) {
    FillGuest(kDataGpa, 512, uint8_t(i));
    ASSERT_EQ(driver_->Request(kBlkTOut, i, kDataGpa, 512), kBlkSOk) << i;
    ASSERT_EQ(DiskBytes(i * 512, 512), GuestBytes(kDataGpa, 512)) << i;
  }
  EXPECT_EQ(driver_->UsedIdx(), 40);
}

TEST_F(RequestTest, BatchOfRequestsInOneNotify) {
  for (uint16_t i = 0; i < 5; ++i) {
    uint64_t header = kHeaderGpa + 0x20 * i, status = kStatusGpa + i;
    driver_->WriteHeader(kBlkTOut, i, header);
    FillGuest(kDataGpa + 512 * i, 512, uint8_t(100 + i));
    driver_->PostChain({{header, 16, 0}, {kDataGpa + 512u * i, 512, 0}, {status, 1, kDescFWrite}},
                       uint16_t(3 * i));
  }
  driver_->Notify();
  ASSERT_EQ(driver_->UsedIdx(), 5);
  for (uint16_t i = 0; i < 5; ++i) {
    EXPECT_EQ(driver_->StatusByte(kStatusGpa + i), kBlkSOk);
    EXPECT_EQ(driver_->UsedElem(i).first, 3u * i) << "completions in order";
  }
  EXPECT_EQ(DiskBytes(0, 2560), GuestBytes(kDataGpa, 2560));
}

TEST_F(RequestTest, DeviceWritesAreRecordedDirty) {
  (void)memory_->TakeVmmDirty();  // forget the setup
  FillGuest(0x70000, 512, 1);     // a guest store: not a VMM write
  disk_.bytes[8 * 512] = 0x5a;
  ASSERT_EQ(driver_->Request(kBlkTIn, 8, 0x30000, 8192), kBlkSOk);
  auto dirty = memory_->TakeVmmDirty();
  auto is_dirty = [&](uint64_t gpa) {
    uint64_t page = gpa / kPageSize;
    return (dirty[page / 64] >> (page % 64)) & 1;
  };
  EXPECT_TRUE(is_dirty(0x30000));
  EXPECT_TRUE(is_dirty(0x31000)) << "second page of the read data";
  EXPECT_TRUE(is_dirty(kStatusGpa));
  EXPECT_TRUE(is_dirty(kUsedGpa));
  EXPECT_FALSE(is_dirty(0x32000));
  EXPECT_FALSE(is_dirty(kDescGpa)) << "the device only reads descriptors";
  EXPECT_FALSE(is_dirty(0x70000));

  ASSERT_EQ(driver_->Request(kBlkTOut, 8, 0x60000, 4096), kBlkSOk);
  dirty = memory_->TakeVmmDirty();
  EXPECT_FALSE(is_dirty(0x60000)) << "an OUT request only reads its data";
  EXPECT_TRUE(is_dirty(kUsedGpa));
}

TEST_F(RequestTest, DrainFlushesTheDisk) {
  ASSERT_TRUE(device_->Drain().has_value());
  EXPECT_EQ(disk_.flushes, 1);
  disk_.fail_io = true;
  base::Status st = device_->Drain();
  ASSERT_FALSE(st.has_value());
  EXPECT_NE(st.error().message().find("drain virtio-blk"), std::string::npos);
}

class ReadOnlyRequestTest : public VirtioBlkTest {
 protected:
  void SetUp() override {
    Make(/*read_only=*/true);
    driver_->Init();
  }
};

TEST_F(ReadOnlyRequestTest, WritesFailReadsWork) {
  disk_.bytes[0] = 0x77;
  FillGuest(kDataGpa, 512, 5);
  EXPECT_EQ(driver_->Request(kBlkTOut, 0, kDataGpa, 512), kBlkSIoErr);
  EXPECT_EQ(disk_.bytes[0], 0x77);
  ASSERT_EQ(driver_->Request(kBlkTIn, 0, kDataGpa, 512), kBlkSOk);
  EXPECT_EQ(GuestBytes(kDataGpa, 1)[0], 0x77);
}

}  // namespace
}  // namespace vm::test
