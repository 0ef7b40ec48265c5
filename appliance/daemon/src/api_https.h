// ApiServer's remote listener (api_listen): the same API over HTTPS, with
// libmicrohttpd's TLS (GnuTLS in Debian's build) presenting this host's
// [tls] certificate. Private to the daemon room; ApiServer owns what this
// returns.
#pragma once

#include <microhttpd.h>

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "daemon/api_server.h"

namespace appliance {

struct ApiListener;

// SHA-256 of the first certificate in a PEM file, in DER: RFC 5929's
// tls-server-end-point channel binding for a server presenting it (the
// certificates ferryd makes are signed with SHA-256, the hash that RFC
// picks for them).
base::Result<std::vector<uint8_t>> ServerEndPointBinding(const std::string& certificate_file);

struct HttpsDaemon {
  MHD_Daemon* daemon = nullptr;  // MHD_stop_daemon closes its socket
  uint16_t port = 0;             // the bound port (api_listen's, or the one picked for 0)
};

// Binds https.listen, loads the certificate and key, and starts MHD with
// TLS 1.2 or 1.3 only, one thread per connection, the idle timeout and the
// connection limit. listener (its binding included) must outlive the
// daemon. Errors name api_listen's address or the file that failed.
base::Result<HttpsDaemon> StartHttpsDaemon(const ApiServer::HttpsOptions& https,
                                           ApiListener& listener, unsigned max_connections,
                                           unsigned idle_timeout_s);

}  // namespace appliance
