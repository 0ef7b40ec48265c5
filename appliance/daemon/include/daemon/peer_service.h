// PeerService: the destination ferryd's side of live moves
// (docs/live_move.md, "Destination ferryd"). Listens on every host.toml
// listen_addresses entry (none configured: no listener, and moves into this
// host are impossible) for control connections from source ferryds and
// source workers: hello (role control), one request frame, one reply frame,
// close. Requests (move_protocol.h):
//   Prepare     -> pre-flight (every failed check reported in one error),
//                  then <storage_root>/incoming/<id>/ (vm.toml,
//                  incoming.json) and an incoming worker (ferry-vmm
//                  --incoming) listening on the address the connection
//                  arrived at; replies PrepareReply {data_host, data_port}.
//   StatusQuery -> committed | aborted | unknown. A source asks only after
//                  losing its streams, so a move that has not committed is
//                  first made unable to commit (the worker is told to abort,
//                  then killed), then reported aborted.
//   Abort       -> the same, then the incoming directory and every
//                  destination file the plan lists are removed (below).
// When an incoming worker commits (marker "committed" in its directory) the
// VM is adopted into VmService (incoming/<id> becomes vms/<name>; a symlink
// at incoming/<id> keeps the running worker's --vm-dir paths valid until it
// exits). A worker that exits without committing is cleaned up like an
// Abort. Start does the same for what a previous ferryd left in incoming/.
//
// Clean-up of a move that did not commit removes exactly the destination
// files its plan lists (never one a VM of this host uses or a running
// incoming move plans), then its incoming directory. When a removal fails (a
// read-only or immutable destination) the directory stays, with its plan
// and a "cleanup-pending" marker naming what is left, and the monitor tries
// again with back-off (cleanup_retry_min_ms doubling up to
// cleanup_retry_max_ms), as does every ferryd start and every Prepare whose
// files are in the way; the name is free meanwhile and Status says aborted.
//
// Every move's outcome is recorded in <storage_root>/incoming-records/<id>.json
// ({"migration_id","vm_name","state","pid","message"}) so a Status query
// after the incoming directory is gone, or after a ferryd restart, still
// gets the right answer.
//
// Every connection that does not open properly (garbage, an HTTP request, a
// bad CRC, a length over the hello limit, no whole hello in time) gets the
// protocol's error frame naming the problem, then is closed
// (transport::ServerHello); at most max_connections are served at once.
//
// Threads: one "peer-accept" thread per listener; one thread per connection;
// one "peer-monitor" thread that watches the incoming workers' pidfds and
// polls their commit markers every poll_interval_ms. Per move, an op mutex
// serializes Status, Abort and the monitor's adopt/clean-up.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/event_fd.h"
#include "base/fd.h"
#include "base/mutex.h"
#include "base/result.h"
#include "config/host_settings.h"
#include "daemon/host_cpu.h"
#include "daemon/move_authorizer.h"
#include "daemon/vm_service.h"
#include "protocol/move_protocol.h"
#include "transport/tcp.h"
#include "transport/tls.h"

namespace appliance {

class PeerService {
 public:
  struct Options {
    config::HostSettings host;  // listen_addresses, migration.*, storage_root
    std::string worker_binary;  // ferry-vmm
    std::string kvm_device = "/dev/kvm";
    // Every connection is TLS with this identity; null when [tls] trusts
    // nobody: every connection is then refused, saying so.
    std::shared_ptr<const transport::TlsContext> tls;
    // Checks the admin behind each Prepare (migration.authentication);
    // null: the peer's certificate is enough (certificate mode).
    std::shared_ptr<const MoveAuthorizer> authorizer;
    // What this host's CPU offers; unset: ReadHostCpu(kvm_device) at Start
    // (tests set it).
    std::optional<HostCpu> host_cpu;
    int worker_ready_timeout_ms = 30000;  // Prepare waits this long for the incoming worker
    // A connection must deliver its whole hello within this (an idle or
    // trickling peer is refused with an error frame), then its request and
    // take our reply within io_timeout_ms each.
    int hello_timeout_ms = 10000;
    int io_timeout_ms = 30000;
    // Control connections served at once (one thread each); one more is
    // answered with a kResourceExhausted error frame and closed at once.
    size_t max_connections = 64;
    int poll_interval_ms = 200;         // commit markers
    int worker_call_timeout_ms = 5000;  // asking an incoming worker to abort
    // A failed clean-up is tried again after min, then twice as long each
    // time, at most max apart.
    int cleanup_retry_min_ms = 2000;
    int cleanup_retry_max_ms = 60000;
  };

