#include "checkpoint_worker.h"

#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "base/fd.h"
#include "base/log.h"
#include "storage/layer_stream.h"
#include "storage/qcow2.h"
#include "storage/tracking_disk.h"

namespace appliance {
namespace {

using nlohmann::json;
using DiskPtr = std::unique_ptr<storage::Disk>;

base::Error Bad(const std::string& what) {
  return base::Error(base::Code::kInvalidArgument, "checkpoint request: " + what);
}

base::Result<std::string> Str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string())
    return Bad(std::string("\"") + key + "\" must be a string");
  return it->get<std::string>();
}

base::Result<size_t> Index(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned())
    return Bad(std::string("\"") + key + "\" must be a disk index");
  return it->get<size_t>();
}

base::Result<config::DiskFormat> Format(const json& j, const char* key) {
  ASSIGN_OR_RETURN(std::string text, Str(j, key));
  return config::ParseDiskFormat(text);
}

// Puts `next` under the running disk `current` and returns what the device
// must hold from now on. A TrackingDisk (installed by a storage move) keeps
// its identity — the mover borrows it — and gets `next` as its inner disk.
// On error `current` is left as it was.
base::Result<DiskPtr> Install(DiskPtr& current, DiskPtr next) {
  auto* tracking = dynamic_cast<storage::TrackingDisk*>(current.get());
  if (tracking == nullptr) return next;
  tracking->PauseIo();
  auto old = tracking->SwitchTo(std::move(next));
  tracking->ResumeIo();
  if (!old) return old.error().Wrap("switch the tracked disk");
  return std::move(current);
}

// Opens the running chain again from its top file, after flushing the
// handles in use (so the new handles read everything they wrote).
base::Result<DiskPtr> Reopen(DiskPtr& current, const std::string& top, config::DiskFormat format) {
  RETURN_IF_ERROR(current->Flush());
  ASSIGN_OR_RETURN(DiskPtr fresh, storage::OpenDisk(top, format, /*read_only=*/false));
  return Install(current, std::move(fresh));
}

struct CreateDisk {
  size_t index = 0;
  std::string top, overlay, backing_name;
  config::DiskFormat top_format = config::DiskFormat::kRaw;
};

// The request's "disks": each names a disk of this machine.
base::Result<std::vector<CreateDisk>> CreateDisks(const vm::Machine& machine, const json& j) {
  auto disks_it = j.find("disks");
  if (disks_it == j.end() || !disks_it->is_array()) return Bad("\"disks\" must be an array");
  std::vector<CreateDisk> disks;
  for (const json& d : *disks_it) {
    CreateDisk c;
    ASSIGN_OR_RETURN(c.index, Index(d, "index"));
    ASSIGN_OR_RETURN(c.top, Str(d, "top"));
    ASSIGN_OR_RETURN(c.top_format, Format(d, "top_format"));
    ASSIGN_OR_RETURN(c.overlay, Str(d, "overlay"));
    ASSIGN_OR_RETURN(c.backing_name, Str(d, "backing_name"));
    if (c.index >= machine.disk_count())
      return Bad("disk " + std::to_string(c.index) + " does not exist");
    disks.push_back(std::move(c));
  }
  return disks;
}

