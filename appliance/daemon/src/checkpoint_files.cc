#include "checkpoint_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "storage/layer_stream.h"
#include "storage/qcow2.h"

namespace appliance {

bool PathExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

config::DiskFormat LayerFormat(const config::VmDefinition& vm, const std::string& vm_dir,
                               const std::string& name, size_t disk) {
  const config::CheckpointSpec* c = config::FindCheckpoint(vm, name);
  auto plan = PlanDeleteCheckpoint(vm, name);  // lists the files built on each layer
  if (plan) {
    for (const LayerMerge& m : plan->merges) {
      if (m.disk != disk) continue;
      for (const auto& child : m.children) {
        auto info = storage::ReadQcow2Info(ResolveVmPath(vm_dir, child.path));
        if (info && info->backing_format) return *info->backing_format;
      }
    }
  }
  if (c != nullptr && storage::ReadQcow2Info(ResolveVmPath(vm_dir, c->layers[disk])))
    return config::DiskFormat::kQcow2;
  return config::DiskFormat::kRaw;
}

base::Status StreamOffline(const std::string& layer, config::DiskFormat layer_format,
                           const std::string& child, bool copy_zeros) {
  ASSIGN_OR_RETURN(auto from, storage::OpenDisk(layer, layer_format, /*read_only=*/true));
  ASSIGN_OR_RETURN(auto into,
                   storage::OpenDisk(child, config::DiskFormat::kQcow2, /*read_only=*/false));
  ASSIGN_OR_RETURN(uint64_t n,
                   storage::StreamLayerRange(*from, *into, 0, from->size(), copy_zeros));
  RETURN_IF_ERROR(into->Flush());
  base::LogInfo("checkpoint: streamed " + std::to_string(n) + " bytes of " + layer + " into " +
                child);
  return base::Ok();
}

base::Status CreateOverlays(const std::vector<NewOverlay>& overlays,
                            const std::vector<config::DiskFormat>& formats,
                            const std::string& vm_dir) {
  for (size_t k = 0; k < overlays.size(); ++k) {
    storage::Qcow2CreateOptions o;
    o.backing_file = overlays[k].backing_name;
    o.backing_format = formats[k];
    if (auto st = storage::CreateQcow2(ResolveVmPath(vm_dir, overlays[k].path), o); !st) {
      for (size_t j = 0; j < k; ++j) ::unlink(ResolveVmPath(vm_dir, overlays[j].path).c_str());
      return st.error().Wrap("create overlay for disk " + std::to_string(overlays[k].disk));
    }
  }
  return base::Ok();
}

void RemoveOverlays(const std::vector<NewOverlay>& overlays, const std::string& vm_dir) {
  for (const NewOverlay& o : overlays) ::unlink(ResolveVmPath(vm_dir, o.path).c_str());
}

}  // namespace appliance
