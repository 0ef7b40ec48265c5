// Codecs of the live-move messages (move_protocol.h; byte tables in
// appliance/protocol/PROTOCOL.md). Decoders trust nothing: every length,
// index and range is checked against what the move declared before a caller
// may touch guest memory or a disk with it.
#include "protocol/move_protocol.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "base/le.h"
#include "json_fields.h"

namespace appliance {
namespace {

using json = nlohmann::json;
using json_fields::Reader;

base::Error Malformed(std::string_view message, const std::string& why) {
  return base::Error(base::Code::kDataLoss, "malformed " + std::string(message) + ": " + why);
}

std::string N(uint64_t v) { return std::to_string(v); }

bool ValidFormat(const std::string& f) { return f == "raw" || f == "qcow2"; }

}  // namespace

std::string_view ToString(MoveFrame type) {
  switch (type) {
    case MoveFrame::kPrepare: return "prepare";
    case MoveFrame::kPrepareReply: return "prepare-reply";
    case MoveFrame::kStatusQuery: return "status-query";
    case MoveFrame::kStatusReply: return "status-reply";
    case MoveFrame::kAbort: return "abort";
    case MoveFrame::kAbortReply: return "abort-reply";
    case MoveFrame::kPageBatch: return "page-batch";
    case MoveFrame::kDiskExtent: return "disk-extent";
    case MoveFrame::kLayerChunk: return "layer-chunk";
    case MoveFrame::kLayerDone: return "layer-done";
    case MoveFrame::kStreamEnd: return "stream-end";
    case MoveFrame::kDeviceState: return "device-state";
    case MoveFrame::kCommitted: return "committed";
  }
  return "unknown";
}

// ---- Page batch -------------------------------------------------------------

std::vector<uint8_t> EncodePageBatchHeader(std::span<const PageEntry> pages) {
  std::vector<uint8_t> out(8 + 8 * pages.size());
  base::PutLe32(out.data(), uint32_t(pages.size()));
  base::PutLe32(out.data() + 4, 0);
  for (size_t i = 0; i < pages.size(); ++i)
    base::PutLe64(out.data() + 8 + 8 * i, pages[i].index | (pages[i].zero ? kPageZeroBit : 0));
  return out;
}

base::Result<PageBatchView> DecodePageBatch(std::span<const uint8_t> payload,
                                            uint64_t memory_pages) {
  constexpr std::string_view kWhat = "page batch";
  if (payload.size() < 8)
    return Malformed(
        kWhat, "payload of " + N(payload.size()) + " bytes is shorter than its 8-byte header");
  const uint32_t count = base::GetLe32(payload.data());
  const uint32_t reserved = base::GetLe32(payload.data() + 4);
  if (reserved != 0) return Malformed(kWhat, "reserved field is " + N(reserved) + ", must be 0");
  if (count == 0 || count > kMaxPagesPerBatch)
    return Malformed(kWhat, "count " + N(count) + " outside 1.." + N(kMaxPagesPerBatch));
  const size_t table = 8 + 8 * size_t(count);
  if (payload.size() < table)
    return Malformed(kWhat, "payload of " + N(payload.size()) + " bytes is shorter than its " +
                                N(count) + "-entry table");
  PageBatchView view;
  view.pages.reserve(count);
  uint64_t data_pages = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t e = base::GetLe64(payload.data() + 8 + 8 * size_t(i));
    PageEntry p{e & ~kPageZeroBit, (e & kPageZeroBit) != 0};
    if (p.index >= memory_pages)
      return Malformed(kWhat, "entry " + N(i) + ": page " + N(p.index) +
                                  " is beyond guest memory (" + N(memory_pages) + " pages)");
    if (i > 0) {
      const uint64_t prev = view.pages.back().index;
      if (p.index <= prev)
        return Malformed(kWhat, "entry " + N(i) + ": page " + N(p.index) +
                                    " does not follow page " + N(prev) +
                                    " (indices must increase)");
      if (p.index / kMaxPagesPerBatch != view.pages.front().index / kMaxPagesPerBatch)
        return Malformed(kWhat, "entry " + N(i) + ": page " + N(p.index) +
                                    " is outside the 1 MiB group of page " +
                                    N(view.pages.front().index));
    }
    if (!p.zero) ++data_pages;
    view.pages.push_back(p);
  }
  const uint64_t want = data_pages * kPageBytes;
  if (payload.size() - table != want)
    return Malformed(kWhat, N(payload.size() - table) + " data bytes for " + N(data_pages) +
                                " non-zero pages (expected " + N(want) + ")");
  view.data = payload.subspan(table);
  return view;
}

