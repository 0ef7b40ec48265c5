#include "daemon/router.h"

#include <vector>

namespace appliance {
namespace {

std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    // Empty segments (a doubled or trailing '/') carry no meaning; skipping
    // them makes "/v1/vms/" the same resource as "/v1/vms".
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

Route Make(RouteId id, std::string name = "", VmAction action = VmAction::kStart,
           std::string allow = "") {
  Route r;
  r.id = id;
  r.name = std::move(name);
  r.action = action;
  r.allow = std::move(allow);
  return r;
}

Route Only(std::string_view method, std::string_view allowed, Route match) {
  if (method == allowed) return match;
  return Make(RouteId::kMethodNotAllowed, match.name, match.action, std::string(allowed));
}

}  // namespace

Route MatchRoute(std::string_view method, std::string_view path) {
  if (path.empty() || path[0] != '/') return Route{};
  auto seg = Segments(path);
  if (seg.size() < 2 || seg[0] != "v1") return Route{};
  if (seg[1] == "host" && seg.size() == 2) return Only(method, "GET", Make(RouteId::kHost));
  if (seg[1] == "jobs" && seg.size() == 2) return Only(method, "GET", Make(RouteId::kListJobs));
  if (seg[1] == "jobs" && seg.size() == 3)
    return Only(method, "GET", Make(RouteId::kGetJob, std::string(seg[2])));
  // Log-ons at this host (credssp mode; api_handler_logon.cc).
  if (seg[1] == "logon" && seg.size() == 2) return Only(method, "POST", Make(RouteId::kLogon));
  if (seg[1] == "logon" && seg.size() == 3)
    return Only(method, "DELETE", Make(RouteId::kLogoff, std::string(seg[2])));
  if (seg[1] == "logons" && seg.size() == 2) return Only(method, "GET", Make(RouteId::kListLogons));
  if (seg[1] != "vms") return Route{};
  if (seg.size() == 2) {
    if (method == "GET") return Make(RouteId::kListVms);
    if (method == "POST") return Make(RouteId::kCreateVm);
    return Make(RouteId::kMethodNotAllowed, "", VmAction::kStart, "GET, POST");
  }
  std::string name(seg[2]);
  if (seg.size() == 3) {
    if (method == "GET") return Make(RouteId::kGetVm, name);
    if (method == "DELETE") return Make(RouteId::kDeleteVm, name);
    return Make(RouteId::kMethodNotAllowed, name, VmAction::kStart, "GET, DELETE");
  }
  if (seg.size() >= 4 && seg[3] == "checkpoints") {
    Route r;
    if (seg.size() == 4) {
      if (method == "GET")
        r = Make(RouteId::kListCheckpoints, name);
      else if (method == "POST")
        r = Make(RouteId::kCreateCheckpoint, name);
      else
        r = Make(RouteId::kMethodNotAllowed, name, VmAction::kStart, "GET, POST");
    } else if (seg.size() == 5) {
      if (method == "GET")
        r = Make(RouteId::kGetCheckpoint, name);
      else if (method == "DELETE")
        r = Make(RouteId::kDeleteCheckpoint, name);
      else
        r = Make(RouteId::kMethodNotAllowed, name, VmAction::kStart, "GET, DELETE");
    } else if (seg.size() == 6 && seg[5] == "apply") {
      r = Only(method, "POST", Make(RouteId::kApplyCheckpoint, name));
    } else {
      return Route{};
    }
    if (seg.size() >= 5) r.checkpoint = std::string(seg[4]);
    return r;
  }
  if (seg.size() != 4) return Route{};
  if (seg[3] == "console") return Only(method, "GET", Make(RouteId::kConsole, name));
  if (seg[3] == "move-storage") return Only(method, "POST", Make(RouteId::kMoveStorage, name));
  if (seg[3] == "move-vm") return Only(method, "POST", Make(RouteId::kMoveVm, name));
  if (seg[3] == "resolve") return Only(method, "POST", Make(RouteId::kResolveVm, name));
  auto action = ParseVmAction(seg[3]);
  // Deletion has its own verb (DELETE /v1/vms/{name}), not an action path.
  if (!action || *action == VmAction::kDelete) return Route{};
  return Only(method, "POST", Make(RouteId::kVmAction, name, *action));
}

}  // namespace appliance
