// The CLI's HTTP client: libcurl over ferryd's Unix socket
// (CURLOPT_UNIX_SOCKET_PATH). curl_global_init must have run (ferry's main).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace appliance {

struct HttpResult {
  long status = 0;
  std::string body;
};

class HttpClient {
 public:
  explicit HttpClient(std::string socket_path) : socket_path_(std::move(socket_path)) {}

  // A header sent with every request from now on ("x-ferry-user: alice").
  void AddHeader(std::string line) { extra_headers_.push_back(std::move(line)); }

  // One request; body null means none; headers are extra header lines
  // ("Authorization: Negotiate …") for this request only. kUnavailable when
  // ferryd cannot be reached, with a message that says so and names the
  // socket.
  base::Result<HttpResult> Request(const std::string& method, const std::string& path,
                                   const std::string* body, long timeout_seconds,
                                   const std::vector<std::string>& headers = {});
  // A GET whose 200 body is passed to sink as it arrives (no timeout: it
  // lasts until ferryd ends it or the caller is interrupted). Non-200 bodies
  // are returned whole instead. The sink returns false to end the stream.
  base::Result<HttpResult> Stream(const std::string& path,
                                  const std::function<bool(std::string_view)>& sink);

 private:
  base::Result<HttpResult> Perform(const std::string& method, const std::string& path,
                                   const std::string* body, long timeout_seconds,
                                   const std::function<bool(std::string_view)>* sink,
                                   const std::vector<std::string>& headers);
  std::string socket_path_;
  std::vector<std::string> extra_headers_;
};

}  // namespace appliance
