#include "worker/vm_worker.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>

#include "base/log.h"
#include "checkpoint_worker.h"
#include "common/error_codes.h"
#include "common/unix_socket.h"
#include "config/vm_definition.h"
#include "worker_lifecycle.h"

namespace appliance {
namespace {

// A client gets this long to send its one request line; the control thread
// serves one connection at a time, so a silent client must not hold it.
constexpr int kRequestTimeoutMs = 5000;

}  // namespace

VmWorker::VmWorker(WorkerArgs args, std::unique_ptr<vm::Machine> machine, base::Fd listen_fd,
                   base::Fd signal_fd, base::EventFd ended, base::EventFd move_event)
    : args_(std::move(args)),
      machine_(std::move(machine)),
      listen_fd_(std::move(listen_fd)),
      signal_fd_(std::move(signal_fd)),
      ended_(std::move(ended)),
      move_event_(std::move(move_event)) {}

VmWorker::~VmWorker() { Shutdown(); }

base::Result<std::unique_ptr<VmWorker>> VmWorker::Open(const WorkerArgs& args,
                                                       const std::string& kvm_device,
                                                       base::Fd signal_fd) {
  if (!args.incoming_host.empty()) return OpenIncoming(args, kvm_device, std::move(signal_fd));
  ASSIGN_OR_RETURN(config::VmDefinition definition,
                   config::LoadVmDefinition(args.vm_dir + "/vm.toml"));
  ASSIGN_OR_RETURN(vm::MachineOptions options, WorkerMachineOptions(definition, args, kvm_device));
  std::unique_ptr<vm::Machine> machine;
  if (args.restore_path.empty()) {
    // The Machine's errors already name the VM and the step that failed.
    ASSIGN_OR_RETURN(machine, vm::Machine::Create(options));
  } else {
    ASSIGN_OR_RETURN(machine, vm::Machine::Restore(options, args.restore_path));
  }
  ASSIGN_OR_RETURN(WorkerFds fds, OpenWorkerFds(args));
  std::unique_ptr<VmWorker> worker(new VmWorker(args, std::move(machine), std::move(fds.listen),
                                                std::move(signal_fd), std::move(fds.ended),
                                                std::move(fds.move_event)));
  // A restored VM comes up paused at the saved point; resuming it is the
  // restore's last step.
  base::Status started =
      args.restore_path.empty() ? worker->machine_->Start() : worker->machine_->Resume();
  if (!started)
    return started.error().Wrap(args.restore_path.empty() ? "start vm" : "resume restored vm");
  worker->StartWatcher();
  return worker;
}

void VmWorker::StartWatcher() {
  {
    base::MutexLock lock(mu_);
    run_generation_ = 1;
  }
  watcher_ = std::thread([this] { Watch(); });
}

void VmWorker::Watch() {
  base::SetThreadName("vm-watch");
  for (;;) {
    uint64_t generation;
    {
      base::MutexLock lock(mu_);
      if (stopping_) return;
      generation = run_generation_;
    }
    // Bounded so that a stop request is noticed even if the VM keeps running.
    vm::RunState state = machine_->WaitWhileRunning(500);
    if (state == vm::RunState::kPoweredOff || state == vm::RunState::kFailed) {
      // eventfd: fails only at counter overflow, readable then anyway.
      (void)ended_.Signal();
      return;
    }
    if (state == vm::RunState::kRunning) continue;
    // Paused: nothing can end the VM until the control thread resumes it.
    base::MutexLock lock(mu_);
    while (!stopping_ && run_generation_ == generation) cv_.Wait(mu_);
  }
}

void VmWorker::BumpRunGeneration() {
  base::MutexLock lock(mu_);
  ++run_generation_;
  cv_.NotifyAll();
}

void VmWorker::StopWatcher() {
  {
    base::MutexLock lock(mu_);
    stopping_ = true;
    cv_.NotifyAll();
  }
  if (watcher_.joinable()) watcher_.join();
}

void VmWorker::Shutdown() {
  if (!machine_) return;
  AbortMove("the vm is stopping");
  AbortLiveMove("the vm is stopping");
  AbortIncoming("the vm is stopping");
  // Pausing first makes the watcher's wait return at once; if it fails,
  // the wait still returns within its bound and Shutdown stops the vCPUs.
  (void)machine_->Pause();
  StopWatcher();
  machine_->Shutdown();
  machine_.reset();
  ::unlink(args_.control_socket.c_str());
}

WorkerReply VmWorker::Status(std::string state) const {
  WorkerReply r;
  r.state = std::move(state);
  r.pid = ::getpid();
  vm::MachineStats s = machine_->stats();
  r.stats.memory_bytes = s.memory_bytes;
  r.stats.disk_reads = s.disk_reads;
  r.stats.disk_writes = s.disk_writes;
  r.stats.disk_flushes = s.disk_flushes;
  r.stats.exits = s.exits;
  for (const vm::DiskStats& d : s.disks) {
    r.stats.disks.push_back({d.reads, d.writes, d.flushes, d.read_errors, d.write_errors,
                             d.flush_errors, d.first_error, d.first_error_unix_ms});
  }
  return r;
}

VmWorker::Outcome VmWorker::Execute(const WorkerRequest& request) {
  if (incoming_) return ExecuteIncoming(request);
  // While a live move runs, the move alone decides when the vCPUs run: a
  // resume during the switchover could run the VM here and at the
  // destination at once. After the commit (the worker is about to exit
  // "moved") the VM runs there, and nothing may run or save this copy.
  const bool moved_away = live_source_ && live_source_->committed();
  if (live_source_ && (live_source_->running() || moved_away) &&
      (request.op == WorkerOp::kPause || request.op == WorkerOp::kResume ||
       request.op == WorkerOp::kSave || request.op == WorkerOp::kCheckpoint ||
       request.op == WorkerOp::kMove))
    return {base::Error(base::Code::kFailedPrecondition,
                        moved_away ? "the vm moved to " + live_move_host_ + ": " +
                                         std::string(ToString(request.op)) + " it there"
                                   : std::string("a live move of this vm is running: ") +
                                         std::string(ToString(request.op)) +
                                         " must wait until it ends (or abort the move)"),
            std::nullopt};
  auto current = [&] { return Status(std::string(vm::ToString(machine_->state()))); };
  switch (request.op) {
    case WorkerOp::kStatus: return {current(), std::nullopt};
    case WorkerOp::kPause:
      if (auto st = machine_->Pause(); !st) return {st.error(), std::nullopt};
      return {current(), std::nullopt};
    case WorkerOp::kResume: {
      auto st = machine_->Resume();
      BumpRunGeneration();
      if (!st) return {st.error(), std::nullopt};
      return {current(), std::nullopt};
    }
    case WorkerOp::kStop: {
      // A stop aborts a live move; if the move had already committed, the
      // VM lives at the destination and this worker ends as "moved".
      AbortLiveMove("the vm is stopping");
      if (std::optional<WorkerExitRecord> moved = OnLiveMoveEvent())
        return {Status("moved"), moved};
      return {Status("stopped"), WorkerExit("stopped")};
    }
    case WorkerOp::kMove: return ExecuteMove(request);
    case WorkerOp::kLiveMove: return ExecuteLiveMove(request);
    case WorkerOp::kCheckpoint: {
      auto pause = [&] { return machine_->Pause(); };
      auto resume = [&] {
        base::Status st = machine_->Resume();
        BumpRunGeneration();
        return st;
      };
      if (auto st = ExecuteCheckpointAction(*machine_, request.checkpoint, pause, resume); !st)
        return {st.error(), std::nullopt};
      return {current(), std::nullopt};
    }
    case WorkerOp::kSave: {
      AbortMove("the vm is being saved");
      AbortLiveMove("the vm is being saved");
      const bool was_running = machine_->state() == vm::RunState::kRunning;
      if (auto st = machine_->Pause(); !st)
        return {st.error().Wrap("pause for save"), std::nullopt};
      auto saved = machine_->SaveState(request.path);
      if (!saved) {
        // A failed save must not cost the VM: it goes on as it was.
        if (was_running) {
          if (auto st = machine_->Resume(); !st)
            base::LogError("resume after a failed save: " + st.error().ToString());
          BumpRunGeneration();
        }
        return {saved.error().Wrap("save state to " + request.path), std::nullopt};
      }
      WorkerExitRecord exit = WorkerExit("saved");
      exit.saved_path = request.path;
      return {Status("saved"), exit};
    }
  }
  return {base::Error(base::Code::kInvalidArgument, "unknown request"), std::nullopt};
}

std::optional<WorkerExitRecord> VmWorker::ServeConnection(int fd) {
  auto line = ReadLine(fd, kMaxWorkerLine, kRequestTimeoutMs, "a control request");
  if (!line) {
    base::LogWarning("control connection: " + line.error().ToString());
    return std::nullopt;
  }
  auto request = DecodeRequest(*line);
  if (!request) {
    if (auto st = WriteLine(fd, EncodeReply(request.error())); !st)
      base::LogWarning("control reply not delivered: " + st.error().ToString());
    return std::nullopt;
  }
  base::LogInfo(std::string("control request: ") + std::string(ToString(request->op)));
  Outcome outcome = Execute(*request);
  // The reply goes out before the worker exits, so ferryd knows a save
  // succeeded even though the connection then closes.
  if (auto st = WriteLine(fd, EncodeReply(outcome.reply)); !st)
    base::LogWarning("control reply not delivered: " + st.error().ToString());
  return outcome.exit;
}

WorkerExitRecord VmWorker::Run() {
  if (args_.ready_fd >= 0) {
    // A parent that stopped reading the ready pipe learns the state from
    // the control socket instead.
    if (auto st = WriteLine(args_.ready_fd, ready_line_); !st)
      base::LogWarning("ready line not delivered: " + st.error().ToString());
    ::close(args_.ready_fd);
    args_.ready_fd = -1;
  }
  for (;;) {
    pollfd fds[4] = {{listen_fd_.get(), POLLIN, 0},
                     {ended_.fd(), POLLIN, 0},
                     {move_event_.fd(), POLLIN, 0},
                     {signal_fd_.get(), POLLIN, 0}};
    int r = ::poll(fds, signal_fd_.valid() ? 4 : 3, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      base::Error e = base::ErrnoError("poll control socket");
      Shutdown();
      return WorkerExit("failed", std::string(base::CodeName(e.code())), e.message());
    }
    if (fds[1].revents & POLLIN) {
      vm::RunState state = machine_->state();
      std::string failure = machine_->failure();
      Shutdown();
      if (state == vm::RunState::kPoweredOff) return WorkerExit("powered-off");
      return WorkerExit("failed", "internal", failure.empty() ? "the vm failed" : failure);
    }
    if (fds[2].revents & POLLIN) {
      // Only clears the wake-up: the handlers below look at the moves
      // themselves, and a spurious EAGAIN changes nothing.
      (void)move_event_.Consume();
      std::optional<WorkerExitRecord> exit = OnIncomingEvent();
      if (!exit) exit = OnLiveMoveEvent();
      if (exit) {
        Shutdown();
        return *exit;
      }
    }
    if (signal_fd_.valid() && (fds[3].revents & POLLIN)) {
      signalfd_siginfo info{};
      ssize_t n = ::read(signal_fd_.get(), &info, sizeof info);
      int sig = n == sizeof info ? int(info.ssi_signo) : SIGTERM;
      base::LogInfo("stopping on signal " + std::to_string(sig));
      Shutdown();
      WorkerExitRecord exit = WorkerExit("stopped");
      exit.message = "stopped by signal " + std::to_string(sig);
      return exit;
    }
    if (fds[0].revents & POLLIN) {
      int client = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      base::Fd conn(client);
      if (std::optional<WorkerExitRecord> exit = ServeConnection(conn.get())) {
        conn.Reset();
        Shutdown();
        return *exit;
      }
    }
  }
}

namespace {

void WriteFailure(const WorkerArgs& args, const base::Error& error,
                  const WorkerExitRecord& record) {
  std::cerr << "ferry-vmm: " << error.message() << "\n";
  if (args.vm_dir.empty()) return;
  // Without these files ferryd still sees the exit status; say why they
  // are missing.
  if (auto st = base::WriteFileAtomically(args.vm_dir + "/worker.error", error.message() + "\n");
      !st)
    base::LogWarning("write worker.error: " + st.error().ToString());
  if (auto st = base::WriteFileAtomically(args.vm_dir + "/worker.exit", EncodeExitRecord(record));
      !st)
    base::LogWarning("write worker.exit: " + st.error().ToString());
}

}  // namespace

int WorkerMain(int argc, char** argv) {
  base::SetThreadName("ferry-vmm");
  // ferryd may restart or vanish; neither its socket closing nor its session
  // ending may stop the VM.
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGHUP, SIG_IGN);
  // Blocked before any thread exists, so every thread inherits the mask and
  // the signals reach the control thread's signalfd only.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto parsed = ParseWorkerArgs(std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed) {
    std::cerr << "ferry-vmm: " << parsed.error().message()
              << "\nusage: ferry-vmm --vm-dir DIR --control-socket PATH [--restore STATEFILE] "
                 "[--ready-fd N]\n";
    return kWorkerExitStartupFailed;
  }
  WorkerArgs args = *parsed;
  if (args.ready_fd >= 0 && ::fcntl(args.ready_fd, F_SETFD, FD_CLOEXEC) != 0) {
    std::cerr << "ferry-vmm: --ready-fd " << args.ready_fd << " is not an open file descriptor\n";
    return kWorkerExitStartupFailed;
  }
  const char* kvm_env = std::getenv("FERRY_KVM_DEVICE");
  std::string kvm_device = kvm_env != nullptr && *kvm_env != '\0' ? kvm_env : "/dev/kvm";

  base::Fd signal_fd(::signalfd(-1, &stop_signals, SFD_CLOEXEC));
  auto worker = signal_fd.valid()
                    ? VmWorker::Open(args, kvm_device, std::move(signal_fd))
                    : base::Result<std::unique_ptr<VmWorker>>(base::ErrnoError("signalfd"));
  if (!worker) {
    const base::Error& e = worker.error();
    WriteFailure(args, e,
                 WorkerExit("startup-failed", std::string(base::CodeName(e.code())), e.message()));
    return kWorkerExitStartupFailed;  // the ready pipe closes with us: ferryd reads EOF
  }
  base::LogInfo("vm running; control socket " + args.control_socket);
  WorkerExitRecord exit = (*worker)->Run();
  worker->reset();
  base::LogInfo("worker exiting: vm " + exit.state +
                (exit.message.empty() ? "" : ": " + exit.message));
  if (exit.state == "failed") {
    WriteFailure(args, base::Error(CodeFromName(exit.code), exit.message), exit);
    return kWorkerExitVmFailed;
  }
  if (auto st = base::WriteFileAtomically(args.vm_dir + "/worker.exit", EncodeExitRecord(exit));
      !st)
    base::LogWarning("write worker.exit: " + st.error().ToString());
  return kWorkerExitOk;
}

}  // namespace appliance
