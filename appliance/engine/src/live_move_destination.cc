// The incoming worker's engine (live_move_destination.h; flow in
// docs/live_move.md, messages in appliance/protocol/PROTOCOL.md).
//
// Threads and who decides what:
//  - "move-accept" accepts exactly the announced number of data streams
//    (the first good hello fixes the count) within connect_timeout_ms, and
//    starts one receiver per stream.
//  - "move-rx<i>" receives and applies frames of stream i until its
//    StreamEnd. Stream 0's receiver then waits for DeviceState and for every
//    other stream's StreamEnd, and runs the commit.
//  - Fail() decides a failure once (under mu_): a kError frame on stream 0,
//    cancel every wait, shut every stream down, signal notify_fd. Once the
//    commit has begun (committing_) only the commit thread may fail the move:
//    an Abort then waits for the commit's verdict instead of racing it.
#include "engine/live_move_destination.h"
#include "ipc/vm_dir_files.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/event_fd.h"
#include "base/fd.h"
#include "base/log.h"
#include "base/mutex.h"
#include "incoming_disks.h"
#include "peer/peer_tls.h"
#include "transport/frame_stream.h"
#include "transport/hello.h"
#include "transport/tcp.h"

namespace appliance {
namespace {

// A hello must follow the connection promptly.
constexpr int kHelloTimeoutMs = 5000;
// How long a stream the source closed waits for stream 0's reason.
constexpr std::chrono::milliseconds kCloseGrace{500};
// After refusing a connection: how long the acceptor reads what the peer
// still sends, so the close is no reset that destroys the error frame. Short:
// the move's real streams wait behind it.
constexpr int kRefusalLingerMs = 200;
// After Committed went out: how long stream 0 stays open for the source to
// read it (the source closes as soon as it has).
constexpr int kCommittedLingerMs = 10000;
// How often a waiting receiver checks whether the whole move went silent.
constexpr int kSilencePollMs = 200;

void SignalFd(int fd) {
  if (fd < 0) return;
  uint64_t one = 1;
  (void)!::write(fd, &one, sizeof one);
}

std::string N(uint64_t v) { return std::to_string(v); }
std::string ToStr(MoveFrame t) { return std::string(ToString(t)); }

}  // namespace

class LiveMoveDestination::Impl {
 public:
  explicit Impl(Options options) : o_(std::move(options)) {}
  ~Impl() { Abort("the incoming worker is shutting down"); }

  base::Status Init();
  uint16_t port() const { return port_; }
  LiveMoveStatus Status() const;
  Outcome outcome() const {
    base::MutexLock lock(mu_);
    return outcome_;
  }
  base::Error error() const {
    base::MutexLock lock(mu_);
    return error_ ? *error_ : base::Error(base::Code::kOk, "");
  }
  void Abort(const std::string& reason);

 private:
  struct Stream {
    std::unique_ptr<transport::FrameStream> fs;
    uint16_t index = 0;
    uint32_t count = 0;                      // streams of the move
    uint64_t data_frames = 0;                // receiver thread only
    std::atomic<uint64_t> payload_bytes{0};  // decompressed payload received
    bool ended = false;                      // guarded by the Impl's mu_
  };

  void AcceptLoop();
  // Accepts and vets one connection; nullptr (after logging) for a stray one.
  std::unique_ptr<Stream> AcceptOne(int timeout_ms, base::Status& fatal);
  void ReceiveLoop(Stream* s);
  base::Result<transport::Frame> NextFrame(Stream& s, const std::string& where);
  // Applies one data frame; kStreamEnd/kDeviceState are handled by the loop.
  base::Status ApplyData(Stream& s, const transport::Frame& f);
  void Commit(Stream& s0, std::string device_state);
  // Decides the failure unless the outcome is already decided or the commit
  // owns it (force: the commit thread itself).
  void Fail(const base::Error& e, bool force = false);

  Options o_;
  uint64_t memory_pages_ = 0;
  MigrationIdBytes id_{};
  std::unique_ptr<IncomingDisks> disks_;
  std::shared_ptr<const transport::TlsContext> tls_;  // from o_.tls; null: plain
  std::optional<transport::TcpListener> listener_;    // acceptor thread only after Init
  uint16_t port_ = 0;
  std::optional<base::EventFd> cancel_;  // signalled by Fail and Abort: every wait returns
  uint64_t start_ns_ = 0;

