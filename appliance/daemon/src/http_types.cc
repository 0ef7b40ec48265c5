#include "daemon/http_types.h"

#include "common/error_codes.h"

namespace appliance {

HttpResponse JsonResponse(int status, const nlohmann::json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump(2) + "\n";
  return r;
}

HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message) {
  return JsonResponse(status, {{"error", {{"code", code}, {"message", message}}}});
}

HttpResponse ErrorResponse(const base::Error& error) {
  return ErrorResponse(HttpStatusForCode(error.code()), base::CodeName(error.code()),
                       error.message());
}

}  // namespace appliance
