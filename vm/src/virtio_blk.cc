// virtio-blk over virtio-mmio v2. Register layout: virtio 1.1 §4.2.2; block
// requests: §5.2.6; split virtqueue: §2.6. See virtio_blk.h for the contract.
//
// Hostile-guest rules: every guest address goes through GuestMemory::At before
// use; descriptors are copied out of guest memory once and only the copies
// are validated and used (the guest may change the ring under us); every
// device write to guest memory marks the page dirty.
#include "virtio_blk.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "base/le.h"
#include "base/log.h"
#include "base/mutex.h"
#include "virtio_blk_state.h"
#include "virtio_defs.h"

namespace vm {

using namespace virtio;  // NOLINT: register and feature names

namespace {

// One guest buffer of a descriptor chain, already checked against RAM.
struct Segment {
  uint64_t gpa;
  uint32_t len;
};

struct RequestHeader {
  uint32_t type;
  uint64_t sector;
};

bool ReadLe16(GuestMemory& m, uint64_t gpa, uint16_t* v) {
  uint8_t b[2];
  if (!m.Read(gpa, b, 2).has_value()) return false;
  *v = base::GetLe16(b);
  return true;
}

uint64_t TotalBytes(const std::vector<Segment>& segs) {
  uint64_t total = 0;
  for (const Segment& s : segs) total += s.len;
  return total;
}

void SetLow(uint64_t* reg, uint32_t v) { *reg = (*reg & ~0xffffffffull) | v; }
void SetHigh(uint64_t* reg, uint32_t v) { *reg = (*reg & 0xffffffffull) | (uint64_t(v) << 32); }

// Takes the 16-byte request header off the front of the device-readable
// segments. The spec lets a driver split it across descriptors (§2.6.4), so
// it is gathered byte-wise. False if the readable part is shorter.
bool GatherHeader(GuestMemory& m, std::vector<Segment>* readable, RequestHeader* h) {
  uint8_t raw[kBlkRequestHeaderBytes];
  uint32_t have = 0;
  while (have < sizeof(raw) && !readable->empty()) {
    Segment& s = readable->front();
    uint32_t k = std::min<uint32_t>(s.len, sizeof(raw) - have);
    if (!m.Read(s.gpa, raw + have, k).has_value()) return false;
    have += k;
    s.gpa += k;
    s.len -= k;
    if (s.len == 0) readable->erase(readable->begin());
  }
  if (have < sizeof(raw)) return false;
  h->type = base::GetLe32(raw);
  h->sector = base::GetLe64(raw + 8);
  return true;
}

}  // namespace

enum class DiskOp { kRead = 1, kWrite = 2, kFlush = 3 };

struct VirtioBlk::Impl {
  Impl(GuestMemory& m, std::unique_ptr<storage::Disk> d, std::string n)
      : memory(m), disk(std::move(d)), name(std::move(n)) {}

  uint64_t DeviceFeatures() const REQUIRES(mu) {
    uint64_t f = kFVersion1 | kBlkFFlush | kBlkFBlkSize | kBlkFSegMax;
    f |= disk->read_only() ? kBlkFRo : kBlkFDiscard | kBlkFWriteZeroes;
    return f;
  }
  uint32_t RegisterRead(uint64_t offset) const REQUIRES(mu);
  void RegisterWrite(uint64_t offset, uint32_t value) REQUIRES(mu);
  void ConfigRead(uint64_t offset, uint8_t* data, uint32_t len) const REQUIRES(mu);
  void WriteStatus(uint32_t value) REQUIRES(mu);
  void EnableQueue() REQUIRES(mu);
  void ProcessQueue() REQUIRES(mu);
  // Walks the chain at head; false means the ring is beyond repair.
  bool ProcessChain(uint16_t head) REQUIRES(mu);
  uint8_t Execute(const RequestHeader& h, const std::vector<Segment>& data_in,
                  const std::vector<Segment>& data_out, uint32_t* written) REQUIRES(mu);
  uint8_t ExecuteDiscard(uint32_t type, const std::vector<Segment>& data_in,
                         const std::vector<Segment>& data_out) REQUIRES(mu);
  void NeedsReset() REQUIRES(mu) { state.status |= kStatusNeedsReset; }
  // The disk failed a request: count it, keep and log the first; IOERR.
  // what: "read at offset N (L bytes)".
  uint8_t DiskFailed(DiskOp op, const std::string& what, const base::Error& cause) REQUIRES(mu);

