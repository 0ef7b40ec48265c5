// LiveMoveDestination: the incoming worker's side of a live move
// (docs/live_move.md). Listens on an ephemeral port of the migration address
// for the source's data streams (hello: role data, this migration id, index,
// count), writes page batches into the incoming machine's memory, layer
// chunks into the backing-layer copies, disk extents into the writable
// layers (the same destination sinks move-storage uses: raw file sink, or a
// fresh qcow2 over the copied chain), and once every stream has ended:
// finishes the sinks, renames the ".part" files into place, completes the
// machine from the device state (vm::Machine::FinishIncoming), writes the
// commit marker "<vm dir>/committed" (atomically, directory synced) — the
// commit point — resumes the VM and sends Committed on stream 0.
//
// Any error before the commit point (a malformed frame, a disk write error
// such as ENOSPC, a stream closed early, the source's Abort) ends the move:
// a kError frame goes back on stream 0 (best effort), every stream closes and
// outcome() is kFailed. Removing the files is ferryd's job (the plan lists
// them).
//
// Threads: the public methods are called from the worker's control thread;
// an acceptor thread and one receiver thread per stream do the work. The
// machine is borrowed.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "protocol/live_move_types.h"
#include "protocol/move_protocol.h"
#include "protocol/peer_trust.h"
#include "vm/machine.h"

namespace appliance {

class LiveMoveDestination {
 public:
  struct Options {
    vm::Machine* machine = nullptr;  // from vm::Machine::CreateIncoming
    std::string vm_dir;              // the incoming directory (marker goes here)
    PrepareRequest plan;
    std::string listen_host;  // bind here, ephemeral port
    // Every data stream is TLS with this identity, from the host whose
    // certificate is tls->peer_fingerprint (the one that sent the Prepare);
    // unset: plain frames (engine tests only).
    std::optional<PeerTrust> tls;
    int notify_fd = -1;  // eventfd signalled when the outcome is decided
    // Resumes the completed machine (the worker starts its watcher too).
    std::function<base::Status()> resume;
    // No source connection for this long after Start: fail.
    int connect_timeout_ms = 30000;
    // The source silent this long (no frame on any stream) before the move
    // ended: fail. One stream alone may stay quiet longer (nothing to carry
    // for its page groups and disk regions). A frame that has begun must also
    // complete within this time.
    int idle_timeout_ms = 60000;
  };
  enum class Outcome { kRunning = 1, kCommitted = 2, kFailed = 3 };

  static base::Result<std::unique_ptr<LiveMoveDestination>> Start(Options options);
  ~LiveMoveDestination();  // aborts if still running, joins every thread

  uint16_t port() const;
  LiveMoveStatus Status() const;
  Outcome outcome() const;
  // The failure, once outcome() is kFailed.
  base::Error error() const;
  // Fails a running move (no effect after the commit point); joins.
  void Abort(const std::string& reason);

 private:
  class Impl;
  explicit LiveMoveDestination(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace appliance