// ---- Disk extent ------------------------------------------------------------

std::vector<uint8_t> EncodeDiskExtentHeader(const DiskExtentHeader& h) {
  std::vector<uint8_t> out(kDiskExtentHeaderBytes);
  base::PutLe16(out.data(), h.disk);
  base::PutLe16(out.data() + 2, h.zeroes ? 1 : 0);
  base::PutLe32(out.data() + 4, 0);
  base::PutLe64(out.data() + 8, h.offset);
  base::PutLe64(out.data() + 16, h.length);
  return out;
}

base::Result<DiskExtentView> DecodeDiskExtent(std::span<const uint8_t> payload,
                                              std::span<const uint64_t> disk_sizes) {
  constexpr std::string_view kWhat = "disk extent";
  if (payload.size() < kDiskExtentHeaderBytes)
    return Malformed(
        kWhat, "payload of " + N(payload.size()) + " bytes is shorter than its 24-byte header");
  DiskExtentView view;
  DiskExtentHeader& h = view.header;
  h.disk = base::GetLe16(payload.data());
  const uint16_t flags = base::GetLe16(payload.data() + 2);
  const uint32_t reserved = base::GetLe32(payload.data() + 4);
  h.offset = base::GetLe64(payload.data() + 8);
  h.length = base::GetLe64(payload.data() + 16);
  h.zeroes = (flags & 1) != 0;
  if ((flags & ~1u) != 0) return Malformed(kWhat, "unknown flags " + N(flags));
  if (reserved != 0) return Malformed(kWhat, "reserved field is " + N(reserved) + ", must be 0");
  if (h.disk >= disk_sizes.size())
    return Malformed(
        kWhat, "disk " + N(h.disk) + " out of range (the move has " + N(disk_sizes.size()) + ")");
  if (h.length == 0 || h.length > kMaxExtentBytes)
    return Malformed(kWhat, "length " + N(h.length) + " outside 1.." + N(kMaxExtentBytes));
  if (h.offset % 512 != 0 || h.length % 512 != 0)
    return Malformed(
        kWhat, "offset " + N(h.offset) + " or length " + N(h.length) + " is not 512-byte aligned");
  const uint64_t size = disk_sizes[h.disk];
  if (h.offset > size || h.length > size - h.offset)
    return Malformed(kWhat, "disk " + N(h.disk) + ": [" + N(h.offset) + ", +" + N(h.length) +
                                ") is beyond the disk's " + N(size) + " bytes");
  if (h.offset / kRegionBytes != (h.offset + h.length - 1) / kRegionBytes)
    return Malformed(kWhat, "disk " + N(h.disk) + ": [" + N(h.offset) + ", +" + N(h.length) +
                                ") crosses a 1 MiB region boundary");
  const uint64_t data = payload.size() - kDiskExtentHeaderBytes;
  const uint64_t want = h.zeroes ? 0 : h.length;
  if (data != want)
    return Malformed(kWhat, N(data) + " data bytes for " +
                                (h.zeroes ? "a zeroes extent" : "length " + N(h.length)) +
                                " (expected " + N(want) + ")");
  view.data = payload.subspan(kDiskExtentHeaderBytes);
  return view;
}

// ---- Layer chunk / layer done -------------------------------------------------

std::vector<uint8_t> EncodeLayerChunkHeader(const LayerChunkHeader& h) {
  std::vector<uint8_t> out(kLayerChunkHeaderBytes);
  base::PutLe32(out.data(), h.layer);
  base::PutLe32(out.data() + 4, 0);
  base::PutLe64(out.data() + 8, h.offset);
  return out;
}

