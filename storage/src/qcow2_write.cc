// The qcow2 write path: in-place writes, cluster allocation with
// copy-on-write from the backing file, zero clusters, discard, and the
// ordered metadata commit (see qcow2_disk.h for the order and why).
#include <algorithm>
#include <cstring>

#include "qcow2_disk.h"

namespace storage::qcow2 {
namespace {

// Largest run of clusters allocated and written as one request.
constexpr uint64_t kMaxRunBytes = 4u << 20;

bool AllZero(const uint8_t* p, size_t n) {
  static const uint8_t kZeros[4096] = {};
  while (n > 0) {
    size_t k = std::min(n, sizeof(kZeros));
    if (std::memcmp(p, kZeros, k) != 0) return false;
    p += k;
    n -= k;
  }
  return true;
}

}  // namespace

base::Status Qcow2DiskImpl::WriteFile(const void* buf, size_t len, uint64_t offset) {
  RETURN_IF_ERROR(file_->WriteAt(buf, len, offset));
  unsynced_ = true;
  file_size_ = std::max(file_size_, offset + len);
  return base::Ok();
}

base::Status Qcow2DiskImpl::Sync() {
  RETURN_IF_ERROR(file_->Flush());
  unsynced_ = false;
  return base::Ok();
}

base::Status Qcow2DiskImpl::CheckNotMetadata(uint64_t host) const {
  auto overlaps = [&](uint64_t start, uint64_t bytes) {
    return host + cluster_size_ > start && host < start + bytes;
  };
  if (host < cluster_size_ || overlaps(header_.l1_table_offset, uint64_t{header_.l1_size} * 8) ||
      overlaps(header_.refcount_table_offset,
               uint64_t{header_.refcount_table_clusters} << cluster_bits_)) {
    return Corrupt("data cluster at " + Hex(host) + " overlaps the header, L1 or refcount table");
  }
  return base::Ok();
}

base::Status Qcow2DiskImpl::Write(const void* buf, size_t len, uint64_t offset) {
  if (read_only_) {
    return base::Error(base::Code::kPermissionDenied,
                       "write disk " + file_->display_path() + ": the disk is read-only");
  }
  RETURN_IF_ERROR(CheckRange("write", len, offset));
  const auto* src = static_cast<const uint8_t*>(buf);
  const uint64_t end = offset + len;
  for (uint64_t pos = offset; pos < end;) {
    uint64_t gc = pos >> cluster_bits_;
    uint64_t in = pos & (cluster_size_ - 1);
    uint64_t n = std::min(cluster_size_ - in, end - pos);
    ASSIGN_OR_RETURN(Mapping m, Lookup(gc));
    if (m.kind == Mapping::kData && m.copied) {
      // In place; extend over following clusters that are host-contiguous.
      RETURN_IF_ERROR(CheckNotMetadata(m.host));
      uint64_t run = n;
      while (pos + run < end && run < kMaxRunBytes) {
        uint64_t next = (pos + run) >> cluster_bits_;
        ASSIGN_OR_RETURN(Mapping m2, Lookup(next));
        if (m2.kind != Mapping::kData || !m2.copied ||
            m2.host != m.host + ((next - gc) << cluster_bits_)) {
          break;
        }
        RETURN_IF_ERROR(CheckNotMetadata(m2.host));
        run += std::min(cluster_size_, end - (pos + run));
      }
      RETURN_IF_ERROR(WriteFile(src + (pos - offset), run, m.host + in));
      pos += run;
      continue;
    }
    if (n == cluster_size_ && AllZero(src + (pos - offset), n)) {
      // A whole cluster of zeros is stored as a zero cluster.
      if (m.kind != Mapping::kZero || m.host != 0) {
        if (m.kind != Mapping::kUnallocated || backing_) {
          RETURN_IF_ERROR(SetEntry(gc, kOflagZero, m));
        }
      }
      pos += n;
      continue;
    }
    uint64_t written = 0;
    RETURN_IF_ERROR(WriteAllocating(src + (pos - offset), pos, end, m, &written));
    pos += written;
  }
  return base::Ok();
}

// Allocates fresh clusters for the run starting at pos (whose first cluster
// maps as `first`), fills partial clusters from their old contents, writes
// the data, then points the L2 entries at it.
base::Status Qcow2DiskImpl::WriteAllocating(const uint8_t* src, uint64_t pos, uint64_t end,
                                            const Mapping& first, uint64_t* written) {
  const uint64_t gc = pos >> cluster_bits_;
  const uint64_t in = pos & (cluster_size_ - 1);
  std::vector<Mapping> olds{first};
  uint64_t run_end = std::min(end, (gc + 1) << cluster_bits_);
  const uint64_t max_clusters = std::max<uint64_t>(1, kMaxRunBytes >> cluster_bits_);
  while (run_end < end && olds.size() < max_clusters) {
    ASSIGN_OR_RETURN(Mapping m, Lookup(gc + olds.size()));
    if (m.kind == Mapping::kData && m.copied) break;
    olds.push_back(m);
    run_end = std::min(end, (gc + olds.size()) << cluster_bits_);
  }
  const uint64_t k = olds.size();
  scratch_.resize(k << cluster_bits_);
  uint8_t* buf = scratch_.data();
  // Copy-on-write: the parts of the first and last cluster not written now.
  if (in != 0 || (k == 1 && run_end < ((gc + 1) << cluster_bits_))) {
    RETURN_IF_ERROR(ReadCluster(gc, olds[0], buf));
  }
  uint64_t last_end = (gc + k) << cluster_bits_;
  if (k > 1 && run_end < last_end) {
    RETURN_IF_ERROR(ReadCluster(gc + k - 1, olds[k - 1], buf + ((k - 1) << cluster_bits_)));
  }
  std::memcpy(buf + in, src, run_end - pos);
  ASSIGN_OR_RETURN(uint64_t host, refcounts_->Allocate(k));
  RETURN_IF_ERROR(WriteFile(buf, k << cluster_bits_, host));
  for (uint64_t i = 0; i < k; ++i) {
    RETURN_IF_ERROR(SetEntry(gc + i, (host + (i << cluster_bits_)) | kOflagCopied, olds[i]));
  }
  *written = run_end - pos;
  return base::Ok();
}

base::Result<Table*> Qcow2DiskImpl::L2ForWrite(uint64_t l1_index) {
  if (l1_index >= l1_.size())
    return Corrupt("L1 index " + std::to_string(l1_index) + " beyond L1 table");
  uint64_t e = l1_[l1_index];
  if (e & kOffsetMask) {
    if (!(e & kOflagCopied)) {
      return base::Error(base::Code::kUnimplemented,
                         file_->display_path() + ": L2 table at " + Hex(e & kOffsetMask) +
                             " is shared (refcount above 1); copying shared tables is not "
                             "supported");
    }
    return l2_cache_->Get(e & kOffsetMask);
  }
  ASSIGN_OR_RETURN(uint64_t off, refcounts_->Allocate(1));
  ASSIGN_OR_RETURN(Table * t, l2_cache_->InsertZeroed(off));
  l1_[l1_index] = off | kOflagCopied;
  l1_dirty_lo_ = std::min(l1_dirty_lo_, l1_index);
  l1_dirty_hi_ = std::max(l1_dirty_hi_, l1_index + 1);
  return t;
}

base::Status Qcow2DiskImpl::SetEntry(uint64_t guest_cluster, uint64_t entry, const Mapping& old) {
  uint64_t l1_index = guest_cluster >> (cluster_bits_ - 3);
  uint64_t l2_index = guest_cluster & (header_.l2_entries() - 1);
  ASSIGN_OR_RETURN(Table * t, L2ForWrite(l1_index));
  PutBe64(&t->bytes[l2_index * 8], entry);
  t->dirty = true;
  // The old cluster is freed only after the new entry is durable.
  if (old.kind == Mapping::kCompressed) {
    refcounts_->DeferFree(old.host & ~uint64_t{511}, old.sectors * 512);
    if (decompressed_host_ == old.host) decompressed_host_ = UINT64_MAX;
  } else if (old.host != 0) {
    refcounts_->DeferFree(old.host, cluster_size_);
  }
  return base::Ok();
}

base::Status Qcow2DiskImpl::ZeroClusters(uint64_t offset, uint64_t len, bool discard) {
  if (read_only_) {
    return base::Error(base::Code::kPermissionDenied, std::string(discard ? "discard" : "zero") +
                                                          " disk " + file_->display_path() +
                                                          ": the disk is read-only");
  }
  RETURN_IF_ERROR(CheckRange(discard ? "discard" : "zero", len, offset));
  const uint64_t end = offset + len;
  // Whole clusters: change the entry; partial ends: write zeros.
  uint64_t first_full = (offset + cluster_size_ - 1) & ~(cluster_size_ - 1);
  uint64_t last_full = end & ~(cluster_size_ - 1);
  // The last cluster of a disk whose size is not cluster aligned counts as
  // whole when the range reaches the end of the disk.
  if (end == size_ && (size_ & (cluster_size_ - 1)) != 0) {
    last_full = (size_ + cluster_size_ - 1) & ~(cluster_size_ - 1);
  }
  if (first_full >= last_full) {
    std::vector<uint8_t> zeros(len, 0);
    return Write(zeros.data(), len, offset);
  }
  if (offset < first_full) {
    std::vector<uint8_t> zeros(first_full - offset, 0);
    RETURN_IF_ERROR(Write(zeros.data(), zeros.size(), offset));
  }
  for (uint64_t pos = first_full; pos < last_full; pos += cluster_size_) {
    uint64_t gc = pos >> cluster_bits_;
    uint64_t l1_index = gc >> (cluster_bits_ - 3);
    if (!backing_ && l1_index < l1_.size() && (l1_[l1_index] & kOffsetMask) == 0) {
      // Nothing stored and nothing beneath: already zeros, skip the span.
      pos = std::min(last_full, (l1_index + 1) * header_.l2_span()) - cluster_size_;
      continue;
    }
    ASSIGN_OR_RETURN(Mapping m, Lookup(gc));
    uint64_t want = (discard && !backing_) ? 0 : kOflagZero;
    if (m.kind == Mapping::kUnallocated && !backing_) continue;
    if (m.kind == Mapping::kZero && m.host == 0 && want == kOflagZero) continue;
    RETURN_IF_ERROR(SetEntry(gc, want, m));
  }
  uint64_t tail = std::max(last_full, first_full);
  if (tail < end) {
    std::vector<uint8_t> zeros(end - tail, 0);
    RETURN_IF_ERROR(Write(zeros.data(), zeros.size(), tail));
  }
  return base::Ok();
}

base::Status Qcow2DiskImpl::Discard(uint64_t offset, uint64_t len) {
  return ZeroClusters(offset, len, true);
}

base::Status Qcow2DiskImpl::WriteZeroes(uint64_t offset, uint64_t len) {
  return ZeroClusters(offset, len, false);
}

// Data and refcount increments durable, then the refcount table pointers.
base::Status Qcow2DiskImpl::SyncRefcounts() {
  if (!unsynced_ && !refcounts_->HasDirty()) return base::Ok();
  RETURN_IF_ERROR(refcounts_->WriteBlocks());
  RETURN_IF_ERROR(Sync());
  ASSIGN_OR_RETURN(bool wrote, refcounts_->WritePointers());
  if (wrote) RETURN_IF_ERROR(Sync());
  return base::Ok();
}

base::Status Qcow2DiskImpl::WriteL1() {
  if (l1_dirty_lo_ >= l1_dirty_hi_) return base::Ok();
  std::vector<uint8_t> raw((l1_dirty_hi_ - l1_dirty_lo_) * 8);
  for (uint64_t i = l1_dirty_lo_; i < l1_dirty_hi_; ++i) {
    PutBe64(&raw[(i - l1_dirty_lo_) * 8], l1_[i]);
  }
  RETURN_IF_ERROR(WriteFile(raw.data(), raw.size(), header_.l1_table_offset + l1_dirty_lo_ * 8));
  l1_dirty_lo_ = UINT64_MAX;
  l1_dirty_hi_ = 0;
  return base::Ok();
}

base::Status Qcow2DiskImpl::Flush() {
  if (read_only_) return base::Ok();
  // 1+2: data, refcounts, refcount table (SyncRefcounts also runs as the L2
  // cache's before-write hook).
  RETURN_IF_ERROR(SyncRefcounts());
  // 3: L2 tables.
  RETURN_IF_ERROR(l2_cache_->WriteDirty());
  // 4: L1, once the L2 tables it points at are durable.
  if (l1_dirty_lo_ < l1_dirty_hi_) {
    if (unsynced_) RETURN_IF_ERROR(Sync());
    RETURN_IF_ERROR(WriteL1());
  }
  // 5: clusters nothing durable points at any more.
  if (refcounts_->HasPendingFrees()) {
    if (unsynced_) RETURN_IF_ERROR(Sync());
    RETURN_IF_ERROR(refcounts_->ApplyFrees());
    unsynced_ = true;
  }
  if (unsynced_) RETURN_IF_ERROR(Sync());
  return base::Ok();
}

}  // namespace storage::qcow2
