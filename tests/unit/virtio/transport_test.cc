// The virtio-mmio transport as a driver sees it: identification registers,
// feature negotiation, queue setup, status and reset.
#include <gtest/gtest.h>

#include "blk_fixture.h"

namespace vm::test {
namespace {

TEST_F(VirtioBlkTest, IdentifiesAsVirtioMmioV2Block) {
  EXPECT_EQ(driver_->Read32(kRegMagic), 0x74726976u);
  EXPECT_EQ(driver_->Read32(kRegVersion), 2u);
  EXPECT_EQ(driver_->Read32(kRegDeviceId), 2u);
  EXPECT_EQ(driver_->Read32(kRegVendorId), kVendorId);
  EXPECT_EQ(driver_->Status(), 0u);
}

TEST_F(VirtioBlkTest, OffersVersion1AndFlushButNotReadOnly) {
  uint64_t f = driver_->DeviceFeatures();
  EXPECT_TRUE(f & kFVersion1);
  EXPECT_TRUE(f & kBlkFFlush);
  EXPECT_FALSE(f & kBlkFRo);
  driver_->Write32(kRegDeviceFeaturesSel, 2);  // no such page
  EXPECT_EQ(driver_->Read32(kRegDeviceFeatures), 0u);
}

TEST_F(VirtioBlkTest, ConfigSpaceHoldsCapacityInSectors) {
  uint64_t lo = driver_->Read32(kRegConfig), hi = driver_->Read32(kRegConfig + 4);
  EXPECT_EQ(lo | hi << 32, kTestDiskBytes / 512);
  EXPECT_EQ(driver_->Read32(kRegConfig + kConfigBlkSize), 512u);
  uint8_t b[8];
  device_->MmioRead(kRegConfig, b, 8);  // config space allows 64-bit reads
  EXPECT_EQ(base::GetLe64(b), kTestDiskBytes / 512);
  device_->MmioRead(kRegConfig + 0x200, b, 4);  // past the config: zeros
  EXPECT_EQ(base::GetLe32(b), 0u);
}

TEST_F(VirtioBlkTest, AcceptsSubsetOfFeaturesWithVersion1) {
  EXPECT_TRUE(driver_->Negotiate(kFVersion1));
  EXPECT_TRUE(driver_->Negotiate(kFVersion1 | kBlkFFlush));
}

TEST_F(VirtioBlkTest, RefusesLegacyAndUnofferedFeatures) {
  EXPECT_FALSE(driver_->Negotiate(kBlkFFlush)) << "no VERSION_1 means a legacy driver";
  EXPECT_FALSE(driver_->Negotiate(kFVersion1 | kBlkFRo)) << "RO is not offered for this disk";
  EXPECT_FALSE(driver_->Negotiate(kFVersion1 | (1ull << 28))) << "indirect descriptors";
}

TEST_F(VirtioBlkTest, FeaturesFreezeAtFeaturesOk) {
  ASSERT_TRUE(driver_->Negotiate(kFVersion1));
  driver_->WriteDriverFeatures(kFVersion1 | (1ull << 40));  // ignored now
  auto saved = device_->SaveState();
  ASSERT_TRUE(driver_->Negotiate(kFVersion1 | kBlkFFlush));  // after a reset it can change
  EXPECT_NE(saved, device_->SaveState());
}

TEST_F(VirtioBlkTest, QueueNumMaxIs256ForQueue0Only) {
  EXPECT_EQ(driver_->Read32(kRegQueueNumMax), kQueueSizeMax);
  driver_->Write32(kRegQueueSel, 1);
  EXPECT_EQ(driver_->Read32(kRegQueueNumMax), 0u);
  EXPECT_EQ(driver_->Read32(kRegQueueReady), 0u);
}

TEST_F(VirtioBlkTest, FullInitLeavesQueueReady) {
  driver_->Init();
  EXPECT_EQ(driver_->Read32(kRegQueueReady), 1u);
  EXPECT_EQ(driver_->Status(),
            kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
}

TEST_F(VirtioBlkTest, RejectsQueueSizeNotPowerOfTwo) {
  ASSERT_TRUE(driver_->Negotiate(kFVersion1));
  driver_->ConfigureQueue(12);
  EXPECT_EQ(driver_->Read32(kRegQueueReady), 0u);
  EXPECT_TRUE(driver_->Status() & kStatusNeedsReset);
}

TEST_F(VirtioBlkTest, RejectsQueueLargerThanMax) {
  ASSERT_TRUE(driver_->Negotiate(kFVersion1));
  driver_->ConfigureQueue(512);
  EXPECT_EQ(driver_->Read32(kRegQueueReady), 0u);
  EXPECT_TRUE(driver_->Status() & kStatusNeedsReset);
}

TEST_F(VirtioBlkTest, RejectsRingsOutsideRam) {
  ASSERT_TRUE(driver_->Negotiate(kFVersion1));
  driver_->ConfigureQueue(16, kTestMemoryBytes - 64);  // table runs off the end
  EXPECT_EQ(driver_->Read32(kRegQueueReady), 0u);
  EXPECT_TRUE(driver_->Status() & kStatusNeedsReset);
}

TEST_F(VirtioBlkTest, RejectsMisalignedRing) {
  ASSERT_TRUE(driver_->Negotiate(kFVersion1));
  driver_->ConfigureQueue(16, kDescGpa + 8);
  EXPECT_TRUE(driver_->Status() & kStatusNeedsReset);
}

TEST_F(VirtioBlkTest, ResetClearsNeedsResetAndQueue) {
  driver_->Init();
  driver_->Write32(kRegStatus, 0);
  EXPECT_EQ(driver_->Status(), 0u);
  EXPECT_EQ(driver_->Read32(kRegQueueReady), 0u);
  ASSERT_TRUE(driver_->Negotiate(kFVersion1));
  driver_->ConfigureQueue(3);
  ASSERT_TRUE(driver_->Status() & kStatusNeedsReset);
  driver_->Write32(kRegStatus, kStatusAcknowledge);  // the driver cannot clear it...
  EXPECT_TRUE(driver_->Status() & kStatusNeedsReset);
  driver_->Write32(kRegStatus, 0);  // ...only a reset does
  EXPECT_EQ(driver_->Status(), 0u);
  driver_->Init();
  EXPECT_EQ(driver_->Request(kBlkTIn, 0, kDataGpa, 512), kBlkSOk);
}

TEST_F(VirtioBlkTest, QueueAddressesFrozenWhileReady) {
  driver_->Init();
  std::string before = device_->SaveState();
  driver_->Write32(kRegQueueDescLow, 0x40000);
  driver_->Write32(kRegQueueNum, 8);
  EXPECT_EQ(device_->SaveState(), before);
}

TEST_F(VirtioBlkTest, NonWordRegisterAccessIsIgnored) {
  uint8_t b[2] = {0x0f, 0};
  device_->MmioWrite(kRegStatus, b, 2);
  EXPECT_EQ(driver_->Status(), 0u);
  uint8_t r[2] = {0xaa, 0xaa};
  device_->MmioRead(kRegMagic, r, 2);
  EXPECT_EQ(r[0], 0);
  EXPECT_EQ(r[1], 0);
}

TEST_F(VirtioBlkTest, NotifyBeforeDriverOkDoesNothing) {
  ASSERT_TRUE(driver_->Negotiate(kFVersion1));
  driver_->ConfigureQueue(16);
  driver_->WriteHeader(kBlkTFlush, 0);
  driver_->PostChain({{kHeaderGpa, 16, 0}, {kStatusGpa, 1, kDescFWrite}});
  driver_->Notify();
  EXPECT_EQ(driver_->UsedIdx(), 0);
  EXPECT_EQ(disk_.flushes, 0);
}

TEST_F(VirtioBlkTest, UsedBufferSetsInterruptStatusUntilAcked) {
  driver_->Init();
  EXPECT_EQ(driver_->Read32(kRegInterruptStatus), 0u);
  EXPECT_EQ(driver_->Request(kBlkTFlush, 0, 0, 0), kBlkSOk);
  EXPECT_EQ(driver_->Read32(kRegInterruptStatus), kInterruptUsedBuffer);
  driver_->Write32(kRegInterruptAck, kInterruptUsedBuffer);
  EXPECT_EQ(driver_->Read32(kRegInterruptStatus), 0u);
}

TEST_F(VirtioBlkTest, ReadOnlyDiskOffersRo) {
  Make(/*read_only=*/true);
  EXPECT_TRUE(driver_->DeviceFeatures() & kBlkFRo);
  EXPECT_TRUE(driver_->Negotiate(kFVersion1 | kBlkFRo));
}

}  // namespace
}  // namespace vm::test
