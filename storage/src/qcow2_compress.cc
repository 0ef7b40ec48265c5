#include "qcow2_compress.h"

#include <zlib.h>
#include <zstd.h>

#include <memory>
#include <string>

#include "qcow2_format.h"

namespace storage::qcow2 {
namespace {

base::Error Bad(std::string_view what, const std::string& why) {
  return base::Error(base::Code::kDataLoss, std::string(what) + ": " + why);
}

base::Status InflateRaw(std::span<const uint8_t> in, std::span<uint8_t> out,
                        std::string_view what) {
  z_stream z{};
  // Negative window bits: raw deflate. 15 accepts any window size qemu uses.
  if (inflateInit2(&z, -15) != Z_OK) {
    return base::Error(base::Code::kResourceExhausted, std::string(what) + ": inflateInit2 failed");
  }
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  int ret = inflate(&z, Z_FINISH);
  size_t produced = out.size() - z.avail_out;
  inflateEnd(&z);
  // Z_BUF_ERROR: output full before the stream ended, or input ran out. Only a
  // full cluster counts.
  if (ret != Z_STREAM_END && ret != Z_BUF_ERROR && ret != Z_OK) {
    return Bad(what, "corrupt deflate data (zlib error " + std::to_string(ret) + ")");
  }
  if (produced != out.size()) {
    return Bad(what, "compressed data yields " + std::to_string(produced) + " of " +
                         std::to_string(out.size()) + " bytes");
  }
  return base::Ok();
}

struct DctxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

base::Status InflateZstd(std::span<const uint8_t> in, std::span<uint8_t> out,
                         std::string_view what) {
  std::unique_ptr<ZSTD_DCtx, DctxFree> ctx(ZSTD_createDCtx());
  if (!ctx)
    return base::Error(base::Code::kResourceExhausted,
                       std::string(what) + ": ZSTD_createDCtx failed");
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  ZSTD_outBuffer ob{out.data(), out.size(), 0};
  while (ob.pos < ob.size) {
    if (ib.pos == ib.size) break;
    size_t before_in = ib.pos, before_out = ob.pos;
    size_t ret = ZSTD_decompressStream(ctx.get(), &ob, &ib);
    if (ZSTD_isError(ret))
      return Bad(what, std::string("corrupt zstd data: ") + ZSTD_getErrorName(ret));
    if (ib.pos == before_in && ob.pos == before_out) break;  // no progress
  }
  if (ob.pos != ob.size) {
    return Bad(what, "compressed data yields " + std::to_string(ob.pos) + " of " +
                         std::to_string(out.size()) + " bytes");
  }
  return base::Ok();
}

}  // namespace

base::Status DecompressCluster(uint8_t compression_type, std::span<const uint8_t> in,
                               std::span<uint8_t> out, std::string_view what) {
  switch (compression_type) {
    case kCompressionZlib: return InflateRaw(in, out, what);
    case kCompressionZstd: return InflateZstd(in, out, what);
    default: return Bad(what, "unknown compression type " + std::to_string(compression_type));
  }
}

base::Result<std::vector<uint8_t>> CompressCluster(uint8_t compression_type,
                                                   std::span<const uint8_t> in) {
  std::vector<uint8_t> out(in.size());
  if (compression_type == kCompressionZstd) {
    size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3);
    if (ZSTD_isError(n)) return std::vector<uint8_t>{};
    out.resize(n);
    return out;
  }
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK) {
    return base::Error(base::Code::kResourceExhausted, "deflateInit2 failed");
  }
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  int ret = deflate(&z, Z_FINISH);
  size_t n = out.size() - z.avail_out;
  deflateEnd(&z);
  if (ret != Z_STREAM_END) return std::vector<uint8_t>{};
  out.resize(n);
  return out;
}

}  // namespace storage::qcow2
