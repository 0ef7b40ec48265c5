// PeerService: listeners, control connections and request dispatch. The
// requests themselves are in peer_service_prepare.cc (with its pre-flight in
// peer_service_preflight.cc) and peer_service_moves.cc.
#include "daemon/peer_service.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "transport/frame_stream.h"
#include "transport/hello.h"

namespace appliance {
namespace {

// Prepare carries the VM definition; a control request is far below this.
constexpr uint32_t kMaxControlRequest = 1 << 20;
// How long an accept waits before the loop reaps finished connection threads.
constexpr int kAcceptTickMs = 1000;

// After replying (or refusing), how long to read what the peer still sends
// before closing, so unread bytes of a bad request never turn our close into
// a reset that destroys the reply in flight.
constexpr int kLingerMs = 1000;

}  // namespace

PeerService::PeerService(VmService& vms, Options options, base::EventFd stop)
    : vms_(vms),
      options_(std::move(options)),
      host_cpu_(options_.host_cpu ? base::Result<HostCpu>(*options_.host_cpu)
                                  : ReadHostCpu(options_.kvm_device)),
      stop_(std::move(stop)) {}

base::Result<std::unique_ptr<PeerService>> PeerService::Start(VmService& vms, Options options) {
  ASSIGN_OR_RETURN(base::EventFd stop, base::EventFd::Create());
  std::unique_ptr<PeerService> service(new PeerService(vms, std::move(options), std::move(stop)));
  if (!service->host_cpu_)
    base::LogWarning("peer service: " + service->host_cpu_.error().message() +
                     "; incoming live moves will be refused");
  for (const std::string& dir : {service->IncomingRoot(), service->RecordsDir()}) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      return base::ErrnoError("create " + dir);
  }
  service->Recover();
  for (const config::ListenAddress& address : service->options_.host.listen_addresses) {
    auto listener = transport::TcpListener::Bind(address.host, address.port);
    if (!listener) return listener.error().Wrap("peer listener (host.toml listen_addresses)");
    service->listeners_.push_back(std::make_unique<transport::TcpListener>(std::move(*listener)));
  }
  PeerService* self = service.get();
  service->monitor_thread_ = std::thread([self] { self->MonitorLoop(); });
  for (auto& listener : service->listeners_) {
    transport::TcpListener* l = listener.get();
    service->accept_threads_.emplace_back([self, l] { self->AcceptLoop(l); });
    base::LogInfo(
        "peer service listening on " + l->host() + ":" + std::to_string(l->port()) +
        (service->options_.host.incoming_enabled ? "" : " (incoming live moves disabled)"));
  }
  return service;
}

PeerService::~PeerService() {
  // An eventfd write fails only if the counter would overflow, which one
  // signal cannot reach.
  (void)stop_.Signal();
  for (auto& t : accept_threads_) {
    if (t.joinable()) t.join();
  }
  ReapConnections(/*all=*/true);
  if (monitor_thread_.joinable()) monitor_thread_.join();
}

std::vector<std::pair<std::string, uint16_t>> PeerService::listening() const {
  std::vector<std::pair<std::string, uint16_t>> out;
  for (const auto& l : listeners_) out.emplace_back(l->host(), l->port());
  return out;
}

