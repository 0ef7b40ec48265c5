#include "transport/compressor.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>

#include "base/clock.h"

namespace transport {
namespace {

// Below this, zstd's frame overhead eats any gain; control frames are small.
constexpr size_t kMinCompressBytes = 256;
constexpr uint32_t kMaxBackoffBatches = 64;
constexpr int kZeroSamples = 64;
// Weight kept by the old measurements when a new one arrives: a few batches
// of history, so one stalled send does not flip the decision.
constexpr double kDecay = 0.75;

uint8_t ByteAt(std::span<const uint8_t> a, std::span<const uint8_t> b, size_t i) {
  return i < a.size() ? a[i] : b[i - a.size()];
}

// Samples kZeroSamples 8-byte words spread over the payload; "mostly zero"
// if at least 7/8 of them are zero. Cheap (512 byte reads at most) and good
// enough: a wrong guess costs one compression of that batch.
bool MostlyZero(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  size_t n = a.size() + b.size();
  size_t words = n / 8;
  if (words == 0) return false;
  size_t samples = std::min<size_t>(words, kZeroSamples);
  size_t step = words / samples;
  size_t zero = 0;
  for (size_t s = 0; s < samples; ++s) {
    size_t off = s * step * 8;
    bool is_zero = true;
    for (size_t k = 0; k < 8 && is_zero; ++k) is_zero = ByteAt(a, b, off + k) == 0;
    zero += is_zero;
  }
  return zero * 8 >= samples * 7;
}

}  // namespace

struct Compressor::Context {
  ZSTD_CCtx* cctx = nullptr;
  ~Context() { ZSTD_freeCCtx(cctx); }
};

Compressor::Compressor(bool enabled, int level)
    : enabled_(enabled), level_(level), ctx_(std::make_unique<Context>()) {
  if (!enabled_) return;
  ctx_->cctx = ZSTD_createCCtx();
  if (ctx_->cctx == nullptr) {
    enabled_ = false;  // out of memory: sending plain is always correct
    return;
  }
  ZSTD_CCtx_setParameter(ctx_->cctx, ZSTD_c_compressionLevel, level_);
  // The receiver insists on a declared size (it bounds the allocation).
  ZSTD_CCtx_setParameter(ctx_->cctx, ZSTD_c_contentSizeFlag, 1);
  // The frame CRC covers the compressed bytes; zstd's checksum over the
  // uncompressed ones makes the check end to end (DESIGN.md's intent).
  ZSTD_CCtx_setParameter(ctx_->cctx, ZSTD_c_checksumFlag, 1);
}

Compressor::~Compressor() = default;

bool Compressor::RunZstd(std::span<const uint8_t> a, std::span<const uint8_t> b,
                         std::vector<uint8_t>& out, uint64_t& ns) {
  uint64_t start = base::MonotonicNanos();
  size_t n = a.size() + b.size();
  ZSTD_CCtx* cctx = ctx_->cctx;
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only);
  out.resize(ZSTD_compressBound(n));
  bool ok = false;
  if (b.empty() || a.empty()) {
    std::span<const uint8_t> in = a.empty() ? b : a;
    size_t r = ZSTD_compress2(cctx, out.data(), out.size(), in.data(), in.size());
    if (!ZSTD_isError(r)) {
      out.resize(r);
      ok = true;
    }
  } else {
    // Two parts: stream them so the caller's header and data need no copy.
    ZSTD_CCtx_setPledgedSrcSize(cctx, n);
    ZSTD_outBuffer ob{out.data(), out.size(), 0};
    ZSTD_inBuffer ia{a.data(), a.size(), 0};
    ZSTD_inBuffer ib{b.data(), b.size(), 0};
    ok = true;
    while (ok && ia.pos < ia.size) {
      size_t r = ZSTD_compressStream2(cctx, &ob, &ia, ZSTD_e_continue);
      ok = !ZSTD_isError(r) && ob.pos < ob.size;
    }
    for (size_t left = 1; ok && left != 0;) {
      left = ZSTD_compressStream2(cctx, &ob, &ib, ZSTD_e_end);
      ok = !ZSTD_isError(left) && (left == 0 || ob.pos < ob.size);
    }
    if (ok) out.resize(ob.pos);
  }
  ns = std::max<uint64_t>(1, base::MonotonicNanos() - start);
  stats_.probed_batches++;
  return ok;
}

bool Compressor::Pays(uint64_t in_bytes, uint64_t out_bytes) const {
  if (out_bytes * 8 >= in_bytes * 7) return false;
  double link = link_rate_;
  if (link_ceiling_ != 0) {
    double ceiling = double(link_ceiling_) / 1e9;
    link = link == 0 ? ceiling : std::min(link, ceiling);
  }
  if (link == 0) return true;  // nothing measured yet: the ratio decides
  // Compressing n bytes costs n / compress_rate and saves
  // (n - out) / link on the wire; worth it only if the saving is larger.
  double saved_fraction = 1.0 - double(out_bytes) / double(in_bytes);
  return compress_rate_ * saved_fraction > link;
}

bool Compressor::Compress(std::span<const uint8_t> a, std::span<const uint8_t> b,
                          std::vector<uint8_t>& out) {
  size_t n = a.size() + b.size();
  stats_.batches++;
  stats_.bytes_in += n;
  auto plain = [&] {
    stats_.bytes_out += n;
    return false;
  };
  if (!enabled_ || n < kMinCompressBytes) return plain();

  uint64_t ns = 0;
  if (MostlyZero(a, b)) {
    // Always worth it; not a measurement of "this kind of data" either, so
    // the rate estimate and back-off are left alone.
    if (!RunZstd(a, b, out, ns) || out.size() * 8 >= n * 7) return plain();
    stats_.compressed_batches++;
    stats_.bytes_out += out.size();
    return true;
  }
  if (skip_left_ > 0) {
    --skip_left_;
    return plain();
  }
  bool ok = RunZstd(a, b, out, ns);
  if (ok) {
    compress_in_ = compress_in_ * kDecay + double(n);
    compress_ns_ = compress_ns_ * kDecay + double(ns);
    compress_rate_ = compress_in_ / compress_ns_;
  }
  if (ok && Pays(n, out.size())) {
    backoff_ = 0;
    stats_.compressed_batches++;
    stats_.bytes_out += out.size();
    return true;
  }
  backoff_ = backoff_ == 0 ? 1 : std::min(backoff_ * 2, kMaxBackoffBatches);
  skip_left_ = backoff_;
  return plain();
}

void Compressor::NoteSent(uint64_t wire_bytes, uint64_t ns) {
  link_bytes_ = link_bytes_ * kDecay + double(wire_bytes);
  link_ns_ = link_ns_ * kDecay + double(std::max<uint64_t>(ns, 1));
  link_rate_ = link_bytes_ / link_ns_;
}

}  // namespace transport
