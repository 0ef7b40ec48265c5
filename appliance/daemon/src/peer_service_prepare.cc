// PeerService::Prepare: the destination's pre-flight for an incoming live
// move, then the incoming directory and worker (docs/live_move.md).
#include <arpa/inet.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include "config/names.h"
#include "daemon/peer_service.h"
#include "ipc/vm_dir_files.h"
#include "peer_service_internal.h"
#include "plan/plan_confinement.h"
#include "common/process.h"
#include "daemon/worker_launcher.h"
#include "base/log.h"
#include "config/vm_definition.h"

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
  struct stat st{};
  while (!p.empty() && ::stat(p.c_str(), &st) != 0) {
    size_t slash = p.rfind('/');
    if (slash == std::string::npos) return "";
    p = slash == 0 ? "/" : p.substr(0, slash);
    if (p == "/") break;
  }
  return p.empty() ? "/" : p;
}

// The address text to give the incoming worker (and the source): the local
// address of the control connection, IPv4-mapped IPv6 shown as IPv4.
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

std::string Join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

}  // namespace

// Every file the move writes at the destination: the plan's layer copies and
// writable tops, with the ".part" names they are written under first.
std::vector<std::string> IncomingDestinationFiles(const PrepareRequest& plan) {
  std::vector<std::string> files;
  for (const PreparedDisk& disk : plan.disks) {
    for (const PreparedLayer& layer : disk.backing) {
      files.push_back(layer.dest);
      files.push_back(IncomingPartPath(layer.dest));
    }
    files.push_back(disk.top);
    files.push_back(IncomingPartPath(disk.top));
  }
  return files;
}