void PeerService::AcceptLoop(transport::TcpListener* listener) {
  base::SetThreadName("peer-accept");
  for (;;) {
    auto accepted = listener->Accept(stop_.fd(), kAcceptTickMs);
    ReapConnections(/*all=*/false);
    if (!accepted) {
      if (accepted.error().code() == base::Code::kCancelled) return;
      if (accepted.error().code() == base::Code::kDeadlineExceeded) continue;
      base::LogWarning("peer service: accept on " + listener->host() + ":" +
                       std::to_string(listener->port()) + ": " + accepted.error().message());
      // A persistent failure (EMFILE) must not spin; the stop fd still ends the
      // wait. Only a pause: whatever it returns, the next Accept sees the stop.
      (void)base::WaitReadable(stop_.fd(), -1, 100);
      continue;
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    base::MutexLock lock(conn_mu_);
    if (connections_.size() >= options_.max_connections) {
      RefuseBusy(std::move(accepted->first), accepted->second);
      continue;
    }
    connections_.push_back(Connection{std::thread([this, done, socket = std::move(accepted->first),
                                                   peer = accepted->second]() mutable {
                                        base::SetThreadName("peer-conn");
                                        ServeConnection(std::move(socket), std::move(peer));
                                        done->store(true);
                                      }),
                                      done});
  }
}

void PeerService::RefuseBusy(base::Fd socket, const transport::PeerAddress& peer) {
  base::Error e(base::Code::kResourceExhausted, "too many control connections (" +
                                                    std::to_string(options_.max_connections) +
                                                    " being served); try again");
  base::LogWarning("peer service: refused a connection from " + peer.text + ": " + e.message());
  transport::FrameStream stream(std::move(socket), "control connection from " + peer.text);
  // A fresh socket's send buffer is empty: this does not block the accept loop.
  stream.SendError(e);
  ::shutdown(stream.fd(), SHUT_WR);
  // Whatever the peer sent already is read without waiting, so the close
  // sends no reset that could destroy the error frame in flight (unlike
  // LingeringClose, this thread cannot wait for more).
  char buf[4096];
  while (::recv(stream.fd(), buf, sizeof buf, MSG_DONTWAIT) > 0) {
  }
}

void PeerService::ReapConnections(bool all) {
  std::list<Connection> finished;
  {
    base::MutexLock lock(conn_mu_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (all || it->done->load()) {
        finished.splice(finished.end(), connections_, it++);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : finished) c.thread.join();
}

std::unique_ptr<transport::TlsSession> PeerService::Handshake(int socket,
                                                              const transport::PeerAddress& peer) {
  if (options_.tls == nullptr) {
    // Without trust nobody can be told apart from an attacker; a ferry peer
    // still learns why in a plaintext error frame.
    base::Error e(base::Code::kPermissionDenied,
                  "this host trusts no peer yet ([tls] in its host.toml): it accepts no "
                  "connection");
    base::LogWarning("peer service: refused " + peer.text + ": " + e.message());
    transport::FrameStream plain(base::Fd(::dup(socket)), "connection from " + peer.text);
    plain.SendError(e);
    return nullptr;
  }
  auto session =
      transport::TlsAccept(*options_.tls, socket, "", options_.hello_timeout_ms, stop_.fd());
  if (!session) {
    base::LogWarning("peer service: refused " + peer.text + ": " + session.error().message());
    return nullptr;
  }
  return *std::move(session);
}

void PeerService::ServeConnection(base::Fd socket, transport::PeerAddress peer) {
  auto local = transport::GetLocalAddress(socket.get());
  std::unique_ptr<transport::TlsSession> tls = Handshake(socket.get(), peer);
  if (tls == nullptr) return transport::DrainBeforeClose(socket.get(), kLingerMs);
  const transport::TlsPeer tls_peer = tls->peer();
  transport::FrameStream stream(std::move(socket), "control connection from " + peer.text,
                                std::move(tls));
  auto finish = [&] { transport::DrainBeforeClose(stream.fd(), kLingerMs); };

  auto hello = transport::ServerHello(stream, options_.hello_timeout_ms, stop_.fd());
  if (!hello) {  // already answered with an Error frame (unless the peer left)
    base::LogWarning("peer service: " + hello.error().message());
    return finish();
  }
  if (hello->role != transport::StreamRole::kControl) {
    base::Error e(
        base::Code::kInvalidArgument,
        "this is a ferryd peer listener: it accepts control streams only, not data streams");
    base::LogWarning("peer service: " + peer.text + ": " + e.message());
    stream.SendError(e);
    return finish();
  }
  if (!local) {
    stream.SendError(local.error());
    return finish();
  }
  auto frame = stream.Receive(kMaxControlRequest, stop_.fd(), options_.io_timeout_ms);
  if (!frame) {
    base::LogWarning("peer service: " + frame.error().message());
    if (frame.error().code() != base::Code::kUnavailable) stream.SendError(frame.error());
    return finish();
  }
  base::Result<std::pair<MoveFrame, nlohmann::json>> reply =
      [&]() -> base::Result<std::pair<MoveFrame, nlohmann::json>> {
    if (frame->type == uint16_t(transport::FrameType::kError))
      return base::Error(base::Code::kInvalidArgument, "expected a request, got an error frame");
    ASSIGN_OR_RETURN(nlohmann::json request, ParseJsonPayload(frame->payload, "control request"));
    return Dispatch(frame->type, request, Caller{peer, *local, tls_peer});
  }();
  if (!reply) {
    base::LogWarning("peer service: request from " + peer.text + ": " + reply.error().message());
    stream.SendError(reply.error());
    return finish();
  }
  const std::vector<uint8_t> payload = JsonPayload(reply->second);
  if (auto sent = stream.Send(uint16_t(reply->first), payload, {}, nullptr, stop_.fd(),
                              options_.io_timeout_ms);
      !sent) {
    base::LogWarning("peer service: reply to " + peer.text + ": " + sent.error().message());
  }
  finish();
}

base::Result<std::pair<MoveFrame, nlohmann::json>> PeerService::Dispatch(
    uint16_t type, const nlohmann::json& request, const Caller& caller) {
  switch (MoveFrame(type)) {
    case MoveFrame::kPrepare: {
      ASSIGN_OR_RETURN(nlohmann::json reply, Prepare(request, caller));
      return std::make_pair(MoveFrame::kPrepareReply, std::move(reply));
    }
    case MoveFrame::kStatusQuery: {
      ASSIGN_OR_RETURN(nlohmann::json reply, Status(request, caller));
      return std::make_pair(MoveFrame::kStatusReply, std::move(reply));
    }
    case MoveFrame::kAbort: {
      ASSIGN_OR_RETURN(nlohmann::json reply, Abort(request, caller));
      return std::make_pair(MoveFrame::kAbortReply, std::move(reply));
    }
    default:
      return base::Error(base::Code::kInvalidArgument,
                         "unexpected frame type " + std::to_string(type) +
                             " on a control stream (expected prepare, status query or abort)");
  }
}

}  // namespace appliance
