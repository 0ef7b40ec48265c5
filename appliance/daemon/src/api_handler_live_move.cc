// The live-move endpoints of the API (docs/live_move.md "Using it"), and the job
// endpoints, which list storage moves and live moves together:
//   POST /v1/vms/{name}/move-vm  {"host": "10.0.0.2[:7430]",
//                                 "destination": "/abs" (or "destination_storage_path"),
//                                 "include_storage": true, "streams": 4,
//                                 "bandwidth_limit": 0, "downtime_ms": 0}   -> 202 job
//   POST /v1/vms/{name}/resolve  {"force": false}  -> {"vm","outcome":"moved"|"here"|"none",...}
//   GET  /v1/jobs                -> {"jobs": [...]}  (both kinds, oldest first)
//   GET  /v1/jobs/{id}           -> job
#include <algorithm>

#include "config/names.h"
#include "daemon/api_handler.h"
#include "daemon/router.h"
#include "daemon/vm_json.h"

namespace appliance {

using nlohmann::json;

namespace {

base::Result<LiveMoveArgs> ParseMoveVmBody(const std::string& vm, const std::string& text) {
  json body = json::parse(text.empty() ? "{}" : text, nullptr, false);
  if (body.is_discarded() || !body.is_object())
    return base::Error(base::Code::kInvalidArgument, "request body must be a JSON object");
  LiveMoveArgs args;
  args.vm = vm;
  auto u32 = [](const json& v) {
    return v.is_number_unsigned() && v.get<uint64_t>() <= UINT32_MAX;
  };
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& k = it.key();
    if (k == "host" && it->is_string()) {
      args.host = it->get<std::string>();
    } else if ((k == "destination" || k == "destination_storage_path") && it->is_string()) {
      args.destination = it->get<std::string>();
    } else if (k == "include_storage" && it->is_boolean()) {
      args.include_storage = it->get<bool>();
    } else if (k == "streams" && u32(*it)) {
      args.streams = it->get<uint32_t>();
    } else if (k == "bandwidth_limit" && it->is_number_unsigned()) {
      args.bandwidth_limit = it->get<uint64_t>();
    } else if (k == "downtime_ms" && u32(*it)) {
      args.downtime_ms = it->get<uint32_t>();
    } else if (k == "time_limit_s" && u32(*it)) {
      args.time_limit_s = it->get<uint32_t>();
    } else {
      return base::Error(
          base::Code::kInvalidArgument,
          "unknown or mistyped member \"" + k +
              "\" in move-vm request (host: string, destination: string, include_storage: "
              "boolean, streams, bandwidth_limit, downtime_ms, time_limit_s: integers)");
    }
  }
  if (args.host.empty()) return base::Error(base::Code::kInvalidArgument, "move-vm needs \"host\"");
  if (args.destination.empty())
    return base::Error(base::Code::kInvalidArgument,
                       "move-vm needs \"destination\" (the storage path there)");
  return args;
}

}  // namespace

HttpResponse ApiHandler::HandleLiveMove(const Route& route, const HttpRequest& request) {
  auto or_error = [](const base::Result<json>& r, int status) {
    return r ? JsonResponse(status, *r) : ErrorResponse(r.error());
  };
  switch (route.id) {
    case RouteId::kListJobs: {
      if (live_ == nullptr) return HandleStorageMove(route, request);
      json jobs = json::array();
      for (auto list :
           {moves_ != nullptr ? moves_->List() : base::Result<json>(json{{"jobs", json::array()}}),
            live_->List()}) {
        if (!list) return ErrorResponse(list.error());
        for (auto& j : (*list)["jobs"]) jobs.push_back(std::move(j));
      }
      std::stable_sort(jobs.begin(), jobs.end(), [](const json& a, const json& b) {
        return a.value("started_unix_ms", int64_t(0)) < b.value("started_unix_ms", int64_t(0));
      });
      return JsonResponse(200, json{{"jobs", jobs}});
    }
    case RouteId::kGetJob:
      if (live_ != nullptr && live_->Owns(route.name)) return or_error(live_->Get(route.name), 200);
      return HandleStorageMove(route, request);
    case RouteId::kMoveVm: {
      if (live_ == nullptr)
        return ErrorResponse(503, "unavailable", "live moves are not available in this server");
      if (auto valid = config::ValidateVmName(route.name); !valid)
        return ErrorResponse(valid.error());
      auto args = ParseMoveVmBody(route.name, request.body);
      if (!args) return ErrorResponse(args.error());
      args->credentials = request.caller.credentials;
      args->admin = request.caller.admin;
      return or_error(live_->Start(*args), 202);
    }
    case RouteId::kResolveVm: {
      if (auto valid = config::ValidateVmName(route.name); !valid)
        return ErrorResponse(valid.error());
      json body = json::parse(request.body.empty() ? "{}" : request.body, nullptr, false);
      bool force = false;
      if (body.is_discarded() || !body.is_object())
        return ErrorResponse(
            base::Error(base::Code::kInvalidArgument, "request body must be a JSON object"));
      for (auto it = body.begin(); it != body.end(); ++it) {
        if (it.key() != "force" || !it->is_boolean())
          return ErrorResponse(base::Error(base::Code::kInvalidArgument,
                                           "unknown or mistyped member \"" + it.key() +
                                               "\" in resolve request (force: boolean)"));
        force = it->get<bool>();
      }
      auto resolved = service_.departures().Resolve(route.name, force);
      if (!resolved) return ErrorResponse(resolved.error());
      return JsonResponse(200, ResolveOutcomeToJson(*resolved));
    }
    default: return ErrorResponse(500, "internal", "unhandled route");
  }
}

}  // namespace appliance
