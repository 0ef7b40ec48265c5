#include "device_state_blob.h"

#include "state_file.h"
#include "vm/machine.h"

namespace vm {
namespace {

constexpr const char* kLabel = "device-state blob";

}  // namespace

base::Result<std::string> EncodeDeviceState(const MachineSnapshot& snapshot) {
  StateFileWriter w = StateFileWriter::CreateInMemory(kDeviceStateMagic, kLabel);
  RETURN_IF_ERROR(WriteMachineSections(w, snapshot));
  RETURN_IF_ERROR(w.Commit());
  std::string blob = w.TakeBuffer();
  if (blob.size() > kMaxDeviceStateBytes)
    return base::Error(base::Code::kInternal,
                       std::string(kLabel) + " of " + std::to_string(blob.size()) +
                           " bytes exceeds its limit of " + std::to_string(kMaxDeviceStateBytes));
  return blob;
}

base::Result<MachineSnapshot> DecodeDeviceState(std::string_view blob) {
  if (blob.size() > kMaxDeviceStateBytes)
    return base::Error(base::Code::kDataLoss, std::string(kLabel) + ": " +
                                                  std::to_string(blob.size()) + " bytes; at most " +
                                                  std::to_string(kMaxDeviceStateBytes) +
                                                  " are valid");
  ASSIGN_OR_RETURN(StateFileReader r, StateFileReader::OpenBuffer(blob, kDeviceStateMagic, kLabel));
  ASSIGN_OR_RETURN(MachineSnapshot s, ReadMachineSections(r));
  // A memory section (or anything else) after the devices is a defect too.
  RETURN_IF_ERROR(r.Finish());
  return s;
}

}  // namespace vm
