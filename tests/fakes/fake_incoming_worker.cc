// A stand-in for an incoming ferry-vmm (--incoming HOST --migration-id ID)
// without KVM, so PeerService's launch, adopt and clean-up paths are
// unit-tested deterministically. It listens for "data" on an ephemeral port
// of HOST and writes "ready <port>". Each data connection sends one byte:
//   'c'  commit: write the "committed" marker, then run as the VM
//   'e'  commit, then exit at once (the VM crashed right after committing)
//   'x'  fail: exit without committing (exit record "failed")
// Control requests: status; stop; live-move abort (before a commit: replies
// phase "failed" and exits; after: replies phase "completed" and runs on).
// FAKE_INCOMING_MODE=ignore-abort makes it refuse aborts (ferryd must kill it).
#include <poll.h>
#include <unistd.h>

#include <csignal>
#include <iostream>

#include "fakes/fake_worker_util.h"
#include "ipc/vm_dir_files.h"
#include "protocol/live_move_types.h"
#include "transport/tcp.h"

using namespace appliance;
using fake::WriteExitRecord;

namespace {

std::string PhaseJson(const WorkerArgs& args, LiveMovePhase phase) {
  LiveMoveStatus status;
  status.migration_id = args.migration_id;
  status.phase = phase;
  return ToJson(status).dump();
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  auto args = ParseWorkerArgs(std::vector<std::string>(argv + 1, argv + argc));
  if (!args || args->incoming_host.empty()) {
    std::cerr << "fake-incoming-worker: " << (args ? "--incoming missing" : args.error().message())
              << "\n";
    return 2;
  }
  const std::string mode = fake::EnvOrEmpty("FAKE_INCOMING_MODE");
  auto control = ListenUnix(args->control_socket);
  auto data = transport::TcpListener::Bind(args->incoming_host, 0);
  if (!control || !data) {
    WriteExitRecord(*args, "startup-failed", "internal",
                    !control ? control.error().message() : data.error().message());
    return kWorkerExitStartupFailed;
  }
  if (args->ready_fd >= 0) {
    (void)WriteLine(args->ready_fd, "ready " + std::to_string(data->port()));
    ::close(args->ready_fd);
  }
  bool committed = false;
  auto commit = [&] {
    committed = true;
    (void)base::WriteFileAtomically(args->vm_dir + "/" + kCommittedMarker, "");
  };
  for (;;) {
    pollfd fds[2] = {{control->get(), POLLIN, 0}, {data->fd(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents & POLLIN) {
      auto conn = data->Accept(-1, 1000);
      if (conn) {
        char c = 0;
        if (::read(conn->first.get(), &c, 1) == 1) {
          if (c == 'c') commit();
          if (c == 'e') {
            commit();
            WriteExitRecord(*args, "failed", "internal", "fake crash after commit");
            return kWorkerExitVmFailed;
          }
          if (c == 'x') {
            WriteExitRecord(*args, "failed", "data-loss", "fake stream failure");
            return kWorkerExitVmFailed;
          }
        }
      }
    }
    if (!(fds[0].revents & POLLIN)) continue;
    auto request = fake::AcceptRequest(control->get());
    if (!request) continue;
    const base::Fd& conn = request->conn;
    WorkerReply reply;
    reply.pid = ::getpid();
    reply.state = committed ? "running" : "incoming";
    switch (request->request.op) {
      case WorkerOp::kLiveMove:
        if (mode == "ignore-abort") {
          (void)WriteLine(conn.get(),
                          EncodeReply(base::Error(base::Code::kInternal, "fake: ignoring")));
          continue;
        }
        if (committed) {
          reply.live_move = PhaseJson(*args, LiveMovePhase::kCompleted);
          (void)WriteLine(conn.get(), EncodeReply(reply));
          continue;
        }
        reply.live_move = PhaseJson(*args, LiveMovePhase::kFailed);
        (void)WriteLine(conn.get(), EncodeReply(reply));
        WriteExitRecord(*args, "failed", "aborted", "fake: aborted on request");
        return kWorkerExitVmFailed;
      case WorkerOp::kStop:
        reply.state = "stopped";
        (void)WriteLine(conn.get(), EncodeReply(reply));
        WriteExitRecord(*args, "stopped");
        return 0;
      default: (void)WriteLine(conn.get(), EncodeReply(reply)); continue;
    }
  }
}
