// Planning and file helpers of a storage-only move (storage_move_plan.h).
#include "plan/storage_move_plan.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "base/escape.h"
#include "base/fd.h"
#include "storage/image_check.h"
#include "storage/qcow2.h"
#include "storage/sparse_copy.h"

namespace appliance {
namespace {

// Backing chains deeper than this are refused by storage/ as well.
constexpr int kMaxChainDepth = 32;

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string Basename(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string Resolve(const std::string& dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || dir.empty()) return path;
  return dir + "/" + path;
}

// A relative backing name that stays below the referring image's directory.
bool StaysBelow(const std::string& name) {
  if (name.empty() || name[0] == '/') return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    std::string part =
        name.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part == "..") return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

// A path with "." and repeated slashes removed (no symlink resolution: two
// spellings of one file through a symlink are caught by the inode check).
std::string Clean(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    std::string part = path.substr(start, slash - start);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    start = slash + 1;
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

base::Result<uint64_t> FileSize(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return base::ErrnoError("stat " + base::Escaped(path));
  return uint64_t(st.st_size);
}

bool SameFile(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

}  // namespace

std::string PartPath(const std::string& final_path) { return final_path + ".part"; }
std::string BitmapPath(const std::string& final_path) { return final_path + ".part.fdbm"; }
std::string MoveMarkerPath(const StorageMovePlan& plan) {
  return plan.destination + "/.ferry-move-" + plan.vm_name + ".json";
}

namespace {

// The walk down one disk's backing chain, top-down: `child` is the copy
// that refers to the layer being planned.
struct ChainWalk {
  bool at_top = true;  // the layer being planned is the top's backing
  std::string child_name;
  std::optional<config::DiskFormat> child_format;
  std::string child_backing_path;
  std::vector<LayerMove> chain;          // top-down
  std::vector<std::string> chain_files;  // every file of the chain so far
};

// PlanStorageMove's state while it plans the disks one by one.
class Planner {
 public:
  Planner(const config::VmDefinition& definition, const std::string& vm_dir, StorageMovePlan& plan)
      : definition_(definition), vm_dir_(vm_dir), plan_(plan) {}

  base::Result<DiskMove> PlanDisk(size_t i);
  base::Status PointCheckpointsAtCopies();

 private:
  // No two files may land on one destination name, and none may already
  // be there.
  base::Status Claim(const std::string& dest, const std::string& source);
  base::Status PlanChain(DiskMove& d, const storage::Qcow2Info& top);
  // One layer of the walk: where it goes, what name its child stores.
  base::Status PlanLayer(DiskMove& d, ChainWalk& w);

  const config::VmDefinition& definition_;
  const std::string& vm_dir_;
  StorageMovePlan& plan_;
  std::map<std::string, std::string> dest_owner_;  // dest path -> source path
  std::set<std::string> shared_;  // backing layers already planned (shared by two disks)
};

base::Status Planner::Claim(const std::string& dest, const std::string& source) {
  auto [it, inserted] = dest_owner_.emplace(dest, source);
  if (!inserted && it->second != source)
    return base::Error(base::Code::kAlreadyExists, "cannot move both " + base::Escaped(it->second) +
                                                       " and " + base::Escaped(source) + " to " +
                                                       base::Escaped(dest) +
                                                       ": they have the same name");
  if (Clean(source) == dest || SameFile(source, dest))
    return base::Error(
        base::Code::kFailedPrecondition,
        base::Escaped(source) + " is already at the destination " + plan_.destination);
  return base::Ok();
}

base::Result<DiskMove> Planner::PlanDisk(size_t i) {
  const config::DiskSpec& spec = definition_.disks[i];
  DiskMove d;
  d.index = i;
  d.spec = spec;
  d.top.source = Clean(Resolve(vm_dir_, spec.path));
  d.top.dest = plan_.destination + "/" + Basename(d.top.source);
  d.top.format = spec.format;
  RETURN_IF_ERROR(Claim(d.top.dest, d.top.source));
  ASSIGN_OR_RETURN(d.top.file_size, FileSize(d.top.source));
  d.disk_size = d.top.file_size / 512 * 512;
  if (spec.format == config::DiskFormat::kQcow2) {
    ASSIGN_OR_RETURN(storage::Qcow2Info info, storage::ReadQcow2Info(d.top.source));
    d.disk_size = info.size;
    RETURN_IF_ERROR(PlanChain(d, info));
  }
  return d;
}

base::Status Planner::PlanChain(DiskMove& d, const storage::Qcow2Info& top) {
  ChainWalk w;
  w.child_name = top.backing_file;
  w.child_format = top.backing_format;
  w.child_backing_path = top.backing_path;
  w.chain_files = {d.top.source};
  for (int depth = 0; !w.child_name.empty(); ++depth) {
    if (depth >= kMaxChainDepth)
      return base::Error(base::Code::kFailedPrecondition, base::Escaped(d.top.source) +
                                                              ": backing chain deeper than " +
                                                              std::to_string(kMaxChainDepth));
    RETURN_IF_ERROR(PlanLayer(d, w));
  }
  for (auto it = w.chain.rbegin(); it != w.chain.rend(); ++it) {
    if (!shared_.insert(it->dest).second) continue;  // another disk copies it
    d.backing.push_back(*it);
  }
  return base::Ok();
}

base::Status Planner::PlanLayer(DiskMove& d, ChainWalk& w) {
  if (!w.child_format)
    return base::Error(base::Code::kFailedPrecondition,
                       "backing file " + base::Escaped(w.child_backing_path) + ": format unknown");
  LayerMove layer;
  layer.source = Clean(w.child_backing_path);
  layer.format = *w.child_format;
  // A loop would otherwise be walked kMaxChainDepth deep (by identity,
  // as storage refuses it when the chain is opened).
  for (const std::string& above : w.chain_files) {
    if (SameFile(above, layer.source))
      return base::Error(base::Code::kDataLoss,
                         "the backing chain of " + base::Escaped(d.top.source) +
                             " loops: " + base::Escaped(layer.source) + " is already in it (as " +
                             base::Escaped(above) + ")");
  }
  w.chain_files.push_back(layer.source);
  std::string child_dest_dir = Dirname(w.at_top ? d.top.dest : w.chain.back().dest);
  std::string stored = w.child_name;
  if (StaysBelow(w.child_name)) {
    layer.dest = Clean(child_dest_dir + "/" + w.child_name);
  } else {
    layer.dest = child_dest_dir + "/" + Basename(layer.source);
    stored = Basename(layer.source);
    if (w.at_top) {
      d.top_backing_rewritten = true;  // a fresh top stores the new name
    } else {
      w.chain.back().rewrite_backing = stored;
      w.chain.back().backing_format = layer.format;
    }
  }
  if (w.at_top) {
    d.top_backing_name = stored;
    d.top_backing_format = layer.format;
  }
  RETURN_IF_ERROR(Claim(layer.dest, layer.source));
  ASSIGN_OR_RETURN(layer.file_size, FileSize(layer.source));
  std::string next_name, next_path;
  std::optional<config::DiskFormat> next_format;
  if (layer.format == config::DiskFormat::kQcow2) {
    ASSIGN_OR_RETURN(storage::Qcow2Info li, storage::ReadQcow2Info(layer.source));
    next_name = li.backing_file;
    next_path = li.backing_path;
    next_format = li.backing_format;
  }
  w.chain.push_back(layer);
  w.at_top = false;
  w.child_name = next_name;
  w.child_format = next_format;
  w.child_backing_path = next_path;
  return base::Ok();
}

// Checkpoints name their layers by path: point them at the copies. A layer
// outside every current chain (a branch of the checkpoint tree) would be
// left behind and then deleted with the sources, so such a move is refused.
base::Status Planner::PointCheckpointsAtCopies() {
  std::map<std::string, std::string> moved;  // source -> dest, every planned file
  for (const DiskMove& d : plan_.disks) {
    moved[d.top.source] = d.top.dest;
    for (const LayerMove& l : d.backing) moved[l.source] = l.dest;
  }
  for (const auto& [dest, source] : dest_owner_) moved[source] = dest;
  for (config::CheckpointSpec& cp : plan_.moved_definition.checkpoints) {
    for (std::string& layer : cp.layers) {
      auto it = moved.find(Clean(Resolve(vm_dir_, layer)));
      if (it == moved.end())
        return base::Error(
            base::Code::kUnimplemented,
            "checkpoint " + cp.name + " of vm " + definition_.name + " keeps " + layer +
                ", which no current disk builds on; moving a branched checkpoint tree is not "
                "supported: delete the checkpoints that are not ancestors of the current state "
                "first");
      layer = it->second;
    }
  }
  return base::Ok();
}

}  // namespace

base::Result<StorageMovePlan> PlanStorageMove(const config::VmDefinition& definition,
                                              const std::string& vm_dir,
                                              const std::string& destination) {
  if (destination.empty() || destination[0] != '/')
    return base::Error(base::Code::kInvalidArgument,
                       "destination storage path must be absolute, not \"" + destination + "\"");
  StorageMovePlan plan;
  plan.vm_name = definition.name;
  plan.destination = Clean(destination);
  plan.moved_definition = definition;
  Planner planner(definition, vm_dir, plan);
  for (size_t i = 0; i < definition.disks.size(); ++i) {
    ASSIGN_OR_RETURN(DiskMove d, planner.PlanDisk(i));
    for (const auto& l : d.backing) plan.bytes_total += l.file_size;
    plan.bytes_total += d.spec.read_only ? d.top.file_size : d.disk_size;
    plan.moved_definition.disks[i].path = d.top.dest;
    plan.disks.push_back(std::move(d));
  }
  RETURN_IF_ERROR(planner.PointCheckpointsAtCopies());
  return plan;
}

base::Status PrepareDestination(const std::string& destination) {
  auto fail = [&](const std::string& what, int err) {
    return base::ErrnoError("destination " + destination + ": " + what, err);
  };
  // mkdir -p
  std::string path;
  size_t start = 1;
  while (start <= destination.size()) {
    size_t slash = destination.find('/', start);
    if (slash == std::string::npos) slash = destination.size();
    path = destination.substr(0, slash);
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
      return fail("cannot create " + path, errno);
    start = slash + 1;
  }
  struct stat st {};
  if (::stat(destination.c_str(), &st) != 0) return fail("cannot stat", errno);
  if (!S_ISDIR(st.st_mode))
    return base::Error(base::Code::kFailedPrecondition,
                       "destination " + destination + " is not a directory");
  std::string probe = destination + "/.ferry-probe-" + std::to_string(::getpid());
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fail("not writable", errno);
  ::close(fd);
  ::unlink(probe.c_str());
  return base::Ok();
}

base::Status WriteMoveMarker(const StorageMovePlan& plan, const std::string& state) {
  nlohmann::json files = nlohmann::json::array();
  for (const DiskMove& d : plan.disks) {
    for (const LayerMove& l : d.backing) files.push_back(l.dest);
    files.push_back(d.top.dest);
    files.push_back(PartPath(d.top.dest));
    files.push_back(BitmapPath(d.top.dest));
  }
  nlohmann::json j = {
      {"what", "files of an unfinished ferry storage move; safe to delete with this marker"},
      {"vm", plan.vm_name},
      {"state", state},
      {"pid", ::getpid()},
      {"files", files}};
  return base::WriteFileAtomically(MoveMarkerPath(plan), j.dump(2) + "\n");
}

std::vector<std::string> RemoveMoveDestination(const StorageMovePlan& plan) {
  std::vector<std::string> removed;
  auto rm = [&](const std::string& p) {
    if (::unlink(p.c_str()) == 0) removed.push_back(p);
  };
  for (const DiskMove& d : plan.disks) {
    for (const LayerMove& l : d.backing) {
      rm(l.dest);
      rm(l.dest + ".part");
    }
    rm(d.top.dest);
    rm(d.top.dest + ".part");  // CopySparseFile's temp for read-only tops
    rm(PartPath(d.top.dest));
    rm(BitmapPath(d.top.dest));
  }
  rm(MoveMarkerPath(plan));
  return removed;
}

std::vector<std::string> RemoveMoveDestinationByMarker(const std::string& marker_path,
                                                       const std::set<std::string>& in_use) {
  std::vector<std::string> removed;
  auto text = base::ReadFileToString(marker_path);
  if (!text) return removed;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.contains("files") || !j["files"].is_array()) return removed;
  std::string dir = Dirname(marker_path);
  for (const auto& f : j["files"]) {
    if (!f.is_string()) continue;
    std::string p = f.get<std::string>();
    // Only files inside the marker's directory tree: a damaged marker must not
    // delete anything else.
    if (p.rfind(dir + "/", 0) != 0) continue;
    if (in_use.count(p)) continue;
    if (::unlink(p.c_str()) == 0) removed.push_back(p);
  }
  if (::unlink(marker_path.c_str()) == 0) removed.push_back(marker_path);
  return removed;
}

std::vector<std::string> FilesOfVm(const config::VmDefinition& definition,
                                   const std::string& vm_dir) {
  std::vector<std::string> roots;
  for (const config::DiskSpec& d : definition.disks) roots.push_back(d.path);
  for (const config::CheckpointSpec& cp : definition.checkpoints) {
    for (const std::string& layer : cp.layers) roots.push_back(layer);
  }
  std::set<std::string> files;
  for (const std::string& root : roots) {
    std::string path = Clean(Resolve(vm_dir, root));
    // Probe every file, whatever its recorded format: a raw disk that happens
    // to look like a qcow2 image can only make us keep more, never less.
    for (int depth = 0; depth <= kMaxChainDepth && files.insert(path).second; ++depth) {
      auto info = storage::ReadQcow2Info(path);
      if (!info || info->backing_path.empty()) break;
      path = Clean(info->backing_path);
    }
  }
  return {files.begin(), files.end()};
}

base::Result<std::vector<KeptSource>> RemoveMoveSources(
    const StorageMovePlan& plan, const std::map<std::string, std::string>& in_use) {
  std::map<std::pair<dev_t, ino_t>, std::string> in_use_inodes;
  for (const auto& [path, vm] : in_use) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0)
      in_use_inodes.emplace(std::make_pair(st.st_dev, st.st_ino), vm);
  }
  auto user = [&](const std::string& f) -> std::optional<std::string> {
    if (auto it = in_use.find(Clean(f)); it != in_use.end()) return it->second;
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) return std::nullopt;
    if (auto it = in_use_inodes.find({st.st_dev, st.st_ino}); it != in_use_inodes.end())
      return it->second;
    return std::nullopt;
  };
  std::vector<KeptSource> kept;
  for (const DiskMove& d : plan.disks) {
    std::vector<std::string> files = {d.top.source};
    for (const LayerMove& l : d.backing) files.push_back(l.source);
    for (const auto& f : files) {
      if (auto vm = user(f)) {
        kept.push_back({f, *vm});
        continue;
      }
      if (::unlink(f.c_str()) != 0 && errno != ENOENT)
        return base::ErrnoError("remove source " + f);
      RETURN_IF_ERROR(base::SyncParentDirectory(f));
    }
  }
  return kept;
}

