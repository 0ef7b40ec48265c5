// Who stands behind a move: the proof of the admin's identity that a source
// sends with its Prepare (the "authorization" member of the Prepare frame),
// checked by the destination according to its migration.authentication.
//
// It travels only inside the control connection's TLS session and is never
// stored: it is not part of PrepareRequest, so it is neither in incoming.json
// nor in any log. A Kerberos token is bound to that TLS session (its channel
// binding), so it is worthless on any other connection.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace appliance {

enum class AuthorizationMechanism {
  kKerberos = 1,     // a GSS-API token for the destination's migration service
  kCredentials = 2,  // an admin's user name and password, delegated by the source
};

struct MoveAuthorization {
  AuthorizationMechanism mechanism = AuthorizationMechanism::kKerberos;
  std::vector<uint8_t> kerberos_token;  // kKerberos (base64 in JSON)
  std::string user;                     // kCredentials
  std::string password;                 // kCredentials
};

// {"mechanism":"kerberos","token":"<base64>"} or
// {"mechanism":"credentials","user":…,"password":…}.
nlohmann::json ToJson(const MoveAuthorization& authorization);
// kInvalidArgument naming the field ("authorization: token: not base64 …").
base::Result<MoveAuthorization> MoveAuthorizationFromJson(const nlohmann::json& j);

// The member of a Prepare frame's JSON that carries it.
inline constexpr const char* kAuthorizationField = "authorization";

}  // namespace appliance
