#include "daemon/api_server.h"

#include <microhttpd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api_https.h"
#include "api_mhd.h"
#include "base/fd.h"
#include "base/log.h"
#include "common/api_binding.h"
#include "common/unix_socket.h"

namespace appliance {
namespace {

constexpr int kListenBacklog = 512;

ApiTransport LocalApiTransport() {
  ApiTransport t;
  t.channel_binding.assign(kLocalApiChannelBinding.begin(), kLocalApiChannelBinding.end());
  return t;
}

// What RLIMIT_NOFILE allows for connections: max_connections, or fewer
// when the soft limit leaves less than that beside kReservedFds.
unsigned ConnectionLimit(unsigned wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return wanted;
  const rlim_t room = limit.rlim_cur > 2 * ApiServer::kReservedFds
                          ? limit.rlim_cur - ApiServer::kReservedFds
                          : limit.rlim_cur / 2;
  if (rlim_t(wanted) <= room) return wanted;
  base::LogWarning("api: serving at most " + std::to_string(room) + " connections at once, not " +
                   std::to_string(wanted) + ": the open-file limit (RLIMIT_NOFILE) is " +
                   std::to_string(limit.rlim_cur));
  return unsigned(room);
}

}  // namespace

ApiServer::ApiServer(std::string socket_path, ApiHandler& handler, base::EventFd stop)
    : socket_path_(std::move(socket_path)), handler_(handler), stop_(std::move(stop)) {}

const std::vector<uint8_t>& ApiServer::https_channel_binding() const {
  static const std::vector<uint8_t> kNone;
  return remote_ != nullptr ? remote_->transport.channel_binding : kNone;
}

base::Status ApiServer::StartHttps(const Options& options) {
  const Options::Https& https = *options.https;
  if (options.authenticator == nullptr)
    return base::Error(base::Code::kInvalidArgument,
                       "api_listen " + https.listen.text +
                           ": remote management needs an "
                           "authenticator (migration.authentication kerberos or credssp)");
  remote_ = std::make_unique<ApiListener>();
  remote_->handler = &handler_;
  remote_->authenticator = options.authenticator;
  remote_->transport.remote = true;
  remote_->stop_fd = stop_.fd();
  remote_->service_principal = https.service_principal;
  // Once, at start: every Kerberos token of a remote request is checked
  // against it.
  auto binding = ServerEndPointBinding(https.certificate_file);
  if (!binding) return binding.error().Wrap("api_listen " + https.listen.text);
  remote_->transport.channel_binding = *std::move(binding);
  ASSIGN_OR_RETURN(HttpsDaemon started,
                   StartHttpsDaemon(https, *remote_, max_connections_, options.idle_timeout_s));
  https_daemon_ = started.daemon;
  https_port_ = started.port;
  return base::Ok();
}

base::Result<std::unique_ptr<ApiServer>> ApiServer::Start(const std::string& socket_path,
                                                          ApiHandler& handler, Options options) {
  auto slash = socket_path.rfind('/');
  if (slash == std::string::npos || slash == 0)
    return base::Error(
        base::Code::kInvalidArgument,
        "api_socket must be an absolute path in a directory, not \"" + socket_path + "\"");
  RETURN_IF_ERROR(MakeDirectories(socket_path.substr(0, slash), 0700));
  // A burst of clients waits in the backlog while the accept thread starts
  // a thread for each.
  ASSIGN_OR_RETURN(base::Fd listen_fd, ListenUnix(socket_path, kListenBacklog));
  const unsigned max_connections = ConnectionLimit(options.max_connections);
  ASSIGN_OR_RETURN(base::EventFd stop, base::EventFd::Create());
  std::unique_ptr<ApiServer> server(new ApiServer(socket_path, handler, std::move(stop)));
  server->max_connections_ = max_connections;
  server->authenticator_ = options.authenticator;
  server->local_ = std::make_unique<ApiListener>();
  server->local_->handler = &handler;
  server->local_->authenticator = options.authenticator;
  server->local_->transport = LocalApiTransport();
  server->local_->stop_fd = server->stop_.fd();
  int fd = listen_fd.Release();  // MHD closes it in MHD_stop_daemon
  server->daemon_ =
      MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                           MHD_USE_POLL | MHD_USE_ERROR_LOG,
                       0, nullptr, nullptr, &HandleApiRequest, server->local_.get(),
                       MHD_OPTION_EXTERNAL_LOGGER, &LogFromMhd, nullptr, MHD_OPTION_LISTEN_SOCKET,
                       fd, MHD_OPTION_NOTIFY_COMPLETED, &ApiRequestCompleted, nullptr,
                       // Idle clients (a half-sent request too) are dropped; a console follow
                       // blocks inside the content callback, where this timer does not apply.
                       MHD_OPTION_CONNECTION_TIMEOUT, options.idle_timeout_s,
                       MHD_OPTION_CONNECTION_LIMIT, max_connections, MHD_OPTION_END);
  if (server->daemon_ == nullptr) {
    ::close(fd);
    ::unlink(socket_path.c_str());
    return base::Error(base::Code::kInternal, "cannot start the HTTP server on " + socket_path);
  }
  // The destructor stops the local daemon and removes the socket if this fails.
  if (options.https) RETURN_IF_ERROR(server->StartHttps(options));
  return server;
}

ApiServer::~ApiServer() {
  // Ends console streams so their threads can be joined. An eventfd write
  // fails only if the counter would overflow, which one signal cannot reach.
  (void)stop_.Signal();
  if (https_daemon_ != nullptr) MHD_stop_daemon(https_daemon_);
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
  ::unlink(socket_path_.c_str());
}

}  // namespace appliance
