// DISCARD and WRITE_ZEROES requests (§5.2.6): feature offer, config space,
// what reaches the disk, and every check a hostile or buggy driver can hit
// (flags, segment counts and sizes, ranges, direction, read-only disks). A
// refused request must leave the disk untouched.
#include <gtest/gtest.h>

#include <vector>

#include "blk_fixture.h"

namespace vm::test {
namespace {

struct Seg {
  uint64_t sector;
  uint32_t sectors;
  uint32_t flags = 0;
};

class DiscardTest : public VirtioBlkTest {
 protected:
  void SetUp() override {
    VirtioBlkTest::SetUp();
    driver_->Init(16, kBlkFDiscard | kBlkFWriteZeroes);
    std::fill(disk_.bytes.begin(), disk_.bytes.end(), 0xab);
  }

  // Posts one request whose data is the given segments.
  uint8_t Send(uint32_t type, const std::vector<Seg>& segs) {
    std::vector<uint8_t> raw(segs.size() * kBlkDiscardSegmentBytes);
    for (size_t i = 0; i < segs.size(); ++i) {
      base::PutLe64(&raw[16 * i], segs[i].sector);
      base::PutLe32(&raw[16 * i + 8], segs[i].sectors);
      base::PutLe32(&raw[16 * i + 12], segs[i].flags);
    }
    if (!raw.empty()) {
      EXPECT_TRUE(driver_->Store(kDataGpa, raw.data(), raw.size()));
    }
    return driver_->Request(type, 0, kDataGpa, uint32_t(raw.size()));
  }

