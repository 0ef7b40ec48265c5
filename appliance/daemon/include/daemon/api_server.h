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
#pragma once

#include <memory>
#include <string>

#include "base/event_fd.h"
#include "daemon/api_caller.h"
#include "daemon/api_handler.h"

struct MHD_Daemon;

namespace appliance {

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
  };
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
  // Ends console streams, waits for connection threads, removes the socket.
  ~ApiServer();

  ApiHandler& handler() { return handler_; }
  const ApiAuthenticator* authenticator() const { return authenticator_; }
  int stop_fd() const { return stop_.fd(); }
  // The connection limit in force (Options::max_connections, or lower).
  unsigned max_connections() const { return max_connections_; }

 private:
  ApiServer(std::string socket_path, ApiHandler& handler, base::EventFd stop)
      : socket_path_(std::move(socket_path)), handler_(handler), stop_(std::move(stop)) {}

  std::string socket_path_;
  ApiHandler& handler_;
  base::EventFd stop_;  // signalled at shutdown: console streams end
  MHD_Daemon* daemon_ = nullptr;
  unsigned max_connections_ = 0;
  const ApiAuthenticator* authenticator_ = nullptr;  // Options::authenticator
};

}  // namespace appliance
