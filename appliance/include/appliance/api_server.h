// Serves ApiHandler over HTTP/1.1 on a Unix socket with libmicrohttpd.
//
// We create the socket ourselves (bind + listen, 0600, in a 0700 directory)
// and hand it to MHD with MHD_OPTION_LISTEN_SOCKET, because MHD only binds
// TCP ports itself. MHD runs one thread per connection: a console follow
// blocks its connection's thread until new output arrives, the client goes
// away, or the server stops — which a poll on the console's inotify fd, the
// client socket and a stop EventFd makes event-driven.
#pragma once

#include <memory>
#include <string>

#include "appliance/api_handler.h"
#include "base/event_fd.h"

struct MHD_Daemon;

namespace appliance {

class ApiServer {
 public:
  // handler must outlive the server.
  static base::Result<std::unique_ptr<ApiServer>> Start(const std::string& socket_path, ApiHandler& handler);
  // Ends console streams, waits for connection threads, removes the socket.
  ~ApiServer();

  ApiHandler& handler() { return handler_; }
  int stop_fd() const { return stop_.fd(); }

 private:
  ApiServer(std::string socket_path, ApiHandler& handler, base::EventFd stop)
      : socket_path_(std::move(socket_path)), handler_(handler), stop_(std::move(stop)) {}

  std::string socket_path_;
  ApiHandler& handler_;
  base::EventFd stop_;  // signalled at shutdown: console streams end
  MHD_Daemon* daemon_ = nullptr;
};

}  // namespace appliance
