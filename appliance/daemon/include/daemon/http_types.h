// Transport-neutral HTTP request and response, so the API's logic (ApiHandler)
// is tested without a socket and the MHD glue (ApiServer) stays thin.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "daemon/api_caller.h"

namespace appliance {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // decoded, without the query string
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // names lower-case
  std::string body;
  ApiCaller caller;  // set by the server before the handler sees the request
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string allow;             // the Allow header, for 405 answers
  std::string www_authenticate;  // the WWW-Authenticate header, for 401 answers
  // When set, the server streams this file from follow_offset on as it grows
  // (chunked) until the client goes away, after sending body.
  std::string follow_path;
  uint64_t follow_offset = 0;
};

HttpResponse JsonResponse(int status, const nlohmann::json& body);
// {"error": {"code": "<base::CodeName>", "message": "..."}} with the status
// HttpStatusForCode picks.
HttpResponse ErrorResponse(const base::Error& error);
HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message);

}  // namespace appliance
