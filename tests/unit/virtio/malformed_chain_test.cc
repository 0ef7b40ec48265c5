// A hostile or buggy driver's descriptor chains. Each must end in an IOERR
// status (when the chain still has a usable status byte) or in
// DEVICE_NEEDS_RESET — never a crash or an access outside guest RAM (the
// sanitizer build runs these).
#include <gtest/gtest.h>

#include "blk_fixture.h"

namespace vm::test {
namespace {

class MalformedChainTest : public VirtioBlkTest {
 protected:
  void SetUp() override {
    VirtioBlkTest::SetUp();
    driver_->Init();
    driver_->WriteHeader(kBlkTIn, 0);
    const uint8_t poison = 0xee;
    ASSERT_TRUE(driver_->Store(kStatusGpa, &poison, 1));
  }
  // The device answered the chain with IOERR and keeps working.
  void ExpectIoErrAndAlive() {
    EXPECT_EQ(driver_->UsedIdx(), 1);
    EXPECT_EQ(driver_->StatusByte(), kBlkSIoErr);
    EXPECT_EQ(driver_->Status() & kStatusNeedsReset, 0u);
    EXPECT_EQ(device_->counters().errors, 1u);
    driver_->WriteHeader(kBlkTFlush, 0);
    driver_->PostChain({{kHeaderGpa, 16, 0}, {kStatusGpa, 1, kDescFWrite}}, 8);
    driver_->Notify();
    EXPECT_EQ(driver_->UsedIdx(), 2);
    EXPECT_EQ(driver_->StatusByte(), kBlkSOk);
  }
  // The device gave up on the queue: nothing completed, NEEDS_RESET set,
  // further notifies ignored.
  void ExpectNeedsReset() {
    EXPECT_TRUE(driver_->Status() & kStatusNeedsReset);
    EXPECT_EQ(driver_->UsedIdx(), 0);
    EXPECT_EQ(driver_->StatusByte(), 0xee);
    driver_->Notify();
    EXPECT_EQ(driver_->UsedIdx(), 0);
  }
};

TEST_F(MalformedChainTest, LoopNeedsReset) {
  driver_->PutDesc(0, {kHeaderGpa, 16, kDescFNext, 1});
  driver_->PutDesc(1, {kDataGpa, 512, kDescFNext | kDescFWrite, 2});
  driver_->PutDesc(2, {kStatusGpa, 1, kDescFNext | kDescFWrite, 1});  // back to 1
  driver_->PushAvail(0);
  driver_->Notify();
  ExpectNeedsReset();
}

TEST_F(MalformedChainTest, SelfLoopNeedsReset) {
  driver_->PutDesc(0, {kHeaderGpa, 16, kDescFNext, 0});
  driver_->PushAvail(0);
  driver_->Notify();
  ExpectNeedsReset();
}

TEST_F(MalformedChainTest, NextOutsideTableNeedsReset) {
  driver_->PutDesc(0, {kHeaderGpa, 16, kDescFNext, 16});  // queue size is 16
  driver_->PushAvail(0);
  driver_->Notify();
  ExpectNeedsReset();
}

TEST_F(MalformedChainTest, HeadOutsideTableNeedsReset) {
  driver_->PushAvail(200);
  driver_->Notify();
  ExpectNeedsReset();
}

TEST_F(MalformedChainTest, AvailIndexRunningAheadNeedsReset) {
  driver_->SetAvailIdx(17);  // more outstanding than the ring holds
  driver_->Notify();
  ExpectNeedsReset();
}

TEST_F(MalformedChainTest, IndirectDescriptorNeedsReset) {
  driver_->PutDesc(0, {kDataGpa, 64, kDescFIndirect});
  driver_->PushAvail(0);
  driver_->Notify();
  ExpectNeedsReset();
}

TEST_F(MalformedChainTest, NoWritableStatusByteNeedsReset) {
  driver_->PostChain({{kHeaderGpa, 16, 0}, {kStatusGpa, 1, 0}});
  driver_->Notify();
  ExpectNeedsReset();
}

TEST_F(MalformedChainTest, StatusByteOutsideRamNeedsReset) {
  driver_->PostChain({{kHeaderGpa, 16, 0}, {kTestMemoryBytes, 1, kDescFWrite}});
  driver_->Notify();
  ExpectNeedsReset();
}

TEST_F(MalformedChainTest, DataOutsideRamIsIoErr) {
  driver_->PostChain({{kHeaderGpa, 16, 0},
                      {kTestMemoryBytes - 512, 1024, kDescFWrite},
                      {kStatusGpa, 1, kDescFWrite}});
  driver_->Notify();
  ExpectIoErrAndAlive();
}

TEST_F(MalformedChainTest, DataAddressWrappingAroundIsIoErr) {
  driver_->PostChain({{kHeaderGpa, 16, 0},
                      {~0ull - 255, 512, kDescFWrite},  // gpa + len overflows 64 bits
                      {kStatusGpa, 1, kDescFWrite}});
  driver_->Notify();
  ExpectIoErrAndAlive();
}

TEST_F(MalformedChainTest, HeaderOutsideRamIsIoErr) {
  driver_->PostChain({{kTestMemoryBytes + 4096, 16, 0}, {kStatusGpa, 1, kDescFWrite}});
  driver_->Notify();
  ExpectIoErrAndAlive();
}

TEST_F(MalformedChainTest, ShortHeaderIsIoErr) {
  driver_->PostChain({{kHeaderGpa, 8, 0}, {kStatusGpa, 1, kDescFWrite}});
  driver_->Notify();
  ExpectIoErrAndAlive();
}

TEST_F(MalformedChainTest, ReadableAfterWritableIsIoErr) {
  driver_->PostChain({{kHeaderGpa, 16, 0},
                      {kDataGpa, 512, kDescFWrite},
                      {kDataGpa + 512, 512, 0},
                      {kStatusGpa, 1, kDescFWrite}});
  driver_->Notify();
  ExpectIoErrAndAlive();
}

TEST_F(MalformedChainTest, ReadIntoDeviceReadableBufferIsIoErr) {
  FillGuest(kDataGpa, 512, 1);
  auto before = GuestBytes(kDataGpa, 512);
  driver_->PostChain({{kHeaderGpa, 16, 0}, {kDataGpa, 512, 0}, {kStatusGpa, 1, kDescFWrite}});
  driver_->Notify();
  EXPECT_EQ(GuestBytes(kDataGpa, 512), before);
  ExpectIoErrAndAlive();
}

TEST_F(MalformedChainTest, WriteFromDeviceWritableBufferIsIoErr) {
  driver_->WriteHeader(kBlkTOut, 0);
  disk_.bytes[0] = 0x42;
  driver_->PostChain(
      {{kHeaderGpa, 16, 0}, {kDataGpa, 512, kDescFWrite}, {kStatusGpa, 1, kDescFWrite}});
  driver_->Notify();
  EXPECT_EQ(disk_.bytes[0], 0x42);
  ExpectIoErrAndAlive();
}

TEST_F(MalformedChainTest, HugeLengthIsIoErr) {
  driver_->PostChain(
      {{kHeaderGpa, 16, 0}, {kDataGpa, 0xfffffe00u, kDescFWrite}, {kStatusGpa, 1, kDescFWrite}});
  driver_->Notify();
  ExpectIoErrAndAlive();
}

}  // namespace
}  // namespace vm::test