base::Result<LayerChunkView> DecodeLayerChunk(std::span<const uint8_t> payload,
                                              std::span<const uint64_t> layer_sizes) {
  constexpr std::string_view kWhat = "layer chunk";
  if (payload.size() < kLayerChunkHeaderBytes)
    return Malformed(
        kWhat, "payload of " + N(payload.size()) + " bytes is shorter than its 16-byte header");
  LayerChunkView view;
  view.header.layer = base::GetLe32(payload.data());
  const uint32_t reserved = base::GetLe32(payload.data() + 4);
  view.header.offset = base::GetLe64(payload.data() + 8);
  view.data = payload.subspan(kLayerChunkHeaderBytes);
  if (reserved != 0) return Malformed(kWhat, "reserved field is " + N(reserved) + ", must be 0");
  if (view.header.layer >= layer_sizes.size())
    return Malformed(kWhat, "layer " + N(view.header.layer) + " out of range (the move has " +
                                N(layer_sizes.size()) + ")");
  if (view.data.empty() || view.data.size() > kMaxLayerChunkBytes)
    return Malformed(
        kWhat, "data of " + N(view.data.size()) + " bytes outside 1.." + N(kMaxLayerChunkBytes));
  const uint64_t size = layer_sizes[view.header.layer];
  if (view.header.offset > size || view.data.size() > size - view.header.offset)
    return Malformed(kWhat, "layer " + N(view.header.layer) + ": [" + N(view.header.offset) +
                                ", +" + N(view.data.size()) + ") is beyond the file's " + N(size) +
                                " bytes");
  return view;
}

std::vector<uint8_t> EncodeLayerDone(const LayerDone& done) {
  std::vector<uint8_t> out(16);
  base::PutLe32(out.data(), done.layer);
  base::PutLe32(out.data() + 4, 0);
  base::PutLe64(out.data() + 8, done.file_size);
  return out;
}

base::Result<LayerDone> DecodeLayerDone(std::span<const uint8_t> payload,
                                        std::span<const uint64_t> layer_sizes) {
  constexpr std::string_view kWhat = "layer done";
  if (payload.size() != 16)
    return Malformed(kWhat, "payload of " + N(payload.size()) + " bytes, must be 16");
  LayerDone done;
  done.layer = base::GetLe32(payload.data());
  const uint32_t reserved = base::GetLe32(payload.data() + 4);
  done.file_size = base::GetLe64(payload.data() + 8);
  if (reserved != 0) return Malformed(kWhat, "reserved field is " + N(reserved) + ", must be 0");
  if (done.layer >= layer_sizes.size())
    return Malformed(kWhat, "layer " + N(done.layer) + " out of range (the move has " +
                                N(layer_sizes.size()) + ")");
  // The layers are read-only: the size the plan declared is the size.
  if (done.file_size != layer_sizes[done.layer])
    return Malformed(kWhat, "layer " + N(done.layer) + ": file size " + N(done.file_size) +
                                ", the plan says " + N(layer_sizes[done.layer]));
  return done;
}

// ---- Stream end ---------------------------------------------------------------

std::vector<uint8_t> EncodeStreamEnd(const StreamEnd& end) {
  std::vector<uint8_t> out(16);
  base::PutLe64(out.data(), end.data_frames);
  base::PutLe64(out.data() + 8, 0);
  return out;
}

base::Result<StreamEnd> DecodeStreamEnd(std::span<const uint8_t> payload) {
  constexpr std::string_view kWhat = "stream end";
  if (payload.size() != 16)
    return Malformed(kWhat, "payload of " + N(payload.size()) + " bytes, must be 16");
  const uint64_t reserved = base::GetLe64(payload.data() + 8);
  if (reserved != 0) return Malformed(kWhat, "reserved field is " + N(reserved) + ", must be 0");
  return StreamEnd{base::GetLe64(payload.data())};
}

// ---- Prepare ------------------------------------------------------------------

