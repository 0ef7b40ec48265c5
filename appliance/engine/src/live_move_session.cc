// LiveMoveSource::Impl, setting the session up: the request checked against
// this vm's storage (Start), the data streams and stream 0's reader, the
// read-only layers, and a mirror per disk (docs/live_move.md "Streams",
// "Disks").
#include "live_move_source_impl.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "base/fd.h"
#include "base/log.h"
#include "peer/peer_tls.h"
#include "protocol/move_protocol.h"
#include "storage/disk.h"
#include "transport/hello.h"
#include "transport/tcp.h"

namespace appliance {
namespace {

constexpr int kConnectTimeoutMs = 10000;
constexpr int kHelloTimeoutMs = 10000;
constexpr uint32_t kMaxStreams = 64;
constexpr uint32_t kMaxReplyPayload = 1 << 20;

}  // namespace

// ---- The request --------------------------------------------------------------

base::Result<std::unique_ptr<LiveMoveSource>> LiveMoveSource::Start(Options options,
                                                                    LiveMoveRequest request) {
  auto bad = [](const std::string& what) {
    return base::Error(base::Code::kInvalidArgument, "live move: " + what);
  };
  if (options.machine == nullptr) return bad("no machine");
  if (!options.pause || !options.resume) return bad("pause and resume are required");
  const PrepareRequest& prep = request.prepare;
  ASSIGN_OR_RETURN(MigrationIdBytes id, ParseMigrationId(prep.migration_id));
  if (request.streams == 0 || request.streams > kMaxStreams)
    return bad("streams must be 1.." + std::to_string(kMaxStreams) + ", not " +
               std::to_string(request.streams));
  if (request.data_host.empty() || request.data_port == 0)
    return bad("no data address (data_host/data_port)");
  if (request.time_limit_s == 0) return bad("time_limit_s must be > 0");
  if (prep.memory_bytes != options.machine->memory_size())
    return base::Error(base::Code::kFailedPrecondition,
                       "live move: the request moves " + std::to_string(prep.memory_bytes) +
                           " bytes of memory, the vm has " +
                           std::to_string(options.machine->memory_size()));
  const size_t ndisks = options.definition.disks.size();
  if (options.disks.size() != ndisks || prep.disks.size() != ndisks)
    return base::Error(base::Code::kFailedPrecondition,
                       "live move: disk counts differ (vm.toml " + std::to_string(ndisks) +
                           ", tracking " + std::to_string(options.disks.size()) + ", request " +
                           std::to_string(prep.disks.size()) + ")");
  for (storage::TrackingDisk* d : options.disks)
    if (d == nullptr) return bad("a disk is not tracked");
  // Where each source file is: the same plan ferryd made for the request.
  ASSIGN_OR_RETURN(StorageMovePlan plan,
                   PlanStorageMove(options.definition, options.vm_dir, prep.destination));
  for (size_t i = 0; i < ndisks; ++i) {
    const DiskMove& d = plan.disks[i];
    const PreparedDisk& p = prep.disks[i];
    bool same =
        d.top.dest == p.top && d.backing.size() == p.backing.size() && d.disk_size == p.disk_size;
    for (size_t k = 0; same && k < d.backing.size(); ++k)
      same = d.backing[k].dest == p.backing[k].dest;
    if (!same)
      return base::Error(
          base::Code::kFailedPrecondition,
          "live move: disk " + std::to_string(i) +
              ": the request's layout does not match this vm's storage (was a checkpoint taken?)");
  }
  std::shared_ptr<const transport::TlsContext> tls;
  if (request.tls) {
    auto context = WorkerTls(*request.tls);
    if (!context) return context.error().Wrap("live move: TLS for the data streams");
    tls = *std::move(context);
  }
  ASSIGN_OR_RETURN(base::EventFd cancel, base::EventFd::Create());
  ASSIGN_OR_RETURN(base::EventFd reader_done, base::EventFd::Create());
  auto impl = std::make_unique<Impl>(std::move(options), std::move(request), std::move(plan), id,
                                     std::move(cancel), std::move(reader_done), std::move(tls));
  impl->StartThread();
  return std::unique_ptr<LiveMoveSource>(new LiveMoveSource(std::move(impl)));
}

// ---- Connecting -----------------------------------------------------------

base::Status LiveMoveSource::Impl::Connect() {
  const uint32_t n = req_.streams;
  StreamPool::Options po;
  for (uint32_t i = 0; i < n; ++i) {
    const std::string name = "stream " + std::to_string(i) + " to " + peer_;
    auto fd = transport::TcpConnect(req_.data_host, req_.data_port, req_.source_host,
                                    kConnectTimeoutMs, cancel_.fd());
    if (!fd) return fd.error().Wrap("connect " + name);
    std::unique_ptr<transport::TlsSession> tls;
    if (tls_ != nullptr) {
      auto session = transport::TlsConnect(*tls_, fd->get(), req_.tls->peer_fingerprint,
                                           kHelloTimeoutMs, cancel_.fd());
      if (!session) return session.error().Wrap("TLS on " + name);
      tls = *std::move(session);
    }
    auto stream = std::make_unique<transport::FrameStream>(std::move(*fd), name, std::move(tls));
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
    base::MutexLock lock(mu_);
    pool_ = std::move(pool);
  }
  reader_ = std::thread([this] {
    base::SetThreadName("live-move-rx");
    ReadStream0();
  });
  base::LogInfo("live move " + req_.prepare.migration_id + ": " + std::to_string(n) +
                " streams to " + peer_);
  return base::Ok();
}

void LiveMoveSource::Impl::ReadStream0() {
  transport::FrameStream& s = pool_->stream(0);
  for (;;) {
    auto f = s.Receive(kMaxReplyPayload, -1, -1);
    base::MutexLock lock(mu_);
    if (!f) {
      reader_error_ = f.error();
      break;
    }
    if (f->type == uint16_t(MoveFrame::kCommitted)) {
      got_committed_ = true;
      break;
    }
    if (f->type == uint16_t(transport::FrameType::kError)) {
      // Named by its address here, so the destination's own text rather
      // than the generic "peer: " form (a malformed frame: as is).
      base::Error e = transport::DecodeErrorPayload(f->payload);
      dest_error_ = base::Error(e.code(), "destination " + peer_ + ": " +
                                              (e.from_peer() ? e.peer_message() : e.message()));
      break;
    }
    reader_error_ =
        base::Error(base::Code::kDataLoss, s.name() + ": unexpected frame type " +
                                               std::to_string(f->type) + " from the destination");
    break;
  }
  {
    base::MutexLock lock(mu_);
    if (reader_error_)
      base::LogInfo("live move: stream 0 reader ended: " + reader_error_->ToString());
  }
  reader_finished_ = true;
  // eventfd: fails only at counter overflow, readable then anyway.
  (void)reader_done_.Signal();
}

std::optional<base::Error> LiveMoveSource::Impl::DestinationError() {
  base::MutexLock lock(mu_);
  return dest_error_;
}

// A stream failed here: the destination usually said why on stream 0 just
// before closing, and that is the better message ("No space left ..."), so
// give its reader a moment to deliver it.
base::Error LiveMoveSource::Impl::StreamsFailure(const base::Error& local) {
  if (reader_.joinable() && !reader_finished_) {
    // Only a grace period: ready, timed out or failed, DestinationError
    // below says whether the reader got the destination's account.
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
  for (uint32_t k = 0; k < layers.size(); ++k) {
    const std::string& path = layers[k]->source;
    ASSIGN_OR_RETURN(base::Fd fd, base::Fd::Open(path, O_RDONLY));
    struct stat st {};
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
                                                "disk " + std::to_string(i) + " to " + peer_,
                                                cancel_.fd()));
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
  uint64_t sent = layer_bytes_sent_,
           remaining = layer_bytes_total_ - std::min(layer_bytes_total_, layer_bytes_sent_);
  for (const auto& s : sinks_) sent += s->bytes_queued();
  for (const auto& j : jobs_) remaining += j->Progress().bytes_remaining;
  base::MutexLock lock(mu_);
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

}  // namespace appliance
