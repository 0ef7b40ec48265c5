// Starts a ferry-vmm worker for one VM and waits until it is ready.
//
// The worker runs in its own session (setsid), so a signal to ferryd's
// process group or terminal never reaches it, with stdout and stderr appended
// to <vm dir>/worker.log. Readiness is an event, not a poll: the worker
// inherits the write end of a pipe as fd 3 (--ready-fd 3) and writes "ready\n"
// once its VM runs and its control socket listens (an incoming worker of a
// live move writes "ready <port>\n": where it listens for the data streams). If it exits first, the
// pipe reads end-of-file and the launcher reaps it and returns its reason,
// taken from worker.exit (or worker.error, or its exit status).
#pragma once

#include <cstdint>
#include <string>

#include "base/fd.h"
#include "base/result.h"
#include "ipc/worker_protocol.h"

namespace appliance {

struct LaunchSpec {
  std::string worker_binary;  // path of ferry-vmm
  std::string vm_dir;
  std::string control_socket;
  std::string restore_path;      // empty: a fresh boot
  std::string log_path;          // worker.log
  std::string exit_record_path;  // worker.exit, read when start-up fails
  std::string error_path;        // worker.error, the fallback reason
  // Non-empty: a live move's incoming worker (--incoming HOST --migration-id ID).
  std::string incoming_host;
  std::string migration_id;
};

struct LaunchedWorker {
  int64_t pid = 0;
  base::Fd pidfd;
  uint16_t port = 0;  // from "ready <port>"; 0 for a plain "ready"
};

// On failure the worker has been reaped and the Error carries its reason with
// the code it reported (kDataLoss for a corrupt state file, ...).
base::Result<LaunchedWorker> LaunchWorker(const LaunchSpec& spec, int timeout_ms);

// The exit record at path if it exists and was written by pid; kNotFound otherwise.
base::Result<WorkerExitRecord> ReadExitRecord(const std::string& path, int64_t pid);

}  // namespace appliance
