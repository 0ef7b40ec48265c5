#include "storage/dirty_bitmap.h"

#include <algorithm>
#include <bit>

#include "base/crc32c.h"
#include "base/fd.h"
#include "base/le.h"

namespace storage {
namespace {

constexpr uint32_t kMagic = 0x4d424446;  // "FDBM" as little-endian bytes
constexpr uint16_t kVersion = 1;
constexpr size_t kHeaderBytes = 4 + 2 + 2 + 8 + 4 + 4 + 8 + 8;
constexpr uint64_t kMinGranularity = 512;
constexpr uint64_t kMaxGranularity = 64ull << 20;
// 2^36 blocks is 8 GiB of bits: far above any real disk at 512-byte blocks,
// and a bound that keeps a corrupt header from asking for absurd memory.
constexpr uint64_t kMaxBlocks = 1ull << 36;

// Bits lo..hi (inclusive) of a 64-bit word.
uint64_t Mask(unsigned lo, unsigned hi) {
  uint64_t upper = hi == 63 ? ~0ull : (1ull << (hi + 1)) - 1;
  return upper & ~((1ull << lo) - 1);
}

base::Error Corrupt(const std::string& what) {
  return base::Error(base::Code::kDataLoss, "dirty bitmap: " + what);
}

}  // namespace

DirtyBitmap::DirtyBitmap(uint64_t disk_size, uint64_t granularity)
    : disk_size_(disk_size),
      granularity_(granularity),
      shift_(unsigned(std::countr_zero(granularity))),
      blocks_((disk_size + granularity - 1) >> shift_),
      words_((blocks_ + 63) / 64),
      bits_(std::make_unique<std::atomic<uint64_t>[]>(words_)) {
  for (uint64_t w = 0; w < words_; ++w) bits_[w].store(0, std::memory_order_relaxed);
}

DirtyBitmap::DirtyBitmap(DirtyBitmap&& other) noexcept
    : disk_size_(other.disk_size_),
      granularity_(other.granularity_),
      shift_(other.shift_),
      blocks_(other.blocks_),
      words_(other.words_),
      bits_(std::move(other.bits_)),
      dirty_(other.dirty_.load()) {
  other.blocks_ = other.words_ = 0;
  other.dirty_ = 0;
}

DirtyBitmap& DirtyBitmap::operator=(DirtyBitmap&& other) noexcept {
  if (this != &other) {
    disk_size_ = other.disk_size_;
    granularity_ = other.granularity_;
    shift_ = other.shift_;
    blocks_ = std::exchange(other.blocks_, 0);
    words_ = std::exchange(other.words_, 0);
    bits_ = std::move(other.bits_);
    dirty_ = other.dirty_.exchange(0);
  }
  return *this;
}

base::Result<DirtyBitmap> DirtyBitmap::Create(uint64_t disk_size, uint64_t granularity) {
  if (granularity < kMinGranularity || granularity > kMaxGranularity ||
      !std::has_single_bit(granularity)) {
    return base::Error(base::Code::kInvalidArgument,
                       "dirty bitmap granularity " + std::to_string(granularity) +
                           " is not a power of two from 512 bytes to 64 MiB");
  }
  if (disk_size == 0 || (disk_size + granularity - 1) / granularity > kMaxBlocks) {
    return base::Error(base::Code::kInvalidArgument,
                       "dirty bitmap for a " + std::to_string(disk_size) + "-byte disk at " +
                           std::to_string(granularity) + "-byte granularity: size out of range");
  }
  return DirtyBitmap(disk_size, granularity);
}

DirtyBitmap DirtyBitmap::Clone() const {
  DirtyBitmap copy(disk_size_, granularity_);
  uint64_t count = 0;
  for (uint64_t w = 0; w < words_; ++w) {
    uint64_t v = bits_[w].load(std::memory_order_relaxed);
    copy.bits_[w].store(v, std::memory_order_relaxed);
    count += unsigned(std::popcount(v));
  }
  copy.dirty_ = count;
  return copy;
}

std::optional<DirtyBitmap::BlockSpan> DirtyBitmap::Blocks(uint64_t offset, uint64_t len) const {
  if (len == 0 || offset >= disk_size_) return std::nullopt;
  uint64_t end = offset + std::min(len, disk_size_ - offset);
  return BlockSpan{offset >> shift_, (end - 1) >> shift_};
}

template <typename Fn>
void DirtyBitmap::ForEachWord(uint64_t first_block, uint64_t last_block, Fn&& fn) const {
  for (uint64_t w = first_block / 64; w <= last_block / 64; ++w) {
    unsigned lo = w == first_block / 64 ? unsigned(first_block % 64) : 0;
    unsigned hi = w == last_block / 64 ? unsigned(last_block % 64) : 63;
    fn(w, Mask(lo, hi));
  }
}

uint64_t DirtyBitmap::Set(uint64_t offset, uint64_t len) {
  auto span = Blocks(offset, len);
  if (!span) return 0;
  uint64_t newly = 0;
  ForEachWord(span->first, span->last, [&](uint64_t w, uint64_t mask) {
    // Reading first skips the atomic RMW when the bits are set already: the
    // common case for a guest rewriting a block the copier has not reached.
    if ((bits_[w].load(std::memory_order_relaxed) & mask) == mask) return;
    uint64_t old = bits_[w].fetch_or(mask, std::memory_order_acq_rel);
    newly += unsigned(std::popcount(mask & ~old));
  });
  if (newly != 0) dirty_.fetch_add(newly, std::memory_order_relaxed);
  return newly;
}

void DirtyBitmap::SetAll() { Set(0, disk_size_); }

// Take returns the ranges it cleared; clearing is all that is wanted here.
void DirtyBitmap::Clear(uint64_t offset, uint64_t len) { (void)Take(offset, len); }

void DirtyBitmap::ClearAll() { Clear(0, disk_size_); }

std::vector<ByteRun> DirtyBitmap::Take(uint64_t offset, uint64_t len) {
  std::vector<ByteRun> runs;
  auto span = Blocks(offset, len);
  if (!span) return runs;
  uint64_t cleared = 0;
  ForEachWord(span->first, span->last, [&](uint64_t w, uint64_t mask) {
    if ((bits_[w].load(std::memory_order_relaxed) & mask) == 0) return;
    uint64_t old = bits_[w].fetch_and(~mask, std::memory_order_acq_rel);
    uint64_t got = old & mask;
    cleared += unsigned(std::popcount(got));
    while (got != 0) {
      unsigned bit = unsigned(std::countr_zero(got));
      got &= got - 1;
      uint64_t start = (w * 64 + bit) << shift_;
      uint64_t run_len = std::min(granularity_, disk_size_ - start);
      if (!runs.empty() && runs.back().offset + runs.back().length == start) {
        runs.back().length += run_len;
      } else {
        runs.push_back({start, run_len});
      }
    }
  });
  if (cleared != 0) dirty_.fetch_sub(cleared, std::memory_order_relaxed);
  return runs;
}

bool DirtyBitmap::TestAny(uint64_t offset, uint64_t len) const {
  auto span = Blocks(offset, len);
  if (!span) return false;
  bool any = false;
  ForEachWord(span->first, span->last, [&](uint64_t w, uint64_t mask) {
    any = any || (bits_[w].load(std::memory_order_acquire) & mask) != 0;
  });
  return any;
}

bool DirtyBitmap::TestAll(uint64_t offset, uint64_t len) const {
  auto span = Blocks(offset, len);
  if (!span) return true;
  bool all = true;
  ForEachWord(span->first, span->last, [&](uint64_t w, uint64_t mask) {
    all = all && (bits_[w].load(std::memory_order_acquire) & mask) == mask;
  });
  return all;
}

std::optional<ByteRun> DirtyBitmap::NextDirty(uint64_t from, uint64_t max_len) const {
  if (from >= disk_size_) return std::nullopt;
  max_len = std::max(max_len, granularity_);
  uint64_t block = from >> shift_;
  // Find the first dirty block at or after `block`, a word at a time.
  uint64_t w = block / 64;
  uint64_t v = bits_[w].load(std::memory_order_acquire) & ~((1ull << (block % 64)) - 1);
  while (v == 0) {
    if (++w >= words_) return std::nullopt;
    v = bits_[w].load(std::memory_order_acquire);
  }
  uint64_t first = w * 64 + unsigned(std::countr_zero(v));
  if (first >= blocks_) return std::nullopt;
  // Extend while blocks stay dirty and the run fits in max_len.
  uint64_t max_blocks = std::max<uint64_t>(1, max_len >> shift_);
  uint64_t last = first;
  while (last + 1 < blocks_ && last + 1 - first < max_blocks) {
    uint64_t next = last + 1;
    if ((bits_[next / 64].load(std::memory_order_acquire) >> (next % 64) & 1) == 0) break;
    last = next;
  }
  uint64_t start = first << shift_;
  uint64_t end = std::min(disk_size_, (last + 1) << shift_);
  return ByteRun{start, end - start};
}

uint64_t DirtyBitmap::dirty_bytes() const {
  uint64_t n = dirty_blocks();
  if (n == 0) return 0;
  uint64_t bytes = n << shift_;
  // The last block may be partial; subtract its overhang if it is dirty.
  uint64_t last = blocks_ - 1;
  if ((bits_[last / 64].load(std::memory_order_relaxed) >> (last % 64) & 1) != 0) {
    bytes -= (blocks_ << shift_) - disk_size_;
  }
  return bytes;
}

base::Status DirtyBitmap::Merge(const DirtyBitmap& other) {
  if (other.disk_size_ != disk_size_ || other.granularity_ != granularity_) {
    return base::Error(base::Code::kInvalidArgument,
                       "merge dirty bitmaps: geometry differs (" + std::to_string(disk_size_) +
                           " bytes at " + std::to_string(granularity_) + " vs " +
                           std::to_string(other.disk_size_) + " bytes at " +
                           std::to_string(other.granularity_) + ")");
  }
  uint64_t newly = 0;
  for (uint64_t w = 0; w < words_; ++w) {
    uint64_t v = other.bits_[w].load(std::memory_order_acquire);
    if (v == 0) continue;
    uint64_t old = bits_[w].fetch_or(v, std::memory_order_acq_rel);
    newly += unsigned(std::popcount(v & ~old));
  }
  dirty_.fetch_add(newly, std::memory_order_relaxed);
  return base::Ok();
}

std::string DirtyBitmap::Encode() const {
  base::LeWriter out;
  out.U32(kMagic);
  out.U16(kVersion);
  out.U16(0);
  out.U64(disk_size_);
  out.U32(uint32_t(granularity_));
  out.U32(0);
  out.U64(blocks_);
  // The count is recomputed from the words so header and body always agree,
  // even if bits change while encoding.
  std::string body;
  body.reserve(words_ * 8);
  uint64_t count = 0;
  for (uint64_t w = 0; w < words_; ++w) {
    uint64_t v = bits_[w].load(std::memory_order_acquire);
    count += unsigned(std::popcount(v));
    uint8_t b[8];
    base::PutLe64(b, v);
    body.append(reinterpret_cast<const char*>(b), 8);
  }
  out.U64(count);
  out.Bytes(body.data(), body.size());
  out.U32(base::Crc32c(out.data().data(), out.data().size()));
  return out.Take();
}

base::Result<DirtyBitmap> DirtyBitmap::Decode(std::string_view bytes) {
  base::LeReader in(bytes);
  if (bytes.size() < kHeaderBytes + 4) {
    return Corrupt("file is " + std::to_string(bytes.size()) + " bytes, shorter than a header");
  }
  ASSIGN_OR_RETURN(uint32_t magic, in.U32());
  if (magic != kMagic) return Corrupt("bad magic");
  // Every version ends with a CRC32C of the rest, so damage is told apart
  // from a newer version before any field is believed.
  uint32_t stored_crc =
      base::GetLe32(reinterpret_cast<const uint8_t*>(bytes.data()) + bytes.size() - 4);
  if (base::Crc32c(bytes.data(), bytes.size() - 4) != stored_crc) return Corrupt("CRC mismatch");
  ASSIGN_OR_RETURN(uint16_t version, in.U16());
  if (version != kVersion) {
    return base::Error(base::Code::kFailedPrecondition,
                       "dirty bitmap: unsupported version " + std::to_string(version) +
                           " (this build reads version " + std::to_string(kVersion) + ")");
  }
  ASSIGN_OR_RETURN(uint16_t reserved16, in.U16());
  ASSIGN_OR_RETURN(uint64_t disk_size, in.U64());
  ASSIGN_OR_RETURN(uint32_t granularity, in.U32());
  ASSIGN_OR_RETURN(uint32_t reserved32, in.U32());
  ASSIGN_OR_RETURN(uint64_t blocks, in.U64());
  ASSIGN_OR_RETURN(uint64_t count, in.U64());
  if (reserved16 != 0 || reserved32 != 0) return Corrupt("reserved fields are not zero");
  auto created = Create(disk_size, granularity);
  if (!created) return Corrupt("bad geometry: " + created.error().message());
  DirtyBitmap bm = std::move(created).value();
  if (bm.blocks_ != blocks) return Corrupt("block count does not match size and granularity");
  if (bytes.size() != kHeaderBytes + bm.words_ * 8 + 4) {
    return Corrupt("length " + std::to_string(bytes.size()) + " does not match " +
                   std::to_string(blocks) + " blocks");
  }
  uint64_t seen = 0;
  for (uint64_t w = 0; w < bm.words_; ++w) {
    ASSIGN_OR_RETURN(uint64_t v, in.U64());
    if (w == bm.words_ - 1 && bm.blocks_ % 64 != 0 && (v >> (bm.blocks_ % 64)) != 0) {
      return Corrupt("bits set past the last block");
    }
    bm.bits_[w].store(v, std::memory_order_relaxed);
    seen += unsigned(std::popcount(v));
  }
  if (seen != count) return Corrupt("dirty count does not match the bits");
  bm.dirty_ = seen;
  return bm;
}

base::Status DirtyBitmap::Save(const std::string& path) const {
  base::Status st = base::WriteFileAtomically(path, Encode());
  if (!st) return st.error().Wrap("save dirty bitmap");
  return base::Ok();
}

base::Result<DirtyBitmap> DirtyBitmap::Load(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, base::ReadFileToString(path));
  auto bm = Decode(bytes);
  if (!bm) return bm.error().Wrap("load dirty bitmap " + path);
  return bm;
}

}  // namespace storage
