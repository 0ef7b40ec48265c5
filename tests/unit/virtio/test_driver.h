// TestDriver: a minimal virtio-mmio block driver for tests, speaking to a
// VirtioBlk only through its MMIO registers and guest memory — exactly what a
// guest does. Malformed-chain tests use the low-level pieces (PutDesc,
// PushAvail, Notify) to build what a real driver never would.
//
// The driver stores into guest memory through GuestMemory::At, like a guest's
// own stores: they are not VMM writes and must not appear in the VMM's dirty
// record, so the dirty tests see only what the device wrote.
//
// Guest layout used (the fixture's memory is 4 MiB):
//   0x10000 descriptor table, 0x11000 avail ring, 0x12000 used ring,
//   0x13000 request header, 0x13100 status byte, 0x20000.. data buffers.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "base/le.h"
#include "guest_memory.h"
#include "virtio_blk.h"
#include "virtio_defs.h"

namespace vm::test {

using namespace vm::virtio;  // NOLINT: register names

inline constexpr uint64_t kDescGpa = 0x10000;
inline constexpr uint64_t kAvailGpa = 0x11000;
inline constexpr uint64_t kUsedGpa = 0x12000;
inline constexpr uint64_t kHeaderGpa = 0x13000;
inline constexpr uint64_t kStatusGpa = 0x13100;
inline constexpr uint64_t kDataGpa = 0x20000;

struct Desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;  // kDescFWrite etc.; PostChain adds kDescFNext links
  uint16_t next = 0;
};

class TestDriver {
 public:
  TestDriver(GuestMemory& memory, MmioDevice& device) : mem_(memory), dev_(device) {}

  uint32_t Read32(uint64_t offset) {
    uint8_t b[4];
    dev_.MmioRead(offset, b, 4);
    return base::GetLe32(b);
  }
  void Write32(uint64_t offset, uint32_t v) {
    uint8_t b[4];
    base::PutLe32(b, v);
    dev_.MmioWrite(offset, b, 4);
  }
  uint64_t DeviceFeatures() {
    Write32(kRegDeviceFeaturesSel, 0);
    uint64_t f = Read32(kRegDeviceFeatures);
    Write32(kRegDeviceFeaturesSel, 1);
    return f | uint64_t(Read32(kRegDeviceFeatures)) << 32;
  }
  void WriteDriverFeatures(uint64_t f) {
    Write32(kRegDriverFeaturesSel, 0);
    Write32(kRegDriverFeatures, uint32_t(f));
    Write32(kRegDriverFeaturesSel, 1);
    Write32(kRegDriverFeatures, uint32_t(f >> 32));
  }
  uint32_t Status() { return Read32(kRegStatus); }

