// LiveMoveSource::Impl: the source worker's engine, one class whose parts
// live in one file per stage of the move (the sequence is docs/live_move.md):
//
//   live_move_source.cc      the public face, the thread, status, liveness
//   live_move_session.cc     request checks, streams, read-only layers, mirrors
//   live_move_precopy.cc     the memory pre-copy loop (precopy_decision.h decides)
//   live_move_switchover.cc  the pause, the last pages, DeviceState; undoing
//   live_move_resolution.cc  after DeviceState: committed or not (move_resolver.h)
//
// The one rule that shapes the error handling: until DeviceState has been
// handed to the kernel in full, the destination cannot have the VM, so any
// failure resumes it here; after that, only the destination (its Committed,
// its error frame, or its ferryd's Status answer) can say where the VM runs.
//
// Threads: the move thread runs Run() and owns the fields marked "move
// thread"; stream 0's reader and the watchdog share the fields under mu_.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/event_fd.h"
#include "base/mutex.h"
#include "base/result.h"
#include "engine/live_move_source.h"
#include "memory_precopy.h"
#include "peer_sink.h"
#include "plan/storage_move_plan.h"
#include "precopy_decision.h"
#include "storage/mirror_job.h"
#include "stream_pool.h"
#include "transport/tls.h"

namespace appliance {

inline double MsSince(uint64_t ns) { return double(base::MonotonicNanos() - ns) / 1e6; }

class LiveMoveSource::Impl {
 public:
  Impl(Options options, LiveMoveRequest request, StorageMovePlan plan, MigrationIdBytes id,
       base::EventFd cancel, base::EventFd reader_done,
       std::shared_ptr<const transport::TlsContext> tls);
  ~Impl();

  void StartThread();
  LiveMoveStatus Status();
  void Abort(const std::string& reason);
  void Join();

  bool committed() const { return committed_.load(); }
  bool running() const { return running_.load(); }

 private:
  void Run();

  // ---- Session (live_move_session.cc)
  base::Status Connect();
  void ReadStream0();
  base::Status CopyLayers();
  base::Status StartMirrors();
  void UpdateDiskProgress();
  // Waits up to timeout_ms for every mirror to be ready; a mirror's failure
  // is returned, a timeout or an Abort is not.
  base::Status WaitMirrorsReady(int timeout_ms);
  // The destination's own account of a failure, if its reader got one.
  std::optional<base::Error> DestinationError();
  base::Error StreamsFailure(const base::Error& local);

  // ---- Memory pre-copy (live_move_precopy.cc)
  base::Status Precopy(std::vector<uint64_t>& pending);
  base::Status SendFullPass();
  struct DiskMeasure {
    bool ready = true;       // every mirror is ready
    uint64_t disk_left = 0;  // mirror bytes not copied + disk lane bytes queued
  };
  base::Result<DiskMeasure> MeasureDisks();
  // Publishes what a round measured and decided, for Status.
  void NoteRound(const PrecopyRoundFacts& facts, const PrecopyDecision& d);
  base::Status ApplyThrottle(const PrecopyDecision& d);
  // Sends one round's dirty pages and waits for the lanes to drain; the
  // nanoseconds it took.
  base::Result<uint64_t> SendRound(const std::vector<uint64_t>& dirty, uint32_t round);

  // ---- Switchover and undoing it (live_move_switchover.cc)
  base::Status SendSwitchover(std::vector<uint64_t>& pending);
  base::Status PauseForSwitchover();
  base::Status SendStreamEnds();
  void FailBeforeState(base::Error error);
  // A failure before the state went out: everything the move changed is
  // undone and the vCPUs run again (if this move paused them).
  void ResumeHere();
  // Everything the move changed is undone except the vCPUs' pause.
  void KeepOnlyVcpusPaused();
  void ResumeDiskIo();

  // ---- Resolution after DeviceState (live_move_resolution.cc)
  void Resolve();
  void FinishCommitted();

  // ---- Liveness and status (live_move_source.cc)
  base::Status CheckAlive(bool lease);
  // The bounds every wait before DeviceState keeps, whatever it waits for:
  // the lease (ferryd polls) until the switchover, and the time limit from
  // the start of the pre-copy. mu_ held. The error that ends the move, if
  // one is overdue.
  std::optional<base::Error> OverdueLocked(bool lease) const REQUIRES(mu_);
  // The watchdog thread: every kWatchMs, an overdue move gets its error
  // recorded and its cancel fd signalled, which wakes whatever the move
  // thread, the mirrors or a guest write-through are blocked in (a full
  // lane, a drain, a mirror's completion).
  void Watch();
  void StopWatchdog();
  void SetPhase(LiveMovePhase phase);
  void Finish(LiveMovePhase phase, const std::optional<base::Error>& error);

  Options opt_;
  LiveMoveRequest req_;
  StorageMovePlan plan_;
  MigrationIdBytes id_;
  std::string peer_;           // "host:port" of the incoming worker
  // From req_.tls: every stream and Status query is TLS, to the host whose
  // certificate req_.tls names (null: plain frames, engine tests only).
  std::shared_ptr<const transport::TlsContext> tls_;
  base::EventFd cancel_;       // Abort -> every wait before DeviceState
  base::EventFd reader_done_;  // stream 0's reader ended (committed, error or EOF)
  ConvergenceModel model_;
  uint64_t start_ns_ = 0;
  uint64_t pause_ns_ = 0;

  // Move thread only (until joined).
  std::unique_ptr<StreamPool> pool_;  // set under mu_ (Status reads it)
  std::vector<std::unique_ptr<PeerSink>> sinks_;
  std::vector<std::unique_ptr<storage::MirrorJob>> jobs_;  // declared after sinks: destroyed first
  std::thread reader_;
  uint64_t layer_bytes_sent_ = 0;
  uint64_t layer_bytes_total_ = 0;
  bool dirty_log_on_ = false;
  bool paused_ = false;
  bool io_paused_ = false;
  int throttle_ = 0;

  std::atomic<bool> committed_{false};
  std::atomic<bool> running_{true};
  std::atomic<bool> reader_finished_{false};

  mutable base::Mutex mu_;  // guards everything below, and pool_ for readers
  LiveMoveStatus status_ GUARDED_BY(mu_);
  uint64_t last_poll_ns_ GUARDED_BY(mu_) = 0;
  std::string abort_reason_ GUARDED_BY(mu_);
  bool got_committed_ GUARDED_BY(mu_) = false;
  std::optional<base::Error> dest_error_ GUARDED_BY(mu_);    // a kError frame from the destination
  std::optional<base::Error> reader_error_ GUARDED_BY(mu_);  // stream 0 failed or closed

  uint64_t precopy_start_ns_ GUARDED_BY(mu_) = 0;             // 0 before the pre-copy
  bool state_out_ GUARDED_BY(mu_) = false;                    // DeviceState was sent
  std::optional<base::Error> overdue_error_ GUARDED_BY(mu_);  // set by the watchdog
  bool watchdog_stop_ GUARDED_BY(mu_) = false;
  base::CondVar watchdog_cv_;  // with mu_

  base::Mutex join_mu_;
  std::thread watchdog_;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace appliance