  bool AllBytes(uint64_t offset, uint64_t len, uint8_t v) {
    for (uint64_t i = offset; i < offset + len; ++i)
      if (disk_.bytes[i] != v) return false;
    return true;
  }
  bool Untouched() { return AllBytes(0, kTestDiskBytes, 0xab); }
};

TEST_F(VirtioBlkTest, OffersDiscardAndWriteZeroesOnWritableDisks) {
  uint64_t f = driver_->DeviceFeatures();
  EXPECT_TRUE(f & kBlkFDiscard);
  EXPECT_TRUE(f & kBlkFWriteZeroes);
  EXPECT_EQ(driver_->Read32(kRegConfig + kConfigMaxDiscardSectors), kBlkMaxDiscardSectors);
  EXPECT_EQ(driver_->Read32(kRegConfig + kConfigMaxDiscardSeg), kBlkMaxDiscardSegments);
  EXPECT_EQ(driver_->Read32(kRegConfig + kConfigDiscardSectorAlignment),
            kBlkDiscardSectorAlignment);
  EXPECT_EQ(driver_->Read32(kRegConfig + kConfigMaxWriteZeroesSectors), kBlkMaxDiscardSectors);
  EXPECT_EQ(driver_->Read32(kRegConfig + kConfigMaxWriteZeroesSeg), kBlkMaxDiscardSegments);
  uint8_t unmap = 0;
  device_->MmioRead(kRegConfig + kConfigWriteZeroesMayUnmap, &unmap, 1);
  EXPECT_EQ(unmap, 1);
  EXPECT_TRUE(driver_->Negotiate(kFVersion1 | kBlkFDiscard | kBlkFWriteZeroes));
}

TEST_F(VirtioBlkTest, ReadOnlyDiskOffersNeither) {
  Make(/*read_only=*/true);
  uint64_t f = driver_->DeviceFeatures();
  EXPECT_FALSE(f & kBlkFDiscard);
  EXPECT_FALSE(f & kBlkFWriteZeroes);
  EXPECT_FALSE(driver_->Negotiate(kFVersion1 | kBlkFRo | kBlkFDiscard));
}

TEST_F(DiscardTest, DiscardZeroesTheRangesAndReachesDiscard) {
  ASSERT_EQ(Send(kBlkTDiscard, {{8, 16}, {100, 1}}), kBlkSOk);
  EXPECT_TRUE(AllBytes(8 * 512, 16 * 512, 0));
  EXPECT_TRUE(AllBytes(100 * 512, 512, 0));
  EXPECT_TRUE(AllBytes(0, 8 * 512, 0xab));
  EXPECT_TRUE(AllBytes(24 * 512, 76 * 512, 0xab));
  EXPECT_TRUE(AllBytes(101 * 512, kTestDiskBytes - 101 * 512, 0xab));
  EXPECT_EQ(disk_.discards, 2);
  EXPECT_EQ(disk_.write_zeroes, 0);
  EXPECT_EQ(device_->counters().errors, 0u);
}

TEST_F(DiscardTest, WriteZeroesUsesDiscardOnlyWithUnmap) {
  ASSERT_EQ(Send(kBlkTWriteZeroes, {{0, 4}}), kBlkSOk);
  EXPECT_EQ(disk_.write_zeroes, 1);
  EXPECT_EQ(disk_.discards, 0);
  ASSERT_EQ(Send(kBlkTWriteZeroes, {{10, 2, kBlkWriteZeroesFlagUnmap}}), kBlkSOk);
  EXPECT_EQ(disk_.discards, 1);
  EXPECT_TRUE(AllBytes(0, 4 * 512, 0));
  EXPECT_TRUE(AllBytes(10 * 512, 2 * 512, 0));
  EXPECT_TRUE(AllBytes(4 * 512, 6 * 512, 0xab));
}

TEST_F(DiscardTest, LastSectorsAndZeroLengthSegmentsAreAccepted) {
  const uint64_t sectors = kTestDiskBytes / 512;
  ASSERT_EQ(Send(kBlkTDiscard, {{sectors - 3, 3}, {sectors, 0}}), kBlkSOk);
  EXPECT_TRUE(AllBytes((sectors - 3) * 512, 3 * 512, 0));
  EXPECT_TRUE(AllBytes(0, (sectors - 3) * 512, 0xab));
}

TEST_F(DiscardTest, UnknownFlagsAndUnmapOnDiscardAreUnsupported) {
  EXPECT_EQ(Send(kBlkTDiscard, {{0, 1, kBlkWriteZeroesFlagUnmap}}), kBlkSUnsupp);
  EXPECT_EQ(Send(kBlkTDiscard, {{0, 1, 2}}), kBlkSUnsupp);
  EXPECT_EQ(Send(kBlkTWriteZeroes, {{0, 1, 1u << 31}}), kBlkSUnsupp);
  // A bad flag in a later segment: nothing of the request runs.
  EXPECT_EQ(Send(kBlkTWriteZeroes, {{0, 1}, {4, 1, 4}}), kBlkSUnsupp);
  EXPECT_TRUE(Untouched());
}

TEST_F(DiscardTest, OutOfRangeSegmentsAreIoErrAndChangeNothing) {
  const uint64_t sectors = kTestDiskBytes / 512;
  EXPECT_EQ(Send(kBlkTDiscard, {{sectors, 1}}), kBlkSIoErr);
  EXPECT_EQ(Send(kBlkTDiscard, {{sectors - 1, 2}}), kBlkSIoErr) << "straddles the end";
  EXPECT_EQ(Send(kBlkTWriteZeroes, {{0, 1}, {~0ull, 1}}), kBlkSIoErr) << "sector overflow";
  EXPECT_EQ(Send(kBlkTWriteZeroes, {{~0ull - 1, 4}}), kBlkSIoErr);
  EXPECT_EQ(device_->counters().errors, 4u);
  EXPECT_TRUE(Untouched());
  EXPECT_EQ(disk_.discards + disk_.write_zeroes, 0);
}

TEST_F(DiscardTest, OversizedSegmentsAndTooManySegmentsAreIoErr) {
  Make(false);  // a disk larger than the advertised maximum segment
  disk_.bytes.assign(size_t(kBlkMaxDiscardSectors + 8) * 512, 0xab);
  driver_->Init(16, kBlkFDiscard | kBlkFWriteZeroes);
  EXPECT_EQ(Send(kBlkTDiscard, {{0, kBlkMaxDiscardSectors + 1}}), kBlkSIoErr);
  EXPECT_EQ(Send(kBlkTDiscard, {{0, kBlkMaxDiscardSectors}}), kBlkSOk);
  std::vector<Seg> many(kBlkMaxDiscardSegments + 1, Seg{0, 1});
  EXPECT_EQ(Send(kBlkTWriteZeroes, many), kBlkSIoErr);
  many.pop_back();
  EXPECT_EQ(Send(kBlkTWriteZeroes, many), kBlkSOk);
}

TEST_F(DiscardTest, MalformedPayloadsAreIoErr) {
  // No payload, a payload that is not whole segments.
  EXPECT_EQ(driver_->Request(kBlkTDiscard, 0, kDataGpa, 0), kBlkSIoErr);
  EXPECT_EQ(driver_->Request(kBlkTDiscard, 0, kDataGpa, 15), kBlkSIoErr);
  EXPECT_EQ(driver_->Request(kBlkTWriteZeroes, 0, kDataGpa, 17), kBlkSIoErr);
  // The payload in the device-writable direction.
  uint8_t seg[16] = {};
  base::PutLe32(seg + 8, 1);
  ASSERT_TRUE(driver_->Store(kDataGpa, seg, 16));
  driver_->WriteHeader(kBlkTDiscard, 0);
  driver_->PostChain(
      {{kHeaderGpa, 16, 0}, {kDataGpa, 16, kDescFWrite}, {kStatusGpa, 1, kDescFWrite}}, 0);
  driver_->Notify();
  EXPECT_EQ(driver_->StatusByte(), kBlkSIoErr);
  EXPECT_TRUE(Untouched());
}

TEST_F(DiscardTest, SegmentSplitAcrossDescriptorsIsAccepted) {
  uint8_t seg[16] = {};
  base::PutLe64(seg, 2);
  base::PutLe32(seg + 8, 2);
  ASSERT_TRUE(driver_->Store(kDataGpa, seg, 5));
  ASSERT_TRUE(driver_->Store(kDataGpa + 0x1000, seg + 5, 11));
  driver_->WriteHeader(kBlkTDiscard, 0);
  driver_->PostChain({{kHeaderGpa, 16, 0},
                      {kDataGpa, 5, 0},
                      {kDataGpa + 0x1000, 11, 0},
                      {kStatusGpa, 1, kDescFWrite}},
                     0);
  driver_->Notify();
  EXPECT_EQ(driver_->StatusByte(), kBlkSOk);
  EXPECT_TRUE(AllBytes(2 * 512, 2 * 512, 0));
  EXPECT_TRUE(AllBytes(0, 2 * 512, 0xab));
}

TEST_F(DiscardTest, DiskErrorIsIoErr) {
  disk_.fail_io = true;
  EXPECT_EQ(Send(kBlkTDiscard, {{0, 1}}), kBlkSIoErr);
  EXPECT_EQ(Send(kBlkTWriteZeroes, {{0, 1}}), kBlkSIoErr);
  disk_.fail_io = false;
  EXPECT_EQ(Send(kBlkTDiscard, {{0, 1}}), kBlkSOk);
}

TEST_F(VirtioBlkTest, NotNegotiatedIsUnsupported) {
  driver_->Init();  // VERSION_1 + FLUSH only
  disk_.bytes.assign(kTestDiskBytes, 0xab);
  uint8_t seg[16] = {};
  base::PutLe32(seg + 8, 1);
  ASSERT_TRUE(driver_->Store(kDataGpa, seg, 16));
  EXPECT_EQ(driver_->Request(kBlkTDiscard, 0, kDataGpa, 16), kBlkSUnsupp);
  EXPECT_EQ(driver_->Request(kBlkTWriteZeroes, 0, kDataGpa, 16), kBlkSUnsupp);
  EXPECT_EQ(disk_.bytes[0], 0xab);
}

}  // namespace
}  // namespace vm::test