  mutable base::Mutex mu_;
  base::CondVar cv_;  // a stream ended, or the outcome changed
  Outcome outcome_ GUARDED_BY(mu_) = Outcome::kRunning;
  LiveMovePhase phase_ GUARDED_BY(mu_) = LiveMovePhase::kPreparing;
  bool committing_ GUARDED_BY(mu_) = false;
  std::optional<base::Error> error_ GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Stream>> streams_ GUARDED_BY(mu_);  // (appended by the acceptor)
  std::vector<std::thread> receivers_ GUARDED_BY(mu_);
  uint32_t expected_streams_ GUARDED_BY(mu_) = 0;  // 0 until the first hello
  uint32_t ended_streams_ GUARDED_BY(mu_) = 0;
  std::thread acceptor_;
  std::once_flag joined_;

  std::atomic<uint64_t> last_frame_ns_{0};  // any stream; starts at Start
  std::atomic<uint64_t> memory_received_{0};
  std::atomic<uint64_t> zero_pages_{0};
  std::atomic<uint64_t> disk_received_{0};
};

base::Status LiveMoveDestination::Impl::Init() {
  if (o_.machine == nullptr)
    return base::Error(base::Code::kInvalidArgument, "incoming move: no machine");
  if (o_.machine->memory_size() != o_.plan.memory_bytes)
    return base::Error(base::Code::kFailedPrecondition,
                       "incoming move: the machine has " + N(o_.machine->memory_size()) +
                           " bytes of memory, the plan says " + N(o_.plan.memory_bytes));
  memory_pages_ = o_.machine->memory_size() / kPageBytes;
  ASSIGN_OR_RETURN(id_, ParseMigrationId(o_.plan.migration_id));
  ASSIGN_OR_RETURN(base::EventFd cancel, base::EventFd::Create());
  cancel_.emplace(std::move(cancel));
  if (o_.tls) {
    auto tls = WorkerTls(*o_.tls);
    if (!tls) return tls.error().Wrap("incoming move: TLS for the data streams");
    tls_ = *std::move(tls);
  }
  ASSIGN_OR_RETURN(disks_, IncomingDisks::Create(o_.plan));
  auto listener = transport::TcpListener::Bind(o_.listen_host, 0);
  if (!listener)
    return listener.error().Wrap("incoming move: listen for the source's data streams");
  port_ = listener->port();
  listener_.emplace(std::move(*listener));
  start_ns_ = base::MonotonicNanos();
  last_frame_ns_ = start_ns_;
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return base::Ok();
}

std::unique_ptr<LiveMoveDestination::Impl::Stream> LiveMoveDestination::Impl::AcceptOne(
    int timeout_ms, base::Status& fatal) {
  auto accepted = listener_->Accept(cancel_->fd(), timeout_ms);
  if (!accepted) {
    fatal = accepted.error();
    return nullptr;
  }
  auto& [fd, peer] = *accepted;
  std::unique_ptr<transport::TlsSession> tls;
  if (tls_ != nullptr) {
    auto session = transport::TlsAccept(*tls_, fd.get(), o_.tls->peer_fingerprint, kHelloTimeoutMs,
                                        cancel_->fd());
    if (!session) {
      base::LogWarning("incoming move: refused a connection from " + peer.text + ": " +
                       session.error().message());
      transport::DrainBeforeClose(fd.get(), kRefusalLingerMs);
      return nullptr;
    }
    tls = *std::move(session);
  }
  auto fs = std::make_unique<transport::FrameStream>(std::move(fd), "data stream from " + peer.text,
                                                     std::move(tls));
  auto hello = transport::ServerHello(*fs, kHelloTimeoutMs, cancel_->fd());
  if (!hello) {  // answered with an error frame naming the problem (unless the peer left)
    base::LogWarning("incoming move: rejected a connection: " + hello.error().ToString());
    transport::DrainBeforeClose(fs->fd(), kRefusalLingerMs);
    return nullptr;
  }
  auto reject = [&](const std::string& why) -> std::unique_ptr<Stream> {
    base::Error e(base::Code::kFailedPrecondition, why);
    base::LogWarning("incoming move: rejected " + fs->name() + ": " + why);
    fs->SendError(e);
    transport::DrainBeforeClose(fs->fd(), kRefusalLingerMs);
    return nullptr;
  };
  if (hello->role != transport::StreamRole::kData) return reject("not a data stream");
  if (hello->migration_id != id_)
    return reject("migration " + FormatMigrationId(hello->migration_id) +
                  " is not the one expected here (" + o_.plan.migration_id + ")");
  base::MutexLock lock(mu_);
  if (expected_streams_ == 0) expected_streams_ = hello->stream_count;
  if (hello->stream_count != expected_streams_)
    return reject("stream count " + N(hello->stream_count) + " differs from the first stream's " +
                  N(expected_streams_));
  for (const auto& s : streams_) {
    if (s->index == hello->stream_index)
      return reject("stream index " + N(hello->stream_index) + " twice");
  }
  auto s = std::make_unique<Stream>();
  s->index = hello->stream_index;
  s->count = expected_streams_;
  s->fs = std::move(fs);
  return s;
}

void LiveMoveDestination::Impl::AcceptLoop() {
  base::SetThreadName("move-accept");
  for (;;) {
    uint32_t have, want;
    {
      base::MutexLock lock(mu_);
      if (outcome_ != Outcome::kRunning) break;
      have = uint32_t(streams_.size());
      want = expected_streams_;
      if (want != 0 && have == want) {
        phase_ = LiveMovePhase::kPrecopy;
        break;
      }
    }
    const int64_t elapsed_ms = int64_t((base::MonotonicNanos() - start_ns_) / 1000000);
    const int64_t left = int64_t(o_.connect_timeout_ms) - elapsed_ms;
    if (left <= 0) {
      Fail(base::Error(
          base::Code::kDeadlineExceeded,
          want == 0 ? "no data stream from the source within " + N(o_.connect_timeout_ms) + " ms"
                    : "only " + N(have) + " of " + N(want) + " data streams connected within " +
                          N(o_.connect_timeout_ms) + " ms"));
      break;
    }
    base::Status fatal;
    std::unique_ptr<Stream> s = AcceptOne(int(left), fatal);
    if (!fatal) {
      if (fatal.error().code() == base::Code::kDeadlineExceeded)
        continue;  // reported above next round
      Fail(fatal.error().Wrap("incoming move: accept a data stream"));
      break;
    }
    if (!s) continue;
    base::MutexLock lock(mu_);
    if (outcome_ != Outcome::kRunning) {
      s->fs->Shutdown();
      break;
    }
    Stream* raw = s.get();
    streams_.push_back(std::move(s));
    receivers_.emplace_back([this, raw] { ReceiveLoop(raw); });
  }
  listener_.reset();  // nobody else may connect
}

base::Status LiveMoveDestination::Impl::ApplyData(Stream& s, const transport::Frame& f) {
  std::span<const uint8_t> p(f.payload);
  // The ordering rule (docs/live_move.md): a frame that writes something
  // travels on the stream chosen by what it writes, so two writes of the same
  // page or block are ordered by one FIFO stream. A frame on another stream
  // could overtake (or be overtaken by) a newer write of the same bytes, so
  // it is refused rather than applied out of order.
  auto route = [&](std::string what, uint64_t key) -> base::Status {
    const uint64_t want = key % s.count;
    if (want == s.index) return base::Ok();
    return base::Error(base::Code::kDataLoss, "malformed " + ToStr(MoveFrame(f.type)) + ": " +
                                                  what + " belongs on stream " + N(want) +
                                                  " (ordering rule), not " + N(s.index));
  };
  switch (MoveFrame(f.type)) {
    case MoveFrame::kPageBatch: {
      ASSIGN_OR_RETURN(PageBatchView batch, DecodePageBatch(p, memory_pages_));
      const uint64_t group = batch.pages.front().index / kMaxPagesPerBatch;
      RETURN_IF_ERROR(route("page group " + N(group), group));
      uint8_t* base = o_.machine->memory_base();
      const uint8_t* data = batch.data.data();
      uint64_t zero = 0;
      for (const PageEntry& e : batch.pages) {
        uint8_t* page = base + e.index * kPageBytes;
        if (e.zero) {
          std::memset(page, 0, kPageBytes);
          ++zero;
        } else {
          std::memcpy(page, data, kPageBytes);
          data += kPageBytes;
        }
      }
      memory_received_ += (batch.pages.size() - zero) * kPageBytes;
      zero_pages_ += zero;
      return base::Ok();
    }
    case MoveFrame::kDiskExtent: {
      ASSIGN_OR_RETURN(DiskExtentView x, DecodeDiskExtent(p, disks_->disk_sizes()));
      const uint64_t region = x.header.offset / kRegionBytes;
      RETURN_IF_ERROR(route("disk " + N(x.header.disk) + " region " + N(region),
                            x.header.disk * 7919ull + region));
      RETURN_IF_ERROR(disks_->WriteExtent(x.header.disk, x.header.offset, x.header.length, x.data));
      disk_received_ += x.data.size();
      return base::Ok();
    }
    case MoveFrame::kLayerChunk: {
      ASSIGN_OR_RETURN(LayerChunkView c, DecodeLayerChunk(p, disks_->layer_sizes()));
      RETURN_IF_ERROR(route("layer " + N(c.header.layer), c.header.layer));
      RETURN_IF_ERROR(disks_->WriteLayerChunk(c.header.layer, c.header.offset, c.data));
      disk_received_ += c.data.size();
      return base::Ok();
    }
    case MoveFrame::kLayerDone: {
      ASSIGN_OR_RETURN(LayerDone d, DecodeLayerDone(p, disks_->layer_sizes()));
      RETURN_IF_ERROR(route("layer " + N(d.layer), d.layer));
      return disks_->FinishLayer(d.layer, d.file_size);
    }
    default: break;
  }
  return base::Error(base::Code::kDataLoss,
                     "unexpected frame type " + N(f.type) + " on stream " + N(s.index));
}

// The stream's next frame. Silence is judged for the move, not the stream:
// a stream may rightly carry nothing for minutes (its page groups are clean,
// its disk regions idle) while the others are busy, and the source sends no
// keep-alives. Waiting for readability first (FrameStream reads exactly one
// frame's bytes, never ahead) keeps a slow, rate-limited frame from being cut
// by this poll.
base::Result<transport::Frame> LiveMoveDestination::Impl::NextFrame(Stream& s,
                                                                    const std::string& where) {
  for (;;) {
    auto readable = base::WaitReadable(s.fs->fd(), cancel_->fd(), kSilencePollMs);
    if (readable) break;
    if (readable.error().code() != base::Code::kDeadlineExceeded)
      return readable.error().Wrap(where);
    const uint64_t silent_ms = (base::MonotonicNanos() - last_frame_ns_.load()) / 1000000;
    if (silent_ms >= uint64_t(o_.idle_timeout_ms))
      return base::Error(
          base::Code::kDeadlineExceeded,
          "the source sent nothing for " + N(silent_ms) + " ms (" + where + " has not ended)");
  }
  // Once a frame starts, it must complete within the idle timeout.
  auto got = s.fs->Receive(transport::kMaxFramePayload, cancel_->fd(), o_.idle_timeout_ms);
  if (got) return got;
  const base::Error& e = got.error();
  if (e.code() == base::Code::kDeadlineExceeded)
    return base::Error(base::Code::kDeadlineExceeded, where + ": a frame did not complete within " +
                                                          N(o_.idle_timeout_ms) + " ms");
  if (e.code() == base::Code::kUnavailable)
    return base::Error(base::Code::kUnavailable,
                       where + " closed before the move completed: " + e.message());
  return e.Wrap(where);  // corruption (kDataLoss), or cancelled (ignored: already failing)
}

void LiveMoveDestination::Impl::ReceiveLoop(Stream* s) {
  std::string thread_name = "move-rx" + N(s->index);
  base::SetThreadName(thread_name.c_str());
  const std::string where = "stream " + N(s->index);
  bool ended = false;
  for (;;) {
    auto got = NextFrame(*s, where);
    if (!got) {
      // A source that gives up sends its reason on stream 0 and then closes
      // every stream at once: another stream's close can overtake that frame
      // (TLS makes stream 0 the slower to read), so it waits a moment for
      // stream 0's verdict before blaming the close.
      if (s->index != 0 && got.error().code() == base::Code::kUnavailable) {
        base::MutexLock lock(mu_);
        const auto until = std::chrono::steady_clock::now() + kCloseGrace;
        while (outcome_ == Outcome::kRunning && cv_.WaitUntil(mu_, until)) {
        }
      }
      return Fail(got.error());
    }
    transport::Frame& f = *got;
    last_frame_ns_ = base::MonotonicNanos();
    s->payload_bytes += f.payload.size();
    if (f.type == uint16_t(transport::FrameType::kError))
      return Fail(transport::DecodeErrorPayload(f.payload).Wrap("the source failed the move"));
    switch (MoveFrame(f.type)) {
      case MoveFrame::kAbort: {
        std::string reason = "no reason given";
        if (auto j = ParseJsonPayload(f.payload, "abort");
            j && j->contains("reason") && (*j)["reason"].is_string())
          reason = (*j)["reason"].get<std::string>();
        return Fail(base::Error(base::Code::kAborted, "the source aborted the move: " + reason));
      }
      case MoveFrame::kStreamEnd: {
        if (ended) return Fail(base::Error(base::Code::kDataLoss, where + ": a second stream end"));
        auto end = DecodeStreamEnd(f.payload);
        if (!end) return Fail(end.error().Wrap(where));
        if (end->data_frames != s->data_frames)
          return Fail(base::Error(base::Code::kDataLoss,
                                  where + ": the source sent " + N(end->data_frames) +
                                      " data frames, " + N(s->data_frames) + " arrived"));
        ended = true;
        {
          base::MutexLock lock(mu_);
          s->ended = true;
          ++ended_streams_;
          if (phase_ == LiveMovePhase::kPrecopy || phase_ == LiveMovePhase::kPreparing)
            phase_ = LiveMovePhase::kSwitchover;
          cv_.NotifyAll();
        }
        // Only stream 0 carries anything after its end (the device state);
        // the others stay open, idle, until the move is decided.
        if (s->index != 0) return;
        continue;
      }
      case MoveFrame::kDeviceState:
        if (s->index != 0)
          return Fail(base::Error(base::Code::kDataLoss,
                                  where + ": device state on a stream other than 0"));
        if (!ended)
          return Fail(
              base::Error(base::Code::kDataLoss, where + ": device state before the stream's end"));
        return Commit(*s, std::string(f.payload.begin(), f.payload.end()));
      default: break;
    }
    if (ended)
      return Fail(base::Error(base::Code::kDataLoss,
                              where + ": frame type " + N(f.type) + " after its end"));
    if (auto st = ApplyData(*s, f); !st) return Fail(st.error().Wrap(where));
    ++s->data_frames;
  }
}

// The failure tests kill this worker, or its ferryd, between a complete
// machine and the commit point; FERRY_TEST_COMMIT_DELAY_MS (inherited from
// ferryd's environment) widens that window so they can hit it.
static void WaitBeforeCommitForTests() {
  const char* delay = std::getenv("FERRY_TEST_COMMIT_DELAY_MS");
  if (delay == nullptr || *delay == '\0') return;
  base::LogInfo(std::string("incoming move: waiting FERRY_TEST_COMMIT_DELAY_MS=") + delay +
                " ms before the commit point");
  std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(delay)));
}

