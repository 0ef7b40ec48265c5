#include "daemon/inventory.h"
#include "config/names.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "base/fd.h"
#include "common/unix_socket.h"
#include "daemon/departure_record.h"
#include "daemon/vm_json.h"

namespace appliance {

base::Result<Inventory> Inventory::Open(const std::string& storage_root) {
  if (storage_root.empty() || storage_root[0] != '/')
    return base::Error(base::Code::kInvalidArgument,
                       "storage_root must be an absolute path, not \"" + storage_root + "\"");
  std::string vms = storage_root + "/vms";
  RETURN_IF_ERROR(MakeDirectories(vms, 0700));
  return Inventory(vms);
}

bool Inventory::Exists(const std::string& name) const {
  struct stat st {};
  return ::stat(DefinitionPath(name).c_str(), &st) == 0;
}

base::Result<std::vector<std::string>> Inventory::ListNames(bool leftovers) const {
  DIR* dir = ::opendir(vms_dir_.c_str());
  if (dir == nullptr) return base::ErrnoError("open inventory directory " + vms_dir_);
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (!config::ValidateVmName(name)) continue;  // ".", "..", temp files
    if (Exists(name) != leftovers) names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

base::Status Inventory::Create(const config::VmDefinition& definition) {
  const std::string& name = definition.name;
  RETURN_IF_ERROR(config::ValidateVmName(name));
  if (Exists(name))
    return base::Error(base::Code::kAlreadyExists, "vm " + name + " already exists");
  std::string dir = VmDir(name);
  // A directory without vm.toml is left over from an interrupted create or a
  // delete that kept foreign files; reusing it is safe.
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return base::ErrnoError("mkdir " + dir);
  {
    ASSIGN_OR_RETURN(base::Fd console, base::Fd::Open(ConsolePath(name), O_WRONLY | O_CREAT, 0600));
  }
  RuntimeRecord runtime;
  runtime.changed_unix_ms = UnixMillisNow();
  RETURN_IF_ERROR(SaveRuntime(name, runtime));
  // vm.toml last: its presence is what makes the directory a VM.
  RETURN_IF_ERROR(
      base::WriteFileAtomically(DefinitionPath(name), config::FormatVmDefinition(definition)));
  return base::Ok();
}

base::Result<config::VmDefinition> Inventory::LoadDefinition(const std::string& name) const {
  return config::LoadVmDefinition(DefinitionPath(name));
}

base::Result<RuntimeRecord> Inventory::LoadRuntime(const std::string& name) const {
  std::string path = RuntimePath(name);
  auto text = base::ReadFileToString(path);
  if (!text) {
    if (text.error().code() == base::Code::kNotFound) return RuntimeRecord{};
    return text.error();
  }
  return ParseRuntime(*text, path);
}

base::Status Inventory::SaveRuntime(const std::string& name, const RuntimeRecord& record) const {
  return base::WriteFileAtomically(RuntimePath(name), FormatRuntime(record));
}

base::Status Inventory::Delete(const std::string& name) const {
  RETURN_IF_ERROR(config::ValidateVmName(name));
  // vm.toml first: once it is gone the VM no longer exists, even if removing
  // the rest is interrupted.
  for (const std::string& path :
       {DefinitionPath(name), RuntimePath(name), ConsolePath(name), WorkerLogPath(name),
        WorkerErrorPath(name), WorkerExitPath(name), SavedStatePath(name), ControlSocketPath(name),
        DeparturePath(VmDir(name))}) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return base::ErrnoError("remove " + path);
  }
  std::string dir = VmDir(name);
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
    return base::ErrnoError("remove " + dir);
  return base::SyncParentDirectory(dir);
}

}  // namespace appliance
