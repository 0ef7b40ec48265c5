// The storage-move endpoints of the API (docs/api.md "Storage moves"):
//   POST /v1/vms/{name}/move-storage  {"destination_storage_path": "/abs",
//                                      "max_bytes_per_second": 0}   -> 202 job
//   GET  /v1/jobs                     -> {"jobs": [...]}
//   GET  /v1/jobs/{id}                -> job
#include "config/names.h"
#include "daemon/api_handler.h"
#include "daemon/router.h"
#include "daemon/vm_json.h"

namespace appliance {

using nlohmann::json;

HttpResponse ApiHandler::HandleStorageMove(const Route& route, const HttpRequest& request) {
  if (moves_ == nullptr)
    return ErrorResponse(503, "unavailable", "storage moves are not available in this server");
  auto or_error = [](const base::Result<json>& r, int status) {
    return r ? JsonResponse(status, *r) : ErrorResponse(r.error());
  };
  switch (route.id) {
    case RouteId::kListJobs: return or_error(moves_->List(), 200);
    case RouteId::kGetJob: return or_error(moves_->Get(route.name), 200);
    case RouteId::kMoveStorage: {
      json body = json::parse(request.body.empty() ? "{}" : request.body, nullptr, false);
      if (body.is_discarded() || !body.is_object())
        return ErrorResponse(400, "invalid-argument", "request body must be a JSON object");
      std::string destination;
      uint64_t rate = 0;
      for (auto it = body.begin(); it != body.end(); ++it) {
        if (it.key() == "destination_storage_path" && it->is_string()) {
          destination = it->get<std::string>();
        } else if (it.key() == "max_bytes_per_second" && it->is_number_unsigned()) {
          rate = it->get<uint64_t>();
        } else {
          return ErrorResponse(400, "invalid-argument",
                               "unknown or mistyped member \"" + it.key() +
                                   "\" in move-storage request (destination_storage_path: string, "
                                   "max_bytes_per_second: integer)");
        }
      }
      if (destination.empty())
        return ErrorResponse(400, "invalid-argument",
                             "move-storage needs \"destination_storage_path\"");
      if (auto valid = config::ValidateVmName(route.name); !valid)
        return ErrorResponse(valid.error());
      return or_error(moves_->Start(route.name, destination, rate), 202);
    }
    default: return ErrorResponse(500, "internal", "unhandled route");
  }
}

}  // namespace appliance
