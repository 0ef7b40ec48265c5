// ferry-vmm's core: one vm::Machine and the control socket ferryd drives it
// through (protocol: worker_protocol.h).
//
// Threads: the control thread (Run) serves one request at a time and is the
// only caller of the Machine's control methods; a "vm-watch" thread waits for
// the guest to power off or fail and wakes the control thread via an EventFd.
// The worker ignores SIGHUP and SIGPIPE so that ferryd going away (its socket
// closing, its session ending) never takes a VM down; SIGTERM and SIGINT stop
// the VM cleanly.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/event_fd.h"
#include "base/fd.h"
#include "base/mutex.h"
#include "engine/live_move_destination.h"
#include "engine/live_move_source.h"
#include "engine/storage_mover.h"
#include "ipc/worker_args.h"
#include "ipc/worker_protocol.h"
#include "vm/machine.h"

namespace appliance {

class VmWorker {
 public:
  // Loads DIR/vm.toml, builds (or restores) the VM, listens on the control
  // socket and starts (or resumes) the VM. signal_fd: a signalfd for SIGTERM
  // and SIGINT, which must be blocked in every thread (block them before
  // calling Open, which creates the vCPU threads).
  static base::Result<std::unique_ptr<VmWorker>> Open(const WorkerArgs& args,
                                                      const std::string& kvm_device,
                                                      base::Fd signal_fd);
  ~VmWorker();

  // Serves requests until the VM ends (power-off, failure, stop, save or a
  // signal) and returns how it ended. The Machine is shut down on return.
  WorkerExitRecord Run();

 private:
  VmWorker(WorkerArgs args, std::unique_ptr<vm::Machine> machine, base::Fd listen_fd,
           base::Fd signal_fd, base::EventFd ended, base::EventFd move_event);
  void Watch();
  void StopWatcher();
  void BumpRunGeneration();
  // The reply to a request, and how the worker ends if the request ends it.
  struct Outcome {
    base::Result<WorkerReply> reply;
    std::optional<WorkerExitRecord> exit;
  };
  // Serves one connection; an exit record means the worker must now exit.
  std::optional<WorkerExitRecord> ServeConnection(int fd);
  Outcome Execute(const WorkerRequest& request);
  // Live storage moves (vm_worker_move.cc).
  Outcome ExecuteMove(const WorkerRequest& request);
  void AbortMove(const std::string& reason);
  // Shared-nothing live moves, source side (vm_worker_live_move.cc): the
  // "live-move" request; on move_event_, an exit record once the
  // destination committed ("moved").
  Outcome ExecuteLiveMove(const WorkerRequest& request);
  std::optional<WorkerExitRecord> OnLiveMoveEvent();
  void AbortLiveMove(const std::string& reason);
  // Incoming side (vm_worker_incoming.cc): Open's path for --incoming; every
  // request while the move is incoming; on move_event_, starts the watcher
  // once the VM runs, or an exit record if the move failed.
  static base::Result<std::unique_ptr<VmWorker>> OpenIncoming(const WorkerArgs& args,
                                                              const std::string& kvm_device,
                                                              base::Fd signal_fd);
  Outcome ExecuteIncoming(const WorkerRequest& request);
  std::optional<WorkerExitRecord> OnIncomingEvent();
  void AbortIncoming(const std::string& reason);
  void StartWatcher();
  WorkerReply Status(std::string state) const;
  // Stops the watcher and the VM; after this only the exit record remains.
  void Shutdown();

  WorkerArgs args_;
  std::unique_ptr<vm::Machine> machine_;
  // Borrows the Machine's disks: aborted (AbortMove) before the Machine
  // shuts down.
  std::unique_ptr<StorageMover> mover_;
  base::Fd listen_fd_;
  base::Fd signal_fd_;
  base::EventFd ended_;  // the watcher saw the VM power off or fail
  // A live move (either side) reached a decision; the control loop asks
  // OnLiveMoveEvent / OnIncomingEvent.
  base::EventFd move_event_;
  std::unique_ptr<LiveMoveSource> live_source_;
  std::string live_move_host_;  // where live_source_'s move goes, for the exit record
  std::unique_ptr<LiveMoveDestination> incoming_;  // set while incoming
  std::string ready_line_ = "ready";               // "ready <port>" for an incoming worker

  base::Mutex mu_;
  base::CondVar cv_;
  uint64_t run_generation_ GUARDED_BY(mu_) = 0;  // bumped on every resume
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread watcher_;
};

// main() of ferry-vmm.
int WorkerMain(int argc, char** argv);

}  // namespace appliance
