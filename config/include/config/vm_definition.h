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

struct VmDefinition {
  uint32_t config_version = kVmConfigVersion;
  std::string name;                      // [A-Za-z0-9._-]{1,64}
  std::string id;                        // UUID, lower-case, 36 characters
  uint32_t vcpus = 1;                    // 1..8
  uint64_t memory_bytes = 256ull << 20;  // multiple of 2 MiB, kMin..kMaxVmMemoryBytes
  bool processor_compatibility = false;
  std::string program;  // guest program (flat binary loaded at 1 MiB)
  std::string cmdline;  // passed to the guest in its parameter page
  std::vector<DiskSpec> disks;
};

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

bool operator==(const DiskSpec& a, const DiskSpec& b);
bool operator==(const VmDefinition& a, const VmDefinition& b);

}  // namespace config
