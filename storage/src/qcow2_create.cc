// Whole-image operations: create, header info, commit into the backing file,
// and changing the backing file.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/fd.h"
#include "qcow2_disk.h"

namespace storage {

using qcow2::Header;

namespace {

// The feature name table qemu writes, so `qemu-img info` and error messages
// can name our bits.
std::vector<qcow2::FeatureName> StandardFeatureNames() {
  return {
      {0, 0, "dirty bit"},        {0, 1, "corrupt bit"},         {0, 2, "external data file"},
      {0, 3, "compression type"}, {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"},
      {2, 0, "bitmaps"},          {2, 1, "raw external data"},
  };
}

base::Error Invalid(const std::string& path, const std::string& why) {
  return base::Error(base::Code::kInvalidArgument, "create " + path + ": " + why);
}

uint64_t DivUp(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

}  // namespace

base::Status CreateQcow2(const std::string& path, const Qcow2CreateOptions& options) {
  const uint64_t cs = options.cluster_size;
  if (cs < (1u << qcow2::kMinClusterBits) || cs > (1u << qcow2::kMaxClusterBits) ||
      (cs & (cs - 1)) != 0) {
    return Invalid(
        path, "cluster size " + std::to_string(cs) + " is not a power of two from 4 KiB to 2 MiB");
  }
  uint64_t size = options.size;
  if (size % kSectorSize != 0) {
    return Invalid(path, "size " + std::to_string(size) + " is not a multiple of 512");
  }
  if (!options.backing_file.empty() && size == 0) {
    std::string backing = qcow2::ResolveBackingPath(path, options.backing_file);
    ASSIGN_OR_RETURN(auto disk, OpenDisk(backing, options.backing_format, true));
    size = disk->size();
  }
  Header h;
  h.cluster_bits = uint32_t(__builtin_ctzll(cs));
  h.size = size;
  uint64_t l1_entries = std::max<uint64_t>(1, qcow2::L1EntriesFor(size, h.cluster_bits));
  if (l1_entries * 8 > qcow2::kMaxL1Bytes) {
    return Invalid(path, "size " + std::to_string(size) + " is too large for cluster size " +
                             std::to_string(cs));
  }
  h.l1_size = uint32_t(l1_entries);
  h.refcount_order = 4;
  h.backing_file = options.backing_file;
  if (!h.backing_file.empty())
    h.backing_format = std::string(config::ToString(options.backing_format));
  h.feature_names = StandardFeatureNames();

  // Layout: header | refcount table | refcount blocks | L1 table. Solve for a
  // block count that covers every metadata cluster, table included.
  const uint64_t per_block = cs * 8 / 16;
  const uint64_t l1_clusters = DivUp(l1_entries * 8, cs);
  uint64_t table_clusters = 1, blocks = 1;
  for (;;) {
    uint64_t total = 1 + table_clusters + blocks + l1_clusters;
    uint64_t need_blocks = DivUp(total, per_block);
    uint64_t need_table = DivUp(need_blocks * 8, cs);
    if (need_blocks <= blocks && need_table <= table_clusters) break;
    blocks = std::max(blocks, need_blocks);
    table_clusters = std::max(table_clusters, need_table);
  }
  const uint64_t total = 1 + table_clusters + blocks + l1_clusters;
  h.refcount_table_offset = cs;
  h.refcount_table_clusters = uint32_t(table_clusters);
  const uint64_t blocks_offset = cs * (1 + table_clusters);
  h.l1_table_offset = blocks_offset + blocks * cs;
  ASSIGN_OR_RETURN(std::vector<uint8_t> head, qcow2::EncodeHeader(h));

  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    return base::Error(base::Code::kAlreadyExists, "create " + path + ": file exists");
  }
  OpenOptions o;
  o.create = true;
  o.engine = IoEngine::kSync;
  ASSIGN_OR_RETURN(auto file, OpenBlockFile(path, o));
  auto write_all = [&]() -> base::Status {
    RETURN_IF_ERROR(file->Truncate(total * cs));
    std::vector<uint8_t> table(table_clusters * cs, 0);
    for (uint64_t b = 0; b < blocks; ++b) qcow2::PutBe64(&table[b * 8], blocks_offset + b * cs);
    std::vector<uint8_t> refs(blocks * cs, 0);
    for (uint64_t c = 0; c < total; ++c) qcow2::PutBe16(&refs[c * 2], 1);
    RETURN_IF_ERROR(file->WriteAt(refs.data(), refs.size(), blocks_offset));
    RETURN_IF_ERROR(file->WriteAt(table.data(), table.size(), cs));
    RETURN_IF_ERROR(file->WriteAt(head.data(), head.size(), 0));
    RETURN_IF_ERROR(file->Flush());
    return base::SyncParentDirectory(path);
  };
  auto s = write_all();
  if (!s) {
    unlink(path.c_str());
    return s.error();
  }
  return base::Ok();
}

base::Result<Qcow2Info> ReadQcow2Info(const std::string& path) {
  OpenOptions o;
  o.writable = false;
  o.engine = IoEngine::kSync;
  ASSIGN_OR_RETURN(auto file, OpenBlockFile(path, o));
  ASSIGN_OR_RETURN(uint64_t file_size, file->Size());
  ASSIGN_OR_RETURN(Header h, qcow2::ReadHeader(*file, file_size));
  Qcow2Info info;
  info.size = h.size / kSectorSize * kSectorSize;
  info.cluster_size = uint32_t(h.cluster_size());
  info.version = h.version;
  info.dirty = h.incompatible_features & qcow2::kIncompatDirty;
  info.corrupt = h.incompatible_features & qcow2::kIncompatCorrupt;
  if (!h.backing_file.empty()) {
    info.backing_file = h.backing_file;
    info.backing_path = qcow2::ResolveBackingPath(path, h.backing_file);
    if (!h.backing_format.empty()) {
      auto f = config::ParseDiskFormat(h.backing_format);
      if (f) info.backing_format = *f;
    } else {
      auto f = qcow2::ProbeFormat(info.backing_path);
      if (f) info.backing_format = *f;
    }
  }
  return info;
}

base::Result<std::unique_ptr<Qcow2Disk>> OpenQcow2Disk(const std::string& path, bool read_only,
                                                       IoEngine engine) {
  OpenOptions o;
  o.writable = !read_only;
  o.engine = engine;
  ASSIGN_OR_RETURN(auto file, OpenBlockFile(path, o));
  qcow2::OpenParams p;
  p.read_only = read_only;
  p.engine = engine;
  return qcow2::OpenQcow2File(std::move(file), p);
}

base::Status CommitQcow2(const std::string& path, IoEngine engine) {
  ASSIGN_OR_RETURN(auto top, OpenQcow2Disk(path, true, engine));
  const Qcow2Info& info = top->info();
  if (info.backing_file.empty() || !info.backing_format) {
    return base::Error(base::Code::kFailedPrecondition,
                       "commit " + path + ": the image has no backing file");
  }
  ASSIGN_OR_RETURN(auto base_disk,
                   OpenDisk(info.backing_path, *info.backing_format, false, engine));
  if (base_disk->size() < top->size()) {
    return base::Error(base::Code::kFailedPrecondition,
                       "commit " + path + ": backing file " + info.backing_path + " (" +
                           std::to_string(base_disk->size()) +
                           " bytes) is smaller than the image (" + std::to_string(top->size()) +
                           " bytes)");
  }
  auto* base_qcow2 = dynamic_cast<Qcow2Disk*>(base_disk.get());
  constexpr uint64_t kChunk = 4u << 20;
  std::vector<uint8_t> buf;
  for (uint64_t off = 0; off < top->size();) {
    ASSIGN_OR_RETURN(Extent e, top->MapExtent(off, top->size() - off));
    if (e.length == 0) break;
    if (e.kind == ExtentKind::kZero) {
      if (base_qcow2 != nullptr) {
        RETURN_IF_ERROR(base_qcow2->WriteZeroes(e.offset, e.length));
      } else {
        buf.assign(std::min(kChunk, e.length), 0);
        for (uint64_t p = e.offset; p < e.offset + e.length; p += buf.size()) {
          uint64_t n = std::min<uint64_t>(buf.size(), e.offset + e.length - p);
          RETURN_IF_ERROR(base_disk->Write(buf.data(), n, p));
        }
      }
    } else if (e.kind == ExtentKind::kData) {
      buf.resize(std::min(kChunk, e.length));
      for (uint64_t p = e.offset; p < e.offset + e.length; p += buf.size()) {
        uint64_t n = std::min<uint64_t>(buf.size(), e.offset + e.length - p);
        RETURN_IF_ERROR(top->Read(buf.data(), n, p));
        RETURN_IF_ERROR(base_disk->Write(buf.data(), n, p));
      }
    }
    off = e.offset + e.length;
  }
  return base_disk->Flush();
}

base::Status SetQcow2Backing(const std::string& path, const std::string& backing_file,
                             config::DiskFormat backing_format) {
  OpenOptions o;
  o.engine = IoEngine::kSync;
  ASSIGN_OR_RETURN(auto file, OpenBlockFile(path, o));
  ASSIGN_OR_RETURN(uint64_t file_size, file->Size());
  ASSIGN_OR_RETURN(Header h, qcow2::ReadHeader(*file, file_size));
  if (h.version != 3) {
    return base::Error(base::Code::kUnimplemented,
                       "set backing file of " + path + ": only version 3 images");
  }
  h.backing_file = backing_file;
  h.backing_format = backing_file.empty() ? "" : std::string(config::ToString(backing_format));
  ASSIGN_OR_RETURN(std::vector<uint8_t> head, qcow2::EncodeHeader(h));
  // The header cluster is rewritten whole; everything after the fixed fields
  // that we did not parse (none in version 3 as qemu writes it) is dropped.
  RETURN_IF_ERROR(file->WriteAt(head.data(), head.size(), 0));
  return file->Flush();
}

}  // namespace storage
