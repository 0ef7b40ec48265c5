// The control protocol between ferryd and a ferry-vmm worker, and the exit
// record a worker leaves behind.
//
// Transport: the worker's Unix control socket (0600). One request per
// connection: the client sends one JSON object on one line, the worker answers
// with one JSON line and closes. Connection-per-request keeps the worker's
// single control thread simple and lets a restarted ferryd talk to a worker it
// did not start, with no session state to recover.
//
//   request:  {"op":"status"|"pause"|"resume"|"stop"|"save", "path":"/x.fvs"}
//   reply ok: {"ok":true,"state":"running","pid":123,"stats":{...,"disks":[{...}]}}
//             (per disk, in the definition's order: reads, writes, flushes,
//             read_errors, write_errors, flush_errors, first_error,
//             first_error_unix_ms; a worker that predates them sends none)
//   reply error: {"ok":false,"error":{"code":"data-loss","message":"..."}}
//
// "save" pauses the VM, writes the state file and, once the reply is sent,
// the worker exits: a saved VM is off. "stop" replies, then shuts down.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace appliance {

enum class WorkerOp {
  kStatus = 1,
  kPause = 2,
  kResume = 3,
  kStop = 4,
  kSave = 5,
  // {"op":"checkpoint","checkpoint":{"action":...}}: one step of a checkpoint
  // operation on the running disks (worker/src/checkpoint_worker.h).
  kCheckpoint = 20,
  // {"op":"move","move":{"action":"start"|"status"|"abort",...}}: a live
  // storage move run by the worker (storage_mover.h, vm_worker_move.cc).
  kMove = 30,
  // {"op":"live-move","live_move":{"action":"start"|"status"|"abort",...}}:
  // a shared-nothing live move run by the worker (live_move_types.h).
  kLiveMove = 40,
};
std::string_view ToString(WorkerOp op);

struct WorkerRequest {
  WorkerOp op = WorkerOp::kStatus;
  std::string path;  // kSave: where to write the state file
  // Initialised so that WorkerRequest{op, path} stays warning-free.
  std::string checkpoint = {};  // kCheckpoint: the action, a JSON object's text
  std::string move = {};        // kMove: the action, a JSON object's text
  std::string live_move = {};   // kLiveMove: the action, a JSON object's text
};

// vm::DiskStats on the wire: one disk's requests, failures and first failure.
struct WorkerDiskStats {
  uint64_t reads = 0, writes = 0, flushes = 0;
  uint64_t read_errors = 0, write_errors = 0, flush_errors = 0;
  std::string first_error;  // "read at offset 8192 (4096 bytes): <cause>", or ""
  int64_t first_error_unix_ms = 0;
  uint64_t errors() const { return read_errors + write_errors + flush_errors; }
};

struct WorkerStats {
  uint64_t memory_bytes = 0;
  uint64_t disk_reads = 0, disk_writes = 0, disk_flushes = 0;
  uint64_t exits = 0;
  std::vector<WorkerDiskStats> disks = {};
};

struct WorkerReply {
  std::string state;  // vm::RunState name after the request ("running", "paused", ...)
  int64_t pid = 0;    // the worker's pid, so a re-attaching ferryd can check identity
  WorkerStats stats;
  std::string move;            // kMove: the mover's status, a JSON object's text ("" for none)
  std::string live_move = {};  // kLiveMove: LiveMoveStatus JSON text ("" for none)
};

// Requests and replies are small; anything longer is a broken peer.
inline constexpr size_t kMaxWorkerLine = 64 * 1024;

std::string EncodeRequest(const WorkerRequest& request);
base::Result<WorkerRequest> DecodeRequest(std::string_view line);
// An error reply carries the Error's code name and message.
std::string EncodeReply(const base::Result<WorkerReply>& reply);
// A well-formed error reply decodes to that Error; a malformed line is kInternal.
base::Result<WorkerReply> DecodeReply(std::string_view line);

// Sends one request to the worker listening at socket_path and waits at most
// timeout_ms for its reply.
base::Result<WorkerReply> CallWorker(const std::string& socket_path, const WorkerRequest& request,
                                     int timeout_ms);

// Written by the worker to <vm dir>/worker.exit just before it exits, so that
// ferryd learns why it exited even when it is not the worker's parent (after a
// ferryd restart) or was down at the time.
struct WorkerExitRecord {
  int64_t pid = 0;
  // "powered-off", "stopped", "saved", "failed" (guest or VMM failure while
  // running), "startup-failed", or "moved" (a live move committed at the
  // destination: the VM runs there now; ferryd deletes the source files).
  std::string state;
  std::string code;            // base::CodeName of the error, for failures
  std::string message;         // the reason, for failures
  std::string saved_path;      // for "saved"
  std::string live_move = {};  // for "moved": the final LiveMoveStatus, JSON text
};

std::string EncodeExitRecord(const WorkerExitRecord& record);
base::Result<WorkerExitRecord> DecodeExitRecord(std::string_view text, std::string_view source);

// Worker exit statuses: ferryd tells planned exits from failures by these.
inline constexpr int kWorkerExitOk = 0;             // powered off, stopped or saved
inline constexpr int kWorkerExitStartupFailed = 2;  // reason in worker.error / worker.exit
inline constexpr int kWorkerExitVmFailed = 3;       // the VM failed while running

}  // namespace appliance
