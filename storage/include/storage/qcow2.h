// qcow2 version 3 images: create, open as a Disk, and the layer operations a
// checkpoint chain needs (overlay over an existing image, commit a layer into
// its backing file, re-point a layer at another backing file). The format
// contract is qemu's docs/interop/qcow2.txt; docs/storage.md describes what
// ferry supports and how writes are ordered for crash safety.
//
// Threads: like every Disk, not thread-safe; callers serialise.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "config/vm_definition.h"
#include "storage/disk.h"

namespace storage {

inline constexpr uint32_t kQcow2DefaultClusterSize = 64 * 1024;

struct Qcow2CreateOptions {
  // Guest-visible bytes, a multiple of 512. 0 with a backing file means the
  // backing file's size.
  uint64_t size = 0;
  uint32_t cluster_size = kQcow2DefaultClusterSize;  // power of two, 4 KiB..2 MiB
  // Stored as given: relative paths are relative to the new image's
  // directory (qemu's rule). Empty for none.
  std::string backing_file;
  config::DiskFormat backing_format = config::DiskFormat::kQcow2;
};

// Creates a new, empty image. kAlreadyExists if path exists; the image is
// durable (file and directory entry synced) when this returns.
base::Status CreateQcow2(const std::string& path, const Qcow2CreateOptions& options);

// What an image header says, with the backing file resolved.
struct Qcow2Info {
  uint64_t size = 0;  // guest-visible bytes
  uint32_t cluster_size = 0;
  uint32_t version = 3;
  std::string backing_file;  // as stored in the image; empty for none
  std::string backing_path;  // resolved against the image's directory
  // Recorded in the image, or probed from the backing file's first bytes when
  // the image does not say; unset without a backing file.
  std::optional<config::DiskFormat> backing_format;
  bool dirty = false;    // incompatible bit 0 (lazy refcounts in use)
  bool corrupt = false;  // incompatible bit 1
};

// Reads and validates the header of the image at path.
base::Result<Qcow2Info> ReadQcow2Info(const std::string& path);

// A qcow2 Disk with the operations beyond the Disk interface.
class Qcow2Disk : public Disk {
 public:
  // Disk::Discard here: whole clusters in range become unallocated (zero
  // clusters when there is a backing file, so it does not show through) and,
  // once the change is durable (Flush), freed clusters are punched out of the
  // image file; the partial clusters at the ends are written with zeros.
  // Disk::WriteZeroes: whole clusters become zero clusters (no data stored).
  virtual const Qcow2Info& info() const = 0;
  // The backing disk (always read-only), or nullptr. Lives as long as this.
  virtual Disk* backing() = 0;
};

// Opens path and its backing chain (backing files always read-only, at most
// 32 deep). Refuses to open read-write an image marked corrupt or dirty
// (kFailedPrecondition), or one with internal snapshots or version 2
// (kUnimplemented). Unknown incompatible features, encryption and external
// data files are kUnimplemented naming the feature; damage is kDataLoss
// naming the file and what is wrong. A writable disk flushes on destruction;
// call Flush() to see errors.
base::Result<std::unique_ptr<Qcow2Disk>> OpenQcow2Disk(const std::string& path, bool read_only,
                                                       IoEngine engine = IoEngine::kIoUring);

// Checkpoint operations.
//
// An overlay over an existing image is CreateQcow2 with backing_file set (and
// size 0 to inherit the size).
//
// CommitQcow2 writes everything the image at path stores itself (data and
// zero clusters; not what falls through) into its backing file, opened
// read-write, and flushes it. Afterwards the backing file alone shows what
// the image showed; the image itself is unchanged (delete it, or keep it as
// an empty-equivalent overlay). kFailedPrecondition without a backing file or
// if the backing file is smaller than the image.
base::Status CommitQcow2(const std::string& path, IoEngine engine = IoEngine::kIoUring);

// Points the image at another backing file without copying data (qemu-img
// rebase -u): the caller guarantees the new backing shows the same contents.
// An empty backing_file removes the backing file. Durable when it returns.
base::Status SetQcow2Backing(const std::string& path, const std::string& backing_file,
                             config::DiskFormat backing_format);

}  // namespace storage