nlohmann::json ToJson(const PrepareRequest& r) {
  json disks = json::array();
  for (const PreparedDisk& d : r.disks) {
    json backing = json::array();
    for (const PreparedLayer& l : d.backing) {
      backing.push_back({{"dest", l.dest},
                         {"format", l.format},
                         {"file_size", l.file_size},
                         {"rewrite_backing", l.rewrite_backing},
                         {"backing_format", l.backing_format}});
    }
    disks.push_back({{"index", d.index},
                     {"format", d.format},
                     {"disk_size", d.disk_size},
                     {"top", d.top},
                     {"top_backing_name", d.top_backing_name},
                     {"top_backing_format", d.top_backing_format},
                     {"backing", backing}});
  }
  return json{{"migration_id", r.migration_id},
              {"vm_name", r.vm_name},
              {"vm_id", r.vm_id},
              {"definition_toml", r.definition_toml},
              {"config_version", r.config_version},
              {"memory_bytes", r.memory_bytes},
              {"vcpus", r.vcpus},
              {"processor_compatibility", r.processor_compatibility},
              {"cpu_vendor", r.cpu_vendor},
              {"cpu_features", r.cpu_features},
              {"destination", r.destination},
              {"disks", disks},
              {"disk_bytes", r.disk_bytes},
              {"streams", r.streams},
              {"performance", r.performance},
              {"source_host", r.source_host},
              {"paused", r.paused}};
}

namespace {

base::Result<PreparedLayer> LayerFromJson(const Reader& in) {
  PreparedLayer l;
  ASSIGN_OR_RETURN(l.dest, in.String("dest"));
  if (l.dest.empty() || l.dest[0] != '/') return in.Bad("dest", "must be an absolute path");
  ASSIGN_OR_RETURN(l.format, in.String("format"));
  if (!ValidFormat(l.format)) return in.Bad("format", "must be \"raw\" or \"qcow2\"");
  ASSIGN_OR_RETURN(l.file_size, in.U64("file_size"));
  ASSIGN_OR_RETURN(l.rewrite_backing, in.String("rewrite_backing", false));
  ASSIGN_OR_RETURN(l.backing_format, in.String("backing_format", false));
  if (!l.rewrite_backing.empty()) {
    if (l.format != "qcow2")
      return in.Bad("rewrite_backing", "only a qcow2 layer has a backing file");
    if (!ValidFormat(l.backing_format))
      return in.Bad("backing_format", "must be \"raw\" or \"qcow2\"");
  }
  return l;
}

base::Result<PreparedDisk> DiskFromJson(const Reader& in, size_t position) {
  PreparedDisk d;
  ASSIGN_OR_RETURN(uint64_t index, in.U64("index", true, 0, UINT32_MAX));
  if (index != position)
    return in.Bad("index", "is " + N(index) + ", must be " + N(position) + " (disk order)");
  d.index = uint32_t(index);
  ASSIGN_OR_RETURN(d.format, in.String("format"));
  if (!ValidFormat(d.format)) return in.Bad("format", "must be \"raw\" or \"qcow2\"");
  ASSIGN_OR_RETURN(d.disk_size, in.U64("disk_size"));
  if (d.disk_size == 0 || d.disk_size % 512 != 0)
    return in.Bad("disk_size", "must be a positive multiple of 512");
  ASSIGN_OR_RETURN(d.top, in.String("top"));
  if (d.top.empty() || d.top[0] != '/') return in.Bad("top", "must be an absolute path");
  ASSIGN_OR_RETURN(d.top_backing_name, in.String("top_backing_name", false));
  ASSIGN_OR_RETURN(d.top_backing_format, in.String("top_backing_format", false));
  if (!d.top_backing_name.empty()) {
    if (d.format != "qcow2")
      return in.Bad("top_backing_name", "only a qcow2 top has a backing file");
    if (!ValidFormat(d.top_backing_format))
      return in.Bad("top_backing_format", "must be \"raw\" or \"qcow2\"");
  }
  ASSIGN_OR_RETURN(const json* backing, in.Array("backing", false));
  for (size_t i = 0; i < backing->size(); ++i) {
    ASSIGN_OR_RETURN(Reader layer, in.Element("backing", (*backing)[i], i));
    ASSIGN_OR_RETURN(PreparedLayer l, LayerFromJson(layer));
    d.backing.push_back(std::move(l));
  }
  if (!d.backing.empty() && d.format != "qcow2")
    return in.Bad("backing", "a raw top cannot have backing layers");
  return d;
}

}  // namespace