base::Status Create(vm::Machine& machine, const json& j, const std::function<base::Status()>& pause,
                    const std::function<base::Status()>& resume) {
  ASSIGN_OR_RETURN(std::string definition_path, Str(j, "definition_path"));
  ASSIGN_OR_RETURN(std::string definition, Str(j, "definition"));
  ASSIGN_OR_RETURN(std::vector<CreateDisk> disks, CreateDisks(machine, j));
  auto remove_overlays = [&](size_t count) {
    for (size_t k = 0; k < count; ++k) ::unlink(disks[k].overlay.c_str());
  };
  // 1. The overlay files, while the guest runs: empty images whose backing
  //    file is the current top, so they show exactly what it shows.
  for (size_t k = 0; k < disks.size(); ++k) {
    storage::Qcow2CreateOptions o;
    o.backing_file = disks[k].backing_name;
    o.backing_format = disks[k].top_format;
    if (auto st = storage::CreateQcow2(disks[k].overlay, o); !st) {
      remove_overlays(k);
      return st.error().Wrap("create overlay for disk " + std::to_string(disks[k].index));
    }
  }
  // 2. The switch, with every vCPU stopped so all disks change at the same
  //    guest instant (a checkpoint of several disks is one consistent point).
  const bool was_running = machine.state() == vm::RunState::kRunning;
  if (auto st = pause(); !st) {
    remove_overlays(disks.size());
    return st.error().Wrap("pause for checkpoint");
  }
  size_t switched = 0;
  base::Status result = base::Ok();
  for (; switched < disks.size(); ++switched) {
    const CreateDisk& c = disks[switched];
    auto st = machine.TransformDisk(c.index, [&](DiskPtr& current) -> base::Result<DiskPtr> {
      // Flushed first: the overlay opens the old top read-only through a new
      // handle, which must see every write the guest completed.
      RETURN_IF_ERROR(current->Flush());
      ASSIGN_OR_RETURN(DiskPtr overlay,
                       storage::OpenDisk(c.overlay, config::DiskFormat::kQcow2, false));
      return Install(current, std::move(overlay));
    });
    if (!st) {
      result = st.error().Wrap("install overlay " + c.overlay);
      break;
    }
  }
  // 3. The commit point: the definition that names the overlays as the disks'
  //    tops. The guest has not run since the switch, so until this write
  //    succeeds the old tops still hold everything.
  if (result) {
    if (auto st = base::WriteFileAtomically(definition_path, definition); !st)
      result = st.error().Wrap("record the checkpoint in " + definition_path);
  }
  if (!result) {
    for (size_t k = 0; k < switched; ++k) {
      const CreateDisk& c = disks[k];
      auto back = machine.TransformDisk(
          c.index, [&](DiskPtr& current) { return Reopen(current, c.top, c.top_format); });
      if (!back)
        base::LogError("checkpoint rollback: disk " + std::to_string(c.index) + " stays on " +
                       c.overlay + ": " + back.error().ToString());
      else
        ::unlink(c.overlay.c_str());
    }
    for (size_t k = switched; k < disks.size(); ++k) ::unlink(disks[k].overlay.c_str());
  }
  if (was_running) {
    if (auto st = resume(); !st)
      base::LogError("resume after checkpoint: " + st.error().ToString());
  }
  return result;
}

base::Status Stream(vm::Machine& machine, const json& j) {
  ASSIGN_OR_RETURN(size_t index, Index(j, "disk"));
  ASSIGN_OR_RETURN(std::string layer_path, Str(j, "layer"));
  ASSIGN_OR_RETURN(config::DiskFormat layer_format, Format(j, "layer_format"));
  ASSIGN_OR_RETURN(std::string into_path, Str(j, "into"));
  ASSIGN_OR_RETURN(std::string top, Str(j, "top"));
  ASSIGN_OR_RETURN(config::DiskFormat top_format, Format(j, "top_format"));
  auto zeros = j.find("copy_zeros");
  if (zeros == j.end() || !zeros->is_boolean()) return Bad("\"copy_zeros\" must be a boolean");
  const bool copy_zeros = zeros->get<bool>();
  // The layer is read-only and nobody writes it, so a handle of our own
  // reads it coherently.
  ASSIGN_OR_RETURN(DiskPtr layer, storage::OpenDisk(layer_path, layer_format, /*read_only=*/true));
  DiskPtr into;
  if (!into_path.empty()) {
    ASSIGN_OR_RETURN(into,
                     storage::OpenDisk(into_path, config::DiskFormat::kQcow2, /*read_only=*/false));
  }
  uint64_t written = 0;
  for (uint64_t off = 0; off < layer->size(); off += storage::kStreamChunkBytes) {
    auto st = machine.TransformDisk(index, [&](DiskPtr& current) -> base::Result<DiskPtr> {
      if (!into) {
        // Into the running top: the guest's own disk object, whose writes
        // between our chunks allocate clusters the stream then leaves alone.
        ASSIGN_OR_RETURN(
            uint64_t n, storage::StreamLayerRange(*layer, *current, off, storage::kStreamChunkBytes,
                                                  copy_zeros));
        written += n;
        return std::move(current);
      }
      ASSIGN_OR_RETURN(uint64_t n, storage::StreamLayerRange(
                                       *layer, *into, off, storage::kStreamChunkBytes, copy_zeros));
      written += n;
      if (n == 0) return std::move(current);
      RETURN_IF_ERROR(into->Flush());
      return Reopen(current, top, top_format);
    });
    if (!st) return st.error().Wrap("stream " + layer_path + " into " + (into ? into_path : top));
  }
  if (into) RETURN_IF_ERROR(into->Flush());
  base::LogInfo("checkpoint: streamed " + std::to_string(written) + " bytes of " + layer_path +
                " into " + (into ? into_path : top));
  return base::Ok();
}

