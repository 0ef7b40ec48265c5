// TLS identities for peer connections, from host.toml's [tls] (ferryd) or a
// PeerTrust handed to a worker (protocol/peer_trust.h). One place turns
// either into a transport::TlsContext, so ferryd and both workers of a move
// trust exactly the same peers.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "config/host_settings.h"
#include "peer/peer_client.h"
#include "protocol/peer_trust.h"
#include "transport/tls.h"

namespace appliance {

// host.toml's [tls] as transport settings. kInvalidArgument naming the
// [tls] keys when it trusts nobody: no peer could ever connect.
base::Result<transport::TlsSettings> HostTlsSettings(const config::HostSettings& host);

// ferryd's context for its peer listener and its outgoing control calls;
// errors (a missing file, a key that does not match, a malformed
// fingerprint) are wrapped with the host.toml they come from.
base::Result<std::shared_ptr<const transport::TlsContext>> LoadHostTls(
    const config::HostSettings& host);

// Creates this host's key and self-signed certificate where [tls] says,
// when neither file exists yet (an install's or a first start's job), and
// returns the certificate's fingerprint. Existing files are kept as they
// are; exactly one of the two existing is an error naming both.
base::Result<std::string> EnsureHostIdentity(const config::HostSettings& host,
                                             const std::string& common_name);

// The destination of an outgoing call from ferryd: host_port parsed as
// ParsePeerEndpoint does, leaving from this host's migration address,
// speaking TLS with ferryd's context (tls must not be null: kFailedPrecondition
// saying that [tls] trusts nobody).
base::Result<PeerEndpoint> MigrationPeer(std::string_view host_port,
                                         const config::HostSettings& host,
                                         std::shared_ptr<const transport::TlsContext> tls);

// What a worker of a move with peer_fingerprint needs (host.toml's [tls]).
PeerTrust HostPeerTrust(const config::HostSettings& host, const std::string& peer_fingerprint);

// A worker's context from what ferryd handed it.
base::Result<std::shared_ptr<const transport::TlsContext>> WorkerTls(const PeerTrust& trust);

}  // namespace appliance
