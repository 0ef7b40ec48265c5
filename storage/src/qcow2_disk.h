// Qcow2DiskImpl: the qcow2 Disk. Reading and opening live in qcow2_disk.cc,
// the write path and the metadata commit in qcow2_write.cc.
//
// Metadata is write-back: L2 tables and refcount blocks change in small LRU
// caches, the L1 table in memory; data goes straight to the file. The commit
// (Flush, or eviction of a dirty L2 table) keeps this order, each arrow an
// fdatasync:
//
//   data + refcount increments (+ a moved refcount table's body)
//     -> refcount table entries / header pointer to a moved table
//     -> L2 tables
//     -> L1 table
//     -> deferred refcount decrements (clusters no longer referenced)
//
// So after a crash at any point, every on-disk L2 entry points at data that
// was written and at a cluster whose refcount is at least 1, and every L1
// entry at a written L2 table; the worst case is a leaked cluster (refcount 1,
// unreferenced), which qemu-img check -r leaks repairs. Clusters are
// allocated by appending only, so a freed cluster is never rewritten while an
// old on-disk entry may still point at it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/vm_definition.h"
#include "qcow2_format.h"
#include "qcow2_refcounts.h"
#include "qcow2_table_cache.h"
#include "storage/qcow2.h"

namespace storage::qcow2 {

inline constexpr int kMaxBackingDepth = 32;

using BackingOpener = std::function<base::Result<std::unique_ptr<Disk>>(
    const std::string& path, config::DiskFormat format, int depth)>;

// One file of a backing chain that is already open, above the one being
// opened.
struct ChainLink {
  std::string path;
  std::optional<FileId> id;  // nullopt: not a file on a file system (fuzzer)
};

struct OpenParams {
  bool read_only = true;
  IoEngine engine = IoEngine::kIoUring;
  int depth = 0;  // 0 for the top image
  // The files above this one, top first (empty for the top). A backing file
  // that is one of them, or this image itself, is a loop: refused by file
  // identity (device and inode), so another spelling of a name, a hard link
  // or a symlink to a file of the chain is caught too.
  std::vector<ChainLink> above;
  // Opens a backing file (read-only). Unset: the real files (OpenDisk rules).
  BackingOpener open_backing;
};

// Opens the image in `file` (its path() names errors and anchors relative
// backing file names). The fuzz target passes an in-memory BlockFile and a
// backing opener that refuses.
base::Result<std::unique_ptr<Qcow2Disk>> OpenQcow2File(std::unique_ptr<BlockFile> file,
                                                       const OpenParams& params);

// Reads and validates the header (ParseHeader over the header cluster).
base::Result<Header> ReadHeader(BlockFile& file, uint64_t file_size);
// qcow2 if the file starts with the qcow2 magic, else raw (qemu's probe,
// restricted to the two formats ferry reads).
base::Result<config::DiskFormat> ProbeFormat(const std::string& path);

// The backing path as qemu resolves it: absolute as is, else relative to the
// directory of image_path.
std::string ResolveBackingPath(const std::string& image_path, const std::string& backing_file);

class Qcow2DiskImpl final : public Qcow2Disk {
 public:
  static base::Result<std::unique_ptr<Qcow2DiskImpl>> Open(std::unique_ptr<BlockFile> file,
                                                           const OpenParams& params);
  ~Qcow2DiskImpl() override;

  base::Status Read(void* buf, size_t len, uint64_t offset) override;
  base::Status Write(const void* buf, size_t len, uint64_t offset) override;
  base::Status Flush() override;
  uint64_t size() const override { return size_; }
  bool read_only() const override { return read_only_; }
  base::Result<Extent> MapExtent(uint64_t offset, uint64_t max_len) override;
  base::Status Discard(uint64_t offset, uint64_t len) override;
  base::Status WriteZeroes(uint64_t offset, uint64_t len) override;
  const Qcow2Info& info() const override { return info_; }
  Disk* backing() override { return backing_.get(); }

 private:
  // Where one guest cluster's bytes are, decoded and validated.
  struct Mapping {
    enum Kind { kUnallocated = 1, kZero = 2, kData = 3, kCompressed = 4 };
    Kind kind = kUnallocated;
    uint64_t host = 0;     // data/zero: cluster offset (0 if none); compressed: byte offset
    uint64_t csize = 0;    // compressed: bytes from host (may run past end of file)
    uint64_t sectors = 0;  // compressed: 512-byte sectors spanned from host & ~511
    bool copied = false;   // refcount is exactly 1: writable in place
  };

  Qcow2DiskImpl(std::unique_ptr<BlockFile> file, Header header, bool read_only);
  base::Status Load(const OpenParams& params);
  base::Status LoadL1();
  base::Status OpenBacking(const OpenParams& params);
  // kDataLoss if the backing file is one of `chain` (the files above it,
  // this image last): the chain loops.
  base::Status CheckNoLoop(const std::vector<ChainLink>& chain) const;

  base::Status CheckRange(std::string_view op, uint64_t len, uint64_t offset) const;
  base::Error Corrupt(const std::string& what) const;
  base::Result<Mapping> Lookup(uint64_t guest_cluster);
  base::Result<Mapping> Decode(uint64_t entry, uint64_t l2_offset, uint64_t index) const;
  // The whole guest cluster's current contents (for reads and copy-on-write).
  base::Status ReadCluster(uint64_t guest_cluster, const Mapping& m, uint8_t* out);
  base::Status ReadCompressed(const Mapping& m, uint8_t* out);
  // Backing contents at guest offset, zeros past the backing's end.
  base::Status ReadBacking(uint8_t* buf, uint64_t len, uint64_t offset);

  // Write path (qcow2_write.cc).
  base::Status WriteFile(const void* buf, size_t len, uint64_t offset);
  base::Status Sync();
  base::Status CheckNotMetadata(uint64_t host) const;
  base::Status WriteAllocating(const uint8_t* src, uint64_t pos, uint64_t end, const Mapping& first,
                               uint64_t* written);
  base::Result<Table*> L2ForWrite(uint64_t l1_index);
  base::Status SetEntry(uint64_t guest_cluster, uint64_t entry, const Mapping& old);
  base::Status ZeroClusters(uint64_t offset, uint64_t len, bool discard);
  // Commit steps; see the file comment.
  base::Status SyncRefcounts();
  base::Status WriteL1();

  // Declared first, destroyed last: the caches below hold a reference to it.
  std::unique_ptr<BlockFile> file_;
  Header header_;
  Qcow2Info info_;
  const bool read_only_;
  const uint64_t cluster_size_;
  const uint32_t cluster_bits_;
  uint64_t size_ = 0;
  uint64_t file_size_ = 0;  // grows with our writes; bounds table entries

  std::vector<uint64_t> l1_;
  uint64_t l1_dirty_lo_ = UINT64_MAX, l1_dirty_hi_ = 0;  // [lo, hi) entries
  std::unique_ptr<Refcounts> refcounts_;
  std::unique_ptr<TableCache> l2_cache_;
  bool unsynced_ = false;  // file writes since the last fdatasync

  std::unique_ptr<Disk> backing_;
  uint64_t backing_size_ = 0;

  // The last decompressed cluster, keyed by its L2 entry's host offset.
  uint64_t decompressed_host_ = UINT64_MAX;
  std::vector<uint8_t> decompressed_;
  std::vector<uint8_t> scratch_;
};

}  // namespace storage::qcow2
