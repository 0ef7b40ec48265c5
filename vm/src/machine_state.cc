#include "machine_state.h"

#include "base/le.h"
#include "config/vm_definition.h"
#include "memory_image.h"
#include "serial.h"
#include "state_file.h"
#include "vm/guest_abi.h"

namespace vm {
namespace {

constexpr uint32_t kDefinitionEncodingToml = 1;
constexpr uint32_t kMachineRecordVersion = 1;
constexpr uint64_t kMaxDefinitionBytes = 1 << 20;
constexpr uint64_t kMachineRecordBytes = 40;
constexpr uint64_t kMaxVcpuRecordBytes = 2 << 20;
constexpr uint64_t kMaxSerialBytes = 4096;
constexpr uint64_t kMaxDeviceBytes = 1 << 20;
// A file claiming more RAM than any VM may have is corrupt; refusing it here
// also bounds the allocation below.
constexpr uint64_t kMaxMemoryBytes = config::kMaxVmMemoryBytes;

}  // namespace

base::Status WriteMachineSections(StateFileWriter& w, const MachineSnapshot& s) {
  base::LeWriter def;
  def.U32(kDefinitionEncodingToml);
  def.Bytes(s.definition_text.data(), s.definition_text.size());
  RETURN_IF_ERROR(w.AddSection(SectionType::kDefinition, def.data()));

  base::LeWriter m;
  m.U32(kMachineRecordVersion);
  m.U32(static_cast<uint32_t>(s.vcpus.size()));
  m.U32(static_cast<uint32_t>(s.devices.size()));
  m.U32(0);
  m.U64(s.memory_bytes);
  m.U64(s.tsc_khz);
  m.U64(s.kvm_clock_ns);
  RETURN_IF_ERROR(w.AddSection(SectionType::kMachine, m.data()));

  for (size_t i = 0; i < s.vcpus.size(); ++i) {
    base::LeWriter v;
    v.U32(static_cast<uint32_t>(i));
    std::string record = EncodeVcpuState(s.vcpus[i]);
    v.Bytes(record.data(), record.size());
    RETURN_IF_ERROR(w.AddSection(SectionType::kVcpu, v.data()));
  }
  RETURN_IF_ERROR(w.AddSection(SectionType::kSerial, s.serial));
  for (size_t i = 0; i < s.devices.size(); ++i) {
    base::LeWriter d;
    d.U32(static_cast<uint32_t>(i));
    d.U32(kDeviceKindVirtioBlk);
    d.Bytes(s.devices[i].data(), s.devices[i].size());
    RETURN_IF_ERROR(w.AddSection(SectionType::kDevice, d.data()));
  }
  return base::Ok();
}

base::Status WriteStateFile(const std::string& path, const MachineSnapshot& s,
                            GuestMemory& memory) {
  ASSIGN_OR_RETURN(StateFileWriter w, StateFileWriter::Create(path));
  RETURN_IF_ERROR(WriteMachineSections(w, s));
  RETURN_IF_ERROR(SaveMemoryImage(memory, w));
  return w.Commit();
}

base::Result<MachineSnapshot> ReadMachineSections(StateFileReader& r) {
  MachineSnapshot s;
  // Each section is checked against its CRC (EndSection) before any of its
  // fields is used, so a field is never trusted before it is verified.
  auto corrupt_in = [&](SectionType t, const base::Error& e) {
    return r.Corrupt(std::string(ToString(t)) + " section: " + e.message());
  };

  RETURN_IF_ERROR(r.BeginSection(SectionType::kDefinition, kMaxDefinitionBytes));
  ASSIGN_OR_RETURN(std::string def, r.ReadRest());
  RETURN_IF_ERROR(r.EndSection());
  {
    base::LeReader lr(def);
    auto enc = lr.U32();
    if (!enc || *enc != kDefinitionEncodingToml)
      return r.Corrupt("definition section has an unknown encoding");
    s.definition_text = def.substr(4);
  }

  RETURN_IF_ERROR(r.BeginSection(SectionType::kMachine, kMachineRecordBytes));
  ASSIGN_OR_RETURN(std::string mrec, r.ReadRest());
  RETURN_IF_ERROR(r.EndSection());
  uint32_t vcpu_count = 0, device_count = 0;
  {
    base::LeReader lr(mrec);
    auto parse = [&]() -> base::Status {
      ASSIGN_OR_RETURN(uint32_t version, lr.U32());
      if (version != kMachineRecordVersion)
        return base::Error(base::Code::kDataLoss, "record version " + std::to_string(version));
      ASSIGN_OR_RETURN(vcpu_count, lr.U32());
      ASSIGN_OR_RETURN(device_count, lr.U32());
      ASSIGN_OR_RETURN(uint32_t reserved, lr.U32());
      ASSIGN_OR_RETURN(s.memory_bytes, lr.U64());
      ASSIGN_OR_RETURN(s.tsc_khz, lr.U64());
      ASSIGN_OR_RETURN(s.kvm_clock_ns, lr.U64());
      if (reserved != 0 || lr.remaining() != 0)
        return base::Error(base::Code::kDataLoss, "malformed record");
      if (vcpu_count == 0 || vcpu_count > FERRY_MAX_VCPUS || device_count > FERRY_MAX_DISKS ||
          s.memory_bytes == 0 || s.memory_bytes > kMaxMemoryBytes ||
          s.memory_bytes % (2 << 20) != 0)
        return base::Error(base::Code::kDataLoss,
                           "implausible shape: " + std::to_string(vcpu_count) + " vCPUs, " +
                               std::to_string(device_count) + " devices, " +
                               std::to_string(s.memory_bytes) + " bytes of memory");
      return base::Ok();
    };
    if (auto st = parse(); !st) return corrupt_in(SectionType::kMachine, st.error());
  }

  for (uint32_t i = 0; i < vcpu_count; ++i) {
    RETURN_IF_ERROR(r.BeginSection(SectionType::kVcpu, kMaxVcpuRecordBytes));
    ASSIGN_OR_RETURN(std::string rec, r.ReadRest());
    RETURN_IF_ERROR(r.EndSection());
    base::LeReader lr(rec);
    auto index = lr.U32();
    if (!index || *index != i)
      return r.Corrupt("vCPU section " + std::to_string(i) + " has a wrong index");
    auto state = DecodeVcpuState(std::string_view(rec).substr(4));
    if (!state) return corrupt_in(SectionType::kVcpu, state.error());
    s.vcpus.push_back(std::move(*state));
  }

  RETURN_IF_ERROR(r.BeginSection(SectionType::kSerial, kMaxSerialBytes));
  ASSIGN_OR_RETURN(s.serial, r.ReadRest());
  RETURN_IF_ERROR(r.EndSection());
  {
    // Decoded into a throwaway port now, so a bad record fails the read and
    // not the restore half-way.
    ASSIGN_OR_RETURN(Serial probe, Serial::Open(""));
    if (auto st = probe.RestoreState(s.serial); !st)
      return corrupt_in(SectionType::kSerial, st.error());
  }

  for (uint32_t i = 0; i < device_count; ++i) {
    RETURN_IF_ERROR(r.BeginSection(SectionType::kDevice, kMaxDeviceBytes));
    ASSIGN_OR_RETURN(std::string rec, r.ReadRest());
    RETURN_IF_ERROR(r.EndSection());
    base::LeReader lr(rec);
    auto index = lr.U32();
    auto kind = lr.U32();
    if (!index || !kind || *index != i || *kind != kDeviceKindVirtioBlk)
      return r.Corrupt("device section " + std::to_string(i) + " has a wrong index or kind");
    s.devices.push_back(rec.substr(8));
  }
  return s;
}

base::Result<LoadedState> ReadStateFile(const std::string& path) {
  ASSIGN_OR_RETURN(StateFileReader r, StateFileReader::Open(path));
  LoadedState out;
  ASSIGN_OR_RETURN(out.snapshot, ReadMachineSections(r));
  const MachineSnapshot& s = out.snapshot;
  ASSIGN_OR_RETURN(out.memory, GuestMemory::Create(s.memory_bytes));
  RETURN_IF_ERROR(LoadMemoryImage(r, *out.memory));
  RETURN_IF_ERROR(r.Finish());
  return out;
}

}  // namespace vm