base::Result<PrepareRequest> PrepareRequestFromJson(const nlohmann::json& j) {
  RETURN_IF_ERROR(json_fields::RequireObject(j, "prepare"));
  Reader in(j, "prepare");
  PrepareRequest r;
  ASSIGN_OR_RETURN(r.migration_id, in.String("migration_id"));
  if (!ParseMigrationId(r.migration_id)) return in.Bad("migration_id", "not a UUID");
  ASSIGN_OR_RETURN(r.vm_name, in.String("vm_name"));
  if (r.vm_name.empty()) return in.Bad("vm_name", "must not be empty");
  ASSIGN_OR_RETURN(r.vm_id, in.String("vm_id", false));
  ASSIGN_OR_RETURN(r.definition_toml, in.String("definition_toml"));
  if (r.definition_toml.empty()) return in.Bad("definition_toml", "must not be empty");
  ASSIGN_OR_RETURN(uint64_t config_version, in.U64("config_version", false, 1, UINT32_MAX));
  if (config_version == 0) return in.Bad("config_version", "must be at least 1");
  r.config_version = uint32_t(config_version);
  ASSIGN_OR_RETURN(r.memory_bytes, in.U64("memory_bytes"));
  if (r.memory_bytes == 0 || r.memory_bytes % kPageBytes != 0)
    return in.Bad("memory_bytes", "must be a positive multiple of 4096");
  ASSIGN_OR_RETURN(uint64_t vcpus, in.U64("vcpus", true, 0, 1024));
  if (vcpus == 0) return in.Bad("vcpus", "must be at least 1");
  r.vcpus = uint32_t(vcpus);
  ASSIGN_OR_RETURN(r.processor_compatibility, in.Bool("processor_compatibility", false));
  ASSIGN_OR_RETURN(r.paused, in.Bool("paused", false));
  ASSIGN_OR_RETURN(r.cpu_vendor, in.String("cpu_vendor", false));
  ASSIGN_OR_RETURN(const json* features, in.Array("cpu_features", false));
  for (size_t i = 0; i < features->size(); ++i) {
    if (!(*features)[i].is_string())
      return in.Bad("cpu_features[" + N(i) + "]", "must be a string");
    r.cpu_features.push_back((*features)[i].get<std::string>());
  }
  ASSIGN_OR_RETURN(r.destination, in.String("destination"));
  if (r.destination.empty() || r.destination[0] != '/')
    return in.Bad("destination", "must be an absolute path");
  ASSIGN_OR_RETURN(const json* disks, in.Array("disks"));
  if (disks->size() > UINT16_MAX) return in.Bad("disks", "too many disks");
  for (size_t i = 0; i < disks->size(); ++i) {
    ASSIGN_OR_RETURN(Reader disk, in.Element("disks", (*disks)[i], i));
    ASSIGN_OR_RETURN(PreparedDisk d, DiskFromJson(disk, i));
    r.disks.push_back(std::move(d));
  }
  ASSIGN_OR_RETURN(r.disk_bytes, in.U64("disk_bytes", false));
  ASSIGN_OR_RETURN(uint64_t streams, in.U64("streams", true, 0, 64));
  if (streams == 0) return in.Bad("streams", "must be at least 1");
  r.streams = uint32_t(streams);
  ASSIGN_OR_RETURN(r.performance, in.String("performance", false, "compression"));
  if (r.performance.empty()) r.performance = "compression";  // a request built without one
  if (r.performance != "tcp" && r.performance != "compression")
    return in.Bad("performance", "must be \"tcp\" or \"compression\"");
  ASSIGN_OR_RETURN(r.source_host, in.String("source_host", false));
  return r;
}

std::vector<const PreparedLayer*> FlattenLayers(const PrepareRequest& request) {
  std::vector<const PreparedLayer*> out;
  for (const PreparedDisk& d : request.disks)
    for (const PreparedLayer& l : d.backing) out.push_back(&l);
  return out;
}

nlohmann::json ToJson(const PrepareReply& reply) {
  return json{{"data_host", reply.data_host},
              {"data_port", reply.data_port},
              {"protocol_version", reply.protocol_version},
              {"keeps_paused", reply.keeps_paused}};
}

