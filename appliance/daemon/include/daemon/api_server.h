// Serves ApiHandler over HTTP/1.1 on a Unix socket with libmicrohttpd.
//
// We create the socket ourselves (bind + listen, 0600, in a 0700 directory)
// and hand it to MHD with MHD_OPTION_LISTEN_SOCKET, because MHD only binds
// TCP ports itself. MHD runs one thread per connection: a console follow
// blocks its connection's thread until new output arrives, the client goes
// away, or the server stops — which a poll on the console's inotify fd, the
// client socket and a stop EventFd makes event-driven. A thread per
// connection (not a small pool) also because handlers block: a save or a
// worker call may take long, and must not hold up other clients.
//
// Idle clients must not lock the API out: a connection costs a thread and an
// fd, the limit is high (Options), and a connection that sends nothing for
// idle_timeout_s (a half-sent request included) is closed. Per-IP limits do
// not apply: every client of a Unix socket has the same (no) address.
//
// Remote management (Options::https, host.toml's api_listen): the same API
// over HTTPS on a TCP address, presenting the host's [tls] certificate (TLS
// 1.2 or 1.3). Every remote request must satisfy the authenticator with
// ApiTransport{remote, SHA-256 of that certificate}; a request with no
// Authorization header is answered 401 with the authenticator's challenge,
// one whose credentials are refused 403. The MHD and TLS glue lives in
// src/api_https.cc; both listeners share src/api_mhd.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "config/host_settings.h"
#include "daemon/api_caller.h"
#include "daemon/api_handler.h"

struct MHD_Daemon;

namespace appliance {

struct ApiListener;  // src/api_mhd.h

class ApiServer {
 public:
  struct Options {
    // A connection that sends nothing for this long is closed (0: never). A
    // console follow is exempt: it waits inside its response.
    unsigned idle_timeout_s = 30;
    // Connections open at once; libmicrohttpd accepts one more and closes it
    // at once. Start lowers it to what RLIMIT_NOFILE leaves room for (with
    // kReservedFds kept for the rest of ferryd), and says so in the log.
    unsigned max_connections = 1024;
    // Establishes who sent each request (api_caller.h); null: every caller
    // is the local root with no admin credentials. Must outlive the server.
    const ApiAuthenticator* authenticator = nullptr;

    struct Https {
      config::ListenAddress listen;  // api_listen; port 0 picks a free one (tests)
      std::string certificate_file;  // [tls] certificate (PEM): what clients verify
      std::string key_file;          // [tls] key (PEM)
      // Kerberos mode: the principal remote clients get a ticket for, named
      // in 401 answers (they cannot read GET /v1/host before authenticating).
      std::string service_principal;
    };
    // The remote listener; none when unset. Requires an authenticator.
    std::optional<Https> https;
  };
  using HttpsOptions = Options::Https;
  // File descriptors Start keeps out of max_connections' reach: workers'
  // pidfds and sockets, disks of storage moves, the peer listener.
  static constexpr unsigned kReservedFds = 256;

  // handler must outlive the server.
  static base::Result<std::unique_ptr<ApiServer>> Start(const std::string& socket_path,
                                                        ApiHandler& handler, Options options);
  static base::Result<std::unique_ptr<ApiServer>> Start(const std::string& socket_path,
                                                        ApiHandler& handler) {
    return Start(socket_path, handler, Options{});
  }
  // Ends console streams, waits for connection threads (both listeners),
  // removes the socket.
  ~ApiServer();

  ApiHandler& handler() { return handler_; }
  const ApiAuthenticator* authenticator() const { return authenticator_; }
  int stop_fd() const { return stop_.fd(); }
  // The connection limit in force (Options::max_connections, or lower).
  unsigned max_connections() const { return max_connections_; }
  // The HTTPS listener's port (0 when there is none).
  uint16_t https_port() const { return https_port_; }
  // What remote requests are bound to: SHA-256 of the DER certificate the
  // HTTPS listener presents (empty when there is none).
  const std::vector<uint8_t>& https_channel_binding() const;

 private:
  ApiServer(std::string socket_path, ApiHandler& handler, base::EventFd stop);
  base::Status StartHttps(const Options& options);

  std::string socket_path_;
  ApiHandler& handler_;
  base::EventFd stop_;  // signalled at shutdown: console streams end
  // What each MHD daemon's callbacks read; declared before the daemons,
  // which are stopped (in the destructor) before these go away.
  std::unique_ptr<ApiListener> local_;
  std::unique_ptr<ApiListener> remote_;
  MHD_Daemon* daemon_ = nullptr;        // the local socket
  MHD_Daemon* https_daemon_ = nullptr;  // api_listen; null when off
  uint16_t https_port_ = 0;
  unsigned max_connections_ = 0;
  const ApiAuthenticator* authenticator_ = nullptr;  // Options::authenticator
};

}  // namespace appliance