void LiveMoveDestination::Impl::Commit(Stream& s0, std::string device_state) {
  {
    base::MutexLock lock(mu_);
    while (outcome_ == Outcome::kRunning &&
           (expected_streams_ == 0 || ended_streams_ != expected_streams_))
      cv_.Wait(mu_);
    if (outcome_ != Outcome::kRunning) return;
    committing_ = true;
  }
  if (auto st = disks_->Finish(); !st)
    return Fail(st.error().Wrap("incoming move: finish the disks"), true);
  if (auto st = o_.machine->FinishIncoming(device_state); !st)
    return Fail(st.error().Wrap("incoming move: build the vm from its device state"), true);
  WaitBeforeCommitForTests();
  // The commit point: once this marker is durable the VM belongs here.
  const std::string marker = o_.vm_dir + "/" + kCommittedMarker;
  if (auto st = base::WriteFileAtomically(marker, o_.plan.migration_id + "\n"); !st) {
    ::unlink(marker.c_str());
    return Fail(st.error().Wrap("incoming move: write the commit marker"), true);
  }
  {
    base::MutexLock lock(mu_);
    outcome_ = Outcome::kCommitted;
    phase_ = LiveMovePhase::kCompleted;
    cv_.NotifyAll();
  }
  base::LogInfo("incoming move " + o_.plan.migration_id + ": committed");
  if (o_.resume) {
    if (auto st = o_.resume(); !st) {
      // Committed all the same: the source must never run the VM again. The
      // worker reports the machine as it is (paused).
      base::LogError("incoming move: resume after commit failed: " + st.error().ToString());
      base::MutexLock lock(mu_);
      error_ = st.error().Wrap("resume after commit");
    }
  }
  if (auto st = s0.fs->Send(uint16_t(MoveFrame::kCommitted), JsonPayload(nlohmann::json::object()),
                            {}, nullptr, cancel_->fd(), kCommittedLingerMs);
      !st) {
    base::LogWarning("incoming move: Committed not delivered (the source will ask ferryd): " +
                     st.error().ToString());
  } else {
    // Linger until the source closes (it has read Committed) or a while.
    while (s0.fs->Receive(transport::kMaxFramePayload, cancel_->fd(), kCommittedLingerMs)) {
    }
  }
  {
    base::MutexLock lock(mu_);
    for (auto& s : streams_) s->fs->Shutdown();
  }
  SignalFd(o_.notify_fd);
}

