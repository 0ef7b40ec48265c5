// JSON codec of PeerTrust (peer_trust.h).
#include "protocol/peer_trust.h"

#include "json_fields.h"

namespace appliance {

using json = nlohmann::json;

json ToJson(const PeerTrust& t) {
  return json{{"certificate", t.certificate},
              {"key", t.key},
              {"trusted_ca", t.trusted_ca},
              {"trusted_fingerprints", t.trusted_fingerprints},
              {"peer_fingerprint", t.peer_fingerprint}};
}

base::Result<PeerTrust> PeerTrustFromJson(const json& j) {
  RETURN_IF_ERROR(json_fields::RequireObject(j, "peer trust"));
  json_fields::Reader in(j, "peer trust");
  PeerTrust t;
  ASSIGN_OR_RETURN(t.certificate, in.String("certificate"));
  ASSIGN_OR_RETURN(t.key, in.String("key"));
  ASSIGN_OR_RETURN(t.trusted_ca, in.String("trusted_ca", false));
  ASSIGN_OR_RETURN(t.peer_fingerprint, in.String("peer_fingerprint"));
  ASSIGN_OR_RETURN(const json* pins, in.Array("trusted_fingerprints", false));
  for (size_t i = 0; i < pins->size(); ++i) {
    if (!(*pins)[i].is_string())
      return in.Bad("trusted_fingerprints[" + std::to_string(i) + "]", "must be a string");
    t.trusted_fingerprints.push_back((*pins)[i].get<std::string>());
  }
  if (t.certificate.empty()) return in.Bad("certificate", "must not be empty");
  if (t.key.empty()) return in.Bad("key", "must not be empty");
  if (t.peer_fingerprint.empty()) return in.Bad("peer_fingerprint", "must not be empty");
  if (t.trusted_ca.empty() && t.trusted_fingerprints.empty())
    return in.Bad("trusted_fingerprints", "no CA and no fingerprint: nobody would be trusted");
  return t;
}

}  // namespace appliance
