// A worker's shared start and end steps (worker_lifecycle.h).
#include "worker_lifecycle.h"

#include <fcntl.h>
#include <unistd.h>

#include "common/unix_socket.h"

namespace appliance {

base::Result<vm::MachineOptions> WorkerMachineOptions(const config::VmDefinition& definition,
                                                      const WorkerArgs& args,
                                                      const std::string& kvm_device) {
  // Checked here as well as in the Machine so the failure always says "KVM".
  if (auto kvm = base::Fd::Open(kvm_device, O_RDWR); !kvm)
    return base::Error(kvm.error().code(), "KVM is not available: " + kvm.error().message());
  vm::MachineOptions options;
  options.definition = definition;
  options.vm_dir = args.vm_dir;
  options.console_path = args.vm_dir + "/console.log";
  options.kvm_device = kvm_device;
  return options;
}

base::Result<WorkerFds> OpenWorkerFds(const WorkerArgs& args) {
  ASSIGN_OR_RETURN(base::Fd listen, ListenUnix(args.control_socket));
  ASSIGN_OR_RETURN(base::EventFd ended, base::EventFd::Create());
  ASSIGN_OR_RETURN(base::EventFd move_event, base::EventFd::Create());
  return WorkerFds{std::move(listen), std::move(ended), std::move(move_event)};
}

WorkerExitRecord WorkerExit(std::string state, std::string code, std::string message) {
  WorkerExitRecord r;
  r.pid = ::getpid();
  r.state = std::move(state);
  r.code = std::move(code);
  r.message = std::move(message);
  return r;
}

}  // namespace appliance