struct Rebase {
  std::string path, backing, old_backing;
  config::DiskFormat format = config::DiskFormat::kRaw, old_format = config::DiskFormat::kRaw;
};

base::Status ReopenWithRebase(vm::Machine& machine, const json& j) {
  ASSIGN_OR_RETURN(size_t index, Index(j, "disk"));
  ASSIGN_OR_RETURN(std::string top, Str(j, "top"));
  ASSIGN_OR_RETURN(config::DiskFormat top_format, Format(j, "top_format"));
  std::vector<Rebase> rebases;
  auto list = j.find("rebase");
  if (list != j.end()) {
    if (!list->is_array()) return Bad("\"rebase\" must be an array");
    for (const json& r : *list) {
      Rebase b;
      ASSIGN_OR_RETURN(b.path, Str(r, "path"));
      ASSIGN_OR_RETURN(b.backing, Str(r, "backing"));
      if (!b.backing.empty()) {
        ASSIGN_OR_RETURN(b.format, Format(r, "backing_format"));
      }
      ASSIGN_OR_RETURN(storage::Qcow2Info info, storage::ReadQcow2Info(b.path));
      b.old_backing = info.backing_file;
      b.old_format = info.backing_format.value_or(config::DiskFormat::kRaw);
      rebases.push_back(std::move(b));
    }
  }
  return machine.TransformDisk(index, [&](DiskPtr& current) -> base::Result<DiskPtr> {
    RETURN_IF_ERROR(current->Flush());
    size_t done = 0;
    base::Status st = base::Ok();
    for (; done < rebases.size() && st; ++done)
      st =
          storage::SetQcow2Backing(rebases[done].path, rebases[done].backing, rebases[done].format);
    base::Result<DiskPtr> fresh =
        st ? storage::OpenDisk(top, top_format, false) : base::Result<DiskPtr>(st.error());
    if (fresh) return Install(current, std::move(*fresh));
    // Put the old backing files back: the old handles stay in use and the
    // files must describe the chain they read.
    for (size_t k = 0; k < done; ++k) {
      if (auto back = storage::SetQcow2Backing(rebases[k].path, rebases[k].old_backing,
                                               rebases[k].old_format);
          !back)
        base::LogError("put the old backing file back in " + rebases[k].path + ": " +
                       back.error().ToString());
    }
    return fresh.error().Wrap("reopen " + top);
  });
}

}  // namespace

base::Status ExecuteCheckpointAction(vm::Machine& machine, const std::string& action_json,
                                     const std::function<base::Status()>& pause,
                                     const std::function<base::Status()>& resume) {
  json j = json::parse(action_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Bad("not a JSON object");
  ASSIGN_OR_RETURN(std::string action, Str(j, "action"));
  if (action == "create") return Create(machine, j, pause, resume);
  if (action == "stream") return Stream(machine, j);
  if (action == "reopen") return ReopenWithRebase(machine, j);
  return Bad("unknown action \"" + action + "\"");
}

}  // namespace appliance