base::Status CopyStorageOffline(
    const StorageMovePlan& plan, int cancel_fd,
    const std::function<void(uint64_t done, uint64_t total)>& progress) {
  // A damaged source must fail the move before anything is copied: a plain
  // file copy would carry the damage over and report the move completed.
  for (const DiskMove& d : plan.disks) {
    if (auto checked = storage::CheckDiskImage(d.top.source, d.spec.format); !checked)
      return checked.error().Wrap("disk " + std::to_string(d.index) + " (" +
                                  base::Escaped(d.top.source) +
                                  ") cannot be moved, nothing was copied");
  }
  uint64_t base_done = 0;
  auto copy = [&](const LayerMove& l) -> base::Status {
    storage::SparseCopyOptions o;
    o.cancel_fd = cancel_fd;
    o.progress = [&](uint64_t done, uint64_t) {
      if (progress) progress(base_done + done, plan.bytes_total);
    };
    RETURN_IF_ERROR(storage::CopySparseFile(l.source, l.dest, o));
    if (!l.rewrite_backing.empty())
      RETURN_IF_ERROR(storage::SetQcow2Backing(l.dest, l.rewrite_backing, l.backing_format));
    base_done += l.file_size;
    return base::Ok();
  };
  for (const DiskMove& d : plan.disks) {
    for (const LayerMove& l : d.backing) {
      if (auto st = copy(l); !st) {
        RemoveMoveDestination(plan);
        return st.error().Wrap("copy " + base::Escaped(l.source) + " to " + plan.destination);
      }
    }
    LayerMove top = d.top;
    if (d.top_backing_rewritten) {
      top.rewrite_backing = d.top_backing_name;
      top.backing_format = d.top_backing_format;
    }
    if (auto st = copy(top); !st) {
      RemoveMoveDestination(plan);
      return st.error().Wrap("copy " + top.source + " to " + plan.destination);
    }
  }
  return base::Ok();
}

}  // namespace appliance