  // §3.1.1 up to FEATURES_OK; returns whether the device accepted them.
  bool Negotiate(uint64_t features) {
    Write32(kRegStatus, 0);
    Write32(kRegStatus, kStatusAcknowledge);
    Write32(kRegStatus, kStatusAcknowledge | kStatusDriver);
    WriteDriverFeatures(features);
    Write32(kRegStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    return (Status() & kStatusFeaturesOk) != 0;
  }
  void ConfigureQueue(uint16_t size, uint64_t desc = kDescGpa, uint64_t avail = kAvailGpa,
                      uint64_t used = kUsedGpa) {
    qsize_ = size;
    avail_idx_ = next_head_ = 0;
    // Like a real driver, start from zeroed rings (the memory may hold an
    // earlier device's rings).
    if (desc == kDescGpa && avail == kAvailGpa && used == kUsedGpa)
      std::memset(*mem_.At(kDescGpa, kHeaderGpa - kDescGpa), 0, kHeaderGpa - kDescGpa);
    Write32(kRegQueueSel, 0);
    Write32(kRegQueueNum, size);
    Write32(kRegQueueDescLow, uint32_t(desc));
    Write32(kRegQueueDescHigh, uint32_t(desc >> 32));
    Write32(kRegQueueDriverLow, uint32_t(avail));
    Write32(kRegQueueDriverHigh, uint32_t(avail >> 32));
    Write32(kRegQueueDeviceLow, uint32_t(used));
    Write32(kRegQueueDeviceHigh, uint32_t(used >> 32));
    Write32(kRegQueueReady, 1);
  }
  // The whole init sequence with VERSION_1 + FLUSH (+ RO when offered), plus
  // `extra` features.
  void Init(uint16_t queue_size = 16, uint64_t extra = 0) {
    uint64_t f = kFVersion1 | kBlkFFlush | (DeviceFeatures() & kBlkFRo) | extra;
    ASSERT_TRUE(Negotiate(f));
    ConfigureQueue(queue_size);
    Write32(kRegStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
    ASSERT_EQ(Status() & kStatusNeedsReset, 0u);
  }

  void PutDesc(uint16_t index, const Desc& d) {
    uint8_t raw[16];
    base::PutLe64(raw, d.addr);
    base::PutLe32(raw + 8, d.len);
    base::PutLe16(raw + 12, d.flags);
    base::PutLe16(raw + 14, d.next);
    ASSERT_TRUE(Store(kDescGpa + 16ull * index, raw, 16));
  }
  // Puts head into the next avail slot and publishes it (no notify).
  void PushAvail(uint16_t head) {
    PutLe16At(kAvailGpa + 4 + 2ull * (avail_idx_ % qsize_), head);
    PutLe16At(kAvailGpa + 2, ++avail_idx_);
  }
  void SetAvailIdx(uint16_t idx) {
    avail_idx_ = idx;
    PutLe16At(kAvailGpa + 2, idx);
  }
  void Notify() { Write32(kRegQueueNotify, 0); }

  // Writes descs at first..first+n-1 linked with NEXT and posts the chain.
  void PostChain(std::vector<Desc> descs, uint16_t first = 0) {
    for (size_t i = 0; i < descs.size(); ++i) {
      if (i + 1 < descs.size()) {
        descs[i].flags |= kDescFNext;
        descs[i].next = uint16_t((first + i + 1) % qsize_);
      }
      PutDesc(uint16_t((first + i) % qsize_), descs[i]);
    }
    PushAvail(first);
  }

  uint16_t UsedIdx() { return GetLe16At(kUsedGpa + 2); }
  std::pair<uint32_t, uint32_t> UsedElem(uint16_t i) {
    uint8_t raw[8];
    EXPECT_TRUE(mem_.Read(kUsedGpa + 4 + 8ull * (i % qsize_), raw, 8).has_value());
    return {base::GetLe32(raw), base::GetLe32(raw + 4)};
  }

  void WriteHeader(uint32_t type, uint64_t sector, uint64_t gpa = kHeaderGpa) {
    uint8_t h[16] = {};
    base::PutLe32(h, type);
    base::PutLe64(h + 8, sector);
    ASSERT_TRUE(Store(gpa, h, 16));
  }
  uint8_t StatusByte(uint64_t gpa = kStatusGpa) {
    uint8_t s = 0;
    EXPECT_TRUE(mem_.Read(gpa, &s, 1).has_value());
    return s;
  }

  // One request header | data | status, notified and completed. Returns the
  // status byte; fails the test if no completion was published.
  uint8_t Request(uint32_t type, uint64_t sector, uint64_t data_gpa, uint32_t len) {
    WriteHeader(type, sector);
    const uint8_t poison = 0xee;
    EXPECT_TRUE(Store(kStatusGpa, &poison, 1));
    std::vector<Desc> chain{{kHeaderGpa, 16, 0}};
    const bool device_reads = type == kBlkTOut || type == kBlkTDiscard || type == kBlkTWriteZeroes;
    if (len) chain.push_back({data_gpa, len, uint16_t(device_reads ? 0 : kDescFWrite)});
    chain.push_back({kStatusGpa, 1, kDescFWrite});
    uint16_t before = UsedIdx();
    PostChain(chain, next_head_);
    next_head_ = uint16_t((next_head_ + chain.size()) % qsize_);
    Notify();
    EXPECT_EQ(UsedIdx(), uint16_t(before + 1)) << "request was not completed";
    return StatusByte();
  }

  uint16_t avail_idx() const { return avail_idx_; }

  // A guest store (not recorded as a VMM write).
  ::testing::AssertionResult Store(uint64_t gpa, const void* data, uint64_t len) {
    auto p = mem_.At(gpa, len);
    if (!p.has_value()) return ::testing::AssertionFailure() << p.error().ToString();
    std::memcpy(*p, data, len);
    return ::testing::AssertionSuccess();
  }

 private:
  void PutLe16At(uint64_t gpa, uint16_t v) {
    uint8_t b[2];
    base::PutLe16(b, v);
    ASSERT_TRUE(Store(gpa, b, 2));
  }
  uint16_t GetLe16At(uint64_t gpa) {
    uint8_t b[2] = {};
    EXPECT_TRUE(mem_.Read(gpa, b, 2).has_value());
    return base::GetLe16(b);
  }

  GuestMemory& mem_;
  MmioDevice& dev_;
  uint16_t qsize_ = 16;
  uint16_t avail_idx_ = 0;
  uint16_t next_head_ = 0;
};

}  // namespace vm::test
