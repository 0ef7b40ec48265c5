// ferry-vmm's command line, shared by the worker and the tests' fake worker.
//   ferry-vmm --vm-dir DIR --control-socket PATH [--restore STATEFILE] [--ready-fd N]
#pragma once

#include <string>
#include <vector>

#include "base/result.h"

namespace appliance {

struct WorkerArgs {
  std::string vm_dir;
  std::string control_socket;
  std::string restore_path;  // empty: boot fresh
  int ready_fd = -1;         // receives "ready\n" once the VM runs; -1: none
};

// args excludes argv[0].
base::Result<WorkerArgs> ParseWorkerArgs(const std::vector<std::string>& args);

}  // namespace appliance
