// A stand-in for ferry-vmm that speaks the real control protocol without KVM,
// so VmService's supervision (start, stop, pause, save, restore, crash,
// re-attach) is unit-tested deterministically. FAKE_WORKER_MODE picks a
// behaviour:
//   (unset)          serve until stop or save; save writes "fake-state\n" to the path
//   startup-fail     exit 2 with an exit record (code from FAKE_WORKER_CODE)
//   exit-silently    exit 7 before ready, leaving no record
//   corrupt-check    with --restore: fail with data-loss unless the file says "fake-state"
//   power-off-on-stop  on "stop", exit as if the guest powered off (record "powered-off")
#include <unistd.h>

#include <csignal>
#include <iostream>

#include "fakes/fake_worker_util.h"

using namespace appliance;
using fake::WriteExitRecord;

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  auto args = ParseWorkerArgs(std::vector<std::string>(argv + 1, argv + argc));
  if (!args) {
    std::cerr << "fake-worker: " << args.error().message() << "\n";
    return 2;
  }
  const std::string mode = fake::EnvOrEmpty("FAKE_WORKER_MODE");
  if (mode == "startup-fail") {
    const std::string code = fake::EnvOrEmpty("FAKE_WORKER_CODE");
    WriteExitRecord(*args, "startup-failed", code.empty() ? "internal" : code,
                    "fake start-up failure");
    return kWorkerExitStartupFailed;
  }
  if (mode == "exit-silently") return 7;
  if (!args->restore_path.empty()) {
    auto text = base::ReadFileToString(args->restore_path);
    if (!text || *text != "fake-state\n") {
      WriteExitRecord(*args, "startup-failed", "data-loss", "state file checksum mismatch");
      return kWorkerExitStartupFailed;
    }
  }
  auto listen = ListenUnix(args->control_socket);
  if (!listen) {
    WriteExitRecord(*args, "startup-failed", "internal", listen.error().message());
    return kWorkerExitStartupFailed;
  }
  if (args->ready_fd >= 0) {
    (void)WriteLine(args->ready_fd, "ready");
    ::close(args->ready_fd);
  }
  std::string state = "running";
  for (;;) {
    auto request = fake::AcceptRequest(listen->get());
    if (!request) continue;
    const base::Fd& conn = request->conn;
    WorkerReply reply;
    reply.pid = ::getpid();
    switch (request->request.op) {
      case WorkerOp::kStatus: break;
      case WorkerOp::kPause: state = "paused"; break;
      case WorkerOp::kResume: state = "running"; break;
      case WorkerOp::kStop:
        reply.state = "stopped";
        (void)WriteLine(conn.get(), EncodeReply(reply));
        ::unlink(args->control_socket.c_str());
        WriteExitRecord(*args, mode == "power-off-on-stop" ? "powered-off" : "stopped");
        return 0;
      case WorkerOp::kMove:        // no disks here either
      case WorkerOp::kLiveMove:    // nor memory to move
      case WorkerOp::kCheckpoint:  // no disks here: refused like a worker without them
        (void)WriteLine(conn.get(), EncodeReply(base::Error(base::Code::kUnimplemented,
                                                            "fake worker: no disks")));
        continue;
      case WorkerOp::kSave: {
        if (auto st = base::WriteFileAtomically(request->request.path, "fake-state\n"); !st) {
          (void)WriteLine(conn.get(), EncodeReply(st.error()));
          continue;
        }
        reply.state = "saved";
        (void)WriteLine(conn.get(), EncodeReply(reply));
        ::unlink(args->control_socket.c_str());
        WriteExitRecord(*args, "saved");
        return 0;
      }
    }
    reply.state = state;
    (void)WriteLine(conn.get(), EncodeReply(reply));
  }
}
