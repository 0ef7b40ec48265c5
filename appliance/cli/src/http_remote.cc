#include "http_remote.h"

#include <string.h>
#include <strings.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "base/base64.h"
#include "cli/cli_kerberos.h"

namespace appliance {
namespace {

bool StartsWithWord(std::string_view text, std::string_view word) {
  return text.size() >= word.size() && strncasecmp(text.data(), word.data(), word.size()) == 0 &&
         (text.size() == word.size() || text[word.size()] == ' ');
}

void Wipe(std::string& s) {
  ::explicit_bzero(s.data(), s.size());
  s.clear();
}

}  // namespace

base::Result<std::unique_ptr<RemoteSession>> RemoteSession::Open(RemoteTarget target) {
  if (target.host.empty())
    return base::Error(base::Code::kInvalidArgument, "--host needs a host name or address");
  if (target.ca_file.empty() == target.fingerprint.empty())
    return base::Error(base::Code::kInvalidArgument,
                       "--host needs exactly one of --ca FILE (the CA that issued ferryd's "
                       "certificate) or --fingerprint SHA256:… (as `ferry host certificate "
                       "show` prints it on that host)");
  std::unique_ptr<RemoteSession> session(new RemoteSession(std::move(target)));
  if (!session->target_.fingerprint.empty()) {
    auto pinned = ParseCertificateFingerprint(session->target_.fingerprint);
    if (!pinned) return pinned.error().Wrap("--fingerprint");
    session->pinned_ = *pinned;
  }
  return session;
}

std::string RemoteSession::Where() const {
  const bool v6 = target_.host.find(':') != std::string::npos;
  return (v6 ? "[" + target_.host + "]" : target_.host) + ":" + std::to_string(target_.port);
}

base::Result<std::string> RemoteSession::AuthorizationLine() const {
  if (!target_.user.empty()) {
    // Basic inside TLS: credssp mode, a log-on at that host.
    std::string pair = target_.user + ":" + std::string(target_.password.view());
    std::string line =
        "Authorization: Basic " +
        base::Base64Encode(std::span(reinterpret_cast<const uint8_t*>(pair.data()), pair.size()));
    Wipe(pair);
    return line;
  }
  if (!service_principal_.empty() && last_seen_) {
    ASSIGN_OR_RETURN(std::string value, NegotiateAuthorization(service_principal_, *last_seen_));
    return "Authorization: " + value;
  }
  return std::string();
}

base::Result<bool> RemoteSession::Answer401(const TransferResult& t) {
  const std::string& challenge = t.www_authenticate;
  if (StartsWithWord(challenge, "Negotiate")) {
    if (!service_principal_.empty()) return false;  // a token was sent and not taken
    auto body = nlohmann::json::parse(t.response.body, nullptr, /*allow_exceptions=*/false);
    std::string principal;
    if (body.is_object() && body["kerberos"].is_object() &&
        body["kerberos"]["service_principal"].is_string())
      principal = body["kerberos"]["service_principal"].get<std::string>();
    if (principal.empty())
      return base::Error(base::Code::kPermissionDenied,
                         "ferryd at " + Where() +
                             " asks for Kerberos (Negotiate) but does not name its service "
                             "principal ([kerberos] service_principal in its host.toml)");
    if (!last_seen_)
      return base::Error(base::Code::kInternal,
                         "no server certificate was recorded to bind a Kerberos token to");
    service_principal_ = principal;
    return true;
  }
  if (StartsWithWord(challenge, "Basic") && target_.user.empty())
    return base::Error(base::Code::kPermissionDenied,
                       "ferryd at " + Where() +
                           " asks for a user and password (migration.authentication = "
                           "\"credssp\"): give --user USER, and the password at the prompt or "
                           "on stdin with --password-stdin");
  return false;
}

base::Error RemoteSession::TransportError(const TransferResult& t, const TlsCheck& check,
                                          const std::string& what) const {
  const std::string where = "ferryd at " + Where();
  if (check.pin_mismatch && check.seen)
    return base::Error(base::Code::kPermissionDenied,
                       where + " presented a certificate with fingerprint " +
                           FormatCertificateFingerprint(*check.seen) + ", not " +
                           FormatCertificateFingerprint(*pinned_) +
                           " as --fingerprint says; refusing to talk to it (`ferry host "
                           "certificate show` on that host prints its fingerprint)");
  switch (t.code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST: {
      std::string reason = t.os_errno != 0 ? std::strerror(int(t.os_errno)) : t.error;
      return base::Error(base::Code::kUnavailable,
                         "cannot reach " + where + ": " + reason +
                             " — is ferryd running there with api_listen on that address?",
                         int(t.os_errno));
    }
    case CURLE_PEER_FAILED_VERIFICATION:
      return base::Error(
          base::Code::kPermissionDenied,
          "cannot verify the certificate of " + where +
              (pinned_ ? std::string(" against --fingerprint")
                       : " against --ca " + target_.ca_file + " and the host name") +
              ": " + t.error +
              (check.seen ? " (it presented " + FormatCertificateFingerprint(*check.seen) + ")"
                          : std::string()));
    case CURLE_OPERATION_TIMEDOUT:
      return base::Error(base::Code::kDeadlineExceeded, what + " at " + where + " timed out");
    default: break;
  }
  return base::Error(
      base::Code::kUnavailable,
      what + " at " + where + " failed: " + t.error +
          (t.code == CURLE_SSL_CONNECT_ERROR ? " (is that ferryd's api_listen, speaking HTTPS?)"
                                             : ""));
}

base::Result<HttpResult> RemoteSession::Perform(TransferRequest request, const std::string& path) {
  request.url = "https://" + Where() + path;
  const std::string what = request.method + " " + path;
  const std::vector<std::string> given = request.headers;  // the caller's, on every attempt
  for (int attempt = 0;; ++attempt) {
    TlsCheck check;
    check.ca_file = target_.ca_file;
    check.pinned = pinned_;
    request.configure = [&check](CURL* curl) { ConfigureTls(curl, check); };
    ASSIGN_OR_RETURN(std::string authorization, AuthorizationLine());
    request.headers = given;
    if (!authorization.empty()) request.headers.push_back(std::move(authorization));
    TransferResult t = RunTransfer(request);
    for (std::string& line : request.headers) Wipe(line);
    if (check.seen) last_seen_ = check.seen;
    if (t.code != CURLE_OK) return TransportError(t, check, what);
    if (t.response.status != 401 || attempt > 0) return std::move(t.response);
    ASSIGN_OR_RETURN(bool retry, Answer401(t));
    if (!retry) return std::move(t.response);
  }
}

}  // namespace appliance