base::Result<PrepareReply> PrepareReplyFromJson(const nlohmann::json& j) {
  RETURN_IF_ERROR(json_fields::RequireObject(j, "prepare reply"));
  Reader in(j, "prepare reply");
  PrepareReply r;
  ASSIGN_OR_RETURN(r.data_host, in.String("data_host"));
  if (r.data_host.empty()) return in.Bad("data_host", "must not be empty");
  ASSIGN_OR_RETURN(uint64_t port, in.U64("data_port", true, 0, 65535));
  if (port == 0) return in.Bad("data_port", "must be 1..65535");
  r.data_port = uint16_t(port);
  ASSIGN_OR_RETURN(uint64_t version, in.U64("protocol_version", false, 1, UINT32_MAX));
  if (version == 0) return in.Bad("protocol_version", "must be at least 1");
  r.protocol_version = uint32_t(version);
  ASSIGN_OR_RETURN(r.keeps_paused, in.Bool("keeps_paused", false));
  return r;
}

// ---- Status / abort / payload helpers ---------------------------------------------

std::string_view ToString(RemoteMoveState state) {
  switch (state) {
    case RemoteMoveState::kRunning: return "running";
    case RemoteMoveState::kCommitted: return "committed";
    case RemoteMoveState::kAborted: return "aborted";
    case RemoteMoveState::kUnknown: return "unknown";
  }
  return "unknown";
}

base::Result<RemoteMoveState> ParseRemoteMoveState(std::string_view text) {
  for (auto s : {RemoteMoveState::kRunning, RemoteMoveState::kCommitted, RemoteMoveState::kAborted,
                 RemoteMoveState::kUnknown}) {
    if (ToString(s) == text) return s;
  }
  return base::Error(base::Code::kInvalidArgument,
                     "unknown remote move state \"" + std::string(text) + "\"");
}

std::vector<uint8_t> JsonPayload(const nlohmann::json& j) {
  // Invalid UTF-8 in a string (a hostile file name) is replaced rather than
  // thrown: a message must always encode.
  std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return std::vector<uint8_t>(text.begin(), text.end());
}

base::Result<nlohmann::json> ParseJsonPayload(std::span<const uint8_t> payload,
                                              std::string_view what) {
  json j = json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return base::Error(base::Code::kDataLoss,
                       "malformed " + std::string(what) + ": payload is not JSON");
  if (!j.is_object())
    return base::Error(base::Code::kDataLoss,
                       "malformed " + std::string(what) + ": payload is not a JSON object");
  return j;
}

// ---- Migration ids ----------------------------------------------------------------

base::Result<MigrationIdBytes> ParseMigrationId(std::string_view text) {
  auto bad = [&] {
    return base::Error(base::Code::kInvalidArgument,
                       "migration id \"" + std::string(text) + "\": not a UUID");
  };
  if (text.size() != 36) return bad();
  MigrationIdBytes out{};
  size_t byte = 0;
  for (size_t i = 0; i < text.size();) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return bad();
      ++i;
      continue;
    }
    int v = 0;
    for (int k = 0; k < 2; ++k) {
      char c = text[i + k];
      int d = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (d < 0) return bad();
      v = v * 16 + d;
    }
    // A dash position can never fall between the two digits of a byte.
    if (i + 1 == 8 || i + 1 == 13 || i + 1 == 18 || i + 1 == 23) return bad();
    out[byte++] = uint8_t(v);
    i += 2;
  }
  if (byte != 16) return bad();
  return out;
}

std::string FormatMigrationId(const MigrationIdBytes& id) {
  char buf[37];
  std::snprintf(buf, sizeof buf,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", id[0],
                id[1], id[2], id[3], id[4], id[5], id[6], id[7], id[8], id[9], id[10], id[11],
                id[12], id[13], id[14], id[15]);
  return buf;
}

std::string NewMigrationId() {
  MigrationIdBytes id{};
  size_t got = 0;
  while (got < id.size()) {
    ssize_t n = ::getrandom(id.data() + got, id.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::abort();  // getrandom cannot fail on Linux >= 3.17 once the pool is ready
    }
    got += size_t(n);
  }
  id[6] = uint8_t((id[6] & 0x0f) | 0x40);  // version 4
  id[8] = uint8_t((id[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return FormatMigrationId(id);
}

}  // namespace appliance
