// Where each file of a VM's storage goes in a storage-only move
// (`ferry move-storage`), and the plain copy used for a VM that is not
// running. Pure planning plus file helpers; the live move (mirror and switch)
// is StorageMover (storage_mover.h), the job bookkeeping StorageMoveService.
//
// Layout at the destination directory D: every disk's top layer goes to
// D/<basename of the top>. A backing layer referenced by a relative name N
// (qemu's rule: relative to the referring image's directory) goes to
// <directory of the referring copy>/N, so the stored name stays valid and is
// not rewritten. An absolute name, or a relative one that climbs out with
// "..", is placed next to the referring copy under its basename and the copy
// is re-pointed at that basename (SetQcow2Backing). Two files that would land
// on the same destination path are refused (kAlreadyExists), as is a move of
// a file onto itself.
//
// In-progress files are clearly marked: a live move writes each top layer to
// "<final>.part" (and its resume bitmap to "<final>.part.fdbm") until the
// switch, and lists every file it created in D/.ferry-move-<vm>.json so a
// failed move can be cleaned up or resumed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "config/vm_definition.h"

namespace appliance {

struct LayerMove {
  std::string source;  // absolute
  std::string dest;    // absolute
  config::DiskFormat format = config::DiskFormat::kRaw;
  // Non-empty: after the copy, point the copy at this backing name (the
  // original name could not be kept valid at the destination).
  std::string rewrite_backing;
  config::DiskFormat backing_format = config::DiskFormat::kRaw;
  uint64_t file_size = 0;  // bytes of the source file
};

struct DiskMove {
  size_t index = 0;       // in definition.disks
  config::DiskSpec spec;  // as defined (source)
  LayerMove top;          // the disk's own file
  // Read-only backing layers, bottom first (copied once, before the top).
  std::vector<LayerMove> backing;
  // For a qcow2 top with a backing file: the backing name (and format) the
  // destination top must store (the original name, or the rewritten one).
  std::string top_backing_name;
  config::DiskFormat top_backing_format = config::DiskFormat::kRaw;
  bool top_backing_rewritten = false;  // top_backing_name differs from the source's
  uint64_t disk_size = 0;              // guest-visible bytes
};

struct StorageMovePlan {
  std::string vm_name;
  std::string destination;  // absolute directory, no trailing '/'
  std::vector<DiskMove> disks;
  // definition with every disk path replaced by its destination top.
  config::VmDefinition moved_definition;
  uint64_t bytes_total = 0;  // backing file sizes + guest-visible disk sizes
};

// Plans the move of every disk of `definition` (relative paths resolve in
// vm_dir) to `destination`. Reads the qcow2 headers of the chains; does not
// create anything. kInvalidArgument for a relative destination,
// kFailedPrecondition for a move onto the same files.
base::Result<StorageMovePlan> PlanStorageMove(const config::VmDefinition& definition,
                                              const std::string& vm_dir,
                                              const std::string& destination);

// Creates the destination directory (and parents, mode 0755) if missing and
// checks that it is a writable directory, by creating and removing a probe
// file. Errors name the destination ("destination /mnt/x: ...").
base::Status PrepareDestination(const std::string& destination);

// The marker that lists the files a move created at the destination.
std::string MoveMarkerPath(const StorageMovePlan& plan);
std::string PartPath(const std::string& final_path);    // "<final>.part"
std::string BitmapPath(const std::string& final_path);  // "<final>.part.fdbm"
// Writes the marker (atomically) naming every destination file of the plan.
base::Status WriteMoveMarker(const StorageMovePlan& plan, const std::string& state);
// Removes every destination file the plan names (final, .part, .fdbm, copies
// of backing layers) and the marker; missing files are fine. Never touches a
// source file. Returns the paths removed.
std::vector<std::string> RemoveMoveDestination(const StorageMovePlan& plan);
// Removes the files of a marker written by WriteMoveMarker (ferryd uses it
// when the worker that ran the move is gone), except those in `in_use`: a
// worker that died after its commit point (the new vm.toml) leaves a marker
// whose files are already the VM's disks. Missing marker: nothing to do.
std::vector<std::string> RemoveMoveDestinationByMarker(const std::string& marker_path,
                                                       const std::set<std::string>& in_use);
// Every file a VM's definition uses: its disks, its checkpoint layers and
// every file of their qcow2 backing chains (relative names resolved against
// the referring image's directory, at most 32 deep). Absolute, cleaned
// paths. Best effort: a file that cannot be read ends its chain, so the list
// may miss layers below a damaged one but never names an unrelated file.
std::vector<std::string> FilesOfVm(const config::VmDefinition& definition,
                                   const std::string& vm_dir);

// A source file a finished move left in place because another VM uses it.
struct KeptSource {
  std::string path;
  std::string used_by;  // the VM's name
};
// Removes every source file of the plan (tops and backing layers) except
// those `in_use` names (path -> the VM using it; matched by cleaned path or
// by inode, so another spelling of the same file is kept too). Two VMs'
// overlays over one base image share that base: deleting it with the moved
// VM's sources would break the other VM. Returns the files kept.
base::Result<std::vector<KeptSource>> RemoveMoveSources(
    const StorageMovePlan& plan, const std::map<std::string, std::string>& in_use = {});

// The plain copy of a VM that is not running: first checks every disk's
// image and chain (storage::CheckDiskImage: a damaged source fails the move
// with its error, kDataLoss for damage, before anything is copied), then
// copies every layer with CopySparseFile (tops included), re-points copies
// where the plan says so.
// progress(done, total) after every buffer. On failure the copies made so far
// are removed. cancel_fd as in SparseCopyOptions.
base::Status CopyStorageOffline(const StorageMovePlan& plan, int cancel_fd,
                                const std::function<void(uint64_t done, uint64_t total)>& progress);

}  // namespace appliance
