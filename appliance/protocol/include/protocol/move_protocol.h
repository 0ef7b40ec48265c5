// The live-move messages carried in transport frames (transport/frame.h is
// the container; appliance/protocol/PROTOCOL.md the byte tables; the flow is
// docs/live_move.md). Control streams (ferryd <-> ferryd) carry one JSON
// request and one JSON reply; data streams (worker -> worker) carry binary
// page batches, disk extents and layer chunks, then StreamEnd, and on stream 0
// the device state; the destination answers on stream 0 with Committed or a
// transport kError frame.
//
// Every decoder checks lengths and ranges against what the move declared
// (memory size, disk sizes, layer count) and returns kDataLoss naming the
// message and the field: a hostile or corrupted stream can never write
// outside guest RAM or a disk.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace appliance {

enum class MoveFrame : uint16_t {
  // Control stream (JSON payloads).
  kPrepare = 16,
  kPrepareReply = 17,
  kStatusQuery = 18,
  kStatusReply = 19,
  kAbort = 20,  // also on data stream 0, source -> destination: {"reason":...}
  kAbortReply = 21,
  // Data streams (binary payloads).
  kPageBatch = 32,
  kDiskExtent = 33,
  kLayerChunk = 34,
  kLayerDone = 35,
  kStreamEnd = 36,
  kDeviceState = 37,  // stream 0 only: vm::Machine::SaveDeviceState's blob
  kCommitted = 38,    // destination -> source, stream 0: {} (JSON)
};
std::string_view ToString(MoveFrame type);

inline constexpr uint64_t kPageBytes = 4096;
inline constexpr uint32_t kMaxPagesPerBatch = 256;  // one 1 MiB group of RAM
inline constexpr uint64_t kRegionBytes = 1 << 20;   // disk extents never cross a region
inline constexpr uint32_t kMaxExtentBytes = kRegionBytes;
inline constexpr uint32_t kMaxLayerChunkBytes = 4 << 20;

// ---- Page batch -----------------------------------------------------------
// u32 count | u32 reserved(0) | count x u64 entry | data of each non-zero page
// entry = page index (bits 0..62) | bit 63: page is all zeros (no data).
// Indices strictly increasing within a batch, all in one 1 MiB group.
struct PageEntry {
  uint64_t index = 0;
  bool zero = false;
};
inline constexpr uint64_t kPageZeroBit = 1ull << 63;
// pages: the entries; data: the non-zero pages' bytes in entry order (the
// sender points it at guest memory page by page, so encoding gives two parts).
std::vector<uint8_t> EncodePageBatchHeader(std::span<const PageEntry> pages);
struct PageBatchView {
  std::vector<PageEntry> pages;
  std::span<const uint8_t> data;  // into the payload: non-zero pages in order
};
// memory_pages: the guest's RAM size in pages (every index must be below).
base::Result<PageBatchView> DecodePageBatch(std::span<const uint8_t> payload,
                                            uint64_t memory_pages);

// ---- Disk extent ----------------------------------------------------------
// u16 disk | u16 flags (bit 0: zeroes, no data) | u32 reserved(0) | u64 offset
// | u64 length | data (length bytes unless zeroes). 512-byte aligned offset
// and length; length 1..kMaxExtentBytes; [offset, offset+length) inside one
// kRegionBytes region and inside the disk.
struct DiskExtentHeader {
  uint16_t disk = 0;
  bool zeroes = false;
  uint64_t offset = 0;
  uint64_t length = 0;
};
inline constexpr size_t kDiskExtentHeaderBytes = 24;
std::vector<uint8_t> EncodeDiskExtentHeader(const DiskExtentHeader& header);
struct DiskExtentView {
  DiskExtentHeader header;
  std::span<const uint8_t> data;  // empty for zeroes
};
// disk_sizes: guest-visible size of each disk, in disk order.
base::Result<DiskExtentView> DecodeDiskExtent(std::span<const uint8_t> payload,
                                              std::span<const uint64_t> disk_sizes);

// ---- Layer chunk / layer done ---------------------------------------------
// Chunk: u32 layer | u32 reserved(0) | u64 file offset | data (1..kMaxLayerChunkBytes).
// Done:  u32 layer | u32 reserved(0) | u64 file size (the copy is truncated to it).
// layer: index into PrepareRequest's flattened layer list (disks in order,
// each disk's backing layers bottom first).
struct LayerChunkHeader {
  uint32_t layer = 0;
  uint64_t offset = 0;
};
inline constexpr size_t kLayerChunkHeaderBytes = 16;
std::vector<uint8_t> EncodeLayerChunkHeader(const LayerChunkHeader& header);
struct LayerChunkView {
  LayerChunkHeader header;
  std::span<const uint8_t> data;
};
// layer_sizes: each layer's file size; a chunk must lie inside it.
base::Result<LayerChunkView> DecodeLayerChunk(std::span<const uint8_t> payload,
                                              std::span<const uint64_t> layer_sizes);