  // Recovers incoming/ (adopt, re-watch or clean up), then starts the
  // listeners. vms must outlive the service. Errors name the listen address
  // that could not be bound.
  static base::Result<std::unique_ptr<PeerService>> Start(VmService& vms, Options options);
  // Stops listening and joins every thread. Incoming workers keep running
  // (a restarted ferryd finds them in incoming/).
  ~PeerService();

  // The bound listeners as "host" and port, in listen_addresses order (a
  // configured port 0 shows the port the kernel picked; tests use that).
  std::vector<std::pair<std::string, uint16_t>> listening() const;

  // The names of Prepare's pre-flight checks, in the order they run (the
  // list in docs/live_move.md, "Destination ferryd").
  static std::vector<std::string> PreflightCheckNames();

 private:
  enum class MoveState {
    kRunning = 1,
    kAdopted = 2,
    kEnded = 3,
    kCleanupPending = 4,  // aborted, worker gone, some files not removed yet
  };
  // What a failed clean-up still has to do; also in <dir>/cleanup-pending.
  struct PendingCleanUp {
    std::vector<std::string> files;  // plan files still to remove
    std::string reason;              // why the move was aborted
    std::string error;               // the last attempt's failures
    uint32_t attempts = 0;
    int backoff_ms = 0;
    uint64_t next_try_ns = 0;  // monotonic
  };
  struct Move {
    std::string id;
    std::string name;
    std::string dir;  // <storage_root>/incoming/<id>
    PrepareRequest plan;
    // The certificate of the host that sent the Prepare: only it may ask
    // about or abort this move (set before the move is visible; then fixed).
    std::string source_fingerprint;
    int64_t pid = 0;
    base::Fd pidfd;                         // set before the move is visible; closed with the Move
    bool is_child = false;                  // launched by this ferryd (only then can it be reaped)
    base::Mutex op_mu;                      // held for a whole Status/Abort/adopt/clean-up
    bool exited GUARDED_BY(op_mu) = false;  // the worker has exited (and was reaped)
    bool adopt_failed_logged GUARDED_BY(op_mu) = false;
    PendingCleanUp cleanup GUARDED_BY(op_mu);  // used in kCleanupPending
    std::atomic<MoveState> state{MoveState::kRunning};
  };
  struct Connection {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  PeerService(VmService& vms, Options options, base::EventFd stop);

  // peer_service.cc: listeners and connections.
  void AcceptLoop(transport::TcpListener* listener);
  void ServeConnection(base::Fd socket, transport::PeerAddress peer);
  // The TLS handshake of a new connection: the session, or nullptr after
  // the refusal was logged (and, for a plaintext ferry peer, answered).
  std::unique_ptr<transport::TlsSession> Handshake(int socket, const transport::PeerAddress& peer);
  // Who is asking: the connection's address and its certificate.
  struct Caller {
    const transport::PeerAddress& address;
    const transport::PeerAddress& local;
    const transport::TlsPeer& tls;  // the certificate and channel it came with
  };
  base::Result<std::pair<MoveFrame, nlohmann::json>> Dispatch(uint16_t type,
                                                              const nlohmann::json& request,
                                                              const Caller& caller);
  void ReapConnections(bool all);
  // Over max_connections: an error frame, then close.
  void RefuseBusy(base::Fd socket, const transport::PeerAddress& peer) REQUIRES(conn_mu_);

  // peer_service_prepare.cc: pre-flight, then the incoming directory and worker.
  base::Result<nlohmann::json> Prepare(const nlohmann::json& request, const Caller& caller);
  // The admin the caller's Prepare is for (options_.authorizer), or why not.
  base::Result<std::string> AuthorizeAdmin(const nlohmann::json& request,
                                           const Caller& caller) const;

