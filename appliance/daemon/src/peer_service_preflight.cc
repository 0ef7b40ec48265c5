// PeerService's pre-flight for an incoming live move: the named checks of
// docs/live_move.md ("Destination ferryd", Prepare), in the same order.
#include <arpa/inet.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>

#include "config/names.h"
#include "config/vm_definition.h"
#include "daemon/peer_service.h"
#include "peer_service_internal.h"
#include "plan/plan_confinement.h"

namespace appliance {
namespace {

std::string FormatBytes(uint64_t bytes) {
  std::ostringstream out;
  out.precision(1);
  out << std::fixed << double(bytes) / double(1ull << 20) << " MiB";
  return out.str();
}

// MemAvailable from /proc/meminfo, in bytes.
base::Result<uint64_t> MemAvailable() {
  ASSIGN_OR_RETURN(std::string text, base::ReadFileToString("/proc/meminfo"));
  size_t at = text.find("MemAvailable:");
  if (at == std::string::npos)
    return base::Error(base::Code::kInternal, "/proc/meminfo has no MemAvailable");
  return uint64_t(std::strtoull(text.c_str() + at + 13, nullptr, 10)) * 1024;
}

// The path itself if it exists, else its nearest existing ancestor.
std::string NearestExisting(const std::string& path) {
  std::string p = path;
  struct stat st {};
  while (!p.empty() && ::stat(p.c_str(), &st) != 0) {
    size_t slash = p.rfind('/');
    if (slash == std::string::npos) return "";
    p = slash == 0 ? "/" : p.substr(0, slash);
    if (p == "/") break;
  }
  return p.empty() ? "/" : p;
}

// The path with symbolic links resolved as far as it exists (the rest
// appended as written), so a link inside an allowed directory cannot lead
// a move's files out of it.
std::string ResolvedAsFarAsExists(const std::string& path) {
  const std::string existing = NearestExisting(path);
  char buf[PATH_MAX];
  if (::realpath(existing.c_str(), buf) == nullptr) return path;
  const std::string resolved = buf;
  std::string rest =
      path.substr(std::min(existing.size(), path.size()));  // "", "/b/c"; "b/c" under "/"
  if (rest.empty()) return resolved;
  if (rest[0] != '/') rest = "/" + rest;
  return resolved == "/" ? rest : resolved + rest;
}

std::string Join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

}  // namespace

std::string AddressText(const transport::PeerAddress& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.family == AF_INET) {
    ::inet_ntop(AF_INET, a.address.data(), buf, sizeof buf);
    return buf;
  }
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(kMapped, kMapped + 12, a.address.begin())) {
    ::inet_ntop(AF_INET, a.address.data() + 12, buf, sizeof buf);
    return buf;
  }
  ::inet_ntop(AF_INET6, a.address.data(), buf, sizeof buf);
  return buf;
}

// The table is docs/live_move.md's pre-flight list: same names, same order
// (move_slot_test checks). Access comes first: a peer outside the migration
// networks learns nothing else.
std::span<const PeerService::PreflightCheck> PeerService::PreflightChecks() {
  using K = PreflightKind;
  static constexpr PreflightCheck kChecks[] = {
      {"incoming-enabled", &PeerService::CheckIncomingEnabled, K::kPlain},
      {"peer-network", &PeerService::CheckPeerNetwork, K::kAccess},
      {"destination-allowed", &PeerService::CheckDestinationAllowed, K::kAccess},
      {"free-slot", &PeerService::CheckFreeSlot, K::kSlot},
      {"config-version", &PeerService::CheckConfigVersion, K::kPlain},
      {"vm-definition", &PeerService::CheckVmDefinition, K::kPlain},
      {"vm-name", &PeerService::CheckVmName, K::kPlain},
      {"migration-id", &PeerService::CheckMigrationId, K::kPlain},
      {"cpu", &PeerService::CheckCpu, K::kPlain},
      {"memory", &PeerService::CheckMemory, K::kPlain},
      {"destination-path", &PeerService::CheckDestinationPath, K::kPlain},
      {"files-unplanned", &PeerService::CheckFilesUnplanned, K::kPlain},
      {"files-absent", &PeerService::CheckFilesAbsent, K::kPlain},
  };
  return kChecks;
}

std::vector<std::string> PeerService::PreflightCheckNames() {
  std::vector<std::string> names;
  for (const PreflightCheck& check : PreflightChecks()) names.emplace_back(check.name);
  return names;
}

