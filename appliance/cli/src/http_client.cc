#include "cli/http_client.h"

#include <curl/curl.h>
#include <string.h>

#include <cstring>
#include <memory>

#include "http_remote.h"
#include "http_transfer.h"

namespace appliance {
namespace {

struct Transfer {
  CURL* curl = nullptr;
  TransferResult result;
  const std::function<bool(std::string_view)>* sink = nullptr;
  bool sink_done = false;  // the sink asked to end the stream
};

size_t OnData(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  if (t->sink != nullptr && status == 200) {
    // A sink that cannot take more (stdout closed) ends the transfer.
    if (!(*t->sink)(std::string_view(data, n))) {
      t->sink_done = true;
      return 0;
    }
  } else {
    t->result.response.body.append(data, n);
  }
  return n;
}

// Keeps the WWW-Authenticate header of the response (the last one seen).
size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  std::string_view line(data, n);
  constexpr std::string_view kName = "www-authenticate:";
  if (line.size() > kName.size() && strncasecmp(line.data(), kName.data(), kName.size()) == 0) {
    line.remove_prefix(kName.size());
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' '))
      line.remove_suffix(1);
    t->result.www_authenticate = std::string(line);
  }
  return n;
}

// Header lines may hold a password or a token: wiped before curl frees them.
void FreeHeaders(curl_slist* list) {
  for (curl_slist* l = list; l != nullptr; l = l->next) ::explicit_bzero(l->data, strlen(l->data));
  curl_slist_free_all(list);
}

}  // namespace

TransferResult RunTransfer(const TransferRequest& request) {
  Transfer t;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (!curl) {
    t.result.code = CURLE_FAILED_INIT;
    t.result.error = "curl_easy_init failed";
    return std::move(t.result);
  }
  t.curl = curl.get();
  t.sink = request.sink;
  char error_buffer[CURL_ERROR_SIZE] = {};
  std::unique_ptr<curl_slist, decltype(&FreeHeaders)> headers(nullptr, &FreeHeaders);
  auto add_header = [&headers](const std::string& line) {
    curl_slist* grown = curl_slist_append(headers.get(), line.c_str());
    if (grown != nullptr) {
      (void)headers.release();
      headers.reset(grown);
    }
  };
  curl_easy_setopt(curl.get(), CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, request.method.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &OnData);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, request.timeout_seconds);
  if (request.configure) request.configure(curl.get());
  for (const std::string& line : request.headers) add_header(line);
  if (request.body != nullptr) {
    add_header("Content-Type: application/json");
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, request.body->c_str());
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE, long(request.body->size()));
  }
  if (headers) curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers.get());
  CURLcode rc = curl_easy_perform(curl.get());
  if (rc == CURLE_WRITE_ERROR && t.sink_done) rc = CURLE_OK;  // ended on purpose
  t.result.code = rc;
  if (rc != CURLE_OK) {
    t.result.error = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc);
    curl_easy_getinfo(curl.get(), CURLINFO_OS_ERRNO, &t.result.os_errno);
  }
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &t.result.response.status);
  return std::move(t.result);
}

HttpClient::HttpClient(std::string socket_path) : socket_path_(std::move(socket_path)) {}
HttpClient::HttpClient(std::unique_ptr<RemoteSession> remote) : remote_(std::move(remote)) {}
HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

base::Result<HttpClient> HttpClient::Remote(RemoteTarget target) {
  ASSIGN_OR_RETURN(std::unique_ptr<RemoteSession> session, RemoteSession::Open(std::move(target)));
  return HttpClient(std::move(session));
}

std::string HttpClient::Where() const {
  return remote_ != nullptr ? remote_->Where() : socket_path_;
}

base::Result<HttpResult> HttpClient::Request(const std::string& method, const std::string& path,
                                             const std::string* body, long timeout_seconds,
                                             const std::vector<std::string>& headers) {
  return Perform(method, path, body, timeout_seconds, nullptr, headers);
}

base::Result<HttpResult> HttpClient::Stream(const std::string& path,
                                            const std::function<bool(std::string_view)>& sink) {
  return Perform("GET", path, nullptr, 0, &sink, {});
}

base::Result<HttpResult> HttpClient::Perform(const std::string& method, const std::string& path,
                                             const std::string* body, long timeout_seconds,
                                             const std::function<bool(std::string_view)>* sink,
                                             const std::vector<std::string>& headers) {
  TransferRequest request;
  request.method = method;
  request.url = "http://localhost" + path;  // the host part is ignored on a Unix socket
  request.body = body;
  request.timeout_seconds = timeout_seconds;
  request.sink = sink;
  request.headers = extra_headers_;
  request.headers.insert(request.headers.end(), headers.begin(), headers.end());
  if (remote_ != nullptr) return remote_->Perform(std::move(request), path);
  request.configure = [this](CURL* curl) {
    curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_path_.c_str());
  };
  TransferResult t = RunTransfer(request);
  if (t.code == CURLE_COULDNT_CONNECT) {
    std::string reason =
        t.os_errno != 0 ? std::strerror(int(t.os_errno)) : curl_easy_strerror(t.code);
    return base::Error(
        base::Code::kUnavailable,
        "cannot reach ferryd at " + socket_path_ + ": " + reason + " — is ferryd running?",
        int(t.os_errno));
  }
  if (t.code != CURLE_OK) {
    base::Code code = t.code == CURLE_OPERATION_TIMEDOUT ? base::Code::kDeadlineExceeded
                                                         : base::Code::kUnavailable;
    return base::Error(code, method + " " + path + " via " + socket_path_ + " failed: " + t.error);
  }
  return std::move(t.response);
}

}  // namespace appliance
