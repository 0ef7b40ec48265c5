// DirtyBitmap: one bit per block of a disk (the granularity, default 64 KiB)
// saying "this block may differ between the source and its copy". The mirror
// job copies dirty blocks; guest writes set bits; a stopped move saves the
// bitmap so the next attempt resumes instead of starting over.
//
// Byte ranges map to every block they touch: Set(100, 1) dirties block 0.
// The last block may extend past disk_size(); it still counts as one block.
//
// Threads: Set, Clear, Take, Test and the run iteration are safe to call from
// any thread at once (bits are atomic words). A reader that iterates while
// others set bits sees each bit either before or after the change; callers
// that need a bit to stay put (the mirror's copy of a region) order that
// themselves (see TrackingDisk). Merge, Encode and the moves are not atomic
// as a whole: each word is.
//
// File format (little-endian, see docs/storage.md):
//   u32 magic 'FDBM' (0x4d424446), u16 version (1), u16 reserved (0),
//   u64 disk_size, u32 granularity, u32 reserved (0), u64 block_count,
//   u64 dirty_count, then ceil(block_count/64) u64 words (bit i of word w is
//   block 64*w+i), then u32 CRC32C of everything before it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace storage {

inline constexpr uint64_t kDefaultDirtyGranularity = 64 << 10;

// A run of bytes, block-aligned at the start; the end is clipped to the disk.
struct ByteRun {
  uint64_t offset = 0;
  uint64_t length = 0;
};

class DirtyBitmap {
 public:
  // granularity: a power of two from 512 bytes to 64 MiB. disk_size > 0.
  static base::Result<DirtyBitmap> Create(uint64_t disk_size,
                                          uint64_t granularity = kDefaultDirtyGranularity);

  DirtyBitmap(DirtyBitmap&& other) noexcept;
  DirtyBitmap& operator=(DirtyBitmap&& other) noexcept;
  DirtyBitmap(const DirtyBitmap&) = delete;
  DirtyBitmap& operator=(const DirtyBitmap&) = delete;

  // A bitmap of the same geometry with the same bits (a snapshot: bits that
  // change while it is taken may or may not be in it).
  DirtyBitmap Clone() const;

  uint64_t disk_size() const { return disk_size_; }
  uint64_t granularity() const { return granularity_; }
  uint64_t block_count() const { return blocks_; }

  // Marks every block touching [offset, offset + len); ranges past the disk
  // are clipped. Returns the number of blocks that were clean before.
  uint64_t Set(uint64_t offset, uint64_t len);
  void SetAll();
  // Clears every block touching the range. Callers pass block-aligned ranges
  // (or ranges ending at disk_size()) unless they mean to drop neighbours.
  void Clear(uint64_t offset, uint64_t len);
  void ClearAll();
  // Clears the blocks touching the range and returns the byte runs that were
  // dirty (block-aligned, clipped to the disk), in order. The mirror copies
  // exactly what it took; if that fails it Sets the runs back.
  std::vector<ByteRun> Take(uint64_t offset, uint64_t len);
  // True if any block touching the range is dirty / all of them are.
  bool TestAny(uint64_t offset, uint64_t len) const;
  bool TestAll(uint64_t offset, uint64_t len) const;

  // The first dirty run that starts at or after `from` (rounded down to its
  // block), at most max_len bytes long (max_len >= granularity), clipped to
  // the disk; nullopt if none.
  std::optional<ByteRun> NextDirty(uint64_t from, uint64_t max_len = UINT64_MAX) const;

  uint64_t dirty_blocks() const { return dirty_.load(std::memory_order_relaxed); }
  // Bytes the dirty blocks cover, the last block clipped to the disk.
  uint64_t dirty_bytes() const;

  // ORs other's bits into this one. kInvalidArgument if the geometry differs
  // (a bitmap for another disk size or granularity is never guessed into fit).
  base::Status Merge(const DirtyBitmap& other);

  // The file format above; Decode checks magic, version, reserved fields,
  // length against the header (before allocating), CRC, bits past the last
  // block and the dirty count: any damage is kDataLoss.
  std::string Encode() const;
  static base::Result<DirtyBitmap> Decode(std::string_view bytes);
  // Encode + base::WriteFileAtomically (a reader sees the old or new file).
  base::Status Save(const std::string& path) const;
  static base::Result<DirtyBitmap> Load(const std::string& path);

 private:
  DirtyBitmap(uint64_t disk_size, uint64_t granularity);
  // Word index range and masks for the blocks of [first_block, last_block].
  template <typename Fn>
  void ForEachWord(uint64_t first_block, uint64_t last_block, Fn&& fn) const;
  struct BlockSpan {
    uint64_t first = 0;
    uint64_t last = 0;  // inclusive
  };
  // Blocks touched by a byte range; nullopt if empty after clipping.
  std::optional<BlockSpan> Blocks(uint64_t offset, uint64_t len) const;

  uint64_t disk_size_ = 0;
  uint64_t granularity_ = 0;
  unsigned shift_ = 0;  // log2(granularity_)
  uint64_t blocks_ = 0;
  uint64_t words_ = 0;
  std::unique_ptr<std::atomic<uint64_t>[]> bits_;
  std::atomic<uint64_t> dirty_{0};
};

}  // namespace storage
