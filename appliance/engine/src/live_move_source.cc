// LiveMoveSource: the source worker's engine (the sequence is
// docs/live_move.md; the data plane pieces are stream_pool.h, peer_sink.h
// and memory_precopy.h).
//
// The move thread runs, in order: connect the streams, copy the read-only
// layers, start a mirror per disk and the memory pre-copy, and once the
// prediction fits the downtime budget, the switchover. The one rule that
// shapes the error handling: until DeviceState has been handed to the kernel
// in full, the destination cannot have the VM, so any failure resumes it
// here; after that, only the destination (its Committed, its error frame, or
// its ferryd's Status answer) can say where the VM runs.
#include "engine/live_move_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>

#include "protocol/move_protocol.h"
#include "peer/peer_client.h"
#include "plan/storage_move_plan.h"
#include "base/clock.h"
#include "base/event_fd.h"
#include "base/fd.h"
#include "base/log.h"
#include "memory_precopy.h"
#include "peer_sink.h"
#include "storage/disk.h"
#include "storage/mirror_job.h"
#include "stream_pool.h"
#include "transport/hello.h"
#include "transport/tcp.h"

namespace appliance {
namespace {

constexpr int kConnectTimeoutMs = 10000;
constexpr int kHelloTimeoutMs = 10000;
constexpr int kSwitchSendTimeoutMs = 30000;
constexpr int kCommitTimeoutMs = 60000;
constexpr int kMinRoundMs = 20;  // harvesting faster only burns CPU
// The longest rest between memory rounds while a disk mirror catches up.
constexpr int kCatchUpRoundMs = 500;
constexpr uint32_t kMaxStreams = 64;
constexpr uint32_t kMaxReplyPayload = 1 << 20;

double Mib(double bytes) { return bytes / (1024.0 * 1024.0); }

std::string Fixed(double v, int digits = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

double MsSince(uint64_t ns) { return double(base::MonotonicNanos() - ns) / 1e6; }

}  // namespace

class LiveMoveSource::Impl {
 public:
  Impl(Options options, LiveMoveRequest request, StorageMovePlan plan, MigrationIdBytes id,
       base::EventFd cancel, base::EventFd reader_done)
      : opt_(std::move(options)),
        req_(std::move(request)),
        plan_(std::move(plan)),
        id_(id),
        cancel_(std::move(cancel)),
        reader_done_(std::move(reader_done)),
        model_(req_.bandwidth_limit) {
    start_ns_ = base::MonotonicNanos();
    last_poll_ns_ = start_ns_;
    status_.migration_id = req_.prepare.migration_id;
    status_.memory_bytes = opt_.machine->memory_size();
    status_.disk_bytes = req_.prepare.disk_bytes;
    peer_ = req_.data_host + ":" + std::to_string(req_.data_port);
  }

  ~Impl() {
    Abort("the move was abandoned");
    if (thread_.joinable()) thread_.join();
    StopWatchdog();
  }

  void StartThread() {
    watchdog_ = std::thread([this] {
      base::SetThreadName("live-move-wd");
      Watch();
    });
    thread_ = std::thread([this] {
      base::SetThreadName("live-move");
      Run();
    });
  }

  LiveMoveStatus Status() {
    std::lock_guard lock(mu_);
    last_poll_ns_ = base::MonotonicNanos();
    LiveMoveStatus s = status_;
    if (pool_) {
      s.streams = pool_->Reports();
      s.wire_bytes = 0;
      for (const StreamReport& r : s.streams) s.wire_bytes += r.bytes_sent;
    }
    if (!IsTerminal(s.phase)) s.total_ms = MsSince(start_ns_);
    return s;
  }

  void Abort(const std::string& reason) {
    {
      std::lock_guard lock(mu_);
      if (abort_reason_.empty()) abort_reason_ = reason;
    }
    // After DeviceState the cancel fd is no longer polled: only the
    // destination decides, so this only waits (in Join) for the resolution.
    (void)cancel_.Signal();
  }
  void Join() {
    std::lock_guard lock(join_mu_);
    if (thread_.joinable()) thread_.join();
  }

  bool committed() const { return committed_.load(); }
  bool running() const { return running_.load(); }

 private:
  void Run();
  base::Status Connect();
  void ReadStream0();
  base::Status CopyLayers();
  base::Status StartMirrors();
  base::Status Precopy(std::vector<uint64_t>& pending);
  base::Status SendSwitchover(std::vector<uint64_t>& pending);
  base::Status CheckAlive(bool lease);
  // The bounds every wait before DeviceState keeps, whatever it waits for:
  // the lease (ferryd polls) until the switchover, and the time limit from
  // the start of the pre-copy. mu_ held. The error that ends the move, if
  // one is overdue.
  std::optional<base::Error> OverdueLocked(bool lease) const;
  // The watchdog thread: every kWatchMs, an overdue move gets its error
  // recorded and its cancel fd signalled, which wakes whatever the move
  // thread, the mirrors or a guest write-through are blocked in (a full
  // lane, a drain, a mirror's completion).
  void Watch();
  void StopWatchdog();
  void FailBeforeState(base::Error error);
  void Resolve();
  void FinishCommitted();
  // A failure before the state went out: everything the move changed is
  // undone and the vCPUs run again (if this move paused them).
  void ResumeHere();
  // Everything the move changed is undone except the vCPUs' pause.
  void KeepOnlyVcpusPaused();
  void ResumeDiskIo();
  void SetPhase(LiveMovePhase phase);
  void Finish(LiveMovePhase phase, const std::optional<base::Error>& error);
  void UpdateDiskProgress();
  // Waits up to timeout_ms for every mirror to be ready; a mirror's failure
  // is returned, a timeout or an Abort is not.
  base::Status WaitMirrorsReady(int timeout_ms);
  // The destination's own account of a failure, if its reader got one.
  std::optional<base::Error> DestinationError();
  base::Error StreamsFailure(const base::Error& local);

