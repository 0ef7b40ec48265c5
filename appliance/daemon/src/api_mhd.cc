#include "api_mhd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <memory>

#include "base/fd.h"
#include "base/log.h"

namespace appliance {
namespace {

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

MHD_Result CollectHeader(void* cls, MHD_ValueKind, const char* key, const char* value) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(cls);
  std::string name = key;
  for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
  (*headers)[name] = value != nullptr ? value : "";
  return MHD_YES;
}

std::string ClientAddress(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (info == nullptr || info->client_addr == nullptr) return "?";
  char text[INET6_ADDRSTRLEN] = "?";
  const sockaddr* sa = info->client_addr;
  if (sa->sa_family == AF_INET)
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, text, sizeof text);
  else if (sa->sa_family == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, text, sizeof text);
  return text;
}

// The answer to a request the authenticator refused. Remote: 401 with the
// mode's challenge when the request brought no Authorization at all (the
// client should authenticate and retry), 403 when it brought one that was
// refused. The local socket answers by the error's code, as every error.
HttpResponse Refusal(const ApiListener& listener, const HttpRequest& request,
                     const base::Error& error) {
  if (!listener.transport.remote) return ErrorResponse(error);
  const std::string challenge =
      listener.authenticator != nullptr ? listener.authenticator->Challenge() : "";
  if (request.headers.count(kAuthorizationHeader) != 0 || challenge.empty())
    return ErrorResponse(403, base::CodeName(error.code()), error.message());
  nlohmann::json body = {{"error",
                          {{"code", std::string(base::CodeName(base::Code::kUnauthenticated))},
                           {"message", error.message()}}}};
  if (!listener.service_principal.empty())
    body["kerberos"] = {{"service_principal", listener.service_principal}};
  HttpResponse response = JsonResponse(401, body);
  response.www_authenticate = challenge;
  return response;
}

HttpResponse Serve(const ApiListener& listener, MHD_Connection* connection, HttpRequest& request) {
  // The local socket is root's; an admin identity a request brings (a
  // Kerberos token, a log-on) is checked before the handler sees it. A
  // remote request must prove one. Header values are never logged: they
  // hold tokens and passwords.
  // StartHttps refuses a remote listener without an authenticator; a local
  // one without is root's alone.
  base::Result<ApiCaller> caller = ApiCaller{};
  if (listener.authenticator != nullptr)
    caller = listener.authenticator->Authenticate(request.headers, listener.transport);
  else if (listener.transport.remote)
    caller = base::Error(base::Code::kPermissionDenied, "remote API without an authenticator");
  if (!caller) {
    HttpResponse refusal = Refusal(listener, request, caller.error());
    if (listener.transport.remote)
      base::LogInfo("api: refused " + request.method + " " + request.path + " from " +
                    ClientAddress(connection) + " (" + std::to_string(refusal.status) +
                    "): " + caller.error().message());
    return refusal;
  }
  request.caller = *std::move(caller);
  request.caller.remote = listener.transport.remote;
  return listener.handler->Handle(request);
}

}  // namespace

MHD_Result HandleApiRequest(void* cls, MHD_Connection* connection, const char* url,
                            const char* method, const char* /*version*/, const char* upload_data,
                            size_t* upload_data_size, void** con_cls) {
  const auto& listener = *static_cast<const ApiListener*>(cls);
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
  HttpRequest request;
  request.method = method;
  request.path = url;
  if (pending->too_large) {
    response = ErrorResponse(
        413, "invalid-argument",
        "request body is larger than " + std::to_string(ApiHandler::kMaxBodyBytes) + " bytes");
  } else {
    request.body = std::move(pending->body);
    MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &CollectQuery, &request.query);
    MHD_get_connection_values(connection, MHD_HEADER_KIND, &CollectHeader, &request.headers);
    response = Serve(listener, connection, request);
  }
  base::LogDebug(std::string(listener.transport.remote ? "https " : "") + request.method + " " +
                 request.path + " -> " + std::to_string(response.status));
  return QueueResponse(connection, response, listener.stop_fd);
}

void ApiRequestCompleted(void*, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
  delete static_cast<PendingRequest*>(*con_cls);
  *con_cls = nullptr;
}

void LogFromMhd(void* cls, const char* format, va_list args) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, format, args);
  std::string message = buf;
  while (!message.empty() && message.back() == '\n') message.pop_back();
  base::LogWarning(std::string(cls != nullptr ? static_cast<const char*>(cls) : "http") + ": " +
                   message);
}

}  // namespace appliance