base::Status PeerService::Preflight(const PrepareRequest& r, const transport::PeerAddress& peer,
                                    const std::map<std::string, std::string>& in_the_way) {
  const PreflightInput in{r, peer, in_the_way};
  std::vector<std::string> failures;
  bool only_slots = true;  // every failure so far is a full slot: retry later
  for (const PreflightCheck& check : PreflightChecks()) {
    std::vector<std::string> why = (this->*check.run)(in);
    if (why.empty()) continue;
    failures.insert(failures.end(), why.begin(), why.end());
    if (check.kind == PreflightKind::kAccess)
      return base::Error(base::Code::kPermissionDenied,
                         "live move of vm " + r.vm_name + " refused: " + Join(failures, "; "));
    if (check.kind != PreflightKind::kSlot) only_slots = false;
  }
  if (failures.empty()) return base::Ok();
  base::Code code = only_slots ? base::Code::kResourceExhausted : base::Code::kFailedPrecondition;
  return base::Error(code, "live move of vm " + r.vm_name + " refused: " + Join(failures, "; "));
}

std::vector<std::string> PeerService::CheckIncomingEnabled(const PreflightInput&) {
  if (options_.host.incoming_enabled) return {};
  return {"incoming live moves are disabled on this host (host.toml migration.incoming_enabled)"};
}

std::vector<std::string> PeerService::CheckPeerNetwork(const PreflightInput& in) {
  if (options_.host.any_network) return {};
  std::vector<std::string> nets;
  bool allowed = false;
  for (const config::Cidr& net : options_.host.networks) {
    nets.push_back(net.text);
    if (config::CidrContains(net, in.peer.family, in.peer.address.data())) allowed = true;
  }
  if (allowed) return {};
  return {"peer address " + AddressText(in.peer) + " is not inside migration.networks [" +
          Join(nets, ", ") + "]"};
}

std::vector<std::string> PeerService::CheckFreeSlot(const PreflightInput&) {
  size_t running = RunningMoves();
  if (running < options_.host.max_live_moves) return {};
  return {"no free live-move slot: " + std::to_string(running) +
          " incoming moves running, host.toml migration.max_live_moves is " +
          std::to_string(options_.host.max_live_moves)};
}

std::vector<std::string> PeerService::CheckConfigVersion(const PreflightInput& in) {
  const uint32_t version = in.request.config_version;
  if (version >= config::kMinVmConfigVersion && version <= config::kVmConfigVersion) return {};
  return {"vm configuration version " + std::to_string(version) + " is not supported here (" +
          std::to_string(config::kMinVmConfigVersion) + ".." +
          std::to_string(config::kVmConfigVersion) + ")"};
}

std::vector<std::string> PeerService::CheckVmDefinition(const PreflightInput& in) {
  const PrepareRequest& r = in.request;
  auto definition = config::ParseVmDefinition(r.definition_toml, "moved vm.toml");
  if (!definition) return {definition.error().message()};
  if (definition->name != r.vm_name)
    return {"the moved vm.toml names vm " + definition->name + ", not " + r.vm_name};
  return PlanConfinementFailures(r, *definition, options_.host.storage_root);
}

std::vector<std::string> PeerService::CheckVmName(const PreflightInput& in) {
  if (auto bad = config::ValidateVmName(in.request.vm_name); !bad) return {bad.error().message()};
  if (std::string conflict = vms_.incoming().NameConflict(in.request.vm_name); !conflict.empty())
    return {conflict};
  return {};
}

std::vector<std::string> PeerService::CheckMigrationId(const PreflightInput& in) {
  const std::string& id = in.request.migration_id;
  struct stat st {};
  if (FindMove(id) || ReadRecord(id) || ::lstat((IncomingRoot() + "/" + id).c_str(), &st) == 0)
    return {"migration id " + id + " was already used on this host"};
  return {};
}

std::vector<std::string> PeerService::CheckCpu(const PreflightInput& in) {
  const PrepareRequest& r = in.request;
  if (!host_cpu_) return {host_cpu_.error().message()};
  std::vector<std::string> failures;
  if (!r.processor_compatibility && r.cpu_vendor != host_cpu_->vendor)
    failures.push_back("processor vendor differs: the vm runs on " +
                       (r.cpu_vendor.empty() ? "an unknown vendor" : r.cpu_vendor) +
                       ", this host is " + host_cpu_->vendor + " (processor compatibility is off)");
  auto missing = MissingCpuFeatures(*host_cpu_, r.cpu_features);
  if (!missing.empty())
    failures.push_back("processor features the vm may use are not offered by KVM here: " +
                       Join(missing, " "));
  return failures;
}

