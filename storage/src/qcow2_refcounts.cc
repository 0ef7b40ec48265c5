#include "qcow2_refcounts.h"

#include <algorithm>

namespace storage::qcow2 {
namespace {

constexpr size_t kBlockCacheTables = 8;

}  // namespace

Refcounts::Refcounts(BlockFile& file, const Header& h, uint64_t file_size)
    : file_(file),
      cluster_bits_(h.cluster_bits),
      order_(h.refcount_order),
      per_block_((h.cluster_size() * 8) >> h.refcount_order),
      max_(h.refcount_order == 6 ? ~uint64_t{0} : (uint64_t{1} << (1u << h.refcount_order)) - 1),
      table_offset_(h.refcount_table_offset),
      table_clusters_(h.refcount_table_clusters),
      next_free_((file_size + h.cluster_size() - 1) >> h.cluster_bits),
      blocks_(file, h.cluster_size(), kBlockCacheTables, "refcount block") {}

base::Result<std::unique_ptr<Refcounts>> Refcounts::Load(BlockFile& file, const Header& h,
                                                         uint64_t file_size) {
  std::unique_ptr<Refcounts> r(new Refcounts(file, h, file_size));
  uint64_t bytes = uint64_t{h.refcount_table_clusters} << h.cluster_bits;
  std::vector<uint8_t> raw(bytes);
  ASSIGN_OR_RETURN(size_t n, file.ReadAt(raw.data(), raw.size(), h.refcount_table_offset));
  if (n != bytes) {
    return base::Error(
        base::Code::kDataLoss,
        file.display_path() + ": refcount table is cut short by the end of the file");
  }
  r->table_.resize(bytes / 8);
  for (size_t i = 0; i < r->table_.size(); ++i) {
    uint64_t e = GetBe64(&raw[i * 8]);
    auto bad = [&](const std::string& what) {
      return base::Error(base::Code::kDataLoss, file.display_path() + ": refcount table entry " +
                                                    std::to_string(i) + " (" + Hex(e) + ") " +
                                                    what);
    };
    if (e & kRefTableReserved) return bad("has reserved bits set");
    if (e % h.cluster_size() != 0) return bad("is not cluster aligned");
    if (e != 0 && e >= file_size) return bad("points past end of file");
    r->table_[i] = e;
  }
  return r;
}

uint64_t Refcounts::GetEntry(const Table& t, uint64_t i) const {
  const uint8_t* p = t.bytes.data();
  switch (order_) {
    case 6: return GetBe64(p + i * 8);
    case 5: return GetBe32(p + i * 4);
    case 4: return GetBe16(p + i * 2);
    case 3: return p[i];
    default: {
      uint32_t bits = 1u << order_;
      uint32_t per_byte = 8 / bits;
      return (p[i / per_byte] >> ((i % per_byte) * bits)) & ((1u << bits) - 1);
    }
  }
}

void Refcounts::SetEntry(Table& t, uint64_t i, uint64_t v) const {
  uint8_t* p = t.bytes.data();
  switch (order_) {
    case 6: PutBe64(p + i * 8, v); break;
    case 5: PutBe32(p + i * 4, uint32_t(v)); break;
    case 4: PutBe16(p + i * 2, uint16_t(v)); break;
    case 3: p[i] = uint8_t(v); break;
    default: {
      uint32_t bits = 1u << order_;
      uint32_t per_byte = 8 / bits;
      uint32_t shift = uint32_t(i % per_byte) * bits;
      uint8_t mask = uint8_t(((1u << bits) - 1) << shift);
      p[i / per_byte] = uint8_t((p[i / per_byte] & ~mask) | ((v << shift) & mask));
    }
  }
  t.dirty = true;
}

base::Result<uint64_t> Refcounts::Get(uint64_t cluster) {
  uint64_t b = cluster / per_block_;
  if (b >= table_.size() || table_[b] == 0) return uint64_t{0};
  ASSIGN_OR_RETURN(Table * t, blocks_.Get(table_[b]));
  return GetEntry(*t, cluster % per_block_);
}

base::Result<uint64_t> Refcounts::Reserve(uint64_t n) {
  uint64_t start = next_free_;
  // Skip anything the refcounts already claim (possible past the end of a
  // file written by another program); never hand out a used cluster.
  for (uint64_t c = start; c < start + n; ++c) {
    ASSIGN_OR_RETURN(uint64_t rc, Get(c));
    if (rc != 0) start = c + 1;
  }
  if ((start + n) > (uint64_t{1} << (56 - cluster_bits_))) {
    return base::Error(base::Code::kResourceExhausted,
                       file_.display_path() + ": no cluster offsets left below 2^56");
  }
  next_free_ = start + n;
  return start;
}

base::Result<uint64_t> Refcounts::Allocate(uint64_t n) {
  ASSIGN_OR_RETURN(uint64_t start, Reserve(n));
  for (uint64_t c = start; c < start + n; ++c) RETURN_IF_ERROR(Update(c, true));
  return start << cluster_bits_;
}

base::Status Refcounts::GrowTable(uint64_t need_entries) {
  const uint64_t per_cluster = (uint64_t{1} << cluster_bits_) / 8;
  uint64_t want = std::max<uint64_t>(need_entries, table_.size() + table_.size() / 2);
  want = (want + per_cluster - 1) / per_cluster * per_cluster;
  if (want * 8 > kMaxRefcountTableBytes) {
    return base::Error(base::Code::kResourceExhausted,
                       file_.display_path() + ": the refcount table would exceed " +
                           std::to_string(kMaxRefcountTableBytes) + " bytes");
  }
  uint32_t clusters = uint32_t(want / per_cluster);
  ASSIGN_OR_RETURN(uint64_t start, Reserve(clusters));
  // The old table (or an earlier moved one never referenced) is freed once
  // the header points at the new one.
  DeferFree(table_offset_, uint64_t{table_clusters_} << cluster_bits_);
  table_.resize(want, 0);
  table_offset_ = start << cluster_bits_;
  table_clusters_ = clusters;
  table_moved_ = true;
  for (uint64_t c = start; c < start + clusters; ++c) RETURN_IF_ERROR(Update(c, true));
  return base::Ok();
}

base::Status Refcounts::Update(uint64_t cluster, bool increment) {
  uint64_t b = cluster / per_block_;
  auto lost = [&](const std::string& what) {
    return base::Error(base::Code::kDataLoss, file_.display_path() + ": freeing cluster at " +
                                                  Hex(cluster << cluster_bits_) + ": " + what);
  };
  if (b >= table_.size()) {
    if (!increment) return lost("it is beyond the refcount table");
    RETURN_IF_ERROR(GrowTable(b + 1));
  }
  if (table_[b] == 0) {
    if (!increment) return lost("it has no refcount block");
    ASSIGN_OR_RETURN(uint64_t bc, Reserve(1));
    table_[b] = bc << cluster_bits_;
    table_entry_dirty_ = true;
    RETURN_IF_ERROR(blocks_.InsertZeroed(table_[b]));
    // The new block's own cluster needs a refcount, possibly in itself.
    RETURN_IF_ERROR(Update(bc, true));
  }
  ASSIGN_OR_RETURN(Table * t, blocks_.Get(table_[b]));
  uint64_t i = cluster % per_block_;
  uint64_t v = GetEntry(*t, i);
  if (increment) {
    if (v == max_) {
      return base::Error(base::Code::kResourceExhausted,
                         file_.display_path() + ": refcount of cluster at " +
                             Hex(cluster << cluster_bits_) + " would overflow");
    }
    SetEntry(*t, i, v + 1);
  } else {
    if (v == 0) return lost("its refcount is already 0");
    SetEntry(*t, i, v - 1);
  }
  return base::Ok();
}

void Refcounts::DeferFree(uint64_t offset, uint64_t bytes) {
  if (bytes > 0) pending_frees_.emplace_back(offset, bytes);
}

base::Status Refcounts::WriteBlocks() {
  RETURN_IF_ERROR(blocks_.WriteDirty());
  if (table_moved_) {
    std::vector<uint8_t> raw(uint64_t{table_clusters_} << cluster_bits_, 0);
    for (size_t i = 0; i < table_.size(); ++i) PutBe64(&raw[i * 8], table_[i]);
    RETURN_IF_ERROR(file_.WriteAt(raw.data(), raw.size(), table_offset_));
  }
  return base::Ok();
}

base::Result<bool> Refcounts::WritePointers() {
  if (table_moved_) {
    uint8_t ptr[12];
    PutBe64(ptr, table_offset_);
    PutBe32(ptr + 8, table_clusters_);
    RETURN_IF_ERROR(file_.WriteAt(ptr, sizeof(ptr), kOffRefcountTable));
    table_moved_ = false;
    table_entry_dirty_ = false;
    return true;
  }
  if (table_entry_dirty_) {
    std::vector<uint8_t> raw(table_.size() * 8);
    for (size_t i = 0; i < table_.size(); ++i) PutBe64(&raw[i * 8], table_[i]);
    RETURN_IF_ERROR(file_.WriteAt(raw.data(), raw.size(), table_offset_));
    table_entry_dirty_ = false;
    return true;
  }
  return false;
}

base::Status Refcounts::ApplyFrees() {
  auto frees = std::move(pending_frees_);
  pending_frees_.clear();
  const uint64_t cs = uint64_t{1} << cluster_bits_;
  std::vector<std::pair<uint64_t, uint64_t>> holes;  // [first, end) cluster runs now at 0
  for (const auto& [offset, bytes] : frees) {
    for (uint64_t c = offset / cs; c <= (offset + bytes - 1) / cs; ++c) {
      RETURN_IF_ERROR(Update(c, false));
      ASSIGN_OR_RETURN(uint64_t left, Get(c));
      if (left != 0) continue;
      if (!holes.empty() && holes.back().second == c) {
        ++holes.back().second;
      } else {
        holes.emplace_back(c, c + 1);
      }
    }
  }
  RETURN_IF_ERROR(blocks_.WriteDirty());
  // Give the space back to the file system. Safe at any time from here: no
  // durable table points at these clusters any more, and allocation only
  // appends, so nothing in this session writes them again. A crash before the
  // decrements reach the disk leaves a leaked cluster of zeros.
  for (const auto& [first, end] : holes) {
    base::Status st = file_.PunchHole(first << cluster_bits_, (end - first) << cluster_bits_);
    if (!st && st.error().code() != base::Code::kUnimplemented) return st;
  }
  return base::Ok();
}

}  // namespace storage::qcow2
