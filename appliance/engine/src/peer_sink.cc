#include "peer_sink.h"

#include <algorithm>

namespace appliance {

PeerSink::PeerSink(StreamPool& pool, uint16_t disk, uint64_t size, bool reads_zero_initially,
                   std::string name, int cancel_fd)
    : pool_(pool),
      disk_(disk),
      size_(size),
      reads_zero_(reads_zero_initially),
      name_(std::move(name)),
      cancel_fd_(cancel_fd) {}

base::Status PeerSink::WriteExtent(uint64_t offset, std::span<const uint8_t> data) {
  return Send(offset, data.size(), data.data());
}

base::Status PeerSink::WriteZeroes(uint64_t offset, uint64_t len) {
  return Send(offset, len, nullptr);
}

base::Status PeerSink::Send(uint64_t offset, uint64_t len, const uint8_t* data) {
  if (offset > size_ || len > size_ - offset)
    return Note(base::Error(base::Code::kOutOfRange, name_ + ": extent " + std::to_string(offset) +
                                                         "+" + std::to_string(len) +
                                                         " is outside the disk"));
  while (len > 0) {
    const uint64_t region = offset / kRegionBytes;
    const uint64_t piece = std::min(len, (region + 1) * kRegionBytes - offset);
    OutFrame f;
    f.type = MoveFrame::kDiskExtent;
    f.head = EncodeDiskExtentHeader({disk_, data == nullptr, offset, piece});
    if (data != nullptr) f.data.assign(data, data + piece);
    const size_t stream = size_t((uint64_t(disk_) * 7919 + region) % pool_.size());
    RETURN_IF_ERROR(Note(pool_.Enqueue(stream, Lane::kDisk, std::move(f), cancel_fd_)));
    bytes_.fetch_add(piece);
    offset += piece;
    len -= piece;
    if (data != nullptr) data += piece;
  }
  return base::Ok();
}

base::Status PeerSink::Note(base::Status st) {
  if (!st) {
    base::MutexLock lock(mu_);
    if (!error_) error_ = st.error().Wrap(name_);
    return *error_;
  }
  return st;
}

base::Status PeerSink::FirstError() const {
  base::MutexLock lock(mu_);
  if (error_) return *error_;
  if (auto e = pool_.error()) return e->Wrap(name_);
  return base::Ok();
}

}  // namespace appliance
