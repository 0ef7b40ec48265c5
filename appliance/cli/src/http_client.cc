#include "cli/http_client.h"

#include <curl/curl.h>

#include <cstring>
#include <memory>

namespace appliance {
namespace {

struct Transfer {
  CURL* curl = nullptr;
  HttpResult result;
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
    t->result.body.append(data, n);
  }
  return n;
}

}  // namespace

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
                                             const std::vector<std::string>& extra_headers) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (!curl) return base::Error(base::Code::kInternal, "curl_easy_init failed");
  Transfer t;
  t.curl = curl.get();
  t.sink = sink;
  std::string url = "http://localhost" + path;  // the host part is ignored on a Unix socket
  char error_buffer[CURL_ERROR_SIZE] = {};
  curl_slist* headers = nullptr;
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_guard(nullptr,
                                                                           &curl_slist_free_all);
  curl_easy_setopt(curl.get(), CURLOPT_UNIX_SOCKET_PATH, socket_path_.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &OnData);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, timeout_seconds);
  for (const std::string& line : extra_headers_) headers = curl_slist_append(headers, line.c_str());
  for (const std::string& line : extra_headers) headers = curl_slist_append(headers, line.c_str());
  if (body != nullptr) headers = curl_slist_append(headers, "Content-Type: application/json");
  header_guard.reset(headers);
  if (headers != nullptr) curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers);
  if (body != nullptr) {
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body->c_str());
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE, long(body->size()));
  }
  CURLcode rc = curl_easy_perform(curl.get());
  if (rc == CURLE_WRITE_ERROR && t.sink_done) rc = CURLE_OK;  // ended on purpose
  if (rc == CURLE_COULDNT_CONNECT) {
    long os_errno = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_OS_ERRNO, &os_errno);
    std::string reason = os_errno != 0 ? std::strerror(int(os_errno)) : curl_easy_strerror(rc);
    return base::Error(
        base::Code::kUnavailable,
        "cannot reach ferryd at " + socket_path_ + ": " + reason + " — is ferryd running?",
        int(os_errno));
  }
  if (rc != CURLE_OK) {
    std::string detail = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc);
    base::Code code =
        rc == CURLE_OPERATION_TIMEDOUT ? base::Code::kDeadlineExceeded : base::Code::kUnavailable;
    return base::Error(code, method + " " + path + " via " + socket_path_ + " failed: " + detail);
  }
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &t.result.status);
  return std::move(t.result);
}

}  // namespace appliance
