#include "plan/plan_confinement.h"

#include <climits>
#include <cstdlib>
#include <filesystem>

#include "config/host_settings.h"

namespace appliance {

bool IsCleanAbsolute(const std::string& path) {
  if (path.size() < 2 || path[0] != '/' || path.back() == '/') return false;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

bool IsInside(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() + 1 && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

namespace {

// The longest existing prefix of path, resolved; empty if none resolves.
std::string ResolvedExistingPrefix(const std::string& path, std::string* existing) {
  std::filesystem::path p(path);
  std::error_code ec;
  while (!p.empty() && !std::filesystem::exists(p, ec)) p = p.parent_path();
  *existing = p.string();
  char resolved[PATH_MAX];
  if (::realpath(existing->c_str(), resolved) == nullptr) return "";
  return resolved;
}

bool BackingNameConfined(const std::string& name, const std::string& destination) {
  if (name.empty()) return true;
  if (name[0] == '/') return IsCleanAbsolute(name) && IsInside(name, destination);
  return IsCleanAbsolute("/" + name);  // relative: no "..", no empty components
}

}  // namespace

std::vector<std::string> PlanConfinementFailures(const PrepareRequest& plan,
                                                 const config::VmDefinition& definition,
                                                 const std::string& storage_root) {
  std::vector<std::string> failures;
  const std::string& dest = plan.destination;
  if (!IsCleanAbsolute(dest)) {
    failures.push_back("destination path \"" + dest +
                       "\" must be absolute, without \".\" or \"..\"");
    return failures;
  }
  std::string existing;
  const std::string resolved = ResolvedExistingPrefix(dest, &existing);
  if (resolved != existing)
    failures.push_back("destination path " + dest + ": " + existing +
                       " is (or runs through) a symbolic link");
  std::string root = storage_root;
  if (char r[PATH_MAX]; ::realpath(storage_root.c_str(), r) != nullptr) root = r;
  // The storage root's incoming-disks area is the one part a move may use
  // (the default migration.incoming_directories).
  const std::string area = root + "/" + config::kIncomingDisksDir;
  const std::string area_as_given = storage_root + "/" + config::kIncomingDisksDir;
  const bool in_area = dest == area || IsInside(dest, area) || dest == area_as_given ||
                       IsInside(dest, area_as_given);
  if (!in_area && (dest == root || IsInside(dest, root) || IsInside(root, dest) ||
                   dest == storage_root || IsInside(dest, storage_root)))
    failures.push_back("destination path " + dest + " overlaps this host's storage_root " +
                       storage_root);
  auto check_file = [&](const std::string& file, const std::string& what) {
    if (!IsCleanAbsolute(file) || !IsInside(file, dest))
      failures.push_back(what + " \"" + file + "\" is not inside the destination " + dest);
  };
  for (const PreparedDisk& disk : plan.disks) {
    check_file(disk.top, "disk " + std::to_string(disk.index) + " file");
    if (!BackingNameConfined(disk.top_backing_name, dest))
      failures.push_back("disk " + std::to_string(disk.index) + " backing name \"" +
                         disk.top_backing_name + "\" leaves the destination");
    for (const PreparedLayer& layer : disk.backing) {
      check_file(layer.dest, "checkpoint layer");
      if (!BackingNameConfined(layer.rewrite_backing, dest))
        failures.push_back("checkpoint layer " + layer.dest + " backing name \"" +
                           layer.rewrite_backing + "\" leaves the destination");
    }
  }
  if (definition.disks.size() != plan.disks.size()) {
    failures.push_back("the moved vm.toml has " + std::to_string(definition.disks.size()) +
                       " disks, the plan " + std::to_string(plan.disks.size()));
  } else {
    for (size_t i = 0; i < plan.disks.size(); ++i) {
      if (definition.disks[i].path != plan.disks[i].top)
        failures.push_back("the moved vm.toml's disk " + std::to_string(i) + " is " +
                           definition.disks[i].path + ", not the planned " + plan.disks[i].top);
    }
  }
  return failures;
}

}  // namespace appliance