struct LayerDone {
  uint32_t layer = 0;
  uint64_t file_size = 0;
};
std::vector<uint8_t> EncodeLayerDone(const LayerDone& done);
base::Result<LayerDone> DecodeLayerDone(std::span<const uint8_t> payload,
                                        std::span<const uint64_t> layer_sizes);

// ---- Stream end -----------------------------------------------------------
// u64 data frames this stream carried before it (page batches, extents, layer
// chunks and layer-done frames) | u64 reserved(0).
struct StreamEnd {
  uint64_t data_frames = 0;
};
std::vector<uint8_t> EncodeStreamEnd(const StreamEnd& end);
base::Result<StreamEnd> DecodeStreamEnd(std::span<const uint8_t> payload);

// ---- Control: prepare -----------------------------------------------------
// Where one layer of the chain goes at the destination.
struct PreparedLayer {
  std::string dest;             // absolute path at the destination
  std::string format;           // "raw" | "qcow2"
  uint64_t file_size = 0;       // bytes of the source file
  std::string rewrite_backing;  // non-empty: SetQcow2Backing(dest, this) after the copy
  std::string backing_format;   // of rewrite_backing
};
struct PreparedDisk {
  uint32_t index = 0;
  std::string format;            // top layer: "raw" | "qcow2"
  uint64_t disk_size = 0;        // guest-visible bytes
  std::string top;               // absolute destination path of the writable layer
  std::string top_backing_name;  // qcow2 top: backing name the new top stores ("" none)
  std::string top_backing_format;
  std::vector<PreparedLayer> backing;  // bottom first; copied once as files
};
struct PrepareRequest {
  std::string migration_id;  // UUID text; also in every data stream's hello
  std::string vm_name;
  std::string vm_id;
  std::string definition_toml;  // the moved definition: disk paths at the destination
  uint32_t config_version = 1;
  uint64_t memory_bytes = 0;
  uint32_t vcpus = 1;
  bool processor_compatibility = false;
  std::string cpu_vendor;                 // "GenuineIntel", "AuthenticAMD", ...
  std::vector<std::string> cpu_features;  // KVM-supported CPUID feature names the VM may use
  std::string destination;                // --destination-storage-path (absolute)
  std::vector<PreparedDisk> disks;
  uint64_t disk_bytes = 0;  // space the destination needs (layer files + disk sizes)
  uint32_t streams = 4;
  std::string performance;  // "tcp" | "compression"
  std::string source_host;  // the source's migration address, for messages
  // The VM was paused at the source: it arrives paused (no resume after the
  // commit) and is adopted as paused.
  bool paused = false;
};
nlohmann::json ToJson(const PrepareRequest& request);
// kInvalidArgument naming the field for anything missing or out of range.
base::Result<PrepareRequest> PrepareRequestFromJson(const nlohmann::json& j);
// Every layer of the request in the data streams' numbering (disks in order,
// backing layers bottom first), with its file size.
std::vector<const PreparedLayer*> FlattenLayers(const PrepareRequest& request);

struct PrepareReply {
  std::string data_host;  // where the incoming worker listens
  uint16_t data_port = 0;
  uint32_t protocol_version = 1;
  // The destination will keep the VM paused (it read the request's
  // "paused"); a destination that does not know the field leaves it out.
  bool keeps_paused = false;
};
nlohmann::json ToJson(const PrepareReply& reply);
base::Result<PrepareReply> PrepareReplyFromJson(const nlohmann::json& j);

// ---- Control: status / abort ----------------------------------------------
// Query: {"migration_id":...}; reply: {"migration_id":..., "state":
// "committed"|"aborted"|"running"|"unknown", "message":...}.
enum class RemoteMoveState { kRunning = 1, kCommitted = 2, kAborted = 3, kUnknown = 4 };
std::string_view ToString(RemoteMoveState state);
base::Result<RemoteMoveState> ParseRemoteMoveState(std::string_view text);

// JSON payload helpers (the control frames and kCommitted/kAbort carry JSON):
std::vector<uint8_t> JsonPayload(const nlohmann::json& j);
// kDataLoss for a payload that is not a JSON object, naming `what`.
base::Result<nlohmann::json> ParseJsonPayload(std::span<const uint8_t> payload,
                                              std::string_view what);

// ---- Migration ids ----------------------------------------------------------
// The id is UUID text ("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", lowercase or
// uppercase hex) in JSON and the 16 bytes it spells in a data stream's hello
// (transport::Hello::migration_id).
using MigrationIdBytes = std::array<uint8_t, 16>;
// kInvalidArgument "migration id ...: not a UUID" for anything else.
base::Result<MigrationIdBytes> ParseMigrationId(std::string_view text);
std::string FormatMigrationId(const MigrationIdBytes& id);  // lowercase
// A fresh random (version 4) UUID from getrandom.
std::string NewMigrationId();

}  // namespace appliance