std::vector<std::string> PeerService::CheckMemory(const PreflightInput& in) {
  // Incoming machines touch their memory only as pages arrive, so what the
  // moves already accepted will take is not yet out of MemAvailable.
  uint64_t promised = 0;
  {
    base::MutexLock lock(mu_);
    for (const auto& [id, m] : moves_) {
      if (m->state.load() == MoveState::kRunning) promised += m->plan.memory_bytes;
    }
  }
  auto available = MemAvailable();
  if (!available) return {available.error().message()};
  const uint64_t needed = in.request.memory_bytes;
  if (*available >= promised && *available - promised >= needed) return {};
  return {
      "not enough free memory: the vm needs " + FormatBytes(needed) + ", " +
      FormatBytes(*available) + " available (MemAvailable" +
      (promised ? ", of which " + FormatBytes(promised) + " is promised to incoming moves)" : ")")};
}

std::vector<std::string> PeerService::CheckDestinationAllowed(const PreflightInput& in) {
  const std::string& dest = in.request.destination;
  const std::vector<std::string>& allowed = options_.host.incoming_directories;
  if (!IsCleanAbsolute(dest))
    return {"destination path \"" + dest +
            "\" must be an absolute path without \".\", \"..\" or empty components"};
  const std::string resolved = ResolvedAsFarAsExists(dest);
  bool inside = false;
  for (const std::string& dir : allowed) {
    const std::string real_dir = ResolvedAsFarAsExists(dir);
    if ((dest == dir || IsInside(dest, dir)) &&
        (resolved == real_dir || IsInside(resolved, real_dir)))
      inside = true;
  }
  if (!inside)
    return {"destination path " + dest +
            " is not inside a directory this host accepts moves into "
            "(migration.incoming_directories: " +
            Join(allowed, ", ") + ")"};
  // Every planned file inside the destination: the vm-definition check
  // (plan_confinement.h).
  return {};
}

std::vector<std::string> PeerService::CheckDestinationPath(const PreflightInput& in) {
  const std::string& dest = in.request.destination;
  if (dest.empty() || dest[0] != '/') return {"destination path \"" + dest + "\" is not absolute"};
  const std::string existing = NearestExisting(dest);
  struct stat st {};
  struct statvfs vfs {};
  if (::stat(existing.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return {"destination path " + dest + ": " + existing + " is not a directory"};
  if (::access(existing.c_str(), W_OK | X_OK) != 0)
    return {"destination path " + dest + ": " + existing + " is not writable"};
  if (::statvfs(existing.c_str(), &vfs) != 0)
    return {"destination path " + dest + ": statvfs " + existing + ": " + std::strerror(errno)};
  if (uint64_t free = uint64_t(vfs.f_bavail) * vfs.f_frsize; free < in.request.disk_bytes)
    return {"not enough disk space at " + existing + ": the move needs " +
            FormatBytes(in.request.disk_bytes) + ", " + FormatBytes(free) + " free"};
  return {};
}

std::vector<std::string> PeerService::CheckFilesUnplanned(const PreflightInput& in) {
  // Clean-up after a failed move removes every file of the plan, so none may
  // be planned by another incoming move that has not ended. (An aborted move
  // whose clean-up is pending plans nothing any more: its leftovers exist,
  // and Prepare retried their removal first; CheckFilesAbsent refuses those.)
  std::set<std::string> others;
  {
    base::MutexLock lock(mu_);
    for (const auto& [id, m] : moves_) {
      const MoveState state = m->state.load();
      if (state == MoveState::kEnded || state == MoveState::kCleanupPending) continue;
      for (const std::string& file : IncomingDestinationFiles(m->plan)) others.insert(file);
    }
  }
  std::vector<std::string> failures;
  for (const std::string& file : IncomingDestinationFiles(in.request)) {
    if (others.count(file) != 0)
      failures.push_back("destination file " + file +
                         " is already planned by another incoming move");
  }
  return failures;
}

std::vector<std::string> PeerService::CheckFilesAbsent(const PreflightInput& in) {
  // Nor may any exist now: it would be someone else's. in_the_way names the
  // leftovers of an aborted move whose clean-up still fails.
  std::vector<std::string> failures;
  for (const std::string& file : IncomingDestinationFiles(in.request)) {
    struct stat st {};
    if (file.empty() || file[0] != '/') {
      failures.push_back("destination file \"" + file + "\" is not an absolute path");
    } else if (auto left = in.in_the_way.find(file); left != in.in_the_way.end()) {
      failures.push_back(left->second);
    } else if (::lstat(file.c_str(), &st) == 0) {
      failures.push_back("destination file " + file + " already exists");
    }
  }
  return failures;
}

}  // namespace appliance
