// The steps at the start and the end of a ferry-vmm worker's life that its
// two paths share: the ordinary worker (VmWorker::Open, vm_worker.cc) and
// the incoming one of a live move (VmWorker::OpenIncoming,
// vm_worker_incoming.cc).
#pragma once

#include <string>

#include "base/event_fd.h"
#include "base/fd.h"
#include "base/result.h"
#include "config/vm_definition.h"
#include "ipc/worker_args.h"
#include "ipc/worker_protocol.h"
#include "vm/machine.h"

namespace appliance {

// The options to build the worker's machine from `definition`. Opens
// kvm_device first, so that its failure always says "KVM" whichever step of
// building the machine would have met it.
base::Result<vm::MachineOptions> WorkerMachineOptions(const config::VmDefinition& definition,
                                                      const WorkerArgs& args,
                                                      const std::string& kvm_device);

// What a worker listens and waits on besides its signal fd.
struct WorkerFds {
  base::Fd listen;           // the control socket, args.control_socket
  base::EventFd ended;       // the watcher saw the VM power off or fail
  base::EventFd move_event;  // a live move (either side) reached a decision
};
base::Result<WorkerFds> OpenWorkerFds(const WorkerArgs& args);

// This process's exit record (worker.exit): how the worker ended.
WorkerExitRecord WorkerExit(std::string state, std::string code = "", std::string message = "");

}  // namespace appliance
