// What a saved Machine consists of, and its mapping onto state-file sections
// (vm/STATE_FORMAT.md gives the field tables). Reading verifies the whole file
// — every section CRC, the trailer's whole-file CRC, every field — before the
// caller builds anything from it. The section codec is shared with the
// device-state blob of a live move (device_state_blob.h), which holds the
// same sections without memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "cpu_state.h"
#include "guest_memory.h"
#include "state_file.h"

namespace vm {

inline constexpr uint32_t kDeviceKindVirtioBlk = 1;

struct MachineSnapshot {
  std::string definition_text;  // config::FormatVmDefinition of the saved VM
  uint64_t memory_bytes = 0;
  uint64_t tsc_khz = 0;
  uint64_t kvm_clock_ns = 0;  // KVM_GET_CLOCK when the VM was paused
  std::vector<VcpuState> vcpus;
  std::string serial;
  std::vector<std::string> devices;  // virtio-blk SaveState blobs, disk order
};

// Every section except memory, in container order: definition, machine,
// vcpu x n, serial, device x n.
base::Status WriteMachineSections(StateFileWriter& writer, const MachineSnapshot& snapshot);
// Reads and verifies (CRCs and every field) the sections WriteMachineSections
// wrote; the reader is left before whatever follows (memory, or the trailer).
base::Result<MachineSnapshot> ReadMachineSections(StateFileReader& reader);

// Writes path atomically (temp file, fsync, rename, fsync of the directory).
base::Status WriteStateFile(const std::string& path, const MachineSnapshot& snapshot,
                            GuestMemory& memory);

struct LoadedState {
  MachineSnapshot snapshot;
  std::unique_ptr<GuestMemory> memory;
};
base::Result<LoadedState> ReadStateFile(const std::string& path);

}  // namespace vm
