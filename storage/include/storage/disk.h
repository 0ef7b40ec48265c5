// Disk: the guest-visible block device contents, whatever the format. The VM
// layer sees only this; raw and qcow2 (with its backing chain) implement it.
// Not thread-safe: callers serialise.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/result.h"
#include "config/vm_definition.h"
#include "storage/block_file.h"

namespace storage {

inline constexpr uint32_t kSectorSize = 512;

// What one layer of a disk holds for a run of bytes (qemu's "block status").
enum class ExtentKind {
  kData = 1,         // this layer stores the bytes
  kZero = 2,         // this layer says the bytes are zero (hole, zero cluster)
  kUnallocated = 3,  // this layer says nothing: the backing layer decides
};

struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;
  ExtentKind kind = ExtentKind::kData;
};

class Disk {
 public:
  virtual ~Disk() = default;
  // Reads len bytes at offset; beyond the file's end reads zeros up to size().
  // Any byte past size() makes the request kOutOfRange.
  virtual base::Status Read(void* buf, size_t len, uint64_t offset) = 0;
  // kPermissionDenied on a read-only disk; kOutOfRange past size().
  virtual base::Status Write(const void* buf, size_t len, uint64_t offset) = 0;
  // Both make [offset, offset + len) read as zeros (reads never show stale or
  // backing data afterwards) and have Write's checks (kPermissionDenied,
  // kOutOfRange). Discard also gives the space back where the format can
  // (raw: a file hole; qcow2: unallocated or zero clusters, freed clusters
  // punched out of the image file); WriteZeroes may keep it allocated.
  // Either falls back to writing zeros for what cannot be deallocated.
  virtual base::Status Discard(uint64_t offset, uint64_t len) = 0;
  virtual base::Status WriteZeroes(uint64_t offset, uint64_t len) = 0;
  // A completed Flush means every completed Write, Discard and WriteZeroes is
  // durable.
  virtual base::Status Flush() = 0;
  virtual uint64_t size() const = 0;  // guest-visible bytes, multiple of 512
  virtual bool read_only() const = 0;
  // The longest run starting at offset (at most max_len bytes, clipped to
  // size()) that this disk's top layer holds uniformly. A raw disk reports
  // data or (for file holes) zero, never unallocated. Copies use it to stay
  // sparse and to copy a checkpoint chain layer by layer.
  virtual base::Result<Extent> MapExtent(uint64_t offset, uint64_t max_len) = 0;
};

// Opens a raw image. The guest-visible size is the file size rounded down to
// 512 bytes; an empty or missing file is an error naming the path.
base::Result<std::unique_ptr<Disk>> OpenRawDisk(const std::string& path, bool read_only,
                                                IoEngine engine = IoEngine::kIoUring);

// Opens a disk image of the given format (raw: OpenRawDisk; qcow2:
// OpenQcow2Disk from storage/qcow2.h, with its backing chain).
base::Result<std::unique_ptr<Disk>> OpenDisk(const std::string& path, config::DiskFormat format,
                                             bool read_only, IoEngine engine = IoEngine::kIoUring);

}  // namespace storage