base::Status PeerService::Preflight(const PrepareRequest& r, const transport::PeerAddress& peer,
                                    const std::map<std::string, std::string>& in_the_way) {
  // Access first: a peer outside the migration networks learns nothing else.
  std::vector<std::string> denied;
  if (!options_.host.incoming_enabled)
    denied.push_back("incoming live moves are disabled on this host (host.toml migration.incoming_enabled)");
  if (!options_.host.any_network) {
    bool allowed = false;
    std::vector<std::string> nets;
    for (const config::Cidr& net : options_.host.networks) {
      nets.push_back(net.text);
      if (config::CidrContains(net, peer.family, peer.address.data())) allowed = true;
    }
    if (!allowed) {
      denied.push_back("peer address " + AddressText(peer) + " is not inside migration.networks [" +
                       Join(nets, ", ") + "]");
      return base::Error(base::Code::kPermissionDenied,
                         "live move of vm " + r.vm_name + " refused: " + Join(denied, "; "));
    }
  }

  std::vector<std::string> failures = denied;
  bool only_slots = failures.empty();
  auto fail = [&](std::string why) {
    failures.push_back(std::move(why));
    only_slots = false;
  };
  if (size_t running = RunningMoves(); running >= options_.host.max_live_moves) {
    failures.push_back("no free live-move slot: " + std::to_string(running) +
                       " incoming moves running, host.toml migration.max_live_moves is " +
                       std::to_string(options_.host.max_live_moves));
  }
  if (r.config_version < config::kMinVmConfigVersion || r.config_version > config::kVmConfigVersion)
    fail("vm configuration version " + std::to_string(r.config_version) + " is not supported here (" +
         std::to_string(config::kMinVmConfigVersion) + ".." + std::to_string(config::kVmConfigVersion) + ")");
  auto definition = config::ParseVmDefinition(r.definition_toml, "moved vm.toml");
  if (!definition) {
    fail(definition.error().message());
  } else if (definition->name != r.vm_name) {
    fail("the moved vm.toml names vm " + definition->name + ", not " + r.vm_name);
  } else {
    for (std::string& why : PlanConfinementFailures(r, *definition, options_.host.storage_root)) fail(why);
  }
  if (auto bad = config::ValidateVmName(r.vm_name); !bad) {
    fail(bad.error().message());
  } else if (std::string conflict = vms_.incoming().NameConflict(r.vm_name); !conflict.empty()) {
    fail(conflict);
  }
  {
    struct stat st{};
    if (FindMove(r.migration_id) || ReadRecord(r.migration_id) ||
        ::lstat((IncomingRoot() + "/" + r.migration_id).c_str(), &st) == 0)
      fail("migration id " + r.migration_id + " was already used on this host");
  }
  if (!host_cpu_) {
    fail(host_cpu_.error().message());
  } else {
    if (!r.processor_compatibility && r.cpu_vendor != host_cpu_->vendor)
      fail("processor vendor differs: the vm runs on " + (r.cpu_vendor.empty() ? "an unknown vendor" : r.cpu_vendor) +
           ", this host is " + host_cpu_->vendor + " (processor compatibility is off)");
    auto missing = MissingCpuFeatures(*host_cpu_, r.cpu_features);
    if (!missing.empty())
      fail("processor features the vm may use are not offered by KVM here: " + Join(missing, " "));
  }
  // Incoming machines touch their memory only as pages arrive, so what the
  // moves already accepted will take is not yet out of MemAvailable.
  uint64_t promised = 0;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, m] : moves_) {
      if (m->state.load() == MoveState::kRunning) promised += m->plan.memory_bytes;
    }
  }
  if (auto available = MemAvailable(); !available) {
    fail(available.error().message());
  } else if (*available < promised || *available - promised < r.memory_bytes) {
    fail("not enough free memory: the vm needs " + FormatBytes(r.memory_bytes) + ", " +
         FormatBytes(*available) + " available (MemAvailable" +
         (promised ? ", of which " + FormatBytes(promised) + " is promised to incoming moves)" : ")"));
  }
  if (r.destination.empty() || r.destination[0] != '/') {
    fail("destination path \"" + r.destination + "\" is not absolute");
  } else {
    const std::string existing = NearestExisting(r.destination);
    struct stat st{};
    struct statvfs vfs{};
    if (::stat(existing.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      fail("destination path " + r.destination + ": " + existing + " is not a directory");
    } else if (::access(existing.c_str(), W_OK | X_OK) != 0) {
      fail("destination path " + r.destination + ": " + existing + " is not writable");
    } else if (::statvfs(existing.c_str(), &vfs) != 0) {
      fail("destination path " + r.destination + ": statvfs " + existing + ": " + std::strerror(errno));
    } else if (uint64_t free = uint64_t(vfs.f_bavail) * vfs.f_frsize; free < r.disk_bytes) {
      fail("not enough disk space at " + existing + ": the move needs " + FormatBytes(r.disk_bytes) + ", " +
           FormatBytes(free) + " free");
    }
  }
  // Clean-up after a failed move removes every file of the plan, so none of
  // them may exist now (they would be someone else's), nor be planned by
  // another incoming move that has not ended. (An aborted move whose
  // clean-up is pending plans nothing any more: its leftovers exist, and
  // Prepare retried their removal first; in_the_way says which remain.)
  {
    std::set<std::string> others;
    std::lock_guard lock(mu_);
    for (const auto& [id, m] : moves_) {
      const MoveState state = m->state.load();
      if (state == MoveState::kEnded || state == MoveState::kCleanupPending) continue;
      for (const std::string& file : IncomingDestinationFiles(m->plan)) others.insert(file);
    }
    for (const std::string& file : IncomingDestinationFiles(r)) {
      if (others.count(file) != 0) fail("destination file " + file + " is already planned by another incoming move");
    }
  }
  for (const std::string& file : IncomingDestinationFiles(r)) {
    struct stat st{};
    if (file.empty() || file[0] != '/') {
      fail("destination file \"" + file + "\" is not an absolute path");
    } else if (auto left = in_the_way.find(file); left != in_the_way.end()) {
      fail(left->second);
    } else if (::lstat(file.c_str(), &st) == 0) {
      fail("destination file " + file + " already exists");
    }
  }
  if (failures.empty()) return base::Ok();
  base::Code code = !denied.empty() ? base::Code::kFailedPrecondition
                    : only_slots    ? base::Code::kResourceExhausted
                                    : base::Code::kFailedPrecondition;
  return base::Error(code, "live move of vm " + r.vm_name + " refused: " + Join(failures, "; "));
}

