// Decompress: the receiving side of compressed frames. The input comes off
// the network, so every size is checked before anything is allocated.
#include <zstd.h>

#include <memory>
#include <string>

#include "base/le.h"
#include "transport/compressor.h"

namespace transport {
namespace {

struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

base::Error Bad(const std::string& what) {
  return base::Error(base::Code::kDataLoss, "bad compressed payload: " + what);
}

}  // namespace

base::Status Decompress(std::span<const uint8_t> in, uint32_t max_out, std::vector<uint8_t>& out) {
  // One context per thread, reused: receivers run one per stream.
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  if (dctx == nullptr) return base::Error(base::Code::kResourceExhausted, "ZSTD_createDCtx failed");
  // Only a standard zstd frame: no skippable or legacy-format frames.
  if (in.size() < 4 || base::GetLe32(in.data()) != ZSTD_MAGICNUMBER)
    return Bad("not a zstd frame (bad magic)");
  unsigned long long size = ZSTD_getFrameContentSize(in.data(), in.size());
  if (size == ZSTD_CONTENTSIZE_ERROR) return Bad("not a zstd frame");
  if (size == ZSTD_CONTENTSIZE_UNKNOWN) return Bad("the zstd frame does not declare its size");
  if (size > max_out)
    return Bad("declared size " + std::to_string(size) + " over the maximum " +
               std::to_string(max_out));
  size_t frame_bytes = ZSTD_findFrameCompressedSize(in.data(), in.size());
  if (ZSTD_isError(frame_bytes))
    return Bad(std::string("truncated zstd frame (") + ZSTD_getErrorName(frame_bytes) + ")");
  if (frame_bytes != in.size())
    return Bad(std::to_string(in.size() - frame_bytes) + " bytes after the zstd frame");
  out.resize(size_t(size));
  size_t r = ZSTD_decompressDCtx(dctx.get(), out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(r)) return Bad(std::string("zstd: ") + ZSTD_getErrorName(r));
  if (r != size)
    return Bad("decompressed " + std::to_string(r) + " bytes, frame declared " +
               std::to_string(size));
  return base::Ok();
}

}  // namespace transport
