#include "qcow2_table_cache.h"

#include <algorithm>

#include "qcow2_format.h"

namespace storage::qcow2 {

TableCache::TableCache(BlockFile& file, size_t table_bytes, size_t capacity, std::string what)
    : file_(file),
      table_bytes_(table_bytes),
      capacity_(std::max<size_t>(capacity, 2)),
      what_(std::move(what)) {}

base::Result<Table*> TableCache::MakeRoom() {
  if (tables_.size() < capacity_) {
    tables_.push_back(std::make_unique<Table>());
    tables_.back()->bytes.resize(table_bytes_);
    return tables_.back().get();
  }
  auto lru = std::min_element(tables_.begin(), tables_.end(), [](const auto& a, const auto& b) {
    return a->last_use < b->last_use;
  });
  Table& t = **lru;
  if (t.dirty) {
    if (before_write_) RETURN_IF_ERROR(before_write_());
    RETURN_IF_ERROR(WriteOne(t));
  }
  t.offset = 0;
  return &t;
}

base::Status TableCache::WriteOne(Table& t) {
  RETURN_IF_ERROR(file_.WriteAt(t.bytes.data(), t.bytes.size(), t.offset));
  t.dirty = false;
  return base::Ok();
}

base::Result<Table*> TableCache::Get(uint64_t offset) {
  if (offset == 0) {
    return base::Error(base::Code::kDataLoss, file_.display_path() + ": " + what_ + " at offset 0");
  }
  for (auto& t : tables_) {
    if (t->offset == offset) {
      t->last_use = ++tick_;
      return t.get();
    }
  }
  ASSIGN_OR_RETURN(Table * t, MakeRoom());
  ASSIGN_OR_RETURN(size_t n, file_.ReadAt(t->bytes.data(), table_bytes_, offset));
  if (n != table_bytes_) {
    return base::Error(base::Code::kDataLoss, file_.display_path() + ": " + what_ + " at " +
                                                  Hex(offset) +
                                                  " is cut short by the end of the file");
  }
  t->offset = offset;
  t->dirty = false;
  t->last_use = ++tick_;
  return t;
}

base::Result<Table*> TableCache::InsertZeroed(uint64_t offset) {
  Drop(offset);
  ASSIGN_OR_RETURN(Table * t, MakeRoom());
  std::fill(t->bytes.begin(), t->bytes.end(), 0);
  t->offset = offset;
  t->dirty = true;
  t->last_use = ++tick_;
  return t;
}

bool TableCache::HasDirty() const {
  return std::any_of(tables_.begin(), tables_.end(), [](const auto& t) { return t->dirty; });
}

base::Status TableCache::WriteDirty() {
  if (!HasDirty()) return base::Ok();
  if (before_write_) RETURN_IF_ERROR(before_write_());
  // In offset order, so the writes are sequential in the file.
  std::vector<Table*> dirty;
  for (auto& t : tables_) {
    if (t->dirty) dirty.push_back(t.get());
  }
  std::sort(dirty.begin(), dirty.end(), [](Table* a, Table* b) { return a->offset < b->offset; });
  for (Table* t : dirty) RETURN_IF_ERROR(WriteOne(*t));
  return base::Ok();
}

void TableCache::Drop(uint64_t offset) {
  for (auto& t : tables_) {
    if (t->offset == offset) {
      t->offset = 0;
      t->dirty = false;
      t->last_use = 0;
    }
  }
}

}  // namespace storage::qcow2
