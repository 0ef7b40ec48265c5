// The checkpoint endpoints of the API (docs/api.md "Checkpoints"):
//   GET    /v1/vms/{name}/checkpoints              -> {"vm", "current_checkpoint", "checkpoints":
//   [...]} POST   /v1/vms/{name}/checkpoints {"name"}     -> 201 checkpoint GET
//   /v1/vms/{name}/checkpoints/{cp}         -> checkpoint DELETE /v1/vms/{name}/checkpoints/{cp} ->
//   {"deleted", "removed_files", "kept_files"} POST   /v1/vms/{name}/checkpoints/{cp}/apply
//   {"force": false} -> {"checkpoint", "vm", ...}
#include "daemon/api_handler.h"
#include "daemon/router.h"
#include "daemon/vm_json.h"

namespace appliance {

using nlohmann::json;

namespace {

// A body that is empty or a JSON object whose members are all in `allowed`
// with the JSON type `kind` says.
base::Result<json> Body(const std::string& text, const std::string& what,
                        std::initializer_list<std::pair<const char*, json::value_t>> allowed) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object())
    return base::Error(base::Code::kInvalidArgument, "request body must be a JSON object");
  for (auto it = body.begin(); it != body.end(); ++it) {
    bool ok = false;
    for (const auto& [key, kind] : allowed) {
      ok = ok || (it.key() == key && it->type() == kind);
    }
    if (!ok) {
      std::string expected;
      for (const auto& [key, kind] : allowed)
        expected += std::string(expected.empty() ? "" : ", ") + key + ": " + json(kind).type_name();
      return base::Error(base::Code::kInvalidArgument, "unknown or mistyped member \"" + it.key() +
                                                           "\" in " + what + " request (" +
                                                           expected + ")");
    }
  }
  return body;
}

}  // namespace

HttpResponse ApiHandler::HandleCheckpoints(const Route& route, const HttpRequest& request) {
  // The service's answer in its JSON form, or its error.
  auto or_error = [](const auto& r, int status, auto to_json) {
    return r ? JsonResponse(status, to_json(*r)) : ErrorResponse(r.error());
  };
  CheckpointService& checkpoints = service_.checkpoints();
  switch (route.id) {
    case RouteId::kListCheckpoints:
      return or_error(checkpoints.List(route.name), 200, CheckpointListToJson);
    case RouteId::kGetCheckpoint: {
      auto list = checkpoints.List(route.name);
      if (!list) return ErrorResponse(list.error());
      for (const CheckpointView& c : list->checkpoints) {
        if (c.spec.name == route.checkpoint) return JsonResponse(200, CheckpointToJson(c));
      }
      return ErrorResponse(404, "not-found",
                           "vm " + route.name + " has no checkpoint named " + route.checkpoint);
    }
    case RouteId::kCreateCheckpoint: {
      auto body = Body(request.body, "checkpoint create", {{"name", json::value_t::string}});
      if (!body) return ErrorResponse(body.error());
      if (!body->contains("name"))
        return ErrorResponse(400, "invalid-argument", "checkpoint create request needs \"name\"");
      return or_error(checkpoints.Create(route.name, (*body)["name"].get<std::string>()), 201,
                      CheckpointToJson);
    }
    case RouteId::kDeleteCheckpoint:
      return or_error(checkpoints.Delete(route.name, route.checkpoint), 200,
                      DeletedCheckpointToJson);
    case RouteId::kApplyCheckpoint: {
      auto body = Body(request.body, "checkpoint apply", {{"force", json::value_t::boolean}});
      if (!body) return ErrorResponse(body.error());
      return or_error(checkpoints.Apply(route.name, route.checkpoint, body->value("force", false)),
                      200, AppliedCheckpointToJson);
    }
    default: return ErrorResponse(500, "internal", "unhandled checkpoint route");
  }
}

}  // namespace appliance