  GuestMemory& memory;
  std::unique_ptr<storage::Disk> disk GUARDED_BY(mu);
  const std::string name;
  // One request or register access at a time: vCPU threads and the control
  // thread (Drain, TransformDisk, state) meet here.
  mutable base::Mutex mu;
  VirtioBlkState state GUARDED_BY(mu);
  VirtioBlkCounters counters GUARDED_BY(mu);
};

uint32_t VirtioBlk::Impl::RegisterRead(uint64_t offset) const {
  const bool q0 = state.queue_sel == 0;
  switch (offset) {
    case kRegMagic: return kMagic;
    case kRegVersion: return kVersion;
    case kRegDeviceId: return kDeviceIdBlock;
    case kRegVendorId: return kVendorId;
    case kRegDeviceFeatures:
      if (state.device_features_sel > 1) return 0;
      return uint32_t(DeviceFeatures() >> (32 * state.device_features_sel));
    case kRegQueueNumMax: return q0 ? kQueueSizeMax : 0;
    case kRegQueueReady: return q0 ? state.queue_ready : 0;
    case kRegInterruptStatus: return state.interrupt_status;
    case kRegStatus: return state.status;
    case kRegConfigGeneration: return state.config_generation;
    default: return 0;  // write-only or reserved: reads as zero
  }
}

void VirtioBlk::Impl::RegisterWrite(uint64_t offset, uint32_t value) {
  const bool q0 = state.queue_sel == 0;
  // Queue registers may change only while the queue is disabled (§4.2.2.2).
  const bool queue_writable = q0 && !state.queue_ready;
  const bool features_writable = !(state.status & kStatusFeaturesOk);
  switch (offset) {
    case kRegDeviceFeaturesSel: state.device_features_sel = value; break;
    case kRegDriverFeatures:
      if (!features_writable || state.driver_features_sel > 1) break;
      if (state.driver_features_sel == 0)
        state.driver_features = (state.driver_features & ~0xffffffffull) | value;
      else
        state.driver_features = (state.driver_features & 0xffffffffull) | (uint64_t(value) << 32);
      break;
    case kRegDriverFeaturesSel: state.driver_features_sel = value; break;
    case kRegQueueSel: state.queue_sel = value; break;
    case kRegQueueNum:
      if (queue_writable) state.queue_num = value;
      break;
    case kRegQueueReady:
      if (!q0) break;
      if (value == 1 && !state.queue_ready) EnableQueue();
      if (value == 0) state.queue_ready = 0;
      break;
    case kRegQueueNotify:
      if (value == 0) ProcessQueue();
      break;
    case kRegInterruptAck: state.interrupt_status &= ~value; break;
    case kRegStatus: WriteStatus(value); break;
    case kRegQueueDescLow:
      if (queue_writable) SetLow(&state.queue_desc, value);
      break;
    case kRegQueueDescHigh:
      if (queue_writable) SetHigh(&state.queue_desc, value);
      break;
    case kRegQueueDriverLow:
      if (queue_writable) SetLow(&state.queue_driver, value);
      break;
    case kRegQueueDriverHigh:
      if (queue_writable) SetHigh(&state.queue_driver, value);
      break;
    case kRegQueueDeviceLow:
      if (queue_writable) SetLow(&state.queue_device, value);
      break;
    case kRegQueueDeviceHigh:
      if (queue_writable) SetHigh(&state.queue_device, value);
      break;
    default: break;  // read-only or reserved: writes are ignored
  }
}

void VirtioBlk::Impl::WriteStatus(uint32_t value) {
  if (value == 0) {  // device reset (§2.1): everything but the generation
    uint32_t generation = state.config_generation;
    state = VirtioBlkState{};
    state.config_generation = generation;
    return;
  }
  value &= kStatusKnownBits;
  // FEATURES_OK is accepted only for a subset of the offered features that
  // includes VERSION_1 (no legacy interface); otherwise the bit stays clear
  // and the driver, reading it back, gives up (§3.1.1).
  if ((value & kStatusFeaturesOk) && !(state.status & kStatusFeaturesOk)) {
    bool ok = (state.driver_features & ~DeviceFeatures()) == 0 &&
              (state.driver_features & kFVersion1) != 0;
    if (!ok) value &= ~kStatusFeaturesOk;
  }
  // NEEDS_RESET is the device's to set; the driver cannot clear it but by reset.
  state.status = (value & ~kStatusNeedsReset) | (state.status & kStatusNeedsReset);
}

void VirtioBlk::Impl::EnableQueue() {
  // A queue whose size or rings are unusable is a driver bug the device cannot
  // work around: refuse it and ask for a reset.
  const uint64_t n = state.queue_num;
  bool ok = n != 0 && n <= kQueueSizeMax && (n & (n - 1)) == 0 && state.queue_desc % 16 == 0 &&
            state.queue_driver % 2 == 0 && state.queue_device % 4 == 0 &&
            memory.At(state.queue_desc, 16 * n).has_value() &&
            memory.At(state.queue_driver, 6 + 2 * n).has_value() &&
            memory.At(state.queue_device, 6 + 8 * n).has_value();
  if (!ok) {
    NeedsReset();
    return;
  }
  state.queue_ready = 1;
}

void VirtioBlk::Impl::ProcessQueue() {
  if (!state.queue_ready || !(state.status & kStatusDriverOk) || (state.status & kStatusNeedsReset))
    return;
  const uint16_t n = uint16_t(state.queue_num);
  for (;;) {
    uint16_t avail_idx;
    if (!ReadLe16(memory, state.queue_driver + 2, &avail_idx)) return NeedsReset();
    // More than a ring's worth outstanding cannot happen with a sane driver.
    if (uint16_t(avail_idx - state.last_avail_idx) > n) return NeedsReset();
    if (avail_idx == state.last_avail_idx) return;
    // Acquire: descriptors written before avail->idx must be seen after it.
    std::atomic_thread_fence(std::memory_order_acquire);
    while (state.last_avail_idx != avail_idx) {
      uint16_t head;
      uint64_t slot = state.queue_driver + 4 + 2ull * (state.last_avail_idx % n);
      if (!ReadLe16(memory, slot, &head) || head >= n) return NeedsReset();
      if (!ProcessChain(head)) return NeedsReset();
      ++state.last_avail_idx;
    }
  }
}

bool VirtioBlk::Impl::ProcessChain(uint16_t head) {
  const uint16_t n = uint16_t(state.queue_num);
  // Copy the chain out of guest memory, checking its shape. A loop, an index
  // outside the table or an indirect descriptor (not negotiated) leaves no
  // trustworthy place for a status byte: the ring needs a reset.
  std::vector<Segment> readable, writable;
  bool malformed = false;
  uint16_t index = head;
  for (uint32_t count = 0;; ++count) {
    if (count >= n) return false;  // longer than the table: a loop
    uint8_t raw[16];
    if (!memory.Read(state.queue_desc + 16ull * index, raw, 16).has_value()) return false;
    Segment seg{base::GetLe64(raw), base::GetLe32(raw + 8)};
    uint16_t flags = base::GetLe16(raw + 12), next = base::GetLe16(raw + 14);
    if (flags & kDescFIndirect) return false;
    if (flags & kDescFWrite) {
      writable.push_back(seg);
    } else {
      if (!writable.empty()) malformed = true;  // device-readable after writable
      readable.push_back(seg);
    }
    if (!memory.At(seg.gpa, seg.len).has_value()) malformed = true;
    if (!(flags & kDescFNext)) break;
    if (next >= n) return false;
    index = next;
  }
  // The status byte is the last device-writable byte of the chain.
  while (!writable.empty() && writable.back().len == 0) writable.pop_back();
  if (writable.empty() || !memory.At(writable.back().gpa + writable.back().len - 1, 1).has_value())
    return false;
  Segment status_seg{writable.back().gpa + writable.back().len - 1, 1};
  writable.back().len -= 1;

  uint8_t status = kBlkSIoErr;
  uint32_t written = 0;
  RequestHeader header{};
  if (!malformed && GatherHeader(memory, &readable, &header)) {
    status = Execute(header, writable, readable, &written);
  } else {
    ++counters.errors;
  }
  // Status, then the used element, then used->idx: a driver that sees the new
  // idx must see everything before it (release fence between).
  (void)memory.Write(status_seg.gpa, &status, 1);  // checked by At() above
  uint8_t elem[8];
  base::PutLe32(elem, head);
  base::PutLe32(elem + 4, written + 1);
  uint64_t used_slot = state.queue_device + 4 + 8ull * (state.used_idx % n);
  if (!memory.Write(used_slot, elem, 8).has_value()) return false;
  std::atomic_thread_fence(std::memory_order_release);
  ++state.used_idx;
  uint8_t idx[2];
  base::PutLe16(idx, state.used_idx);
  if (!memory.Write(state.queue_device + 2, idx, 2).has_value()) return false;
  // Recorded for a driver that looks; no interrupt is injected (guests poll).
  state.interrupt_status |= kInterruptUsedBuffer;
  return true;
}

uint8_t VirtioBlk::Impl::Execute(const RequestHeader& h, const std::vector<Segment>& data_in,
                                 const std::vector<Segment>& data_out, uint32_t* written) {
  auto fail = [&] {
    mu.AssertHeld();  // called only from here, under mu
    ++counters.errors;
    return kBlkSIoErr;
  };
  switch (h.type) {
    case kBlkTIn:
    case kBlkTOut: {
      const bool is_read = h.type == kBlkTIn;
      const std::vector<Segment>& segs = is_read ? data_in : data_out;
      // Data buffers in the other direction mean the driver and device
      // disagree about the request: refuse rather than guess.
      if (TotalBytes(is_read ? data_out : data_in) != 0) return fail();
      const uint64_t total = TotalBytes(segs);
      const uint64_t capacity = disk->size();
      // Overflow-safe: sector * 512 + total <= capacity.
      if (total % storage::kSectorSize != 0 || h.sector > capacity / storage::kSectorSize ||
          total > capacity - h.sector * storage::kSectorSize)
        return fail();
      if (!is_read && disk->read_only()) return fail();
      uint64_t offset = h.sector * storage::kSectorSize;
      for (const Segment& s : segs) {
        uint8_t* p = *memory.At(s.gpa, s.len);  // every segment was checked in ProcessChain
        base::Status st = is_read ? disk->Read(p, s.len, offset) : disk->Write(p, s.len, offset);
        if (is_read) memory.MarkDirty(s.gpa, s.len);
        if (!st.has_value())
          return DiskFailed(is_read ? DiskOp::kRead : DiskOp::kWrite,
                            std::string(is_read ? "read" : "write") + " at offset " +
                                std::to_string(offset) + " (" + std::to_string(s.len) + " bytes)",
                            st.error());
        offset += s.len;
      }
      if (is_read) {
        *written = uint32_t(total);
        ++counters.reads;
      } else {
        ++counters.writes;
      }
      return kBlkSOk;
    }
    case kBlkTFlush: {
      base::Status st = disk->Flush();
      if (!st.has_value()) return DiskFailed(DiskOp::kFlush, "flush", st.error());
      ++counters.flushes;
      return kBlkSOk;
    }
    case kBlkTGetId: {
      // Up to 20 bytes, NUL-padded when shorter (§5.2.6).
      char id[kBlkIdBytes] = {};
      std::memcpy(id, kBlkIdString, std::min(sizeof(kBlkIdString) - 1, sizeof(id)));
      uint32_t left = kBlkIdBytes;
      for (const Segment& s : data_in) {
        uint32_t k = std::min(left, s.len);
        (void)memory.Write(s.gpa, id + (kBlkIdBytes - left), k);  // checked in ProcessChain
        left -= k;
        *written += k;
        if (left == 0) break;
      }
      return kBlkSOk;
    }
    case kBlkTDiscard:
    case kBlkTWriteZeroes: return ExecuteDiscard(h.type, data_in, data_out);
    default: return kBlkSUnsupp;
  }
}

// Discard and write zeroes (§5.2.6): the device-readable data is whole
// 16-byte segments. Every segment is checked before any runs, so a refused
// request changes nothing. Unknown flags, and unmap on a discard, are
// UNSUPP (the spec's MUST); too many segments, a segment over the advertised
// maximum or past the capacity, and a disk error are IOERR.
uint8_t VirtioBlk::Impl::ExecuteDiscard(uint32_t type, const std::vector<Segment>& data_in,
                                        const std::vector<Segment>& data_out) {
  auto fail = [&] {
    mu.AssertHeld();  // called only from here, under mu
    ++counters.errors;
    return kBlkSIoErr;
  };
  const bool discard = type == kBlkTDiscard;
  // Not negotiated (never offered for a read-only disk): the driver should not
  // have sent it.
  if (!(state.driver_features & (discard ? kBlkFDiscard : kBlkFWriteZeroes))) return kBlkSUnsupp;
  if (disk->read_only() || TotalBytes(data_in) != 0) return fail();
  const uint64_t total = TotalBytes(data_out);
  if (total == 0 || total % kBlkDiscardSegmentBytes != 0 ||
      total / kBlkDiscardSegmentBytes > kBlkMaxDiscardSegments)
    return fail();
  uint8_t raw[kBlkDiscardSegmentBytes * kBlkMaxDiscardSegments];
  uint64_t have = 0;
  for (const Segment& s : data_out) {
    if (!memory.Read(s.gpa, raw + have, s.len).has_value())
      return fail();  // checked in ProcessChain
    have += s.len;
  }
  struct Range {
    uint64_t sector;
    uint32_t sectors;
    bool unmap;
  };
  std::vector<Range> ranges;
  const uint64_t capacity = disk->size() / storage::kSectorSize;
  bool out_of_range = false;
  for (uint64_t at = 0; at < total; at += kBlkDiscardSegmentBytes) {
    Range r{base::GetLe64(raw + at), base::GetLe32(raw + at + 8), false};
    const uint32_t flags = base::GetLe32(raw + at + 12);
    r.unmap = (flags & kBlkWriteZeroesFlagUnmap) != 0;
    if ((flags & ~kBlkWriteZeroesFlagUnmap) != 0 || (discard && r.unmap)) return kBlkSUnsupp;
    if (r.sectors > kBlkMaxDiscardSectors || r.sector > capacity || r.sectors > capacity - r.sector)
      out_of_range = true;
    ranges.push_back(r);
  }
  if (out_of_range) return fail();
  for (const Range& r : ranges) {
    const uint64_t offset = r.sector * storage::kSectorSize;
    const uint64_t len = uint64_t{r.sectors} * storage::kSectorSize;
    // Write zeroes with unmap may deallocate: Discard also reads as zeros.
    base::Status st =
        discard || r.unmap ? disk->Discard(offset, len) : disk->WriteZeroes(offset, len);
    if (!st.has_value())
      return DiskFailed(DiskOp::kWrite,
                        std::string(discard ? "discard" : "write-zeroes") + " at offset " +
                            std::to_string(offset) + " (" + std::to_string(len) + " bytes)",
                        st.error());
  }
  return kBlkSOk;
}

uint8_t VirtioBlk::Impl::DiskFailed(DiskOp op, const std::string& what, const base::Error& cause) {
  ++counters.errors;
  switch (op) {
    case DiskOp::kRead: ++counters.read_errors; break;
    case DiskOp::kWrite: ++counters.write_errors; break;
    case DiskOp::kFlush: ++counters.flush_errors; break;
  }
  if (counters.first_error.empty()) {
    std::string message = what + ": " + cause.ToString();
    if (message.size() > kMaxDiskErrorBytes) message.resize(kMaxDiskErrorBytes);
    counters.first_error = message;
    counters.first_error_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count();
    // Once per disk, with the device mutex held: rare, and a later error of
    // this disk cannot interleave with it.
    base::LogError(
        name + ": " + message +
        "; the guest got an I/O error and the vm keeps running (later errors of this disk are "
        "counted, not logged)");
  }
  return kBlkSIoErr;
}

void VirtioBlk::Impl::ConfigRead(uint64_t offset, uint8_t* data, uint32_t len) const {
  uint8_t config[kConfigBytes] = {};
  base::PutLe64(config + kConfigCapacity, disk->size() / storage::kSectorSize);
  base::PutLe32(config + kConfigSegMax, kQueueSizeMax - 2);
  base::PutLe32(config + kConfigBlkSize, storage::kSectorSize);
  base::PutLe32(config + kConfigMaxDiscardSectors, kBlkMaxDiscardSectors);
  base::PutLe32(config + kConfigMaxDiscardSeg, kBlkMaxDiscardSegments);
  base::PutLe32(config + kConfigDiscardSectorAlignment, kBlkDiscardSectorAlignment);
  base::PutLe32(config + kConfigMaxWriteZeroesSectors, kBlkMaxDiscardSectors);
  base::PutLe32(config + kConfigMaxWriteZeroesSeg, kBlkMaxDiscardSegments);
  config[kConfigWriteZeroesMayUnmap] = 1;
  for (uint32_t i = 0; i < len; ++i) data[i] = offset + i < kConfigBytes ? config[offset + i] : 0;
}

VirtioBlk::VirtioBlk(GuestMemory& memory, std::unique_ptr<storage::Disk> disk, std::string name)
    : impl_(std::make_unique<Impl>(memory, std::move(disk), std::move(name))) {}

VirtioBlk::~VirtioBlk() = default;

void VirtioBlk::MmioRead(uint64_t offset, uint8_t* data, uint32_t len) {
  base::MutexLock lock(impl_->mu);
  if (offset >= kRegConfig) {
    impl_->ConfigRead(offset - kRegConfig, data, len);
    return;
  }
  // Registers are 32-bit only (§4.2.2.1); other widths read as zeros.
  std::memset(data, 0, len);
  if (len == 4 && offset % 4 == 0) base::PutLe32(data, impl_->RegisterRead(offset));
}

void VirtioBlk::MmioWrite(uint64_t offset, const uint8_t* data, uint32_t len) {
  base::MutexLock lock(impl_->mu);
  // Config space is read-only for a block device; odd-width register writes
  // are ignored.
  if (offset >= kRegConfig || len != 4 || offset % 4 != 0) return;
  impl_->RegisterWrite(offset, base::GetLe32(data));
}

// Requests complete inside MmioWrite, so nothing is ever in flight here. Drain
// still flushes the disk: the guest has seen those writes complete, and a move
// must carry them even when the destination reads the disk through another
// host's cache (a shared or mirrored image), so they must be durable first.
base::Status VirtioBlk::Drain() {
  base::MutexLock lock(impl_->mu);
  base::Status st = impl_->disk->Flush();
  if (!st.has_value()) return st.error().Wrap("drain virtio-blk");
  return base::Ok();
}

base::Status VirtioBlk::TransformDisk(const DiskTransform& fn) {
  base::MutexLock lock(impl_->mu);
  const uint64_t size = impl_->disk->size();
  const bool read_only = impl_->disk->read_only();
  auto next = fn(impl_->disk);
  if (!next.has_value()) {
    // fn's contract: on error `current` is left as it was.
    if (!impl_->disk)
      return base::Error(base::Code::kInternal,
                         "transform disk: the transform failed and dropped the disk");
    return next.error();
  }
  if (!*next)
    return base::Error(base::Code::kInternal, "transform disk: the transform returned no disk");
  // The guest was told the capacity and the read-only bit; a disk that
  // changes either would make its requests mean something else.
  if ((*next)->size() != size || (*next)->read_only() != read_only) {
    std::string what = "transform disk: the new disk has " + std::to_string((*next)->size()) +
                       " bytes" + ((*next)->read_only() ? " read-only" : " writable") +
                       ", the guest sees " + std::to_string(size) + " bytes" +
                       (read_only ? " read-only" : " writable");
    if (impl_->disk) return base::Error(base::Code::kFailedPrecondition, what);  // old disk kept
    impl_->disk = std::move(*next);  // fn consumed the old one; keep what exists
    return base::Error(base::Code::kInternal, what);
  }
  impl_->disk = std::move(*next);
  return base::Ok();
}

std::string VirtioBlk::SaveState() const {
  base::MutexLock lock(impl_->mu);
  return EncodeVirtioBlkState(impl_->state, impl_->disk->size(), impl_->disk->read_only());
}

base::Status VirtioBlk::RestoreState(std::string_view blob) {
  base::MutexLock lock(impl_->mu);
  ASSIGN_OR_RETURN(VirtioBlkState s,
                   DecodeVirtioBlkState(blob, impl_->disk->size(), impl_->disk->read_only()));
  // The rings must lie in this VM's RAM; the memory itself is restored first.
  if (s.queue_ready) {
    const uint64_t n = s.queue_num;
    if (!impl_->memory.At(s.queue_desc, 16 * n).has_value() ||
        !impl_->memory.At(s.queue_driver, 6 + 2 * n).has_value() ||
        !impl_->memory.At(s.queue_device, 6 + 8 * n).has_value())
      return base::Error(base::Code::kDataLoss,
                         "virtio-blk state: queue rings lie outside guest memory");
  }
  impl_->state = s;
  return base::Ok();
}

VirtioBlkCounters VirtioBlk::counters() const {
  base::MutexLock lock(impl_->mu);
  return impl_->counters;
}

// --- Saved state (format in virtio_blk_state.h) -----------------------------

namespace {
constexpr uint32_t kStateMagic = 0x4b4c4256;  // "VBLK"
constexpr uint16_t kStateVersion = 1;
}  // namespace

std::string EncodeVirtioBlkState(const VirtioBlkState& s, uint64_t capacity, bool read_only) {
  base::LeWriter w;
  w.U32(kStateMagic);
  w.U16(kStateVersion);
  w.U64(capacity);
  w.U8(read_only ? 1 : 0);
  w.U32(s.status);
  w.U32(s.device_features_sel);
  w.U32(s.driver_features_sel);
  w.U64(s.driver_features);
  w.U32(s.queue_sel);
  w.U32(s.queue_num);
  w.U8(s.queue_ready);
  w.U64(s.queue_desc);
  w.U64(s.queue_driver);
  w.U64(s.queue_device);
  w.U16(s.last_avail_idx);
  w.U16(s.used_idx);
  w.U32(s.interrupt_status);
  w.U32(s.config_generation);
  return w.Take();
}

base::Result<VirtioBlkState> DecodeVirtioBlkState(std::string_view blob, uint64_t capacity,
                                                  bool read_only) {
  auto bad = [](const std::string& what) {
    return base::Error(base::Code::kDataLoss, "virtio-blk state: " + what);
  };
  base::LeReader r(blob);
  ASSIGN_OR_RETURN(uint32_t magic, r.U32());
  if (magic != kStateMagic) return bad("bad magic");
  ASSIGN_OR_RETURN(uint16_t version, r.U16());
  if (version != kStateVersion) return bad("unsupported version " + std::to_string(version));
  ASSIGN_OR_RETURN(uint64_t saved_capacity, r.U64());
  ASSIGN_OR_RETURN(uint8_t saved_ro, r.U8());
  if (saved_ro > 1) return bad("read_only flag " + std::to_string(saved_ro));
  if (saved_capacity != capacity || (saved_ro == 1) != read_only)
    return base::Error(base::Code::kFailedPrecondition,
                       "virtio-blk state was saved for a " + std::to_string(saved_capacity) +
                           "-byte " + (saved_ro ? "read-only" : "writable") +
                           " disk, this one is " + std::to_string(capacity) + " bytes " +
                           (read_only ? "read-only" : "writable"));
  VirtioBlkState s;
  ASSIGN_OR_RETURN(s.status, r.U32());
  ASSIGN_OR_RETURN(s.device_features_sel, r.U32());
  ASSIGN_OR_RETURN(s.driver_features_sel, r.U32());
  ASSIGN_OR_RETURN(s.driver_features, r.U64());
  ASSIGN_OR_RETURN(s.queue_sel, r.U32());
  ASSIGN_OR_RETURN(s.queue_num, r.U32());
  ASSIGN_OR_RETURN(s.queue_ready, r.U8());
  ASSIGN_OR_RETURN(s.queue_desc, r.U64());
  ASSIGN_OR_RETURN(s.queue_driver, r.U64());
  ASSIGN_OR_RETURN(s.queue_device, r.U64());
  ASSIGN_OR_RETURN(s.last_avail_idx, r.U16());
  ASSIGN_OR_RETURN(s.used_idx, r.U16());
  ASSIGN_OR_RETURN(s.interrupt_status, r.U32());
  ASSIGN_OR_RETURN(s.config_generation, r.U32());
  if (r.remaining() != 0) return bad(std::to_string(r.remaining()) + " trailing bytes");
  if (s.status & ~kStatusKnownBits) return bad("unknown status bits " + std::to_string(s.status));
  if (s.queue_ready > 1) return bad("queue_ready " + std::to_string(s.queue_ready));
  if (s.queue_num > kQueueSizeMax || (s.queue_num & (s.queue_num - 1)) != 0)
    return bad("queue size " + std::to_string(s.queue_num));
  if (s.queue_ready && s.queue_num == 0) return bad("ready queue of size 0");
  if (s.queue_ready && (s.queue_desc % 16 || s.queue_driver % 2 || s.queue_device % 4))
    return bad("misaligned queue rings");
  // The device never lets the driver run more than a ring ahead, and it
  // publishes every request it consumes before returning.
  if (s.queue_ready && s.used_idx != s.last_avail_idx)
    return bad("used idx " + std::to_string(s.used_idx) + " differs from consumed idx " +
               std::to_string(s.last_avail_idx));
  return s;
}

}  // namespace vm
