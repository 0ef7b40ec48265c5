#include "qcow2_format.h"

#include <cstdio>
#include <cstring>

namespace storage::qcow2 {
namespace {

base::Error Bad(std::string_view name, const std::string& what) {
  return base::Error(base::Code::kDataLoss, std::string(name) + ": " + what);
}

uint64_t RoundUp(uint64_t v, uint64_t align) { return (v + align - 1) / align * align; }

// Checks that a table of `bytes` at `offset` is cluster aligned and inside the
// file, without overflow.
base::Status CheckTable(std::string_view name, std::string_view what, uint64_t offset,
                        uint64_t bytes, const Header& h, uint64_t file_size) {
  if (offset == 0 || offset % h.cluster_size() != 0) {
    return Bad(name, std::string(what) + " offset " + Hex(offset) + " is not cluster aligned");
  }
  if (offset > file_size || bytes > file_size - offset) {
    return Bad(name, std::string(what) + " at " + Hex(offset) + " (" + std::to_string(bytes) +
                         " bytes) extends past end of file (" + std::to_string(file_size) +
                         " bytes)");
  }
  return base::Ok();
}

base::Status ParseExtensions(std::span<const uint8_t> bytes, uint64_t start, uint64_t end,
                             std::string_view name, Header& h) {
  uint64_t pos = start;
  bool seen_format = false;
  while (true) {
    if (pos + 8 > end) {
      return Bad(name, "header extensions at " + Hex(start) + " run past " + Hex(end) +
                           " without an end marker");
    }
    uint32_t type = GetBe32(&bytes[pos]);
    uint32_t len = GetBe32(&bytes[pos + 4]);
    pos += 8;
    if (type == kExtEnd) return base::Ok();
    if (len > end - pos || RoundUp(len, 8) > end - pos) {
      return Bad(name, "header extension " + Hex(type) + " at " + Hex(pos - 8) + " (" +
                           std::to_string(len) + " bytes) runs past " + Hex(end));
    }
    const uint8_t* d = &bytes[pos];
    switch (type) {
      case kExtBackingFormat:
        if (seen_format) return Bad(name, "two backing file format extensions");
        seen_format = true;
        if (len == 0 || len > 16) {
          return Bad(name, "backing file format name of " + std::to_string(len) + " bytes");
        }
        h.backing_format.assign(reinterpret_cast<const char*>(d), len);
        break;
      case kExtFeatureTable:
        if (len % 48 != 0) {
          return Bad(name, "feature name table of " + std::to_string(len) +
                               " bytes is not a multiple of 48");
        }
        for (uint32_t i = 0; i < len; i += 48) {
          FeatureName f;
          f.type = d[i];
          f.bit = d[i + 1];
          f.name.assign(reinterpret_cast<const char*>(d + i + 2),
                        strnlen(reinterpret_cast<const char*>(d + i + 2), 46));
          h.feature_names.push_back(std::move(f));
        }
        break;
      default:
        h.other_extensions.push_back(
            RawExtension{type, std::string(reinterpret_cast<const char*>(d), len)});
        break;
    }
    pos += RoundUp(len, 8);
  }
}

}  // namespace

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

uint64_t L1EntriesFor(uint64_t size, uint32_t cluster_bits) {
  uint64_t span_bits = cluster_bits + (cluster_bits - 3);
  return (size + (uint64_t{1} << span_bits) - 1) >> span_bits;
}

base::Result<Header> ParseHeader(std::span<const uint8_t> bytes, uint64_t file_size,
                                 std::string_view name) {
  if (bytes.size() < kV2HeaderLength) {
    return Bad(
        name, "file of " + std::to_string(bytes.size()) + " bytes is too short for a qcow2 header");
  }
  const uint8_t* p = bytes.data();
  Header h;
  if (GetBe32(p) != kMagic) return Bad(name, "not a qcow2 image (bad magic)");
  h.version = GetBe32(p + 4);
  if (h.version != 2 && h.version != 3) {
    return base::Error(base::Code::kUnimplemented, std::string(name) + ": qcow2 version " +
                                                       std::to_string(h.version) +
                                                       " is not supported (2 and 3 are)");
  }
  h.backing_file_offset = GetBe64(p + 8);
  h.backing_file_size = GetBe32(p + 16);
  h.cluster_bits = GetBe32(p + 20);
  h.size = GetBe64(p + 24);
  h.crypt_method = GetBe32(p + 32);
  h.l1_size = GetBe32(p + 36);
  h.l1_table_offset = GetBe64(p + 40);
  h.refcount_table_offset = GetBe64(p + 48);
  h.refcount_table_clusters = GetBe32(p + 56);
  h.nb_snapshots = GetBe32(p + 60);
  h.snapshots_offset = GetBe64(p + 64);
  if (h.version == 2) {
    h.refcount_order = 4;
    h.header_length = kV2HeaderLength;
  } else {
    if (bytes.size() < 104) return Bad(name, "file is too short for a version 3 header");
    h.incompatible_features = GetBe64(p + 72);
    h.compatible_features = GetBe64(p + 80);
    h.autoclear_features = GetBe64(p + 88);
    h.refcount_order = GetBe32(p + 96);
    h.header_length = GetBe32(p + 100);
    if (h.header_length < 104 || h.header_length % 8 != 0) {
      return Bad(name, "header length " + std::to_string(h.header_length) +
                           " is below 104 or not a multiple of 8");
    }
  }
  if (h.cluster_bits < kMinClusterBits || h.cluster_bits > kMaxClusterBits) {
    return Bad(name, "cluster_bits " + std::to_string(h.cluster_bits) + " is outside " +
                         std::to_string(kMinClusterBits) + ".." + std::to_string(kMaxClusterBits));
  }
  const uint64_t cs = h.cluster_size();
  if (h.header_length > cs) {
    return Bad(name,
               "header length " + std::to_string(h.header_length) + " exceeds the cluster size");
  }
  if (bytes.size() < std::min<uint64_t>(cs, file_size) || bytes.size() < h.header_length) {
    return Bad(name, "file is truncated inside its header cluster");
  }
  if (h.header_length > 104) h.compression_type = p[104];
  if (h.refcount_order > 6) {
    return Bad(name, "refcount_order " + std::to_string(h.refcount_order) + " is above 6");
  }
  if (h.crypt_method != 0) {
    return base::Error(base::Code::kUnimplemented,
                       std::string(name) + ": encrypted qcow2 images are not supported");
  }
  if (h.compression_type != kCompressionZlib && h.compression_type != kCompressionZstd) {
    return Bad(name, "unknown compression type " + std::to_string(h.compression_type));
  }
  // qemu's rule (validate_compression_type): the feature bit is set exactly
  // when the type is not zlib. zlib with the bit set is as invalid as zstd
  // without it (also when the header is too short to hold the type byte).
  if (h.compression_type != kCompressionZlib &&
      (h.incompatible_features & kIncompatCompression) == 0) {
    return Bad(name, "compression type " + std::to_string(h.compression_type) +
                         " without the compression-type incompatible feature bit");
  }
  if (h.compression_type == kCompressionZlib &&
      (h.incompatible_features & kIncompatCompression) != 0) {
    return Bad(name,
               std::string("the compression-type incompatible feature bit is set, but the "
                           "compression type is 0 (zlib") +
                   (h.header_length > 104 ? ")" : ", the header has no compression type byte)") +
                   "; the bit must be set only for another type (zstd)");
  }
  // Size: L1 must map the whole disk and stay within the allocation cap.
  uint64_t l1_needed = L1EntriesFor(h.size, h.cluster_bits);
  if (h.size > (uint64_t{1} << 62) || l1_needed > kMaxL1Bytes / 8) {
    return Bad(name, "virtual size " + std::to_string(h.size) +
                         " bytes needs an L1 table larger than " + std::to_string(kMaxL1Bytes) +
                         " bytes");
  }
  if (h.l1_size > kMaxL1Bytes / 8) {
    return Bad(name, "L1 table of " + std::to_string(h.l1_size) + " entries exceeds the limit");
  }
  if (h.l1_size < l1_needed) {
    return Bad(name, "L1 table of " + std::to_string(h.l1_size) + " entries is too small for " +
                         std::to_string(h.size) + " bytes (needs " + std::to_string(l1_needed) +
                         ")");
  }
  if (h.l1_size > 0) {
    RETURN_IF_ERROR(
        CheckTable(name, "L1 table", h.l1_table_offset, uint64_t{h.l1_size} * 8, h, file_size));
  }
  if (h.refcount_table_clusters == 0 ||
      uint64_t{h.refcount_table_clusters} * cs > kMaxRefcountTableBytes) {
    return Bad(name, "refcount table of " + std::to_string(h.refcount_table_clusters) +
                         " clusters is empty or exceeds " + std::to_string(kMaxRefcountTableBytes) +
                         " bytes");
  }
  RETURN_IF_ERROR(CheckTable(name, "refcount table", h.refcount_table_offset,
                             uint64_t{h.refcount_table_clusters} * cs, h, file_size));
  if (h.nb_snapshots > kMaxSnapshots) {
    return Bad(name, std::to_string(h.nb_snapshots) + " snapshots exceed the limit");
  }
  if (h.nb_snapshots > 0 && (h.snapshots_offset == 0 || h.snapshots_offset % cs != 0 ||
                             h.snapshots_offset >= file_size)) {
    return Bad(name, "snapshot table offset " + Hex(h.snapshots_offset) +
                         " is unaligned or past end of file");
  }
  // Backing file name: inside the header cluster.
  uint64_t ext_end = std::min<uint64_t>(cs, bytes.size());
  if (h.backing_file_offset != 0) {
    if (h.backing_file_size == 0 || h.backing_file_size > kMaxBackingFileSize) {
      return Bad(name, "backing file name of " + std::to_string(h.backing_file_size) +
                           " bytes (limit " + std::to_string(kMaxBackingFileSize) + ")");
    }
    if (h.backing_file_offset < h.header_length || h.backing_file_size > ext_end ||
        h.backing_file_offset > ext_end - h.backing_file_size) {
      return Bad(name, "backing file name at " + Hex(h.backing_file_offset) +
                           " lies outside the header cluster");
    }
    h.backing_file.assign(reinterpret_cast<const char*>(p + h.backing_file_offset),
                          h.backing_file_size);
    if (h.backing_file.find('\0') != std::string::npos) {
      return Bad(name, "backing file name contains a NUL byte");
    }
    ext_end = h.backing_file_offset;
  }
  if (h.version == 3) {
    RETURN_IF_ERROR(ParseExtensions(bytes, h.header_length, ext_end, name, h));
  }
  if (!h.backing_format.empty() && h.backing_file.empty()) {
    return Bad(name, "backing file format without a backing file");
  }
  return h;
}

std::string IncompatibleFeatureName(const Header& h, unsigned bit) {
  for (const auto& f : h.feature_names) {
    if (f.type == 0 && f.bit == bit && !f.name.empty()) return f.name;
  }
  switch (bit) {
    case 0: return "dirty bit";
    case 1: return "corrupt bit";
    case 2: return "external data file";
    case 3: return "compression type";
    case 4: return "extended L2 entries";
    default: return "unknown feature bit " + std::to_string(bit);
  }
}

base::Result<std::vector<uint8_t>> EncodeHeader(const Header& h) {
  const uint64_t cs = h.cluster_size();
  std::vector<uint8_t> out(cs, 0);
  uint8_t* p = out.data();
  PutBe32(p, kMagic);
  PutBe32(p + 4, 3);
  PutBe32(p + 20, h.cluster_bits);
  PutBe64(p + 24, h.size);
  PutBe32(p + 32, 0);
  PutBe32(p + 36, h.l1_size);
  PutBe64(p + 40, h.l1_table_offset);
  PutBe64(p + 48, h.refcount_table_offset);
  PutBe32(p + 56, h.refcount_table_clusters);
  PutBe32(p + 60, h.nb_snapshots);
  PutBe64(p + 64, h.snapshots_offset);
  PutBe64(p + 72, h.incompatible_features);
  PutBe64(p + 80, h.compatible_features);
  PutBe64(p + 88, h.autoclear_features);
  PutBe32(p + 96, h.refcount_order);
  PutBe32(p + 100, kV3HeaderLength);
  p[104] = h.compression_type;
  uint64_t pos = kV3HeaderLength;
  auto ext = [&](uint32_t type, const void* data, uint32_t len) -> bool {
    if (pos + 8 + RoundUp(len, 8) + 8 > cs) return false;
    PutBe32(p + pos, type);
    PutBe32(p + pos + 4, len);
    if (len > 0) std::memcpy(p + pos + 8, data, len);
    pos += 8 + RoundUp(len, 8);
    return true;
  };
  bool fits = true;
  if (!h.backing_file.empty() && !h.backing_format.empty()) {
    fits &= ext(kExtBackingFormat, h.backing_format.data(), uint32_t(h.backing_format.size()));
  }
  for (const auto& e : h.other_extensions)
    fits &= ext(e.type, e.data.data(), uint32_t(e.data.size()));
  if (!h.feature_names.empty()) {
    std::vector<uint8_t> table(h.feature_names.size() * 48, 0);
    for (size_t i = 0; i < h.feature_names.size(); ++i) {
      table[i * 48] = h.feature_names[i].type;
      table[i * 48 + 1] = h.feature_names[i].bit;
      std::memcpy(&table[i * 48 + 2], h.feature_names[i].name.data(),
                  std::min<size_t>(46, h.feature_names[i].name.size()));
    }
    fits &= ext(kExtFeatureTable, table.data(), uint32_t(table.size()));
  }
  fits &= ext(kExtEnd, nullptr, 0);
  if (!h.backing_file.empty()) {
    if (h.backing_file.size() > kMaxBackingFileSize || pos + h.backing_file.size() > cs) {
      fits = false;
    } else {
      PutBe64(p + 8, pos);
      PutBe32(p + 16, uint32_t(h.backing_file.size()));
      std::memcpy(p + pos, h.backing_file.data(), h.backing_file.size());
    }
  }
  if (!fits) {
    return base::Error(base::Code::kInvalidArgument,
                       "qcow2 header with its extensions and backing file name does not fit in "
                       "one " +
                           std::to_string(cs) + "-byte cluster");
  }
  return out;
}

}  // namespace storage::qcow2
