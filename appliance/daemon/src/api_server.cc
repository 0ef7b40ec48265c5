#include "daemon/api_server.h"

#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdarg>
#include <cstring>

#include "base/fd.h"
#include "base/log.h"
#include "common/api_binding.h"
#include "common/unix_socket.h"

namespace appliance {
namespace {

constexpr int kListenBacklog = 512;

// Per-request state MHD keeps for us between calls of the access handler.
struct PendingRequest {
  std::string body;
  bool too_large = false;
};

// A console follow: first the initial text, then whatever is appended to the
// file, until the client hangs up or the server stops.
struct ConsoleStream {
  std::string initial;
  size_t initial_sent = 0;
  base::Fd file;
  base::Fd inotify;
  int client_fd = -1;
  int stop_fd = -1;
  uint64_t offset = 0;
};

ssize_t ReadConsoleStream(void* cls, uint64_t /*pos*/, char* buf, size_t max) {
  auto* s = static_cast<ConsoleStream*>(cls);
  if (s->initial_sent < s->initial.size()) {
    size_t n = std::min(max, s->initial.size() - s->initial_sent);
    std::memcpy(buf, s->initial.data() + s->initial_sent, n);
    s->initial_sent += n;
    return ssize_t(n);
  }
  for (;;) {
    ssize_t n = ::pread(s->file.get(), buf, max, off_t(s->offset));
    if (n > 0) {
      s->offset += uint64_t(n);
      return n;
    }
    if (n < 0 && errno != EINTR) return MHD_CONTENT_READER_END_WITH_ERROR;
    struct stat st {};
    if (::fstat(s->file.get(), &st) != 0 || st.st_nlink == 0)
      return MHD_CONTENT_READER_END_OF_STREAM;  // the VM was deleted
    if (uint64_t(st.st_size) < s->offset) {
      s->offset = 0;  // truncated: follow the new contents from the start
      continue;
    }
    pollfd fds[3] = {
        {s->inotify.get(), POLLIN, 0}, {s->client_fd, POLLRDHUP, 0}, {s->stop_fd, POLLIN, 0}};
    int r = ::poll(fds, 3, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    // The client went away: a normal end of a follow, not an error to log.
    if (fds[1].revents & (POLLRDHUP | POLLHUP | POLLERR)) return MHD_CONTENT_READER_END_OF_STREAM;
    if (fds[2].revents & POLLIN) return MHD_CONTENT_READER_END_OF_STREAM;
    if (fds[0].revents & POLLIN) {
      char events[4096];
      while (::read(s->inotify.get(), events, sizeof events) > 0) {
      }
    }
  }
}

void FreeConsoleStream(void* cls) { delete static_cast<ConsoleStream*>(cls); }

MHD_Response* MakeFollowResponse(MHD_Connection* connection, const HttpResponse& r, int stop_fd) {
  auto stream = std::make_unique<ConsoleStream>();
  stream->initial = r.body;
  stream->offset = r.follow_offset;
  stream->stop_fd = stop_fd;
  auto file = base::Fd::Open(r.follow_path, O_RDONLY);
  if (!file) return nullptr;
  stream->file = std::move(*file);
  stream->inotify = base::Fd(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!stream->inotify.valid() ||
      ::inotify_add_watch(stream->inotify.get(), r.follow_path.c_str(),
                          IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF) < 0)
    return nullptr;
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (info == nullptr) return nullptr;
  stream->client_fd = info->connect_fd;
  MHD_Response* response = MHD_create_response_from_callback(
      MHD_SIZE_UNKNOWN, 64 * 1024, &ReadConsoleStream, stream.get(), &FreeConsoleStream);
  if (response != nullptr) stream.release();  // owned by the response now
  return response;
}

MHD_Result QueueResponse(MHD_Connection* connection, const HttpResponse& r, int stop_fd) {
  MHD_Response* response = nullptr;
  if (!r.follow_path.empty()) {
    response = MakeFollowResponse(connection, r, stop_fd);
    if (response == nullptr)
      base::LogError("console follow of " + r.follow_path + " failed: " + std::strerror(errno));
  } else {
    response = MHD_create_response_from_buffer(r.body.size(), const_cast<char*>(r.body.data()),
                                               MHD_RESPMEM_MUST_COPY);
  }
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type.c_str());
  if (!r.allow.empty()) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, r.allow.c_str());
  if (!r.www_authenticate.empty())
    MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r.www_authenticate.c_str());
  MHD_Result result = MHD_queue_response(connection, unsigned(r.status), response);
  MHD_destroy_response(response);
  return result;
}

