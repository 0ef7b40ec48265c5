// What a worker needs to open its TLS data streams (transport/tls.h): this
// host's identity, whom the host trusts, and which certificate the other
// end of this move must present. ferryd fills it from host.toml's [tls] and
// the fingerprint of the peer it negotiated the move with, so a worker's
// data streams are bound to that same host: a different trusted host that
// learned the migration id still cannot join the move.
//
// Sent to the source worker inside its LiveMoveRequest and to the incoming
// worker in a file of its directory (ipc/vm_dir_files.h). Plain strings:
// the protocol room links no TLS library.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace appliance {

struct PeerTrust {
  std::string certificate;  // PEM file of this host's certificate
  std::string key;          // its private key
  std::string trusted_ca;   // "" none
  std::vector<std::string> trusted_fingerprints;
  std::string peer_fingerprint;  // the other host of this move; required
};
nlohmann::json ToJson(const PeerTrust& trust);
// kInvalidArgument naming the field; certificate, key and peer_fingerprint
// must be non-empty, and a CA or a fingerprint must be trusted.
base::Result<PeerTrust> PeerTrustFromJson(const nlohmann::json& j);

}  // namespace appliance
