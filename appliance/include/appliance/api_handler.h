// The API's logic: one HttpRequest in, one HttpResponse out. Routing comes
// from router.h, the work from VmService; this file only translates between
// HTTP/JSON and those calls. docs/api.md documents every endpoint.
//
// Thread-safety: Handle is called from many connection threads at once; it
// keeps no state of its own.
#pragma once

#include "appliance/http_types.h"
#include "appliance/vm_service.h"

namespace appliance {

class ApiHandler {
 public:
  // service must outlive the handler.
  explicit ApiHandler(VmService& service) : service_(service) {}
  HttpResponse Handle(const HttpRequest& request);

  // Request bodies larger than this are refused (the API's bodies are tiny).
  static constexpr size_t kMaxBodyBytes = 1 << 20;
  // GET .../console returns at most this much of the end of the log.
  static constexpr size_t kMaxConsoleBytes = 4 << 20;

 private:
  VmService& service_;
};

}  // namespace appliance