  Options opt_;
  LiveMoveRequest req_;
  StorageMovePlan plan_;
  MigrationIdBytes id_;
  std::string peer_;        // "host:port" of the incoming worker
  base::EventFd cancel_;    // Abort -> every wait before DeviceState
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

  mutable std::mutex mu_;  // guards everything below, and pool_ for readers
  LiveMoveStatus status_;
  uint64_t last_poll_ns_ = 0;
  std::string abort_reason_;
  bool got_committed_ = false;
  std::optional<base::Error> dest_error_;    // a kError frame from the destination
  std::optional<base::Error> reader_error_;  // stream 0 failed or closed

  uint64_t precopy_start_ns_ = 0;             // guarded by mu_; 0 before the pre-copy
  bool state_out_ = false;                    // guarded by mu_: DeviceState was sent
  std::optional<base::Error> overdue_error_;  // guarded by mu_: set by the watchdog
  bool watchdog_stop_ = false;                // guarded by mu_
  std::condition_variable watchdog_cv_;       // with mu_

  std::mutex join_mu_;
  std::thread watchdog_;
  std::thread thread_;  // last: started once everything above exists
};

// ---------------------------------------------------------------------------

void LiveMoveSource::Impl::SetPhase(LiveMovePhase phase) {
  std::lock_guard lock(mu_);
  status_.phase = phase;
}

void LiveMoveSource::Impl::Finish(LiveMovePhase phase, const std::optional<base::Error>& error) {
  {
    std::lock_guard lock(mu_);
    status_.phase = phase;
    status_.total_ms = MsSince(start_ns_);
    status_.throttle_percent = throttle_;
    if (pool_) {
      status_.streams = pool_->Reports();
      status_.wire_bytes = pool_->wire_bytes();
    }
    if (error) {
      status_.error_code = std::string(base::CodeName(error->code()));
      status_.error = error->message();
    }
  }
  if (error)
    base::LogWarning("live move " + req_.prepare.migration_id + " " + std::string(ToString(phase)) + ": " +
                     error->ToString());
  else
    base::LogInfo("live move " + req_.prepare.migration_id + " " + std::string(ToString(phase)));
  running_ = false;
  if (opt_.notify_fd >= 0) {
    uint64_t one = 1;
    (void)!::write(opt_.notify_fd, &one, sizeof one);
  }
}

void LiveMoveSource::Impl::Run() {
  base::Status st = Connect();
  if (st) st = CopyLayers();
  if (st) st = StartMirrors();
  std::vector<uint64_t> pending;
  if (st) st = Precopy(pending);
  bool state_sent = false;
  if (st) {
    st = SendSwitchover(pending);
    state_sent = st.has_value();
  }
  if (!state_sent) {
    FailBeforeState(st.error());
    return;
  }
  Resolve();
}

// ---- Connecting -----------------------------------------------------------

base::Status LiveMoveSource::Impl::Connect() {
  const uint32_t n = req_.streams;
  StreamPool::Options po;
  for (uint32_t i = 0; i < n; ++i) {
    const std::string name = "stream " + std::to_string(i) + " to " + peer_;
    auto fd = transport::TcpConnect(req_.data_host, req_.data_port, req_.source_host, kConnectTimeoutMs,
                                    cancel_.fd());
    if (!fd) return fd.error().Wrap("connect " + name);
    auto stream = std::make_unique<transport::FrameStream>(std::move(*fd), name);
    transport::Hello hello;
    hello.role = transport::StreamRole::kData;
    hello.migration_id = id_;
    hello.stream_index = uint16_t(i);
    hello.stream_count = uint16_t(n);
    auto reply = transport::ClientHello(*stream, hello, kHelloTimeoutMs);
    if (!reply) return reply.error().Wrap("hello on " + name);
    po.streams.push_back(std::move(stream));
  }
  po.bandwidth_limit = req_.bandwidth_limit;
  po.compression = req_.compression;
  ASSIGN_OR_RETURN(std::unique_ptr<StreamPool> pool, StreamPool::Start(std::move(po)));
  {
    std::lock_guard lock(mu_);
    pool_ = std::move(pool);
  }
  reader_ = std::thread([this] {
    base::SetThreadName("live-move-rx");
    ReadStream0();
  });
  base::LogInfo("live move " + req_.prepare.migration_id + ": " + std::to_string(n) + " streams to " + peer_);
  return base::Ok();
}

void LiveMoveSource::Impl::ReadStream0() {
  transport::FrameStream& s = pool_->stream(0);
  for (;;) {
    auto f = s.Receive(kMaxReplyPayload, -1, -1);
    std::lock_guard lock(mu_);
    if (!f) {
      reader_error_ = f.error();
      break;
    }
    if (f->type == uint16_t(MoveFrame::kCommitted)) {
      got_committed_ = true;
      break;
    }
    if (f->type == uint16_t(transport::FrameType::kError)) {
      base::Error e = transport::DecodeErrorPayload(f->payload);
      std::string msg = e.message();
      if (msg.rfind("peer: ", 0) == 0) msg = msg.substr(6);
      dest_error_ = base::Error(e.code(), "destination " + peer_ + ": " + msg);
      break;
    }
    reader_error_ = base::Error(base::Code::kDataLoss, s.name() + ": unexpected frame type " +
                                                           std::to_string(f->type) + " from the destination");
    break;
  }
  {
    std::lock_guard lock(mu_);
    if (reader_error_) base::LogInfo("live move: stream 0 reader ended: " + reader_error_->ToString());
  }
  reader_finished_ = true;
  (void)reader_done_.Signal();
}

std::optional<base::Error> LiveMoveSource::Impl::DestinationError() {
  std::lock_guard lock(mu_);
  return dest_error_;
}

// A stream failed here: the destination usually said why on stream 0 just
// before closing, and that is the better message ("No space left ..."), so
// give its reader a moment to deliver it.
base::Error LiveMoveSource::Impl::StreamsFailure(const base::Error& local) {
  if (reader_.joinable() && !reader_finished_) {
    (void)base::WaitReadable(reader_done_.fd(), -1, 1000);
  }
  if (auto dest = DestinationError()) return *dest;
  return local;
}

// ---- Read-only layers -------------------------------------------------------

base::Status LiveMoveSource::Impl::CopyLayers() {
  SetPhase(LiveMovePhase::kCopyingLayers);
  std::vector<const LayerMove*> layers;
  for (const DiskMove& d : plan_.disks)
    for (const LayerMove& l : d.backing) layers.push_back(&l);
  for (const LayerMove* l : layers) layer_bytes_total_ += l->file_size;
  std::vector<uint8_t> buf;
  for (uint32_t k = 0; k < layers.size(); ++k) {
    const std::string& path = layers[k]->source;
    ASSIGN_OR_RETURN(base::Fd fd, base::Fd::Open(path, O_RDONLY));
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) return base::ErrnoError("stat " + path);
    const uint64_t size = uint64_t(st.st_size);
    uint64_t off = 0;
    while (off < size) {
      RETURN_IF_ERROR(CheckAlive(true));
      off_t data = ::lseek(fd.get(), off_t(off), SEEK_DATA);
      if (data < 0) {
        if (errno == ENXIO) break;  // only a hole remains
        return base::ErrnoError("seek data in " + path);
      }
      off_t hole = ::lseek(fd.get(), data, SEEK_HOLE);
      if (hole < 0) return base::ErrnoError("seek hole in " + path);
      for (uint64_t pos = uint64_t(data); pos < uint64_t(hole);) {
        const uint64_t len = std::min<uint64_t>(kMaxLayerChunkBytes, uint64_t(hole) - pos);
        OutFrame f;
        f.type = MoveFrame::kLayerChunk;
        f.head = EncodeLayerChunkHeader({k, pos});
        f.data.resize(len);
        ASSIGN_OR_RETURN(size_t got, base::PreadFull(fd.get(), f.data.data(), len, off_t(pos)));
        if (got != len) return base::Error(base::Code::kDataLoss, path + " shrank during the move");
        RETURN_IF_ERROR(pool_->Enqueue(k % pool_->size(), Lane::kDisk, std::move(f), cancel_.fd()));
        pos += len;
        layer_bytes_sent_ += len;
        UpdateDiskProgress();
      }
      off = uint64_t(hole);
    }
    OutFrame done;
    done.type = MoveFrame::kLayerDone;
    done.head = EncodeLayerDone({k, size});
    RETURN_IF_ERROR(pool_->Enqueue(k % pool_->size(), Lane::kDisk, std::move(done), cancel_.fd()));
    layer_bytes_sent_ += size - std::min(size, layer_bytes_sent_);  // holes count as done
  }
  // The layers go out before any extent: a destination qcow2 top reads its
  // backing chain on partial-cluster writes, so the chain should be complete
  // as early as possible (the destination also waits for it).
  RETURN_IF_ERROR(pool_->Drain(Lane::kDisk, cancel_.fd(), -1));
  layer_bytes_sent_ = layer_bytes_total_;
  UpdateDiskProgress();
  return base::Ok();
}

// ---- Mirrors ------------------------------------------------------------------

base::Status LiveMoveSource::Impl::StartMirrors() {
  for (size_t i = 0; i < plan_.disks.size(); ++i) {
    const DiskMove& d = plan_.disks[i];
    const bool qcow2 = d.spec.format == config::DiskFormat::kQcow2;
    const bool has_backing = qcow2 && !d.top_backing_name.empty();
    // A top over a backing chain does not read as zeros where unwritten
    // (it shows the chain), so zero runs the top stores must be sent.
    sinks_.push_back(std::make_unique<PeerSink>(*pool_, uint16_t(i), d.disk_size, !has_backing,
                                                "disk " + std::to_string(i) + " to " + peer_, cancel_.fd()));
    storage::MirrorOptions mo;
    mo.start = storage::MirrorStart::kFullScan;
    mo.skip_unallocated = has_backing;
    mo.guest_first = true;
    mo.min_bytes_per_second = opt_.busy_guest_copy_rate;
    // The sink never has to be durable before the switchover; flushing it is
    // a no-op anyway.
    mo.flush_interval = uint64_t(1) << 40;
    if (!qcow2) {
      std::string src = d.top.source;
      mo.open_source = [src]() { return storage::OpenRawDisk(src, true); };
    }
    auto job = storage::MirrorJob::Start(*opt_.disks[i], *sinks_.back(), mo);
    if (!job) return job.error().Wrap("mirror disk " + std::to_string(i));
    jobs_.push_back(std::move(*job));
  }
  return base::Ok();
}

void LiveMoveSource::Impl::UpdateDiskProgress() {
  uint64_t sent = layer_bytes_sent_, remaining = layer_bytes_total_ - std::min(layer_bytes_total_, layer_bytes_sent_);
  for (const auto& s : sinks_) sent += s->bytes_queued();
  for (const auto& j : jobs_) remaining += j->Progress().bytes_remaining;
  std::lock_guard lock(mu_);
  status_.disk_sent = sent;
  status_.disk_remaining = remaining;
}

base::Status LiveMoveSource::Impl::WaitMirrorsReady(int timeout_ms) {
  const uint64_t deadline = base::MonotonicNanos() + uint64_t(timeout_ms) * 1000000;
  for (auto& j : jobs_) {
    const uint64_t now = base::MonotonicNanos();
    const int left_ms = now >= deadline ? 0 : int((deadline - now) / 1000000);
    base::Status r = j->WaitReady(cancel_.fd(), left_ms);
    if (r) continue;
    // Not ready yet: the next round looks again. Cancelled: an Abort, which
    // the round's CheckAlive reports.
    const base::Code code = r.error().code();
    if (code == base::Code::kDeadlineExceeded || code == base::Code::kCancelled) return base::Ok();
    return StreamsFailure(r.error());
  }
  return base::Ok();
}

// ---- Liveness ---------------------------------------------------------------

base::Status LiveMoveSource::Impl::CheckAlive(bool lease) {
  {
    std::lock_guard lock(mu_);
    if (overdue_error_) return *overdue_error_;
    if (!abort_reason_.empty()) return base::Error(base::Code::kCancelled, "move cancelled: " + abort_reason_);
    if (auto overdue = OverdueLocked(lease)) return *overdue;
    if (dest_error_) return *dest_error_;
    if (reader_error_)
      return reader_error_->Wrap("the destination " + peer_ + " ended the move");
    if (got_committed_)
      return base::Error(base::Code::kDataLoss, "destination " + peer_ + " committed before the switchover");
  }
  if (auto e = pool_ ? pool_->error() : std::nullopt) return StreamsFailure(*e);
  return base::Ok();
}

std::optional<base::Error> LiveMoveSource::Impl::OverdueLocked(bool lease) const {
  if (state_out_) return std::nullopt;  // only the destination decides now
  if (lease && opt_.lease_ms > 0 && MsSince(last_poll_ns_) > opt_.lease_ms)
    return base::Error(base::Code::kAborted, "ferryd stopped polling (no status request for " +
                                                 std::to_string(opt_.lease_ms) + " ms): move abandoned");
  if (precopy_start_ns_ != 0 &&
      base::MonotonicNanos() - precopy_start_ns_ > uint64_t(req_.time_limit_s) * 1000000000ull) {
    const LiveMoveStatus& s = status_;
    std::string where;
    if (s.phase == LiveMovePhase::kSwitchover)
      where = "; the switchover did not finish (the vm stays here)";
    else if (s.round <= 1)
      where = "; the first pass over memory did not finish (" +
              Fixed(Mib(double(pool_ ? pool_->wire_bytes() : 0))) + " MiB sent in all)";
    else
      where = "; after round " + std::to_string(s.round) + ": " + Fixed(Mib(double(s.memory_remaining))) +
              " MiB of memory dirty, " + Fixed(Mib(double(s.disk_remaining))) + " MiB of disk not copied yet, " +
              Fixed(Mib(double(pool_ ? pool_->queued_bytes(Lane::kDisk) : 0))) +
              " MiB of disk writes waiting to be sent";
    return base::Error(base::Code::kDeadlineExceeded,
                       "did not converge within " + std::to_string(req_.time_limit_s) + " s: guest dirties " +
                           Fixed(Mib(s.dirty_bytes_per_second)) + " MiB/s, link carries " +
                           Fixed(Mib(s.bytes_per_second)) + " MiB/s" + where);
  }
  return std::nullopt;
}

void LiveMoveSource::Impl::Watch() {
  constexpr int kWatchMs = 100;
  std::unique_lock lock(mu_);
  while (!watchdog_stop_ && !state_out_ && running_.load()) {
    watchdog_cv_.wait_for(lock, std::chrono::milliseconds(kWatchMs));
    if (watchdog_stop_ || state_out_ || overdue_error_ || !running_.load()) continue;
    // The lease holds until the switchover: a ferryd that dies after it
    // learns the outcome from the worker's exit record or the destination.
    const bool lease = status_.phase != LiveMovePhase::kSwitchover;
    if (auto overdue = OverdueLocked(lease)) {
      overdue_error_ = overdue;
      base::LogWarning("live move " + req_.prepare.migration_id + ": " + overdue->message());
      (void)cancel_.Signal();
    }
  }
}

void LiveMoveSource::Impl::StopWatchdog() {
  {
    std::lock_guard lock(mu_);
    watchdog_stop_ = true;
  }
  watchdog_cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
}

// ---- Memory pre-copy --------------------------------------------------------

base::Status LiveMoveSource::Impl::Precopy(std::vector<uint64_t>& pending) {
  vm::Machine& m = *opt_.machine;
  SetPhase(LiveMovePhase::kPrecopy);
  RETURN_IF_ERROR(m.EnableDirtyLog());
  dirty_log_on_ = true;
  const double budget_ms = req_.downtime_ms > 0 ? req_.downtime_ms : kDefaultDowntimeMs;
  uint64_t harvest_ns = base::MonotonicNanos();
  // The time bound is for convergence: it starts here, after the layers,
  // whose copy takes as long as their size needs.
  {
    std::lock_guard lock(mu_);
    precopy_start_ns_ = harvest_ns;
  }

  // Round 1: the full pass.
  {
    std::lock_guard lock(mu_);
    status_.round = 1;
  }
  uint64_t wire0 = pool_->wire_bytes(), t0 = base::MonotonicNanos();
  // Only RAM the guest ever wrote is read: scanning the rest page by page
  // would fault it in (1 GiB: seconds) just to find zeros.
  ASSIGN_OR_RETURN(std::vector<vm::Machine::MemoryRange> populated, m.PopulatedMemory());
  ASSIGN_OR_RETURN(PageSendStats full,
                   SendAllPages(m.memory_base(), m.memory_size(), populated, *pool_, cancel_.fd()));
  RETURN_IF_ERROR(pool_->Drain(Lane::kMemory, cancel_.fd(), -1));
  model_.NoteSend(pool_->wire_bytes() - wire0, double(base::MonotonicNanos() - t0) / 1e9);
  {
    std::lock_guard lock(mu_);
    status_.memory_sent = full.bytes;
    status_.zero_pages = full.zero_pages;
  }

  uint32_t round = 1;
  uint64_t previous_left = UINT64_MAX;  // what the throttle judged last round
  bool was_ready = false;
  for (;;) {
    RETURN_IF_ERROR(CheckAlive(true));
    ASSIGN_OR_RETURN(std::vector<uint64_t> dirty, m.HarvestDirtyPages());
    const uint64_t now = base::MonotonicNanos();
    const uint64_t pages = CountPages(dirty);
    model_.NoteHarvest(pages, double(now - harvest_ns) / 1e9);
    harvest_ns = now;

    bool ready = true;
    uint64_t disk_left = 0;
    for (auto& j : jobs_) {
      base::Status r = j->WaitReady(-1, 0);
      if (!r && r.error().code() != base::Code::kDeadlineExceeded) return StreamsFailure(r.error());
      if (!r) ready = false;
      disk_left += j->Progress().bytes_remaining;
    }
    // Extents the mirrors handed over but the streams have not sent yet go
    // out inside the pause too (a lane holds up to 8 MiB per stream).
    disk_left += pool_->queued_bytes(Lane::kDisk);
    UpdateDiskProgress();
    const double predicted = model_.PredictMs(pages * kPageBytes + disk_left);
    {
      std::lock_guard lock(mu_);
      status_.memory_remaining = pages * kPageBytes;
      status_.predicted_downtime_ms = predicted;
      status_.dirty_bytes_per_second = model_.dirty_rate();
      status_.bytes_per_second = model_.bandwidth();
      const double bw = model_.bandwidth();
      status_.eta_seconds = bw > 0 ? double(pages * kPageBytes + status_.disk_remaining) / bw : -1;
      status_.throttle_percent = throttle_;
    }
    if (ready && predicted >= 0 && predicted <= budget_ms) {
      base::LogInfo("live move " + req_.prepare.migration_id + ": switching over after round " +
                    std::to_string(round) + ", predicted pause " + Fixed(predicted) + " ms (" +
                    std::to_string(pages) + " dirty pages, " + std::to_string(disk_left) + " disk bytes)");
      pending = std::move(dirty);
      return base::Ok();
    }
    // What the vCPUs can be blamed for: while a mirror still catches up,
    // only the dirty memory (the bulk copy is not their fault); once every
    // mirror is ready, memory and the disk writes waiting to be sent (a
    // guest writing faster than the link keeps the lanes full, and slowing
    // its vCPUs slows its writes too).
    const uint64_t judged = pages * kPageBytes + (ready ? disk_left : 0);
    if (ready != was_ready) previous_left = UINT64_MAX;  // a new measure: no trend yet
    was_ready = ready;
    const bool fits = model_.PredictMs(judged) <= budget_ms;
    const int next = fits ? throttle_ : ConvergenceModel::NextThrottle(round, previous_left, judged, throttle_);
    if (next != throttle_) {
      RETURN_IF_ERROR(m.SetThrottle(next));
      base::LogInfo("live move " + req_.prepare.migration_id + ": auto-converge throttle " +
                    std::to_string(next) + "% (round " + std::to_string(round) + ": " + std::to_string(pages) +
                    " dirty pages, " + std::to_string(ready ? disk_left : 0) + " disk bytes waiting)");
      throttle_ = next;
    }
    previous_left = judged;

    ++round;
    wire0 = pool_->wire_bytes();
    t0 = base::MonotonicNanos();
    ASSIGN_OR_RETURN(PageSendStats sent, SendDirtyPages(m.memory_base(), m.memory_size(), dirty, *pool_,
                                                        cancel_.fd()));
    RETURN_IF_ERROR(pool_->Drain(Lane::kMemory, cancel_.fd(), -1));
    const uint64_t took = base::MonotonicNanos() - t0;
    model_.NoteSend(pool_->wire_bytes() - wire0, double(took) / 1e9);
    {
      std::lock_guard lock(mu_);
      status_.round = round;
      status_.memory_sent += sent.bytes;
      status_.zero_pages += sent.zero_pages;
    }
    if (!ready) {
      // No switchover before the mirrors are ready, so rounds meanwhile only
      // keep the dirty set from growing: a few a second do that without
      // re-sending hot pages dozens of times over a long disk copy.
      RETURN_IF_ERROR(WaitMirrorsReady(kCatchUpRoundMs));
      continue;
    }
    const int rest_ms = kMinRoundMs - int(took / 1000000);
    // The loop's CheckAlive reports an Abort that ends this wait early.
    if (rest_ms > 0) (void)base::WaitReadable(cancel_.fd(), -1, rest_ms);
  }
}

// ---- Switchover -----------------------------------------------------------------

base::Status LiveMoveSource::Impl::SendSwitchover(std::vector<uint64_t>& pending) {
  vm::Machine& m = *opt_.machine;
  SetPhase(LiveMovePhase::kSwitchover);
  pause_ns_ = base::MonotonicNanos();
  // A VM that was paused when the move began (the plan says so) is already
  // drained and stays paused whatever happens: paused_ is only for a pause
  // this move made and must undo on failure.
  if (!req_.prepare.paused) {
    if (auto st = opt_.pause(); !st) {
      // Pause stops the vCPUs before it drains and reads the clock, so a
      // failure may leave them stopped: then the failure path must resume.
      paused_ = m.state() == vm::RunState::kPaused;
      return st.error().Wrap("pause the vm for the switchover");
    }
    paused_ = true;
  }
  for (storage::TrackingDisk* d : opt_.disks) d->PauseIo();
  io_paused_ = true;
  for (size_t i = 0; i < jobs_.size(); ++i) {
    if (auto st = jobs_[i]->Complete(cancel_.fd()); !st)
      return StreamsFailure(st.error().Wrap("complete the mirror of disk " + std::to_string(i)));
  }
  RETURN_IF_ERROR(CheckAlive(false));
  ASSIGN_OR_RETURN(std::vector<uint64_t> last, m.HarvestDirtyPages());
  MergePages(pending, last);
  ASSIGN_OR_RETURN(PageSendStats sent, SendDirtyPages(m.memory_base(), m.memory_size(), pending, *pool_,
                                                      cancel_.fd()));
  if (auto st = pool_->Drain(std::nullopt, cancel_.fd(), kSwitchSendTimeoutMs); !st)
    return StreamsFailure(st.error());
  for (size_t i = 0; i < pool_->size(); ++i) {
    auto end = EncodeStreamEnd({pool_->data_frames(i)});
    if (auto st = pool_->SendDirect(i, MoveFrame::kStreamEnd, end, cancel_.fd(), kSwitchSendTimeoutMs); !st)
      return StreamsFailure(st.error());
  }
  ASSIGN_OR_RETURN(std::string state, m.SaveDeviceState());
  RETURN_IF_ERROR(CheckAlive(false));
  const auto* p = reinterpret_cast<const uint8_t*>(state.data());
  if (auto st = pool_->SendDirect(0, MoveFrame::kDeviceState, std::span<const uint8_t>(p, state.size()),
                                  cancel_.fd(), kSwitchSendTimeoutMs);
      !st)
    return StreamsFailure(st.error());
  // From here on the destination may own the VM.
  {
    std::lock_guard lock(mu_);
    state_out_ = true;
    status_.memory_sent += sent.bytes;
    status_.zero_pages += sent.zero_pages;
    status_.memory_remaining = 0;
  }
  UpdateDiskProgress();
  base::LogInfo("live move " + req_.prepare.migration_id + ": device state sent (" +
                std::to_string(state.size()) + " bytes, " + std::to_string(sent.pages) + " last pages) after " +
                Fixed(MsSince(pause_ns_)) + " ms paused");
  return base::Ok();
}

// Before DeviceState: the VM goes on here as if nothing happened.
void LiveMoveSource::Impl::FailBeforeState(base::Error error) {
  bool overdue = false;
  {
    // A wait that noticed the cancel fd says only "cancelled": say why.
    std::lock_guard lock(mu_);
    overdue = overdue_error_.has_value();
    if (overdue)
      error = *overdue_error_;
    else if (error.code() == base::Code::kCancelled && !abort_reason_.empty())
      error = base::Error(base::Code::kCancelled, "move cancelled: " + abort_reason_);
  }
  // A stream error here is usually the echo of the destination failing.
  if (pool_ && pool_->error() && error.code() != base::Code::kCancelled && !overdue) error = StreamsFailure(error);
  // Cancel first so mirror threads and guest write-throughs blocked on a
  // full lane return at once.
  (void)cancel_.Signal();
  for (auto& j : jobs_) j->Cancel();
  for (auto& j : jobs_) (void)j->Wait();
  ResumeHere();
  if (pool_) {
    pool_->Stop();
    // Best effort: tell the destination why, so its error names the cause.
    nlohmann::json reason = {{"reason", error.message()}};
    (void)pool_->SendDirect(0, MoveFrame::kAbort, JsonPayload(reason), -1, 1000);
    for (size_t i = 0; i < pool_->size(); ++i) pool_->stream(i).Shutdown();
  }
  if (reader_.joinable()) reader_.join();
  jobs_.clear();
  sinks_.clear();
  Finish(LiveMovePhase::kFailed, error);
}

void LiveMoveSource::Impl::ResumeHere() {
  KeepOnlyVcpusPaused();
  if (paused_) {
    if (auto st = opt_.resume(); !st) base::LogError("live move: resuming the vm failed: " + st.error().ToString());
    paused_ = false;
  }
}

void LiveMoveSource::Impl::ResumeDiskIo() {
  if (!io_paused_) return;
  for (storage::TrackingDisk* d : opt_.disks) d->ResumeIo();
  io_paused_ = false;
}

// ---- Resolution (after DeviceState) ---------------------------------------------

// In doubt the vCPUs stay stopped (the destination may run the VM), but
// nothing else may stay half-switched: paused disk I/O would hang a later
// stop (its drain flushes through the tracking disks) and an admin's resume.
// The mirrors are detached, so resumed disk I/O goes to the source only.
void LiveMoveSource::Impl::KeepOnlyVcpusPaused() {
  vm::Machine& m = *opt_.machine;
  ResumeDiskIo();
  if (throttle_ != 0) {
    (void)m.SetThrottle(0);
    throttle_ = 0;
  }
  if (dirty_log_on_) {
    (void)m.DisableDirtyLog();
    dirty_log_on_ = false;
  }
}

void LiveMoveSource::Impl::FinishCommitted() {
  {
    std::lock_guard lock(mu_);
    status_.downtime_ms = MsSince(pause_ns_);
  }
  committed_ = true;
  // The vCPUs never run here again, so no guest write can reach the disks;
  // but shutting the machine down flushes them through the tracking disks,
  // which would wait for ever while their I/O is paused.
  ResumeDiskIo();
  if (pool_) pool_->Stop();
  for (size_t i = 0; pool_ && i < pool_->size(); ++i) pool_->stream(i).Shutdown();
  if (reader_.joinable()) reader_.join();
  Finish(LiveMovePhase::kCompleted, std::nullopt);
}

void LiveMoveSource::Impl::Resolve() {
  SetPhase(LiveMovePhase::kResolving);
  // The mirrors converged before the state went out. Dropping them now
  // means no reference to the tracking disks outlives the decision (the
  // worker shuts the machine, and its disks, down once committed).
  for (auto& j : jobs_) (void)j->Wait();
  jobs_.clear();
  sinks_.clear();
  (void)base::WaitReadable(reader_done_.fd(), -1, kCommitTimeoutMs);
  std::optional<base::Error> cause;
  {
    std::lock_guard lock(mu_);
    if (!got_committed_) {
      if (dest_error_)
        cause = dest_error_;
      else if (reader_error_)
        cause = reader_error_;
      else
        cause = base::Error(base::Code::kDeadlineExceeded, "no answer from the destination " + peer_ + " within " +
                                                               std::to_string(kCommitTimeoutMs / 1000) + " s");
    }
  }
  if (!cause) {
    FinishCommitted();
    return;
  }
  base::LogWarning("live move " + req_.prepare.migration_id + ": after the device state: " + cause->ToString());
  pool_->Stop();
  for (size_t i = 0; i < pool_->size(); ++i) pool_->stream(i).Shutdown();
  if (reader_.joinable()) reader_.join();

  auto aborted = [&](const std::string& how) {
    ResumeHere();
    Finish(LiveMovePhase::kFailed,
           base::Error(cause->code(), "the destination aborted after receiving the state (" + how + "): " +
                                          cause->message()));
  };
  if (req_.control_port == 0) {
    // No destination ferryd to ask (tests, or a bare worker pair). An error
    // frame is the destination's own verdict: it sends one only while it
    // has not committed, and then never commits.
    if (DestinationError()) {
      aborted("its error frame");
      return;
    }
    KeepOnlyVcpusPaused();
    Finish(LiveMovePhase::kInDoubt,
           base::Error(base::Code::kUnavailable,
                       "move in doubt: lost the destination " + peer_ + " after sending the device state (" +
                           cause->message() + ") and no destination ferryd to ask; the vm stays paused here; an "
                           "admin must check the destination before resuming or discarding it"));
    return;
  }
  PeerEndpoint control;
  control.host = req_.control_host;
  control.port = req_.control_port;
  control.source_host = req_.source_host;
  const uint64_t until = base::MonotonicNanos() + uint64_t(opt_.resolve_retry_ms) * 1000000;
  std::string last = "no answer yet";
  for (;;) {
    auto state = AskMoveState(control, req_.prepare.migration_id, 5000);
    if (state && *state == RemoteMoveState::kCommitted) {
      FinishCommitted();
      return;
    }
    if (state && *state == RemoteMoveState::kAborted) {
      aborted("its ferryd at " + control.ToString() + " says so");
      return;
    }
    // "unknown" too: a destination that never heard of the move is asked
    // again (it may be a ferryd that has not recovered its records yet).
    last = state ? "state " + std::string(ToString(*state)) : state.error().message();
    if (base::MonotonicNanos() > until) break;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  KeepOnlyVcpusPaused();
  Finish(LiveMovePhase::kInDoubt,
         base::Error(base::Code::kUnavailable,
                     "move in doubt: lost the destination " + peer_ + " after sending the device state (" +
                         cause->message() + "), and its ferryd at " + control.ToString() + " did not settle it within " +
                         std::to_string(opt_.resolve_retry_ms / 1000) + " s (last: " + last +
                         "); the vm stays paused here; an admin must check the destination"));
}

// ---------------------------------------------------------------------------

LiveMoveSource::LiveMoveSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LiveMoveSource::~LiveMoveSource() = default;

base::Result<std::unique_ptr<LiveMoveSource>> LiveMoveSource::Start(Options options, LiveMoveRequest request) {
  auto bad = [](const std::string& what) { return base::Error(base::Code::kInvalidArgument, "live move: " + what); };
  if (options.machine == nullptr) return bad("no machine");
  if (!options.pause || !options.resume) return bad("pause and resume are required");
  const PrepareRequest& prep = request.prepare;
  ASSIGN_OR_RETURN(MigrationIdBytes id, ParseMigrationId(prep.migration_id));
  if (request.streams == 0 || request.streams > kMaxStreams)
    return bad("streams must be 1.." + std::to_string(kMaxStreams) + ", not " + std::to_string(request.streams));
  if (request.data_host.empty() || request.data_port == 0) return bad("no data address (data_host/data_port)");
  if (request.time_limit_s == 0) return bad("time_limit_s must be > 0");
  if (prep.memory_bytes != options.machine->memory_size())
    return base::Error(base::Code::kFailedPrecondition,
                       "live move: the request moves " + std::to_string(prep.memory_bytes) +
                           " bytes of memory, the vm has " + std::to_string(options.machine->memory_size()));
  const size_t ndisks = options.definition.disks.size();
  if (options.disks.size() != ndisks || prep.disks.size() != ndisks)
    return base::Error(base::Code::kFailedPrecondition,
                       "live move: disk counts differ (vm.toml " + std::to_string(ndisks) + ", tracking " +
                           std::to_string(options.disks.size()) + ", request " + std::to_string(prep.disks.size()) +
                           ")");
  for (storage::TrackingDisk* d : options.disks)
    if (d == nullptr) return bad("a disk is not tracked");
  // Where each source file is: the same plan ferryd made for the request.
  ASSIGN_OR_RETURN(StorageMovePlan plan, PlanStorageMove(options.definition, options.vm_dir, prep.destination));
  for (size_t i = 0; i < ndisks; ++i) {
    const DiskMove& d = plan.disks[i];
    const PreparedDisk& p = prep.disks[i];
    bool same = d.top.dest == p.top && d.backing.size() == p.backing.size() && d.disk_size == p.disk_size;
    for (size_t k = 0; same && k < d.backing.size(); ++k) same = d.backing[k].dest == p.backing[k].dest;
    if (!same)
      return base::Error(base::Code::kFailedPrecondition,
                         "live move: disk " + std::to_string(i) +
                             ": the request's layout does not match this vm's storage (was a checkpoint taken?)");
  }
  ASSIGN_OR_RETURN(base::EventFd cancel, base::EventFd::Create());
  ASSIGN_OR_RETURN(base::EventFd reader_done, base::EventFd::Create());
  auto impl = std::make_unique<Impl>(std::move(options), std::move(request), std::move(plan), id,
                                     std::move(cancel), std::move(reader_done));
  impl->StartThread();
  return std::unique_ptr<LiveMoveSource>(new LiveMoveSource(std::move(impl)));
}

LiveMoveStatus LiveMoveSource::Status() { return impl_->Status(); }

void LiveMoveSource::Abort(const std::string& reason) {
  impl_->Abort(reason);
  impl_->Join();
}

bool LiveMoveSource::committed() const { return impl_->committed(); }
bool LiveMoveSource::running() const { return impl_->running(); }

}  // namespace appliance
