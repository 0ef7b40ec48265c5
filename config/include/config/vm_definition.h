// A VM definition: what the VM is (not what it is doing). Stored as vm.toml in
// the VM's directory; moves carry it to the destination. Schema: docs/config.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace config {

// The configuration version this build writes, and the oldest it reads. A
// destination refuses a VM whose version it does not support.
inline constexpr uint32_t kVmConfigVersion = 1;
inline constexpr uint32_t kMinVmConfigVersion = 1;

// Guest RAM sizes a VM definition may ask for; the VMM (vm/) builds exactly
// these and checks its own layout against them at compile time. RAM is one
// block mapped from guest-physical address 0 and must end at or below the
// VMM's device (virtio-mmio) window at 0xd0000000 (FERRY_VIRTIO_MMIO_GPA in
// vm/guest_abi.h), hence 3328 MiB. The guest program loads at 1 MiB and its
// free memory starts 2 MiB-aligned after it, hence at least 4 MiB. Sizes are
// whole 2 MiB huge pages.
inline constexpr uint64_t kVmMmioWindowGpa = 0xd0000000;
inline constexpr uint64_t kMinVmMemoryBytes = 4ull << 20;
inline constexpr uint64_t kMaxVmMemoryBytes = kVmMmioWindowGpa;  // 3328 MiB
inline constexpr uint64_t kVmMemoryGranule = 2ull << 20;

enum class DiskFormat { kRaw = 1, kQcow2 = 2 };

struct DiskSpec {
  std::string path;  // absolute, or relative to the VM directory
  DiskFormat format = DiskFormat::kRaw;
  bool read_only = false;
};

// One checkpoint: the disks' contents at a moment, kept as read-only layers.
// A checkpoint is external (like libvirt's external snapshots and Hyper-V's
// .avhdx): creating it freezes each writable disk's top file and puts a new
// writable qcow2 overlay on it. The checkpoints form a tree through `parent`;
// the VM's disks build on `VmDefinition::current_checkpoint`.
struct CheckpointSpec {
  std::string name;             // like a VM name: [A-Za-z0-9._-]{1,64}, not starting with '.'
  int64_t created_unix_ms = 0;  // when it was taken
  std::string parent;           // the checkpoint the disks built on then; "" for none
  // One per disk, in disk order: the read-only file that holds disk i's
  // contents at this checkpoint (with its backing chain). Absolute, or
  // relative to the VM directory. A read-only disk never changes, so its
  // layer is the disk's own path.
  std::vector<std::string> layers;
};

struct VmDefinition {
  uint32_t config_version = kVmConfigVersion;
  std::string name;                      // [A-Za-z0-9._-]{1,64}
  std::string id;                        // UUID, lower-case, 36 characters
  uint32_t vcpus = 1;                    // 1..8
  uint64_t memory_bytes = 256ull << 20;  // multiple of 2 MiB, kMin..kMaxVmMemoryBytes
  bool processor_compatibility = false;
  std::string program;          // guest program (flat binary loaded at 1 MiB)
  std::string cmdline;          // passed to the guest in its parameter page
  std::vector<DiskSpec> disks;  // path: each disk's writable top
  // In creation order; a parent always comes before its children.
  std::vector<CheckpointSpec> checkpoints;
  // The checkpoint whose layers the writable disks' tops are overlays of;
  // "" when they build on none (no checkpoints, or its checkpoint was deleted).
  std::string current_checkpoint;
};

// Limits on the checkpoint tree. A qcow2 backing chain may be at most 32
// files deep, so a disk can build on at most this many checkpoints (the
// base image and the writable top need two more, and the base may have a
// backing file of its own).
inline constexpr size_t kMaxCheckpoints = 64;
inline constexpr size_t kMaxCheckpointDepth = 28;

// Parses vm.toml text; errors read "<source>: <dotted.key>: <reason>" and
// unknown keys are errors. An upper-case id is stored in lower case.
base::Result<VmDefinition> ParseVmDefinition(std::string_view toml_text, std::string_view source);
base::Result<VmDefinition> LoadVmDefinition(const std::string& path);
// TOML that ParseVmDefinition reads back to an equal definition.
std::string FormatVmDefinition(const VmDefinition& vm);
// Checks the fields of a definition built in code (the CLI, a peer).
base::Status ValidateVmDefinition(const VmDefinition& vm, std::string_view source);

std::string_view ToString(DiskFormat f);
base::Result<DiskFormat> ParseDiskFormat(std::string_view text);
// A fresh random UUID (version 4).
std::string NewUuid();

// The rule for VM and checkpoint names (both become file and directory
// names): "" if valid, else the reason.
std::string CheckName(std::string_view name);
// The checkpoint named `name`, or nullptr.
const CheckpointSpec* FindCheckpoint(const VmDefinition& vm, std::string_view name);

bool operator==(const DiskSpec& a, const DiskSpec& b);
bool operator==(const CheckpointSpec& a, const CheckpointSpec& b);
bool operator==(const VmDefinition& a, const VmDefinition& b);

}  // namespace config
