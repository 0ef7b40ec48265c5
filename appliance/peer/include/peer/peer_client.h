// The client side of the live-move control stream (docs/live_move.md): the
// source ferryd (Prepare, Abort) and the source worker (Status, after it lost
// its data streams) each open a fresh TCP connection to the destination
// ferryd's peer listener (PeerService), say hello with role control, send one
// request frame and read one reply frame. There is no session: every call is
// independent, so a caller retries by calling again.
//
// Thread-safety: the functions share no state; call them from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "config/host_settings.h"
#include "protocol/move_protocol.h"
#include "transport/tls.h"

namespace appliance {

// The destination ferryd's peer port when host.toml's listen_addresses (or
// the --destination argument) names none.
inline constexpr uint16_t kDefaultPeerPort = 7430;

struct PeerEndpoint {
  std::string host;  // IP literal (or a name getaddrinfo resolves)
  uint16_t port = kDefaultPeerPort;
  std::string source_host;  // bind the local side here ("" any)
  // TLS with this identity and trust (transport/tls.h); nullptr speaks plain
  // frames, which no ferryd accepts: only tests of the plain protocol use it.
  std::shared_ptr<const transport::TlsContext> tls;
  // Not "": the peer must present exactly this certificate (the host a move
  // was negotiated with), besides being trusted.
  std::string expected_fingerprint;
  // "host:port" ("[v6]:port" for IPv6), for messages.
  std::string ToString() const;
};

// "10.0.0.2", "10.0.0.2:7430", "[fd00::2]", "[fd00::2]:7430", "fd00::2" (a
// bare IPv6 literal has no port), "host2.example:7430". Without a port,
// default_port. kInvalidArgument naming the text for an empty host, a bad or
// zero port, or unbalanced brackets. source_host is left "".
base::Result<PeerEndpoint> ParsePeerEndpoint(std::string_view host_port, uint16_t default_port);

// One request on a fresh control connection: TcpConnect (from
// peer.source_host) + TLS (peer.tls; a refused handshake is
// kPermissionDenied naming host:port and why) + ClientHello (role control) + one frame of
// request_type carrying request as JSON, then one reply frame:
//   - reply_type: its JSON payload (kDataLoss if it is not a JSON object);
//   - a transport kError frame: the peer's error with its code preserved
//     (kFailedPrecondition, kPermissionDenied, kResourceExhausted, ...), the
//     message prefixed "<host:port>: ";
//   - any other type: kDataLoss naming it.
// timeout_ms bounds each step (connect, hello, send, reply); Prepare may take
// a while at the destination (it launches the incoming worker), so callers
// give it tens of seconds. Unreachable / refused: kUnavailable naming
// host:port; timeout: kDeadlineExceeded naming host:port.
// peer_fingerprint, if not null, receives the fingerprint of the
// certificate the peer presented ("" over plain frames).
// authorize, if set, is called once the TLS session stands, with the peer
// it authenticated (its channel binding included): a non-null JSON it
// returns is sent as the request's "authorization" member
// (protocol/move_authorization.h), an error ends the call.
using RequestAuthorizer = std::function<base::Result<nlohmann::json>(const transport::TlsPeer&)>;
base::Result<nlohmann::json> CallPeer(const PeerEndpoint& peer, MoveFrame request_type,
                                      const nlohmann::json& request, MoveFrame reply_type,
                                      int timeout_ms, std::string* peer_fingerprint = nullptr,
                                      const RequestAuthorizer& authorize = nullptr);

// The destination's verdict on a migration: its Status, committed, aborted
// or unknown there. "running" is no verdict (a Status of a running move ends
// it there first, so it means a record that is not settled): kUnavailable,
// like an unreachable destination, so nobody decides on it.
base::Result<RemoteMoveState> AskMoveState(const PeerEndpoint& peer,
                                           const std::string& migration_id, int timeout_ms);

// The host part of the first host.toml listen_addresses entry ("" if none):
// where this host's migration traffic leaves from (PeerEndpoint::source_host).
std::string MigrationSourceHost(const config::HostSettings& host);

}  // namespace appliance
