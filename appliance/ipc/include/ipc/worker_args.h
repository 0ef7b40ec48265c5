// ferry-vmm's command line, shared by the worker and the tests' fake worker.
//   ferry-vmm --vm-dir DIR --control-socket PATH [--restore STATEFILE] [--ready-fd N]
//   ferry-vmm --vm-dir DIR --control-socket PATH --incoming HOST --migration-id ID [--ready-fd N]
// --incoming: the destination of a live move (docs/live_move.md): the worker
// builds an incoming machine, listens for the source's data streams on an
// ephemeral port of HOST and writes "ready <port>\n" to the ready fd.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"

namespace appliance {

struct WorkerArgs {
  std::string vm_dir;
  std::string control_socket;
  std::string restore_path;   // empty: boot fresh
  int ready_fd = -1;          // receives "ready\n" once the VM runs; -1: none
  std::string incoming_host;  // non-empty: a live move's destination (listen here)
  std::string migration_id;   // with incoming_host
};

// args excludes argv[0].
base::Result<WorkerArgs> ParseWorkerArgs(const std::vector<std::string>& args);

}  // namespace appliance
