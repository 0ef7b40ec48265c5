// Refcounts: the qcow2 refcount table and its blocks, and cluster allocation.
//
// Allocation only appends: new clusters come after every cluster allocated so
// far (and after the end of the file at open), and a cluster whose refcount is
// not 0 is never handed out again. Freed clusters are not reused within a
// session, so a crash can never leave an old on-disk L2 entry pointing at a
// cluster that already holds someone else's new data.
//
// Ordering (see Qcow2Disk's commit for the whole sequence):
//   increments  reach the file before any entry that points at the cluster
//               (harmless if a crash follows: a leak, which check -r repairs);
//   decrements  are deferred (DeferFree) until the metadata that stopped
//               pointing at the cluster is durable (ApplyFrees);
//   the table   a table grown into new clusters is written, synced, and only
//               then does the header point at it (WritePointers).
//
// Reads any refcount_order (1..64-bit refcounts), writes them all the same way.
// Not thread-safe. `file` must outlive this object.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/result.h"
#include "qcow2_format.h"
#include "qcow2_table_cache.h"

namespace storage::qcow2 {

class Refcounts {
 public:
  // Loads and validates the refcount table. file_size bounds block offsets.
  static base::Result<std::unique_ptr<Refcounts>> Load(BlockFile& file, const Header& h,
                                                       uint64_t file_size);

  // The refcount of host cluster `cluster` (index, not offset); 0 for clusters
  // beyond the table or in a missing block.
  base::Result<uint64_t> Get(uint64_t cluster);
  // n contiguous fresh clusters, each with refcount 1 (in the cache). Returns
  // the host offset of the first.
  base::Result<uint64_t> Allocate(uint64_t n);
  // Decrements the clusters overlapping [offset, offset + bytes) at the next
  // ApplyFrees.
  void DeferFree(uint64_t offset, uint64_t bytes);

  bool HasDirty() const { return blocks_.HasDirty() || table_moved_ || table_entry_dirty_; }
  bool HasPendingFrees() const { return !pending_frees_.empty(); }
  // Step 1: dirty blocks and the body of a moved table. No sync.
  base::Status WriteBlocks();
  // Step 2, after a sync: the table entries in place or the header's pointer
  // to a moved table. Returns whether anything was written (the caller syncs).
  base::Result<bool> WritePointers();
  // After the metadata is durable: the deferred decrements, written; clusters
  // whose refcount reached 0 are punched out of the file (where the file
  // system can).
  base::Status ApplyFrees();

  // End of the allocated area (next allocation starts here).
  uint64_t end_offset() const { return next_free_ << cluster_bits_; }
  uint64_t max_refcount() const { return max_; }

 private:
  Refcounts(BlockFile& file, const Header& h, uint64_t file_size);
  base::Status Update(uint64_t cluster, bool increment);
  base::Result<uint64_t> Reserve(uint64_t n);
  base::Status GrowTable(uint64_t need_entries);
  uint64_t GetEntry(const Table& t, uint64_t i) const;
  void SetEntry(Table& t, uint64_t i, uint64_t v) const;

  BlockFile& file_;
  uint32_t cluster_bits_;
  uint32_t order_;
  uint64_t per_block_;  // refcounts per block
  uint64_t max_;
  std::vector<uint64_t> table_;  // host offsets of blocks, 0 = none
  uint64_t table_offset_;
  uint32_t table_clusters_;
  bool table_moved_ = false;        // table_ lives at a new, not yet referenced place
  bool table_entry_dirty_ = false;  // entries changed in place
  uint64_t next_free_;              // cluster index
  TableCache blocks_;
  std::vector<std::pair<uint64_t, uint64_t>> pending_frees_;
};

}  // namespace storage::qcow2
