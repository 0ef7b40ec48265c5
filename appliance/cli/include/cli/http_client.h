// The CLI's HTTP client, one interface over two transports: ferryd's local
// Unix socket (CURLOPT_UNIX_SOCKET_PATH), or with `ferry --host` ferryd's
// HTTPS API on another host (src/http_remote.cc). curl_global_init must have
// run (ferry's main).
//
// Remote: the server certificate is verified against a CA (and the host
// name) or pinned by its SHA-256 fingerprint, never accepted unchecked. The
// caller authenticates as host.toml's migration.authentication asks: with
// --user, HTTP Basic inside TLS (credssp mode; a log-on at that host); in
// Kerberos mode, when ferryd answers 401 "Negotiate", with a token for the
// service principal the 401 names, bound to the SHA-256 of the certificate
// this connection saw (RFC 5929 tls-server-end-point), and then on every
// later request.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/secret.h"
#include "cli/cli_args.h"
#include "base/result.h"

namespace appliance {

struct HttpResult {
  long status = 0;
  std::string body;
};


// How ferry reaches and proves itself to a remote ferryd. Move-only (the
// password).
struct RemoteTarget {
  std::string host;  // a name or an IP literal (IPv6 without brackets)
  uint16_t port = kDefaultRemoteApiPort;
  // Exactly one of these: the CA that issued ferryd's certificate (the host
  // name is checked too), or the certificate's fingerprint ("SHA256:AB:…",
  // as `ferry host certificate show` prints it; no host-name check).
  std::string ca_file;
  std::string fingerprint;
  std::string user;  // HTTP Basic when not empty (credssp mode)
  auth::Secret password;
};

class RemoteSession;  // src/http_remote.h

class HttpClient {
 public:
  explicit HttpClient(std::string socket_path);
  // kInvalidArgument when the target names neither a CA nor a fingerprint,
  // or a fingerprint that does not parse.
  static base::Result<HttpClient> Remote(RemoteTarget target);
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;

  // A header sent with every request from now on ("x-ferry-user: alice").
  void AddHeader(std::string line) { extra_headers_.push_back(std::move(line)); }

  // One request; body null means none; headers are extra header lines
  // ("Authorization: Negotiate …") for this request only. kUnavailable when
  // ferryd cannot be reached, with a message that says so and names the
  // socket or host; kPermissionDenied when a remote certificate fails its
  // check (naming the fingerprint seen) or a 401 cannot be answered (saying
  // what to give).
  base::Result<HttpResult> Request(const std::string& method, const std::string& path,
                                   const std::string* body, long timeout_seconds,
                                   const std::vector<std::string>& headers = {});
  // A GET whose 200 body is passed to sink as it arrives (no timeout: it
  // lasts until ferryd ends it or the caller is interrupted). Non-200 bodies
  // are returned whole instead. The sink returns false to end the stream.
  base::Result<HttpResult> Stream(const std::string& path,
                                  const std::function<bool(std::string_view)>& sink);

  // "/run/ferry/ferryd.sock" or "host1.example.com:7443": for messages.
  std::string Where() const;

 private:
  explicit HttpClient(std::unique_ptr<RemoteSession> remote);
  base::Result<HttpResult> Perform(const std::string& method, const std::string& path,
                                   const std::string* body, long timeout_seconds,
                                   const std::function<bool(std::string_view)>* sink,
                                   const std::vector<std::string>& headers);
  std::string socket_path_;                // the local socket; "" when remote
  std::unique_ptr<RemoteSession> remote_;  // null for the local socket
  std::vector<std::string> extra_headers_;  // AddHeader's, on every request
};

}  // namespace appliance
