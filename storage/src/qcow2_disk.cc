// Opening a qcow2 image and its backing chain, the mapping lookup, and the
// read path. Writes are in qcow2_write.cc.
#include "qcow2_disk.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "base/escape.h"
#include "base/log.h"
#include "qcow2_compress.h"

namespace storage::qcow2 {
namespace {

// L2 cache budget: up to 32 tables or 16 MiB, at least 4 tables.
size_t L2CacheTables(uint64_t cluster_size) {
  return std::clamp<size_t>((16u << 20) / cluster_size, 4, 32);
}

base::Result<std::unique_ptr<Disk>> OpenBackingFile(const std::string& path,
                                                    config::DiskFormat format, int depth,
                                                    IoEngine engine, std::vector<ChainLink> above) {
  if (format == config::DiskFormat::kRaw) return OpenRawDisk(path, true, engine);
  OpenParams p;
  p.read_only = true;
  p.engine = engine;
  p.depth = depth;
  p.above = std::move(above);
  OpenOptions o;
  o.writable = false;
  o.engine = engine;
  ASSIGN_OR_RETURN(auto file, OpenBlockFile(path, o));
  ASSIGN_OR_RETURN(auto disk, OpenQcow2File(std::move(file), p));
  return std::unique_ptr<Disk>(std::move(disk));
}

}  // namespace

base::Result<Header> ReadHeader(BlockFile& file, uint64_t file_size) {
  // The fixed part says the cluster size; the header cluster holds the rest.
  std::vector<uint8_t> head(std::min<uint64_t>(file_size, 4096));
  ASSIGN_OR_RETURN(size_t n, file.ReadAt(head.data(), head.size(), 0));
  head.resize(n);
  if (n >= 24) {
    uint32_t bits = GetBe32(&head[20]);
    if (bits >= kMinClusterBits && bits <= kMaxClusterBits) {
      head.resize(std::min<uint64_t>(file_size, uint64_t{1} << bits));
      ASSIGN_OR_RETURN(n, file.ReadAt(head.data(), head.size(), 0));
      head.resize(n);
    }
  }
  return ParseHeader(head, file_size, file.display_path());
}

base::Result<config::DiskFormat> ProbeFormat(const std::string& path) {
  OpenOptions o;
  o.writable = false;
  o.engine = IoEngine::kSync;
  ASSIGN_OR_RETURN(auto file, OpenBlockFile(path, o));
  uint8_t magic[4] = {};
  ASSIGN_OR_RETURN(size_t n, file->ReadAt(magic, 4, 0));
  return n == 4 && GetBe32(magic) == kMagic ? config::DiskFormat::kQcow2 : config::DiskFormat::kRaw;
}

std::string ResolveBackingPath(const std::string& image_path, const std::string& backing_file) {
  if (!backing_file.empty() && backing_file[0] == '/') return backing_file;
  auto slash = image_path.rfind('/');
  if (slash == std::string::npos) return backing_file;
  return image_path.substr(0, slash + 1) + backing_file;
}

Qcow2DiskImpl::Qcow2DiskImpl(std::unique_ptr<BlockFile> file, Header header, bool read_only)
    : file_(std::move(file)),
      header_(std::move(header)),
      read_only_(read_only),
      cluster_size_(header_.cluster_size()),
      cluster_bits_(header_.cluster_bits) {}

Qcow2DiskImpl::~Qcow2DiskImpl() {
  if (read_only_ || !refcounts_) return;
  auto s = Flush();
  if (!s) base::LogError("closing " + file_->display_path() + ": " + s.error().ToString());
}

base::Error Qcow2DiskImpl::Corrupt(const std::string& what) const {
  return base::Error(base::Code::kDataLoss, file_->display_path() + ": " + what);
}

base::Result<std::unique_ptr<Qcow2DiskImpl>> Qcow2DiskImpl::Open(std::unique_ptr<BlockFile> file,
                                                                 const OpenParams& params) {
  const std::string path = file->display_path();  // for messages
  ASSIGN_OR_RETURN(uint64_t file_size, file->Size());
  ASSIGN_OR_RETURN(Header h, ReadHeader(*file, file_size));

  // Feature bits: refuse what we cannot honour, by name.
  uint64_t unknown = h.incompatible_features & ~kIncompatKnown;
  uint64_t unsupported =
      unknown | (h.incompatible_features & (kIncompatDataFile | kIncompatExtendedL2));
  if (unsupported != 0) {
    std::string names;
    for (unsigned bit = 0; bit < 64; ++bit) {
      if (unsupported & (uint64_t{1} << bit)) {
        names += (names.empty() ? "" : ", ") + base::Escaped(IncompatibleFeatureName(h, bit));
      }
    }
    return base::Error(
        base::Code::kUnimplemented,
        path + ": uses incompatible qcow2 features ferry does not support: " + names);
  }
  if (!params.read_only) {
    auto refuse = [&](base::Code code, const std::string& why) {
      return base::Error(code, "open " + path + " read-write: " + why);
    };
    if (h.incompatible_features & kIncompatCorrupt) {
      return refuse(base::Code::kFailedPrecondition,
                    "the image is marked corrupt; repair it (qemu-img check -r all) or open it "
                    "read-only");
    }
    if (h.incompatible_features & kIncompatDirty) {
      return refuse(base::Code::kFailedPrecondition,
                    "the image is dirty (lazy refcounts, not closed cleanly); repair its "
                    "refcounts with qemu-img check -r all first");
    }
    if (h.version != 3)
      return refuse(base::Code::kUnimplemented, "only version 3 images are writable");
    if (h.nb_snapshots != 0) {
      return refuse(base::Code::kUnimplemented, "the image has internal snapshots");
    }
  }
  std::unique_ptr<Qcow2DiskImpl> disk(
      new Qcow2DiskImpl(std::move(file), std::move(h), params.read_only));
  disk->file_size_ = file_size;
  RETURN_IF_ERROR(disk->Load(params));
  return disk;
}

base::Status Qcow2DiskImpl::Load(const OpenParams& params) {
  size_ = header_.size / kSectorSize * kSectorSize;
  RETURN_IF_ERROR(LoadL1());
  ASSIGN_OR_RETURN(refcounts_, Refcounts::Load(*file_, header_, file_size_));
  l2_cache_ =
      std::make_unique<TableCache>(*file_, cluster_size_, L2CacheTables(cluster_size_), "L2 table");
  l2_cache_->set_before_write([this]() -> base::Status {
    // An L2 table may only reach the file after what it points at is durable.
    RETURN_IF_ERROR(SyncRefcounts());
    unsynced_ = true;  // the L2 write that follows
    return base::Ok();
  });
  info_.size = size_;
  info_.cluster_size = uint32_t(cluster_size_);
  info_.version = header_.version;
  info_.dirty = header_.incompatible_features & kIncompatDirty;
  info_.corrupt = header_.incompatible_features & kIncompatCorrupt;
  if (!read_only_ && header_.autoclear_features != 0) {
    // We understand no autoclear feature: a writer that does not must clear
    // them, telling e.g. qemu that its bitmaps are stale.
    uint8_t zero[8] = {};
    RETURN_IF_ERROR(file_->WriteAt(zero, 8, kOffAutoclear));
    RETURN_IF_ERROR(file_->Flush());
    header_.autoclear_features = 0;
  }
  return OpenBacking(params);
}

base::Status Qcow2DiskImpl::LoadL1() {
  l1_.assign(header_.l1_size, 0);
  if (header_.l1_size == 0) return base::Ok();
  std::vector<uint8_t> raw(uint64_t{header_.l1_size} * 8);
  ASSIGN_OR_RETURN(size_t n, file_->ReadAt(raw.data(), raw.size(), header_.l1_table_offset));
  if (n != raw.size()) return Corrupt("L1 table is cut short by the end of the file");
  for (size_t i = 0; i < l1_.size(); ++i) {
    uint64_t e = GetBe64(&raw[i * 8]);
    auto bad = [&](const std::string& what) {
      return Corrupt("L1 entry " + std::to_string(i) + " (" + Hex(e) + ") " + what);
    };
    if (e & kL1Reserved) return bad("has reserved bits set");
    uint64_t off = e & kOffsetMask;
    if (off % cluster_size_ != 0) return bad("is not cluster aligned");
    if (off != 0 && off >= file_size_) return bad("points past end of file");
    if (off == 0 && (e & kOflagCopied)) return bad("has the copied flag but no L2 table");
    l1_[i] = e;
  }
  return base::Ok();
}

base::Status Qcow2DiskImpl::OpenBacking(const OpenParams& params) {
  if (header_.backing_file.empty()) return base::Ok();
  info_.backing_file = header_.backing_file;
  info_.backing_path = ResolveBackingPath(file_->path(), header_.backing_file);
  if (header_.backing_file.find(':') != std::string::npos &&
      header_.backing_file.rfind("json:", 0) == 0) {
    return base::Error(base::Code::kUnimplemented,
                       file_->display_path() + ": backing file " +
                           base::Escaped(header_.backing_file) +
                           " is a qemu protocol specification, not a file");
  }
  std::vector<ChainLink> chain = params.above;
  chain.push_back({file_->path(), file_->id()});
  RETURN_IF_ERROR(CheckNoLoop(chain));
  if (params.depth + 1 >= kMaxBackingDepth) {
    return base::Error(base::Code::kFailedPrecondition,
                       file_->display_path() + ": backing chain deeper than " +
                           std::to_string(kMaxBackingDepth) + " files");
  }
  config::DiskFormat format = config::DiskFormat::kRaw;
  if (!header_.backing_format.empty()) {
    auto f = config::ParseDiskFormat(header_.backing_format);
    if (!f) {
      return base::Error(base::Code::kUnimplemented, file_->display_path() +
                                                         ": backing file format '" +
                                                         base::Escaped(header_.backing_format) +
                                                         "' is not supported (raw and qcow2 are)");
    }
    format = *f;
  } else if (!params.open_backing) {
    // Not recorded: probe. Only qcow2 has a magic; anything else is raw.
    auto probed = ProbeFormat(info_.backing_path);
    if (!probed) return probed.error().Wrap("backing file of " + file_->display_path());
    format = *probed;
  }
  info_.backing_format = format;
  auto opened = params.open_backing
                    ? params.open_backing(info_.backing_path, format, params.depth + 1)
                    : OpenBackingFile(info_.backing_path, format, params.depth + 1, params.engine,
                                      std::move(chain));
  if (!opened) return opened.error().Wrap("backing file of " + file_->display_path());
  backing_ = std::move(*opened);
  backing_size_ = backing_->size();
  return base::Ok();
}

base::Status Qcow2DiskImpl::CheckNoLoop(const std::vector<ChainLink>& chain) const {
  // By identity, not by name: "a.qcow2", "./a.qcow2", a hard link and a
  // symlink are one file. A missing backing file is not a loop; opening it
  // reports it.
  struct stat st {};
  if (::stat(info_.backing_path.c_str(), &st) != 0) return base::Ok();
  const FileId next{uint64_t(st.st_dev), uint64_t(st.st_ino)};
  for (size_t i = 0; i < chain.size(); ++i) {
    if (!chain[i].id || *chain[i].id != next) continue;
    std::string files;
    for (size_t j = i; j < chain.size(); ++j) files += base::Escaped(chain[j].path) + " -> ";
    files += base::Escaped(info_.backing_path);
    const std::string again = i + 1 == chain.size() ? "the image itself"
                              : chain[i].path == info_.backing_path
                                  ? "already in the chain"
                                  : "the same file as " + base::Escaped(chain[i].path);
    return base::Error(base::Code::kDataLoss,
                       file_->display_path() + ": the backing chain loops: its backing file " +
                           base::Escaped(info_.backing_path) + " is " + again + " (" + files + ")");
  }
  return base::Ok();
}

base::Status Qcow2DiskImpl::CheckRange(std::string_view op, uint64_t len, uint64_t offset) const {
  if (offset > size_ || len > size_ - offset) {
    return base::Error(base::Code::kOutOfRange, std::string(op) + " disk " + file_->display_path() +
                                                    " at offset " + std::to_string(offset) + " (" +
                                                    std::to_string(len) +
                                                    " bytes): beyond the end of the disk (" +
                                                    std::to_string(size_) + " bytes)");
  }
  return base::Ok();
}

base::Result<Qcow2DiskImpl::Mapping> Qcow2DiskImpl::Decode(uint64_t e, uint64_t l2_offset,
                                                           uint64_t index) const {
  auto bad = [&](const std::string& what) {
    return Corrupt("L2 entry " + std::to_string(index) + " of table at " + Hex(l2_offset) + " (" +
                   Hex(e) + ") " + what);
  };
  Mapping m;
  if (e & kOflagCompressed) {
    if (e & kOflagCopied) return bad("is compressed and has the copied flag");
    uint32_t x = 62 - (cluster_bits_ - 8);
    m.kind = Mapping::kCompressed;
    m.host = e & ((uint64_t{1} << x) - 1);
    m.sectors = ((e >> x) & ((uint64_t{1} << (62 - x)) - 1)) + 1;
    m.csize = m.sectors * 512 - (m.host & 511);
    if (m.host >> 56) return bad("has a compressed offset beyond 2^56");
    if (m.host < cluster_size_) return bad("points into the header cluster");
    if (m.host >= file_size_) return bad("points past end of file");
    return m;
  }
  if (e & kL2Reserved) return bad("has reserved bits set");
  if ((e & kOflagZero) && header_.version < 3) return bad("has the zero flag in a version 2 image");
  m.host = e & kOffsetMask;
  m.copied = e & kOflagCopied;
  if (m.host % cluster_size_ != 0) return bad("is not cluster aligned");
  if (m.host != 0 && m.host >= file_size_) return bad("points past end of file");
  if (e & kOflagZero) {
    m.kind = Mapping::kZero;
  } else if (m.host == 0) {
    if (m.copied) return bad("has the copied flag but no cluster");
    m.kind = Mapping::kUnallocated;
  } else {
    m.kind = Mapping::kData;
  }
  return m;
}

base::Result<Qcow2DiskImpl::Mapping> Qcow2DiskImpl::Lookup(uint64_t guest_cluster) {
  uint64_t l1_index = guest_cluster >> (cluster_bits_ - 3);
  uint64_t l2_index = guest_cluster & (header_.l2_entries() - 1);
  if (l1_index >= l1_.size()) return Mapping{};
  uint64_t l2_offset = l1_[l1_index] & kOffsetMask;
  if (l2_offset == 0) return Mapping{};
  ASSIGN_OR_RETURN(Table * t, l2_cache_->Get(l2_offset));
  return Decode(GetBe64(&t->bytes[l2_index * 8]), l2_offset, l2_index);
}

base::Status Qcow2DiskImpl::ReadBacking(uint8_t* buf, uint64_t len, uint64_t offset) {
  uint64_t from_backing = 0;
  if (backing_ && offset < backing_size_) from_backing = std::min(len, backing_size_ - offset);
  if (from_backing > 0) RETURN_IF_ERROR(backing_->Read(buf, from_backing, offset));
  std::memset(buf + from_backing, 0, len - from_backing);
  return base::Ok();
}

base::Status Qcow2DiskImpl::ReadCompressed(const Mapping& m, uint8_t* out) {
  if (decompressed_host_ != m.host) {
    decompressed_host_ = UINT64_MAX;
    decompressed_.resize(cluster_size_);
    uint64_t avail = std::min(m.csize, file_size_ - m.host);
    std::vector<uint8_t> in(avail);
    ASSIGN_OR_RETURN(size_t n, file_->ReadAt(in.data(), in.size(), m.host));
    in.resize(n);
    RETURN_IF_ERROR(
        DecompressCluster(header_.compression_type, in, decompressed_,
                          file_->display_path() + ": compressed cluster at " + Hex(m.host)));
    decompressed_host_ = m.host;
  }
  std::memcpy(out, decompressed_.data(), cluster_size_);
  return base::Ok();
}

base::Status Qcow2DiskImpl::ReadCluster(uint64_t guest_cluster, const Mapping& m, uint8_t* out) {
  switch (m.kind) {
    case Mapping::kZero: std::memset(out, 0, cluster_size_); return base::Ok();
    case Mapping::kUnallocated: {
      uint64_t start = guest_cluster << cluster_bits_;
      uint64_t in_disk = start < size_ ? std::min(cluster_size_, size_ - start) : 0;
      RETURN_IF_ERROR(ReadBacking(out, in_disk, start));
      std::memset(out + in_disk, 0, cluster_size_ - in_disk);
      return base::Ok();
    }
    case Mapping::kCompressed: return ReadCompressed(m, out);
    case Mapping::kData: {
      ASSIGN_OR_RETURN(size_t n, file_->ReadAt(out, cluster_size_, m.host));
      std::memset(out + n, 0, cluster_size_ - n);
      return base::Ok();
    }
  }
  return base::Error(base::Code::kInternal, "bad mapping kind");
}

base::Status Qcow2DiskImpl::Read(void* buf, size_t len, uint64_t offset) {
  RETURN_IF_ERROR(CheckRange("read", len, offset));
  auto* out = static_cast<uint8_t*>(buf);
  std::vector<IoRequest> requests;
  // A run of unallocated clusters goes to the backing file as one read.
  uint64_t backing_pos = 0, backing_len = 0;
  auto flush_backing = [&]() -> base::Status {
    if (backing_len == 0) return base::Ok();
    RETURN_IF_ERROR(ReadBacking(out + (backing_pos - offset), backing_len, backing_pos));
    backing_len = 0;
    return base::Ok();
  };
  const uint64_t end = offset + len;
  for (uint64_t pos = offset; pos < end;) {
    uint64_t gc = pos >> cluster_bits_;
    uint64_t in = pos & (cluster_size_ - 1);
    uint64_t n = std::min(cluster_size_ - in, end - pos);
    uint8_t* dst = out + (pos - offset);
    ASSIGN_OR_RETURN(Mapping m, Lookup(gc));
    if (m.kind == Mapping::kUnallocated) {
      if (backing_len == 0) backing_pos = pos;
      backing_len += n;
      pos += n;
      continue;
    }
    RETURN_IF_ERROR(flush_backing());
    switch (m.kind) {
      case Mapping::kZero: std::memset(dst, 0, n); break;
      case Mapping::kCompressed:
        scratch_.resize(cluster_size_);
        RETURN_IF_ERROR(ReadCompressed(m, scratch_.data()));
        std::memcpy(dst, scratch_.data() + in, n);
        break;
      case Mapping::kData: {
        uint64_t host = m.host + in;
        if (!requests.empty()) {
          IoRequest& last = requests.back();
          if (last.offset + last.len == host && static_cast<uint8_t*>(last.buf) + last.len == dst) {
            last.len += n;
            break;
          }
        }
        requests.push_back(IoRequest{IoOp::kRead, dst, size_t(n), host});
        break;
      }
      case Mapping::kUnallocated: break;
    }
    pos += n;
  }
  RETURN_IF_ERROR(flush_backing());
  if (requests.empty()) return base::Ok();
  ASSIGN_OR_RETURN(auto done, file_->SubmitBatch(requests));
  for (size_t i = 0; i < requests.size(); ++i) {
    // Only the last cluster of a file can be short; the rest reads as zeros.
    if (done[i] < requests[i].len) {
      std::memset(static_cast<uint8_t*>(requests[i].buf) + done[i], 0, requests[i].len - done[i]);
    }
  }
  return base::Ok();
}

base::Result<Extent> Qcow2DiskImpl::MapExtent(uint64_t offset, uint64_t max_len) {
  if (offset > size_) RETURN_IF_ERROR(CheckRange("map", 0, offset));
  uint64_t limit = offset + std::min(max_len, size_ - offset);
  Extent e{offset, 0, ExtentKind::kData};
  auto kind_of = [](const Mapping& m) {
    switch (m.kind) {
      case Mapping::kUnallocated: return ExtentKind::kUnallocated;
      case Mapping::kZero: return ExtentKind::kZero;
      default: return ExtentKind::kData;
    }
  };
  bool first = true;
  for (uint64_t pos = offset; pos < limit;) {
    uint64_t gc = pos >> cluster_bits_;
    uint64_t l1_index = gc >> (cluster_bits_ - 3);
    uint64_t step_end;
    ExtentKind kind;
    if (l1_index < l1_.size() && (l1_[l1_index] & kOffsetMask) == 0) {
      // No L2 table: its whole span is unallocated.
      kind = ExtentKind::kUnallocated;
      step_end = (l1_index + 1) * header_.l2_span();
    } else {
      ASSIGN_OR_RETURN(Mapping m, Lookup(gc));
      kind = kind_of(m);
      step_end = (gc + 1) << cluster_bits_;
    }
    if (first) {
      e.kind = kind;
      first = false;
    } else if (kind != e.kind) {
      break;
    }
    pos = std::min(step_end, limit);
    e.length = pos - offset;
  }
  return e;
}

base::Result<std::unique_ptr<Qcow2Disk>> OpenQcow2File(std::unique_ptr<BlockFile> file,
                                                       const OpenParams& params) {
  ASSIGN_OR_RETURN(auto disk, Qcow2DiskImpl::Open(std::move(file), params));
  return std::unique_ptr<Qcow2Disk>(std::move(disk));
}

}  // namespace storage::qcow2
