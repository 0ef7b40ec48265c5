#include "memory_precopy.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace appliance {
namespace {

// Samples smaller than this (or shorter) do not move the bandwidth estimate.
constexpr uint64_t kMinSampleBytes = 1 << 20;
constexpr double kMinSampleSeconds = 0.005;
constexpr double kAssumedBandwidth = 16.0 * 1024 * 1024;

bool AllZero(const uint8_t* page) {
  const auto* w = reinterpret_cast<const uint64_t*>(page);
  uint64_t acc = 0;
  for (size_t i = 0; i < kPageBytes / 8; ++i) acc |= w[i];
  return acc == 0;
}

// Queues one batch of `entries` (indices in one group) whose non-zero pages
// are copied from guest memory now.
base::Status QueueBatch(const uint8_t* memory, std::vector<PageEntry>& entries, uint64_t group,
                        StreamPool& pool, int cancel_fd, PageSendStats& stats) {
  if (entries.empty()) return base::Ok();
  OutFrame f;
  f.type = MoveFrame::kPageBatch;
  f.head = EncodePageBatchHeader(entries);
  size_t data_pages = 0;
  for (const PageEntry& e : entries) data_pages += e.zero ? 0 : 1;
  f.data.resize(data_pages * kPageBytes);
  uint8_t* out = f.data.data();
  for (const PageEntry& e : entries) {
    if (e.zero) {
      ++stats.zero_pages;
      continue;
    }
    std::memcpy(out, memory + e.index * kPageBytes, kPageBytes);
    out += kPageBytes;
    ++stats.pages;
    stats.bytes += kPageBytes;
  }
  entries.clear();
  return pool.Enqueue(size_t(group % pool.size()), Lane::kMemory, std::move(f), cancel_fd);
}

}  // namespace

base::Result<PageSendStats> SendAllPages(const uint8_t* memory, uint64_t memory_bytes,
                                         std::span<const vm::Machine::MemoryRange> populated,
                                         StreamPool& pool, int cancel_fd) {
  PageSendStats stats;
  std::vector<PageEntry> entries;
  const uint64_t pages = memory_bytes / kPageBytes;
  uint64_t scanned = 0;  // pages looked at; the rest were never written
  uint64_t group = UINT64_MAX;
  for (const vm::Machine::MemoryRange& range : populated) {
    const uint64_t end = std::min(pages, (range.offset + range.length) / kPageBytes);
    for (uint64_t p = range.offset / kPageBytes; p < end; ++p) {
      if (p / kMaxPagesPerBatch != group) {
        RETURN_IF_ERROR(QueueBatch(memory, entries, group, pool, cancel_fd, stats));
        group = p / kMaxPagesPerBatch;
      }
      ++scanned;
      if (AllZero(memory + p * kPageBytes))
        ++stats.zero_pages;
      else
        entries.push_back({p, false});
    }
  }
  RETURN_IF_ERROR(QueueBatch(memory, entries, group, pool, cancel_fd, stats));
  stats.zero_pages += pages - std::min(pages, scanned);
  return stats;
}

base::Result<PageSendStats> SendDirtyPages(const uint8_t* memory, uint64_t memory_bytes,
                                           std::span<const uint64_t> dirty, StreamPool& pool,
                                           int cancel_fd) {
  PageSendStats stats;
  std::vector<PageEntry> entries;
  const uint64_t pages = memory_bytes / kPageBytes;
  uint64_t group = UINT64_MAX;
  for (size_t w = 0; w < dirty.size(); ++w) {
    uint64_t bits = dirty[w];
    while (bits != 0) {
      const uint64_t p = w * 64 + uint64_t(std::countr_zero(bits));
      bits &= bits - 1;
      if (p >= pages) break;
      if (p / kMaxPagesPerBatch != group) {
        RETURN_IF_ERROR(QueueBatch(memory, entries, group, pool, cancel_fd, stats));
        group = p / kMaxPagesPerBatch;
      }
      entries.push_back({p, AllZero(memory + p * kPageBytes)});
    }
  }
  RETURN_IF_ERROR(QueueBatch(memory, entries, group, pool, cancel_fd, stats));
  return stats;
}

uint64_t CountPages(std::span<const uint64_t> bitmap) {
  uint64_t n = 0;
  for (uint64_t w : bitmap) n += uint64_t(std::popcount(w));
  return n;
}

void MergePages(std::vector<uint64_t>& into, std::span<const uint64_t> from) {
  if (into.size() < from.size()) into.resize(from.size(), 0);
  for (size_t i = 0; i < from.size(); ++i) into[i] |= from[i];
}

void ConvergenceModel::NoteSend(uint64_t wire_bytes, double seconds) {
  // Small rounds are pooled until they make a sample worth trusting.
  sample_bytes_ += wire_bytes;
  sample_seconds_ += seconds;
  if (sample_bytes_ < kMinSampleBytes || sample_seconds_ < kMinSampleSeconds) return;
  const double sample = double(sample_bytes_) / sample_seconds_;
  sample_bytes_ = 0;
  sample_seconds_ = 0;
  // Smoothed, but a new sample counts for half: the link's speed changes
  // when the mirrors finish or the limit applies, and the next decision
  // should see that quickly.
  bandwidth_ = bandwidth_ == 0 ? sample : 0.5 * bandwidth_ + 0.5 * sample;
}

void ConvergenceModel::NoteHarvest(uint64_t dirty_pages, double interval_seconds) {
  if (interval_seconds <= 0) return;
  dirty_rate_ = double(dirty_pages * kPageBytes) / interval_seconds;
}

double ConvergenceModel::bandwidth() const {
  // Until a sample exists (a guest with almost no memory in use), assume a
  // modest link rather than none: the amounts are then small anyway.
  const double measured = bandwidth_ > 0 ? bandwidth_ : kAssumedBandwidth;
  if (limit_ > 0 && measured > double(limit_)) return double(limit_);
  return measured;
}

double ConvergenceModel::PredictMs(uint64_t bytes_left) const {
  const double bw = bandwidth();
  if (bw <= 0) return -1;
  return double(bytes_left) / bw * 1000.0 + overhead_ms_;
}

int ConvergenceModel::NextThrottle(uint32_t round, uint64_t previous_dirty, uint64_t dirty,
                                   int current) {
  if (round < 3) return current;
  // Shrunk by at least a quarter: the rounds converge on their own.
  if (dirty * 4 <= previous_dirty * 3) return current;
  if (current == 0) return 20;
  return std::min(90, current + 10);
}

}  // namespace appliance