base::Result<nlohmann::json> PeerService::Prepare(const nlohmann::json& request,
                                                  const transport::PeerAddress& peer,
                                                  const transport::PeerAddress& local) {
  ASSIGN_OR_RETURN(PrepareRequest plan, PrepareRequestFromJson(request));
  ASSIGN_OR_RETURN(MigrationIdBytes id_bytes, ParseMigrationId(plan.migration_id));
  plan.migration_id = FormatMigrationId(id_bytes);  // one spelling for directory names
  // One Prepare at a time: the slot count and the name checks must still
  // hold when the move is registered.
  std::lock_guard prepare_lock(prepare_mu_);
  // Leftovers of an aborted move in the way: the fault that kept them may be
  // gone, so their removal is retried now rather than at its next turn.
  const std::map<std::string, std::string> in_the_way = RetryCleanUpsInTheWay(plan);
  RETURN_IF_ERROR(Preflight(plan, peer, in_the_way));

  auto move = std::make_shared<Move>();
  move->id = plan.migration_id;
  move->name = plan.vm_name;
  move->dir = IncomingRoot() + "/" + move->id;
  move->plan = plan;
  // Held until the move is adopted or cleaned up (Create refuses the name).
  RETURN_IF_ERROR(vms_.incoming().ReserveName(move->name));
  std::error_code ec;
  auto undo = [&](const base::Error& e) -> base::Error {
    std::filesystem::remove_all(move->dir, ec);
    vms_.incoming().ReleaseName(move->name);
    base::LogWarning("incoming move " + move->id + " of vm " + move->name + " from " + peer.text + ": " +
                     e.message());
    return e;
  };
  if (::mkdir(move->dir.c_str(), 0700) != 0) {
    base::Error e = base::ErrnoError("create " + move->dir);
    vms_.incoming().ReleaseName(move->name);  // the directory is not ours to remove
    return e;
  }
  if (auto st = base::WriteFileAtomically(move->dir + "/vm.toml", plan.definition_toml); !st)
    return undo(st.error());
  if (auto st = base::WriteFileAtomically(move->dir + "/" + kIncomingPlanFile, ToJson(plan).dump(2) + "\n"); !st)
    return undo(st.error());
  std::filesystem::create_directories(plan.destination, ec);
  if (ec) return undo(base::Error(base::Code::kFailedPrecondition, "create destination " + plan.destination + ": " + ec.message()));
  for (const std::string& file : IncomingDestinationFiles(plan)) {
    std::filesystem::create_directories(std::filesystem::path(file).parent_path(), ec);
    if (ec) return undo(base::Error(base::Code::kFailedPrecondition, "create the directory of " + file + ": " + ec.message()));
  }

  LaunchSpec spec;
  spec.worker_binary = options_.worker_binary;
  spec.vm_dir = move->dir;
  spec.control_socket = move->dir + "/control.sock";
  spec.log_path = move->dir + "/worker.log";
  spec.exit_record_path = move->dir + "/" + kWorkerExitFile;
  spec.error_path = move->dir + "/worker.error";
  spec.incoming_host = AddressText(local);
  spec.migration_id = move->id;
  auto launched = LaunchWorker(spec, options_.worker_ready_timeout_ms);
  if (!launched) return undo(launched.error().Wrap("start the incoming worker"));
  if (launched->port == 0) {
    (void)PidfdSignal(launched->pidfd.get(), SIGKILL);
    (void)PidfdReap(launched->pidfd.get(), /*nohang=*/false);
    return undo(base::Error(base::Code::kInternal, "the incoming worker reported no data port"));
  }
  move->pid = launched->pid;
  move->pidfd = std::move(launched->pidfd);
  move->is_child = true;
  if (auto st = WriteRecord(move->id, move->name, "running", move->pid, ""); !st)
    base::LogWarning(st.error().ToString());
  {
    std::lock_guard lock(mu_);
    moves_[move->id] = move;
  }
  PrepareReply reply;
  reply.keeps_paused = plan.paused;
  reply.data_host = spec.incoming_host;
  reply.data_port = launched->port;
  base::LogInfo("incoming move " + move->id + " of vm " + move->name + " from " + peer.text +
                ": worker pid " + std::to_string(move->pid) + " listening on " + reply.data_host + ":" +
                std::to_string(reply.data_port));
  return ToJson(reply);
}

}  // namespace appliance
