// TableCache: a small LRU of cluster-sized metadata tables (L2 tables,
// refcount blocks) kept as their raw big-endian bytes, keyed by host offset.
//
// Write-back: a changed table is marked dirty and written by WriteDirty() or
// when it is evicted. Before a dirty table is written, the cache calls the
// owner's before_write hook, which is where the owner enforces write ordering
// (an L2 table may reach the file only after the data and refcounts it points
// to are durable).
//
// Lifetime: a Table* returned by Get/Insert stays valid until the next
// Get/Insert on the same cache (which may evict it). `file` must outlive the
// cache. Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "storage/block_file.h"

namespace storage::qcow2 {

struct Table {
  uint64_t offset = 0;
  std::vector<uint8_t> bytes;
  bool dirty = false;
  uint64_t last_use = 0;
};

class TableCache {
 public:
  using Hook = std::function<base::Status()>;
  // capacity >= 2 tables of table_bytes each.
  TableCache(BlockFile& file, size_t table_bytes, size_t capacity, std::string what);

  void set_before_write(Hook hook) { before_write_ = std::move(hook); }
  // The table at offset, read from the file if not cached. A short read
  // (table past end of file) is kDataLoss.
  base::Result<Table*> Get(uint64_t offset);
  // A new all-zero table at offset, dirty (for freshly allocated clusters).
  base::Result<Table*> InsertZeroed(uint64_t offset);
  // Writes every dirty table (calling before_write once first if any is
  // dirty). Does not flush the file.
  base::Status WriteDirty();
  bool HasDirty() const;
  // Forgets a cached table without writing it (its cluster was freed).
  void Drop(uint64_t offset);

 private:
  base::Result<Table*> MakeRoom();
  base::Status WriteOne(Table& t);

  BlockFile& file_;
  size_t table_bytes_;
  size_t capacity_;
  std::string what_;
  Hook before_write_;
  uint64_t tick_ = 0;
  std::vector<std::unique_ptr<Table>> tables_;
};

}  // namespace storage::qcow2
