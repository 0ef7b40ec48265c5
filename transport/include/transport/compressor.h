// Adaptive zstd compression, decided per frame (per batch of pages or disk
// extents). Compression must never make a move slower than sending plain: on
// these machines zstd -1 compresses mixed binary data at 0.3-0.5 GB/s while
// loopback TCP moves 5 GB/s (../shared/PLATFORM.md).
//
// The rules, in order, for each batch:
//  1. Disabled (performance option "tcp"), or under 256 bytes (zstd's frame
//     overhead eats the gain): never compress.
//  2. Mostly-zero data (>= 7/8 of 64 sampled 8-byte words are zero) is always
//     compressed: zstd runs at ~2 GB/s there with a x20 ratio.
//  3. While backing off after a batch that did not pay, send plain without
//     trying. Back-off doubles per failed probe (1, 2, 4 ... 64 batches) and
//     resets to 0 when a probe pays, so incompressible data costs ~1/64 of a
//     compression attempt per batch.
//  4. Otherwise compress (a probe) and measure. It pays, and goes compressed,
//     if the output is < 7/8 of the input and the time to compress is less
//     than the wire time it saves: compress_rate * (1 - ratio) > link_rate,
//     where compress_rate is zstd's measured throughput on recent probes and
//     link_rate the measured (NoteSent) send throughput, capped by
//     SetLinkCeiling. Before any link measurement exists only the ratio
//     counts. Else the batch is sent plain and back-off grows.
//
// Threads: not thread-safe; one Compressor per stream, used by the thread that
// sends on it. It owns one ZSTD_CCtx, reused for every batch.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "base/result.h"

namespace transport {

class Compressor {
 public:
  // enabled = false: never compress. level: the zstd level (1 is the only
  // level fast enough to pay on a LAN; others are for tests and experiments).
  explicit Compressor(bool enabled, int level = 1);
  ~Compressor();
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  // Decides for the payload a followed by b. Returns true and fills out with
  // exactly one zstd frame (content size declared, content checksum on) when
  // the payload should go compressed; false means send plain (out is then
  // unspecified).
  bool Compress(std::span<const uint8_t> a, std::span<const uint8_t> b, std::vector<uint8_t>& out);

  // Link speed observation: wire_bytes went out in ns (FrameStream calls it
  // after each Send that used this compressor).
  void NoteSent(uint64_t wire_bytes, uint64_t ns);
  // Upper bound for the link estimate, e.g. a bandwidth limit the caller
  // enforces outside the stream (0 = none). Rate-limiter waits happen outside
  // Send, so NoteSent alone would not see them.
  void SetLinkCeiling(uint64_t bytes_per_second) { link_ceiling_ = bytes_per_second; }

  struct Stats {
    uint64_t batches = 0;             // Compress calls
    uint64_t compressed_batches = 0;  // ... that returned true
    uint64_t probed_batches = 0;      // ... where zstd actually ran
    uint64_t bytes_in = 0;            // payload bytes of all batches
    uint64_t bytes_out = 0;           // bytes sent: compressed or plain size
  };
  Stats stats() const { return stats_; }

 private:
  struct Context;
  bool RunZstd(std::span<const uint8_t> a, std::span<const uint8_t> b, std::vector<uint8_t>& out,
               uint64_t& ns);
  bool Pays(uint64_t in_bytes, uint64_t out_bytes) const;

  bool enabled_;
  int level_;
  std::unique_ptr<Context> ctx_;  // the ZSTD_CCtx
  // Byte-weighted, exponentially decayed sums and the rates they give, in
  // bytes per ns (0 = no measurement yet).
  double compress_in_ = 0, compress_ns_ = 0, compress_rate_ = 0;
  double link_bytes_ = 0, link_ns_ = 0, link_rate_ = 0;
  uint64_t link_ceiling_ = 0;
  uint32_t backoff_ = 0;    // current back-off length in batches
  uint32_t skip_left_ = 0;  // batches still to send plain without probing
  Stats stats_;
};

// Decompresses exactly one zstd frame that declares its content size, which
// must be <= max_out, into out (resized). kDataLoss for anything else:
// garbage, trailing bytes, an undeclared or oversized size, a checksum
// mismatch, or output that differs from the declared size.
base::Status Decompress(std::span<const uint8_t> in, uint32_t max_out, std::vector<uint8_t>& out);

}  // namespace transport
