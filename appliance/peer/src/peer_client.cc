// CallPeer: one request/reply exchange on a fresh control connection.
#include "peer/peer_client.h"

#include <charconv>

#include "protocol/move_authorization.h"
#include "transport/frame_stream.h"
#include "transport/hello.h"
#include "transport/tcp.h"

namespace appliance {
namespace {

// A reply carries JSON only; Prepare's request (with the definition) is the
// largest control message and stays far below this.
constexpr uint32_t kMaxControlPayload = 1 << 20;

base::Error BadEndpoint(std::string_view text, std::string_view why) {
  return base::Error(base::Code::kInvalidArgument,
                     "peer address \"" + std::string(text) + "\": " + std::string(why));
}

}  // namespace

std::string PeerEndpoint::ToString() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

base::Result<PeerEndpoint> ParsePeerEndpoint(std::string_view text, uint16_t default_port) {
  PeerEndpoint peer;
  peer.port = default_port;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return BadEndpoint(text, "missing ']'");
    peer.host = std::string(text.substr(1, close - 1));
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return BadEndpoint(text, "expected ':port' after ']'");
      port_text = rest.substr(1);
      if (port_text.empty()) return BadEndpoint(text, "empty port");
    }
  } else {
    size_t first = text.find(':');
    if (first != std::string_view::npos && text.find(':', first + 1) == std::string_view::npos) {
      peer.host = std::string(text.substr(0, first));
      port_text = text.substr(first + 1);
      if (port_text.empty()) return BadEndpoint(text, "empty port");
    } else {
      // No colon, or several: a bare IPv6 literal without a port.
      peer.host = std::string(text);
    }
  }
  if (peer.host.empty()) return BadEndpoint(text, "empty host");
  if (peer.host.find_first_of("[] \t") != std::string::npos)
    return BadEndpoint(text, "malformed host");
  if (!port_text.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 ||
        value > 65535)
      return BadEndpoint(text, "port must be a number from 1 to 65535");
    peer.port = uint16_t(value);
  }
  return peer;
}

base::Result<RemoteMoveState> AskMoveState(const PeerEndpoint& peer,
                                           const std::string& migration_id, int timeout_ms) {
  ASSIGN_OR_RETURN(nlohmann::json reply, CallPeer(peer, MoveFrame::kStatusQuery,
                                                  nlohmann::json{{"migration_id", migration_id}},
                                                  MoveFrame::kStatusReply, timeout_ms));
  ASSIGN_OR_RETURN(RemoteMoveState state, ParseRemoteMoveState(reply.value("state", "")));
  if (state == RemoteMoveState::kRunning)
    return base::Error(base::Code::kUnavailable, peer.ToString() + " says migration " +
                                                     migration_id +
                                                     " is still running there (no verdict yet)");
  return state;
}

std::string MigrationSourceHost(const config::HostSettings& host) {
  return host.listen_addresses.empty() ? "" : host.listen_addresses.front().host;
}

base::Result<nlohmann::json> CallPeer(const PeerEndpoint& peer, MoveFrame request_type,
                                      const nlohmann::json& request, MoveFrame reply_type,
                                      int timeout_ms, std::string* peer_fingerprint,
                                      const RequestAuthorizer& authorize) {
  const std::string where = peer.ToString();
  ASSIGN_OR_RETURN(base::Fd socket,
                   transport::TcpConnect(peer.host, peer.port, peer.source_host, timeout_ms));
  std::unique_ptr<transport::TlsSession> tls;
  if (peer.tls != nullptr) {
    auto session =
        transport::TlsConnect(*peer.tls, socket.get(), peer.expected_fingerprint, timeout_ms);
    if (!session) return session.error().Wrap(where);
    tls = *std::move(session);
  }
  if (peer_fingerprint != nullptr) *peer_fingerprint = tls ? tls->peer().fingerprint : "";
  transport::FrameStream stream(std::move(socket), "control stream to " + where, std::move(tls));
  transport::Hello hello;
  hello.role = transport::StreamRole::kControl;
  // The move this conversation is about, when the request names one (for the
  // peer's logs; the request's JSON is what counts).
  if (request.is_object() && request.contains("migration_id") &&
      request["migration_id"].is_string()) {
    if (auto id = ParseMigrationId(request["migration_id"].get<std::string>()))
      hello.migration_id = *id;
  }
  RETURN_IF_ERROR(transport::ClientHello(stream, hello, timeout_ms));
  nlohmann::json body = request;
  if (authorize) {
    if (stream.tls_peer() == nullptr)
      return base::Error(base::Code::kFailedPrecondition,
                         where + ": an authorization is only ever sent inside TLS");
    ASSIGN_OR_RETURN(nlohmann::json authorization, authorize(*stream.tls_peer()));
    if (!authorization.is_null()) body[kAuthorizationField] = std::move(authorization);
  }
  const std::vector<uint8_t> payload = JsonPayload(body);
  RETURN_IF_ERROR(stream.Send(uint16_t(request_type), payload, {}, nullptr, -1, timeout_ms));
  ASSIGN_OR_RETURN(transport::Frame reply, stream.Receive(kMaxControlPayload, -1, timeout_ms));
  if (reply.type == uint16_t(transport::FrameType::kError)) {
    // Named by its address here, so the peer's own text rather than the
    // generic "peer: " form (a malformed frame has no peer text: as is).
    base::Error e = transport::DecodeErrorPayload(reply.payload);
    return base::Error(e.code(), where + ": " + (e.from_peer() ? e.peer_message() : e.message()));
  }
  if (reply.type != uint16_t(reply_type))
    return base::Error(base::Code::kDataLoss, where + ": expected a " +
                                                  std::string(ToString(reply_type)) +
                                                  " frame, got type " + std::to_string(reply.type));
  auto j = ParseJsonPayload(reply.payload, ToString(reply_type));
  if (!j) return j.error().Wrap(where);
  return *j;
}

}  // namespace appliance
