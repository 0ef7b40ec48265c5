// The log-on endpoints of the API (credssp mode, docs/credentials.md):
//   POST   /v1/logon  {"user": "alice", "password": "..."}
//                               -> {"user": "alice", "expires_unix_ms": N}
//   DELETE /v1/logon/{user}     -> {"logged_off": "alice"}
//   GET    /v1/logons           -> {"logons": [{"user", "expires_unix_ms"}]}
// Only on the local socket: over the remote API each request's own Basic
// credentials are its log-on (credential_authentication.cc).
#include "auth/secret.h"
#include "daemon/api_handler.h"
#include "daemon/router.h"
#include "logon_sessions.h"

namespace appliance {

using nlohmann::json;

namespace {

json LogonToJson(const LogonInfo& logon) {
  return {{"user", logon.user}, {"expires_unix_ms", logon.expires_unix_ms}};
}

// {"user": string, "password": string} and nothing else. The password goes
// straight into a Secret.
base::Result<std::pair<std::string, auth::Secret>> ParseLogonBody(const std::string& text) {
  json body = json::parse(text.empty() ? "{}" : text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object())
    return base::Error(base::Code::kInvalidArgument, "request body must be a JSON object");
  std::string user;
  auth::Secret password;
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (it.key() == "user" && it->is_string()) {
      user = it->get<std::string>();
    } else if (it.key() == "password" && it->is_string()) {
      password = auth::Secret(std::move(it->get_ref<std::string&>()));
    } else {
      return base::Error(base::Code::kInvalidArgument,
                         "unknown or mistyped member \"" + it.key() +
                             "\" in logon request (user, password: strings)");
    }
  }
  if (user.empty()) return base::Error(base::Code::kInvalidArgument, "logon needs \"user\"");
  if (password.empty())
    return base::Error(base::Code::kInvalidArgument, "logon needs \"password\" (not empty)");
  return std::pair{std::move(user), std::move(password)};
}

}  // namespace

HttpResponse ApiHandler::HandleLogon(const Route& route, const HttpRequest& request) {
  if (logons_ == nullptr)
    return ErrorResponse(base::Error(
        base::Code::kFailedPrecondition,
        "log-ons are used only with migration.authentication = \"credssp\" in host.toml"));
  if (request.caller.remote)
    return ErrorResponse(base::Error(
        base::Code::kPermissionDenied,
        "log-ons are made on the local socket of a host; over the remote API each request's own "
        "user name and password serve as its log-on"));
  switch (route.id) {
    case RouteId::kLogon: {
      auto body = ParseLogonBody(request.body);
      if (!body) return ErrorResponse(body.error());
      auto logon = logons_->LogOn(body->first, std::move(body->second));
      if (!logon) return ErrorResponse(logon.error());
      return JsonResponse(200, LogonToJson(*logon));
    }
    case RouteId::kLogoff: {
      if (auto off = logons_->LogOff(route.name); !off) return ErrorResponse(off.error());
      return JsonResponse(200, {{"logged_off", route.name}});
    }
    case RouteId::kListLogons: {
      json list = json::array();
      for (const LogonInfo& logon : logons_->List()) list.push_back(LogonToJson(logon));
      return JsonResponse(200, {{"logons", list}});
    }
    default: return ErrorResponse(500, "internal", "unhandled route");
  }
}

}  // namespace appliance