void LiveMoveDestination::Impl::Fail(const base::Error& e, bool force) {
  Stream* s0 = nullptr;
  {
    base::MutexLock lock(mu_);
    if (outcome_ != Outcome::kRunning || (committing_ && !force)) return;
    outcome_ = Outcome::kFailed;
    phase_ = LiveMovePhase::kFailed;
    error_ = e;
    for (auto& s : streams_)
      if (s->index == 0) s0 = s.get();
    cv_.NotifyAll();
  }
  base::LogError("incoming move " + o_.plan.migration_id + " failed: " + e.ToString());
  // Tell the source first (stream 0 is its error channel), then cut every
  // wait: sockets, the layer waits, accept.
  if (s0 != nullptr) s0->fs->SendError(e);
  // eventfd: fails only at counter overflow, readable then anyway.
  (void)cancel_->Signal();
  if (disks_) disks_->Cancel();
  {
    base::MutexLock lock(mu_);
    for (auto& s : streams_) s->fs->Shutdown();
  }
  SignalFd(o_.notify_fd);
}

void LiveMoveDestination::Impl::Abort(const std::string& reason) {
  if (!cancel_) return;  // Init never got far enough to start a thread
  Fail(base::Error(base::Code::kAborted, "incoming move aborted: " + reason));
  {
    // An abort during the commit waits for the commit's verdict; after it
    // the streams are only lingering and may be cut.
    base::MutexLock lock(mu_);
    while (outcome_ == Outcome::kRunning) cv_.Wait(mu_);
  }
  // eventfd: fails only at counter overflow, readable then anyway.
  (void)cancel_->Signal();
  std::call_once(joined_, [&] {
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> receivers;
    {
      base::MutexLock lock(mu_);
      receivers.swap(receivers_);
    }
    for (auto& t : receivers) t.join();
  });
}

