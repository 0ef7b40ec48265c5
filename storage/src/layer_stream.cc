#include "storage/layer_stream.h"

#include <algorithm>
#include <vector>

namespace storage {

namespace {

// Copies [offset, offset + len) of `layer` (known to be allocated there, as
// data or as zeros) into `into` where `into` stores nothing.
base::Result<uint64_t> CopyWhereUnallocated(Disk& layer, Disk& into, uint64_t offset, uint64_t len,
                                            bool zeros, std::vector<uint8_t>& buf) {
  uint64_t written = 0;
  const uint64_t end = offset + len;
  for (uint64_t pos = offset; pos < end;) {
    ASSIGN_OR_RETURN(Extent e, into.MapExtent(pos, end - pos));
    if (e.length == 0) break;
    if (e.kind == ExtentKind::kUnallocated) {
      for (uint64_t p = e.offset; p < e.offset + e.length;) {
        const uint64_t n = std::min<uint64_t>(buf.size(), e.offset + e.length - p);
        if (zeros) {
          RETURN_IF_ERROR(into.WriteZeroes(p, n));
        } else {
          RETURN_IF_ERROR(layer.Read(buf.data(), n, p));
          RETURN_IF_ERROR(into.Write(buf.data(), n, p));
        }
        written += n;
        p += n;
      }
    }
    pos = e.offset + e.length;
  }
  return written;
}

}  // namespace

base::Result<uint64_t> StreamLayerRange(Disk& layer, Disk& into, uint64_t offset, uint64_t len,
                                        bool copy_zeros) {
  if (into.read_only())
    return base::Error(base::Code::kPermissionDenied, "stream layer: the destination is read-only");
  const uint64_t end = std::min(offset + len, layer.size());
  if (end > into.size())
    return base::Error(base::Code::kFailedPrecondition,
                       "stream layer: the destination (" + std::to_string(into.size()) +
                           " bytes) is smaller than the layer (" + std::to_string(layer.size()) +
                           " bytes)");
  std::vector<uint8_t> buf(
      std::min<uint64_t>(kStreamChunkBytes, std::max<uint64_t>(len, kSectorSize)));
  uint64_t written = 0;
  for (uint64_t pos = offset; pos < end;) {
    ASSIGN_OR_RETURN(Extent e, layer.MapExtent(pos, end - pos));
    if (e.length == 0) break;
    const bool zeros = e.kind == ExtentKind::kZero;
    if (e.kind == ExtentKind::kData || (zeros && copy_zeros)) {
      ASSIGN_OR_RETURN(uint64_t n,
                       CopyWhereUnallocated(layer, into, e.offset, e.length, zeros, buf));
      written += n;
    }
    pos = e.offset + e.length;
  }
  return written;
}

}  // namespace storage
