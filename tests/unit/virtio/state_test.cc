// SaveState/RestoreState: the blob's layout, a restore in the middle of a
// queue into a fresh device over a copy of guest memory, and rejection of
// malformed blobs.
#include <gtest/gtest.h>

#include <cstring>

#include "blk_fixture.h"
#include "virtio_blk_state.h"

namespace vm::test {
namespace {

// Field offsets in the v1 blob (virtio_blk_state.h).
constexpr size_t kOffVersion = 4, kOffCapacity = 6, kOffReadOnly = 14, kOffStatus = 15,
                 kOffQueueNum = 39, kOffQueueReady = 43, kOffQueueDesc = 44, kOffLastAvail = 68,
                 kOffUsedIdx = 70, kBlobBytes = 80;

class StateTest : public VirtioBlkTest {
 protected:
  // A second device over a copy of this VM's memory and the same disk: what a
  // restore in a new process sees.
  void MakeClone() {
    auto memory = GuestMemory::Create(kTestMemoryBytes);
    ASSERT_TRUE(memory.has_value());
    clone_memory_ = std::move(*memory);
    std::memcpy(clone_memory_->base(), memory_->base(), kTestMemoryBytes);
    clone_ = std::make_unique<VirtioBlk>(*clone_memory_, std::make_unique<MemoryDisk>(&disk_));
    clone_driver_ = std::make_unique<TestDriver>(*clone_memory_, *clone_);
  }
  std::unique_ptr<GuestMemory> clone_memory_;
  std::unique_ptr<VirtioBlk> clone_;
  std::unique_ptr<TestDriver> clone_driver_;
};

TEST_F(StateTest, BlobLayoutIsExplicitLittleEndian) {
  driver_->Init();
  ASSERT_EQ(driver_->Request(kBlkTFlush, 0, 0, 0), kBlkSOk);
  std::string blob = device_->SaveState();
  ASSERT_EQ(blob.size(), kBlobBytes);
  auto p = reinterpret_cast<const uint8_t*>(blob.data());
  EXPECT_EQ(std::string(blob.data(), 4), "VBLK");
  EXPECT_EQ(base::GetLe16(p + kOffVersion), 1);
  EXPECT_EQ(base::GetLe64(p + kOffCapacity), kTestDiskBytes);
  EXPECT_EQ(p[kOffReadOnly], 0);
  EXPECT_EQ(base::GetLe32(p + kOffStatus), 15u);
  EXPECT_EQ(base::GetLe32(p + kOffQueueNum), 16u);
  EXPECT_EQ(p[kOffQueueReady], 1);
  EXPECT_EQ(base::GetLe64(p + kOffQueueDesc), kDescGpa);
  EXPECT_EQ(base::GetLe16(p + kOffLastAvail), 1);
  EXPECT_EQ(base::GetLe16(p + kOffUsedIdx), 1);
}

TEST_F(StateTest, RestoreMidQueueContinuesWhereItStopped) {
  driver_->Init();
  for (int i = 0; i < 3; ++i) {
    FillGuest(kDataGpa, 512, uint8_t(i));
    ASSERT_EQ(driver_->Request(kBlkTOut, i, kDataGpa, 512), kBlkSOk);
  }
  // A fourth request is posted but not yet notified when the VM is saved.
  FillGuest(kDataGpa + 4096, 4096, 77);
  driver_->WriteHeader(kBlkTOut, 100);
  driver_->PostChain(
      {{kHeaderGpa, 16, 0}, {kDataGpa + 4096, 4096, 0}, {kStatusGpa, 1, kDescFWrite}}, 9);
  ASSERT_TRUE(device_->Drain().has_value());
  std::string blob = device_->SaveState();
  MakeClone();
  ASSERT_TRUE(clone_->RestoreState(blob).has_value());
  EXPECT_EQ(clone_->SaveState(), blob);

  // The guest-visible registers came back.
  EXPECT_EQ(clone_driver_->Status(), driver_->Status());
  EXPECT_EQ(clone_driver_->Read32(kRegQueueReady), 1u);

  clone_driver_->Notify();
  EXPECT_EQ(clone_driver_->UsedIdx(), 4);
  EXPECT_EQ(clone_driver_->UsedElem(3).first, 9u);
  EXPECT_EQ(clone_driver_->StatusByte(), kBlkSOk);
  EXPECT_EQ(DiskBytes(100 * 512, 4096), GuestBytes(kDataGpa + 4096, 4096));
  EXPECT_EQ(driver_->UsedIdx(), 3) << "the original memory is untouched";
}

TEST_F(StateTest, RestoreOfResetDeviceIsReset) {
  std::string blob = device_->SaveState();
  MakeClone();
  ASSERT_TRUE(clone_->RestoreState(blob).has_value());
  EXPECT_EQ(clone_driver_->Status(), 0u);
  EXPECT_EQ(clone_driver_->Read32(kRegQueueReady), 0u);
}

TEST_F(StateTest, RejectsEveryTruncation) {
  driver_->Init();
  std::string blob = device_->SaveState();
  for (size_t n = 0; n < blob.size(); ++n) {
    base::Status st = device_->RestoreState(std::string_view(blob).substr(0, n));
    ASSERT_FALSE(st.has_value()) << n;
    EXPECT_EQ(st.error().code(), base::Code::kDataLoss) << n;
  }
}

// Restores blob with one byte changed; returns the error (test fails on success).
base::Error RestoreEdited(VirtioBlk& device, std::string blob, size_t offset, uint8_t value) {
  blob[offset] = char(value);
  base::Status st = device.RestoreState(blob);
  EXPECT_FALSE(st.has_value()) << "edit at " << offset << " accepted";
  return st.has_value() ? base::Error(base::Code::kOk, "") : st.error();
}

TEST_F(StateTest, RejectsCorruptFields) {
  driver_->Init();
  const std::string blob = device_->SaveState();
  const std::string before = blob;
  EXPECT_NE(RestoreEdited(*device_, blob, 0, 'X').message().find("magic"), std::string::npos);
  EXPECT_NE(RestoreEdited(*device_, blob, kOffVersion, 9).message().find("version"),
            std::string::npos);
  EXPECT_EQ(RestoreEdited(*device_, blob, kOffReadOnly, 7).code(), base::Code::kDataLoss);
  EXPECT_NE(RestoreEdited(*device_, blob, kOffStatus, 0x10).message().find("status"),
            std::string::npos);
  EXPECT_NE(RestoreEdited(*device_, blob, kOffQueueNum, 12).message().find("queue size"),
            std::string::npos);
  EXPECT_NE(RestoreEdited(*device_, blob, kOffQueueReady, 2).message().find("queue_ready"),
            std::string::npos);
  EXPECT_NE(RestoreEdited(*device_, blob, kOffQueueDesc, 0x08).message().find("misaligned"),
            std::string::npos);
  EXPECT_NE(RestoreEdited(*device_, blob, kOffUsedIdx, 5).message().find("used idx"),
            std::string::npos);
  // Rings beyond this VM's RAM (descriptor table at 4 GiB).
  EXPECT_NE(RestoreEdited(*device_, blob, kOffQueueDesc + 4, 1).message().find("outside"),
            std::string::npos);
  // Nothing was applied by any failed restore.
  EXPECT_EQ(device_->SaveState(), before);
}

TEST_F(StateTest, RejectsTrailingBytes) {
  std::string blob = device_->SaveState() + '\0';
  base::Status st = device_->RestoreState(blob);
  ASSERT_FALSE(st.has_value());
  EXPECT_NE(st.error().message().find("trailing"), std::string::npos);
}

TEST_F(StateTest, RejectsStateOfAnotherDisk) {
  std::string blob = device_->SaveState();
  disk_.bytes.resize(kTestDiskBytes / 2);
  base::Status st = device_->RestoreState(blob);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), base::Code::kFailedPrecondition);

  disk_.bytes.resize(kTestDiskBytes);
  disk_.read_only = true;
  st = device_->RestoreState(blob);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), base::Code::kFailedPrecondition);
}

}  // namespace
}  // namespace vm::test
