// JSON codec of MoveAuthorization (move_authorization.h).
#include "protocol/move_authorization.h"

#include "base/base64.h"
#include "json_fields.h"

namespace appliance {

using json = nlohmann::json;

json ToJson(const MoveAuthorization& a) {
  if (a.mechanism == AuthorizationMechanism::kKerberos)
    return json{{"mechanism", "kerberos"}, {"token", base::Base64Encode(a.kerberos_token)}};
  return json{{"mechanism", "credentials"}, {"user", a.user}, {"password", a.password}};
}

base::Result<MoveAuthorization> MoveAuthorizationFromJson(const json& j) {
  RETURN_IF_ERROR(json_fields::RequireObject(j, "authorization"));
  json_fields::Reader in(j, "authorization");
  MoveAuthorization a;
  ASSIGN_OR_RETURN(std::string mechanism, in.String("mechanism"));
  if (mechanism == "kerberos") {
    a.mechanism = AuthorizationMechanism::kKerberos;
    ASSIGN_OR_RETURN(std::string token, in.String("token"));
    if (token.empty()) return in.Bad("token", "must not be empty");
    ASSIGN_OR_RETURN(a.kerberos_token, base::Base64Decode(token, "authorization: token"));
  } else if (mechanism == "credentials") {
    a.mechanism = AuthorizationMechanism::kCredentials;
    ASSIGN_OR_RETURN(a.user, in.String("user"));
    if (a.user.empty()) return in.Bad("user", "must not be empty");
    ASSIGN_OR_RETURN(a.password, in.String("password"));
  } else {
    return in.Bad("mechanism",
                  "must be \"kerberos\" or \"credentials\", not \"" + mechanism + "\"");
  }
  return a;
}

}  // namespace appliance