LiveMoveStatus LiveMoveDestination::Impl::Status() const {
  LiveMoveStatus s;
  s.migration_id = o_.plan.migration_id;
  s.memory_bytes = o_.plan.memory_bytes;
  s.disk_bytes = o_.plan.disk_bytes;
  s.memory_sent = memory_received_;
  s.zero_pages = zero_pages_;
  s.disk_sent = disk_received_;
  const double seconds = (base::MonotonicNanos() - start_ns_) / 1e9;
  base::MutexLock lock(mu_);
  s.phase = phase_;
  for (const auto& st : streams_) {
    transport::StreamCounters c = st->fs->counters();
    StreamReport r;
    r.bytes_sent = c.bytes_received;  // the destination reports what it received
    r.payload_bytes = st->payload_bytes;
    r.frames = c.frames_received;
    s.wire_bytes += c.bytes_received;
    s.streams.push_back(r);
  }
  if (seconds > 0) s.bytes_per_second = double(s.wire_bytes) / seconds;
  s.total_ms = seconds * 1000;
  if (error_) {
    s.error_code = std::string(base::CodeName(error_->code()));
    s.error = error_->message();
  }
  return s;
}

// ---- LiveMoveDestination ------------------------------------------------------

LiveMoveDestination::LiveMoveDestination(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LiveMoveDestination::~LiveMoveDestination() = default;

base::Result<std::unique_ptr<LiveMoveDestination>> LiveMoveDestination::Start(Options options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<LiveMoveDestination>(new LiveMoveDestination(std::move(impl)));
}

uint16_t LiveMoveDestination::port() const { return impl_->port(); }
LiveMoveStatus LiveMoveDestination::Status() const { return impl_->Status(); }
LiveMoveDestination::Outcome LiveMoveDestination::outcome() const { return impl_->outcome(); }
base::Error LiveMoveDestination::error() const { return impl_->error(); }
void LiveMoveDestination::Abort(const std::string& reason) { impl_->Abort(reason); }

}  // namespace appliance