  // peer_service_preflight.cc: Prepare's pre-flight, a table of named checks.
  // Runs every check in order and reports every failure in one error, the
  // code chosen by the caller's next step: kPermissionDenied as soon as an
  // access check fails (the peer learns nothing more), kResourceExhausted
  // when only slot checks failed (retry later), else kFailedPrecondition.
  // in_the_way: destination files of the request left over by an aborted
  // move whose clean-up still fails, with the refusal to give for each.
  base::Status Preflight(const PrepareRequest& request, const transport::PeerAddress& peer,
                         const std::map<std::string, std::string>& in_the_way);
  struct PreflightInput {
    const PrepareRequest& request;
    const transport::PeerAddress& peer;
    const std::map<std::string, std::string>& in_the_way;
  };
  enum class PreflightKind {
    kPlain = 1,
    kAccess = 2,  // a failure ends the pre-flight at once
    kSlot = 3,    // alone, its failure says "retry later"
  };
  // A check returns why the move cannot come here (empty: it passes).
  using PreflightFn = std::vector<std::string> (PeerService::*)(const PreflightInput&);
  struct PreflightCheck {
    std::string_view name;  // as in docs/live_move.md
    PreflightFn run;
    PreflightKind kind;
  };
  static std::span<const PreflightCheck> PreflightChecks();
  std::vector<std::string> CheckIncomingEnabled(const PreflightInput& in);
  std::vector<std::string> CheckPeerNetwork(const PreflightInput& in);
  std::vector<std::string> CheckFreeSlot(const PreflightInput& in);
  std::vector<std::string> CheckConfigVersion(const PreflightInput& in);
  std::vector<std::string> CheckVmDefinition(
      const PreflightInput& in);                                   // parses, names the vm, confined
  std::vector<std::string> CheckVmName(const PreflightInput& in);  // valid and free here
  std::vector<std::string> CheckMigrationId(const PreflightInput& in);  // never used here
  std::vector<std::string> CheckCpu(const PreflightInput& in);
  std::vector<std::string> CheckMemory(const PreflightInput& in);
  // Inside migration.incoming_directories, and every file inside it.
  std::vector<std::string> CheckDestinationAllowed(const PreflightInput& in);
  std::vector<std::string> CheckDestinationPath(const PreflightInput& in);
  std::vector<std::string> CheckFilesUnplanned(
      const PreflightInput& in);  // by another incoming move
  std::vector<std::string> CheckFilesAbsent(const PreflightInput& in);

  // peer_service_moves.cc: status, abort, adoption, clean-up, recovery.
  base::Result<nlohmann::json> Status(const nlohmann::json& request, const Caller& caller);
  base::Result<nlohmann::json> Abort(const nlohmann::json& request, const Caller& caller);
  // kPermissionDenied unless the caller is the host that prepared migration
  // id (its move, or the record a finished move left).
  base::Status CheckMoveOwner(const std::string& id, const Move* move, const Caller& caller) const;
  void MonitorLoop();
  void CheckMove(Move& move) REQUIRES(move.op_mu);
  // Makes sure the worker can no longer commit; true if it committed.
  base::Result<bool> EndWorker(Move& move, const std::string& reason) REQUIRES(move.op_mu);
  void WaitWorkerExit(Move& move, int timeout_ms) REQUIRES(move.op_mu);
  bool Committed(const Move& move) const;
  // Adopts a committed move into VmService; false if that failed (retried).
  bool Adopt(Move& move) REQUIRES(move.op_mu);

  // peer_service_cleanup.cc: removing what a move that did not commit left.
  // Records the move aborted, frees its name, then TryCleanUp.
  void CleanUp(Move& move, const std::string& reason) REQUIRES(move.op_mu);
  // One attempt: true when everything is gone (the move ends); otherwise
  // the move is kCleanupPending with its marker written and a retry due.
  bool TryCleanUp(Move& move) REQUIRES(move.op_mu);
  // For Prepare: retries at once every pending clean-up that holds one of
  // the plan's files, and returns the files still in the way.
  std::map<std::string, std::string> RetryCleanUpsInTheWay(const PrepareRequest& plan);
  // Start: a move whose directory has the marker continues its clean-up.
  bool RecoverPendingCleanUp(const std::shared_ptr<Move>& move);
  void Recover();
  void PruneRecords();  // keeps the newest records of incoming-records/
  void RecoverEntry(const std::string& id);
  std::shared_ptr<Move> FindMove(const std::string& id);
  void Forget(const std::string& id);
  size_t RunningMoves();
  base::Status WriteRecord(const Move& move, const std::string& state, const std::string& message);
  std::optional<nlohmann::json> ReadRecord(const std::string& id) const;
  std::string IncomingRoot() const { return options_.host.storage_root + "/incoming"; }
  std::string RecordsDir() const { return options_.host.storage_root + "/incoming-records"; }

  VmService& vms_;
  Options options_;
  base::Result<HostCpu> host_cpu_;  // read once at Start
  base::EventFd stop_;              // signalled by the destructor; every wait polls it
  base::Mutex prepare_mu_;          // one Prepare at a time: slots and names are counted under it
  base::Mutex mu_;
  std::map<std::string, std::shared_ptr<Move>> moves_ GUARDED_BY(mu_);
  base::Mutex conn_mu_;
  std::list<Connection> connections_ GUARDED_BY(conn_mu_);
  std::vector<std::unique_ptr<transport::TcpListener>> listeners_;
  // Last: started once everything they use exists, joined first.
  std::vector<std::thread> accept_threads_;
  std::thread monitor_thread_;
};

}  // namespace appliance
