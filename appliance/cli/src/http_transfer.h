// One libcurl transfer, shared by both of HttpClient's transports: the
// local socket (http_client.cc) and HTTPS (http_remote.cc), which differ
// only in the URL, the options `configure` sets and the headers they add.
#pragma once

#include <curl/curl.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/http_client.h"

namespace appliance {

struct TransferRequest {
  std::string method;
  std::string url;
  const std::string* body = nullptr;                            // JSON; null: none
  long timeout_seconds = 0;                                     // 0: none
  const std::function<bool(std::string_view)>* sink = nullptr;  // a 200's body, as it arrives
  // Extra header lines ("Authorization: …"). Wiped before they are freed.
  std::vector<std::string> headers;
  std::function<void(CURL*)> configure;  // transport options
};

struct TransferResult {
  CURLcode code = CURLE_OK;
  std::string error;  // curl's error text when code is not OK
  long os_errno = 0;
  HttpResult response;
  std::string www_authenticate;  // of the response, "" if none
};

TransferResult RunTransfer(const TransferRequest& request);

}  // namespace appliance
