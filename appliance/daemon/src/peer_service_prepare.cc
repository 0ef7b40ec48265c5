// PeerService::Prepare: the destination's pre-flight for an incoming live
// move (peer_service_preflight.cc), then the incoming directory and worker
// (docs/live_move.md).
#include <sys/stat.h>

#include <csignal>
#include <filesystem>
#include <optional>

#include "base/log.h"
#include "common/process.h"
#include "daemon/peer_service.h"
#include "daemon/worker_launcher.h"
#include "ipc/vm_dir_files.h"
#include "peer/peer_tls.h"
#include "peer_service_internal.h"
#include "protocol/move_authorization.h"

namespace appliance {

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

namespace {

// The incoming directory's files (the moved definition, the worker's plan)
// and the directories every destination file goes into.
base::Status WriteIncomingFiles(const std::string& dir, const PrepareRequest& plan,
                                const PeerTrust& trust) {
  RETURN_IF_ERROR(base::WriteFileAtomically(dir + "/vm.toml", plan.definition_toml));
  RETURN_IF_ERROR(
      base::WriteFileAtomically(dir + "/" + kIncomingPlanFile, ToJson(plan).dump(2) + "\n"));
  RETURN_IF_ERROR(
      base::WriteFileAtomically(dir + "/" + kIncomingTlsFile, ToJson(trust).dump(2) + "\n"));
  std::error_code ec;
  std::filesystem::create_directories(plan.destination, ec);
  if (ec)
    return base::Error(base::Code::kFailedPrecondition,
                       "create destination " + plan.destination + ": " + ec.message());
  for (const std::string& file : IncomingDestinationFiles(plan)) {
    std::filesystem::create_directories(std::filesystem::path(file).parent_path(), ec);
    if (ec)
      return base::Error(base::Code::kFailedPrecondition,
                         "create the directory of " + file + ": " + ec.message());
  }
  return base::Ok();
}

}  // namespace

base::Result<std::string> PeerService::AuthorizeAdmin(const nlohmann::json& request,
                                                      const Caller& caller) const {
  std::optional<MoveAuthorization> authorization;
  if (request.is_object() && request.contains(kAuthorizationField)) {
    ASSIGN_OR_RETURN(authorization, MoveAuthorizationFromJson(request[kAuthorizationField]));
  }
  if (options_.authorizer == nullptr) return "host " + caller.tls.subject;
  auto admin =
      options_.authorizer->Authorize(authorization ? &*authorization : nullptr, caller.tls);
  if (!admin) {
    base::LogWarning("peer service: refused a Prepare from " + caller.address.text +
                     " (certificate " + caller.tls.fingerprint + "): " + admin.error().message());
    return admin.error();
  }
  return admin;
}

base::Result<nlohmann::json> PeerService::Prepare(const nlohmann::json& request,
                                                  const Caller& caller) {
  const transport::PeerAddress& peer = caller.address;
  ASSIGN_OR_RETURN(PrepareRequest plan, PrepareRequestFromJson(request));
  // Who the move is for, before anything else: an admin who may not move
  // VMs here learns nothing and takes no slot. Not under prepare_mu_: a
  // refused password costs PAM's delay, which must not hold up others.
  ASSIGN_OR_RETURN(const std::string admin, AuthorizeAdmin(request, caller));
  ASSIGN_OR_RETURN(MigrationIdBytes id_bytes, ParseMigrationId(plan.migration_id));
  plan.migration_id = FormatMigrationId(id_bytes);  // one spelling for directory names
  // One Prepare at a time: the slot count and the name checks must still
  // hold when the move is registered.
  base::MutexLock prepare_lock(prepare_mu_);
  // Leftovers of an aborted move in the way: the fault that kept them may be
  // gone, so their removal is retried now rather than at its next turn.
  const std::map<std::string, std::string> in_the_way = RetryCleanUpsInTheWay(plan);
  RETURN_IF_ERROR(Preflight(plan, peer, in_the_way));

  auto move = std::make_shared<Move>();
  move->id = plan.migration_id;
  move->name = plan.vm_name;
  move->dir = IncomingRoot() + "/" + move->id;
  move->plan = plan;
  move->source_fingerprint = caller.tls.fingerprint;
  // Held until the move is adopted or cleaned up (Create refuses the name).
  RETURN_IF_ERROR(vms_.incoming().ReserveName(move->name));
  std::error_code ec;
  auto undo = [&](const base::Error& e) -> base::Error {
    std::filesystem::remove_all(move->dir, ec);
    vms_.incoming().ReleaseName(move->name);
    base::LogWarning("incoming move " + move->id + " of vm " + move->name + " from " + peer.text +
                     ": " + e.message());
    return e;
  };
  if (::mkdir(move->dir.c_str(), 0700) != 0) {
    base::Error e = base::ErrnoError("create " + move->dir);
    vms_.incoming().ReleaseName(move->name);  // the directory is not ours to remove
    return e;
  }
  if (auto st =
          WriteIncomingFiles(move->dir, plan, HostPeerTrust(options_.host, caller.tls.fingerprint));
      !st)
    return undo(st.error());

  LaunchSpec spec;
  spec.worker_binary = options_.worker_binary;
  spec.vm_dir = move->dir;
  spec.control_socket = move->dir + "/control.sock";
  spec.log_path = move->dir + "/worker.log";
  spec.exit_record_path = move->dir + "/" + kWorkerExitFile;
  spec.error_path = move->dir + "/worker.error";
  spec.incoming_host = AddressText(caller.local);
  spec.migration_id = move->id;
  auto launched = LaunchWorker(spec, options_.worker_ready_timeout_ms);
  if (!launched) return undo(launched.error().Wrap("start the incoming worker"));
  if (launched->port == 0) {
    // Useless without a port: kill it and collect it. A failed kill means it
    // exited already, and the reap then only frees its zombie; the error
    // returned says what went wrong.
    (void)PidfdSignal(launched->pidfd.get(), SIGKILL);
    (void)PidfdReap(launched->pidfd.get(), /*nohang=*/false);
    return undo(base::Error(base::Code::kInternal, "the incoming worker reported no data port"));
  }
  move->pid = launched->pid;
  move->pidfd = std::move(launched->pidfd);
  move->is_child = true;
  if (auto st = WriteRecord(*move, "running", ""); !st) base::LogWarning(st.error().ToString());
  {
    base::MutexLock lock(mu_);
    moves_[move->id] = move;
  }
  PrepareReply reply;
  reply.keeps_paused = plan.paused;
  reply.data_host = spec.incoming_host;
  reply.data_port = launched->port;
  base::LogInfo("incoming move " + move->id + " of vm " + move->name + " from " + peer.text +
                " for " + admin + ": worker pid " + std::to_string(move->pid) + " listening on " +
                reply.data_host + ":" + std::to_string(reply.data_port));
  return ToJson(reply);
}

}  // namespace appliance
