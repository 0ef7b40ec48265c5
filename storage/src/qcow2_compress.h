// Decompression of qcow2 compressed clusters: compression type 0 is raw
// deflate (zlib without header), type 1 is zstd. The stored data may carry
// trailing bytes of the next compressed cluster (they share sectors), so
// decompression stops once a whole cluster has been produced.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace storage::qcow2 {

// Fills `out` (one cluster) from `in`. kDataLoss, naming `what`, if the data
// is malformed or yields fewer bytes than a cluster.
base::Status DecompressCluster(uint8_t compression_type, std::span<const uint8_t> in,
                               std::span<uint8_t> out, std::string_view what);

// Compresses one cluster the way qemu does (for tests and seed corpora).
// Returns the compressed bytes, or an empty vector if they would not be
// smaller than the input.
base::Result<std::vector<uint8_t>> CompressCluster(uint8_t compression_type,
                                                   std::span<const uint8_t> in);

}  // namespace storage::qcow2
