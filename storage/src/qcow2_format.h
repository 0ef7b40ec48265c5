// The qcow2 on-disk format (qemu's docs/interop/qcow2.txt is the contract):
// field offsets, flag bits, the big-endian codec, and the header codec with
// its validation. Everything read from a file goes through ParseQcow2Header
// or the entry helpers here before it is trusted; every failure is kDataLoss
// (or kUnimplemented for valid features ferry does not support) and names
// the file and what is wrong.
//
// qcow2 is big-endian throughout, unlike our wire formats (base/le.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace storage::qcow2 {

inline constexpr uint32_t kMagic = 0x514649fb;   // "QFI\xfb"
inline constexpr uint32_t kMinClusterBits = 12;  // 4 KiB
inline constexpr uint32_t kMaxClusterBits = 21;  // 2 MiB
inline constexpr uint32_t kDefaultClusterSize = 64 * 1024;
inline constexpr uint32_t kV2HeaderLength = 72;
inline constexpr uint32_t kV3HeaderLength = 112;       // with compression_type + padding
inline constexpr uint32_t kMaxBackingFileSize = 1023;  // qemu's limit
// Caps that bound allocations made from header fields (qemu uses the same).
inline constexpr uint64_t kMaxL1Bytes = 32ull << 20;
inline constexpr uint64_t kMaxRefcountTableBytes = 8ull << 20;
inline constexpr uint32_t kMaxSnapshots = 65536;

// Incompatible feature bits.
inline constexpr uint64_t kIncompatDirty = 1ull << 0;
inline constexpr uint64_t kIncompatCorrupt = 1ull << 1;
inline constexpr uint64_t kIncompatDataFile = 1ull << 2;
inline constexpr uint64_t kIncompatCompression = 1ull << 3;
inline constexpr uint64_t kIncompatExtendedL2 = 1ull << 4;
inline constexpr uint64_t kIncompatKnown = (1ull << 5) - 1;

inline constexpr uint8_t kCompressionZlib = 0;
inline constexpr uint8_t kCompressionZstd = 1;

// Header extension types.
inline constexpr uint32_t kExtEnd = 0;
inline constexpr uint32_t kExtBackingFormat = 0xe2792aca;
inline constexpr uint32_t kExtFeatureTable = 0x6803f857;
inline constexpr uint32_t kExtDataFile = 0x44415441;

// Header field offsets that are rewritten in place.
inline constexpr uint64_t kOffIncompatible = 72;
inline constexpr uint64_t kOffAutoclear = 88;
inline constexpr uint64_t kOffRefcountTable = 48;  // u64 offset, then u32 clusters

// L1, L2 and refcount table entries.
inline constexpr uint64_t kOflagCopied = 1ull << 63;
inline constexpr uint64_t kOflagCompressed = 1ull << 62;
inline constexpr uint64_t kOflagZero = 1ull << 0;
inline constexpr uint64_t kOffsetMask = 0x00fffffffffffe00ull;  // bits 9..55
inline constexpr uint64_t kL1Reserved = 0x7f000000000001ffull;  // bits 0..8, 56..62
inline constexpr uint64_t kL2Reserved = 0x3f000000000001feull;  // bits 1..8, 56..61
inline constexpr uint64_t kRefTableReserved = 0x1ffull;

inline uint16_t GetBe16(const uint8_t* p) { return uint16_t((p[0] << 8) | p[1]); }
inline uint32_t GetBe32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}
inline uint64_t GetBe64(const uint8_t* p) { return (uint64_t(GetBe32(p)) << 32) | GetBe32(p + 4); }
inline void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
inline void PutBe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (24 - 8 * i));
}
inline void PutBe64(uint8_t* p, uint64_t v) {
  PutBe32(p, uint32_t(v >> 32));
  PutBe32(p + 4, uint32_t(v));
}

// "0x30000" for error messages.
std::string Hex(uint64_t v);

struct FeatureName {
  uint8_t type = 0;  // 0 incompatible, 1 compatible, 2 autoclear
  uint8_t bit = 0;
  std::string name;
};

// An extension ferry keeps but does not interpret (copied when the header is
// rewritten, e.g. by ChangeBackingFile).
struct RawExtension {
  uint32_t type = 0;
  std::string data;
};

struct Header {
  uint32_t version = 3;
  uint64_t backing_file_offset = 0;
  uint32_t backing_file_size = 0;
  uint32_t cluster_bits = 16;
  uint64_t size = 0;  // virtual disk size in bytes
  uint32_t crypt_method = 0;
  uint32_t l1_size = 0;  // entries
  uint64_t l1_table_offset = 0;
  uint64_t refcount_table_offset = 0;
  uint32_t refcount_table_clusters = 0;
  uint32_t nb_snapshots = 0;
  uint64_t snapshots_offset = 0;
  uint64_t incompatible_features = 0;
  uint64_t compatible_features = 0;
  uint64_t autoclear_features = 0;
  uint32_t refcount_order = 4;
  uint32_t header_length = kV3HeaderLength;
  uint8_t compression_type = kCompressionZlib;

  // From the extensions and the name area.
  std::string backing_file;    // as stored: relative to the image's directory or absolute
  std::string backing_format;  // "" when the image does not say
  std::vector<FeatureName> feature_names;
  std::vector<RawExtension> other_extensions;

  uint64_t cluster_size() const { return uint64_t{1} << cluster_bits; }
  uint64_t l2_entries() const { return cluster_size() / 8; }
  // Bytes of guest data one L2 table maps.
  uint64_t l2_span() const { return cluster_size() * l2_entries(); }
};

// L1 entries needed to map `size` bytes.
uint64_t L1EntriesFor(uint64_t size, uint32_t cluster_bits);

// Parses and validates the header in `bytes` (the start of the file: at least
// the first cluster, or the whole file if it is shorter). file_size bounds the
// table offsets. `name` prefixes every error. Feature bits are decoded but not
// judged (OpenQcow2Disk decides by read-only/read-write).
base::Result<Header> ParseHeader(std::span<const uint8_t> bytes, uint64_t file_size,
                                 std::string_view name);

// The name of an incompatible feature bit for error messages: from the
// image's feature table when it has one, else ferry's own list.
std::string IncompatibleFeatureName(const Header& h, unsigned bit);

// Encodes header, extensions and the backing file name into one cluster-sized
// buffer (backing_file_offset, backing_file_size and header_length are
// computed). kInvalidArgument if it does not fit.
base::Result<std::vector<uint8_t>> EncodeHeader(const Header& h);

}  // namespace storage::qcow2