MHD_Result CollectQuery(void* cls, MHD_ValueKind, const char* key, const char* value) {
  auto* query = static_cast<std::map<std::string, std::string>*>(cls);
  (*query)[key] = value != nullptr ? value : "";
  return MHD_YES;
}

ApiTransport LocalApiTransport() {
  ApiTransport t;
  t.channel_binding.assign(kLocalApiChannelBinding.begin(), kLocalApiChannelBinding.end());
  return t;
}

MHD_Result CollectHeader(void* cls, MHD_ValueKind, const char* key, const char* value) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(cls);
  std::string name = key;
  for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
  (*headers)[name] = value != nullptr ? value : "";
  return MHD_YES;
}

MHD_Result HandleRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                         const char* /*version*/, const char* upload_data, size_t* upload_data_size,
                         void** con_cls) {
  auto* server = static_cast<ApiServer*>(cls);
  if (*con_cls == nullptr) {
    *con_cls = new PendingRequest();
    return MHD_YES;
  }
  auto* pending = static_cast<PendingRequest*>(*con_cls);
  if (*upload_data_size > 0) {
    if (pending->body.size() + *upload_data_size > ApiHandler::kMaxBodyBytes)
      pending->too_large = true;
    else
      pending->body.append(upload_data, *upload_data_size);
    *upload_data_size = 0;
    return MHD_YES;
  }
  HttpResponse response;
  if (pending->too_large) {
    response = ErrorResponse(
        413, "invalid-argument",
        "request body is larger than " + std::to_string(ApiHandler::kMaxBodyBytes) + " bytes");
  } else {
    HttpRequest request;
    request.method = method;
    request.path = url;
    request.body = std::move(pending->body);
    MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &CollectQuery, &request.query);
    MHD_get_connection_values(connection, MHD_HEADER_KIND, &CollectHeader, &request.headers);
    // The local socket is root's; an admin identity a request brings (a
    // Kerberos token, a log-on) is checked before the handler sees it.
    base::Result<ApiCaller> caller =
        server->authenticator() != nullptr
            ? server->authenticator()->Authenticate(request.headers, LocalApiTransport())
            : base::Result<ApiCaller>(ApiCaller{});
    if (caller) {
      request.caller = *std::move(caller);
      response = server->handler().Handle(request);
    } else {
      response = ErrorResponse(caller.error());
    }
    base::LogDebug(request.method + " " + request.path + " -> " + std::to_string(response.status));
  }
  return QueueResponse(connection, response, server->stop_fd());
}

void RequestCompleted(void*, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
  delete static_cast<PendingRequest*>(*con_cls);
  *con_cls = nullptr;
}

void LogFromMhd(void*, const char* format, va_list args) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, format, args);
  std::string message = buf;
  while (!message.empty() && message.back() == '\n') message.pop_back();
  base::LogWarning("http: " + message);
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
  int fd = listen_fd.Release();  // MHD closes it in MHD_stop_daemon
  server->daemon_ =
      MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                           MHD_USE_POLL | MHD_USE_ERROR_LOG,
                       0, nullptr, nullptr, &HandleRequest, server.get(),
                       MHD_OPTION_EXTERNAL_LOGGER, &LogFromMhd, nullptr, MHD_OPTION_LISTEN_SOCKET,
                       fd, MHD_OPTION_NOTIFY_COMPLETED, &RequestCompleted, nullptr,
                       // Idle clients (a half-sent request too) are dropped; a console follow
                       // blocks inside the content callback, where this timer does not apply.
                       MHD_OPTION_CONNECTION_TIMEOUT, options.idle_timeout_s,
                       MHD_OPTION_CONNECTION_LIMIT, max_connections, MHD_OPTION_END);
  if (server->daemon_ == nullptr) {
    ::close(fd);
    ::unlink(socket_path.c_str());
    return base::Error(base::Code::kInternal, "cannot start the HTTP server on " + socket_path);
  }
  return server;
}

ApiServer::~ApiServer() {
  // Ends console streams so their threads can be joined. An eventfd write
  // fails only if the counter would overflow, which one signal cannot reach.
  (void)stop_.Signal();
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
  ::unlink(socket_path_.c_str());
}

}  // namespace appliance
