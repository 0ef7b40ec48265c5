// HttpClient's remote transport (`ferry --host`): ferryd's API over HTTPS.
// Verifies the server's certificate (http_tls.h), authenticates each request
// (Basic with --user; Negotiate once ferryd has asked for it) and turns curl's
// and ferryd's refusals into messages that say what to do. Private to the
// cli room.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "cli/http_client.h"
#include "http_tls.h"
#include "http_transfer.h"

namespace appliance {

class RemoteSession {
 public:
  static base::Result<std::unique_ptr<RemoteSession>> Open(RemoteTarget target);

  std::string Where() const;  // "host1.example.com:7443", "[fd00::2]:7443"
  // request's method, body, timeout and sink as given; its URL is made here
  // from path.
  base::Result<HttpResult> Perform(TransferRequest request, const std::string& path);

 private:
  explicit RemoteSession(RemoteTarget target) : target_(std::move(target)) {}
  // The Authorization line for the next request, "" for none.
  base::Result<std::string> AuthorizationLine() const;
  // After a 401: whether to retry with credentials now known to be wanted,
  // or the error saying what the caller must give.
  base::Result<bool> Answer401(const TransferResult& t);
  base::Error TransportError(const TransferResult& t, const TlsCheck& check,
                             const std::string& what) const;

  RemoteTarget target_;
  std::optional<Sha256> pinned_;     // target_.fingerprint, parsed
  std::optional<Sha256> last_seen_;  // the certificate the last connection presented
  // Kerberos mode: ferryd answered 401 Negotiate naming this principal; every
  // later request carries a token for it.
  std::string service_principal_;
};

}  // namespace appliance
