#include "daemon/api_handler.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "base/fd.h"
#include "daemon/router.h"
#include "daemon/vm_json.h"

namespace appliance {

using nlohmann::json;

namespace {

// Parses a body that must be empty or a JSON object.
base::Result<json> ParseBody(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return base::Error(base::Code::kInvalidArgument, "request body is not valid JSON");
  if (!j.is_object())
    return base::Error(base::Code::kInvalidArgument, "request body must be a JSON object");
  return j;
}

// The optional state-file member of a save ("to") or restore ("from") body;
// no other member is accepted.
base::Result<std::string> StateFileMember(const json& body, VmAction action) {
  const char* key = action == VmAction::kSave      ? "to"
                    : action == VmAction::kRestore ? "from"
                                                   : nullptr;
  std::string path;
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (key == nullptr || it.key() != key)
      return base::Error(
          base::Code::kInvalidArgument,
          "unknown member \"" + it.key() + "\" in " + std::string(ToString(action)) + " request");
    if (!it->is_string())
      return base::Error(base::Code::kInvalidArgument,
                         std::string("\"") + key + "\" must be a string");
    path = it->get<std::string>();
  }
  return path;
}

bool IsTrue(const std::map<std::string, std::string>& query, const std::string& key) {
  auto it = query.find(key);
  return it != query.end() && (it->second == "1" || it->second == "true" || it->second == "yes");
}

// The end of the console log: at most max bytes, starting at a line boundary
// when cut. Returns the text and the file offset just past it.
base::Result<std::pair<std::string, uint64_t>> ReadConsoleTail(const std::string& path,
                                                               size_t max) {
  ASSIGN_OR_RETURN(base::Fd fd, base::Fd::Open(path, O_RDONLY));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return base::ErrnoError("stat " + path);
  uint64_t size = uint64_t(st.st_size);
  uint64_t start = size > max ? size - max : 0;
  std::string text(size - start, '\0');
  ASSIGN_OR_RETURN(size_t n, base::PreadFull(fd.get(), text.data(), text.size(), off_t(start)));
  text.resize(n);
  if (start > 0) {
    size_t nl = text.find('\n');
    text.erase(0, nl == std::string::npos ? text.size() : nl + 1);
  }
  return std::pair{text, start + n};
}

}  // namespace

HttpResponse ApiHandler::Handle(const HttpRequest& request) {
  Route route = MatchRoute(request.method, request.path);
  auto or_error = [](const base::Result<VmView>& r, int status = 200) {
    return r ? JsonResponse(status, VmViewToJson(*r)) : ErrorResponse(r.error());
  };
  switch (route.id) {
    case RouteId::kNotFound:
      return ErrorResponse(404, "not-found",
                           "no such endpoint: " + request.method + " " + request.path);
    case RouteId::kMethodNotAllowed: {
      HttpResponse r = ErrorResponse(405, "method-not-allowed",
                                     request.method + " is not allowed on " + request.path +
                                         " (allowed: " + route.allow + ")");
      r.allow = route.allow;
      return r;
    }
    case RouteId::kHost: return JsonResponse(200, HostInfoToJson(service_.Host()));
    case RouteId::kListVms: return JsonResponse(200, VmListToJson(service_.List()));
    case RouteId::kCreateVm: {
      auto body = ParseBody(request.body);
      if (!body) return ErrorResponse(body.error());
      auto create = ParseCreateRequest(*body);
      if (!create) return ErrorResponse(create.error());
      return or_error(service_.Create(std::move(*create)), 201);
    }
    case RouteId::kGetVm: return or_error(service_.Show(route.name));
    case RouteId::kDeleteVm: {
      auto st = service_.Delete(route.name);
      if (!st) return ErrorResponse(st.error());
      return JsonResponse(200, {{"deleted", route.name}});
    }
    case RouteId::kVmAction: {
      auto body = ParseBody(request.body);
      if (!body) return ErrorResponse(body.error());
      auto state_file = StateFileMember(*body, route.action);
      if (!state_file) return ErrorResponse(state_file.error());
      return or_error(service_.Act(route.name, route.action, *state_file));
    }
    case RouteId::kMoveStorage: return HandleStorageMove(route, request);
    case RouteId::kLogon:
    case RouteId::kLogoff:
    case RouteId::kListLogons: return HandleLogon(route, request);
    case RouteId::kMoveVm:
    case RouteId::kResolveVm:
    case RouteId::kListJobs:
    case RouteId::kGetJob:
      return HandleLiveMove(route, request);  // jobs: storage and live moves together
    case RouteId::kListCheckpoints:
    case RouteId::kCreateCheckpoint:
    case RouteId::kGetCheckpoint:
    case RouteId::kDeleteCheckpoint:
    case RouteId::kApplyCheckpoint: return HandleCheckpoints(route, request);
    case RouteId::kConsole: {
      auto path = service_.ConsolePath(route.name);
      if (!path) return ErrorResponse(path.error());
      auto tail = ReadConsoleTail(*path, kMaxConsoleBytes);
      if (!tail) return ErrorResponse(tail.error().Wrap("console of vm " + route.name));
      HttpResponse r;
      r.content_type = "text/plain; charset=utf-8";
      r.body = std::move(tail->first);
      if (IsTrue(request.query, "follow")) {
        r.follow_path = *path;
        r.follow_offset = tail->second;
      }
      return r;
    }
  }
  return ErrorResponse(500, "internal", "unhandled route");
}

}  // namespace appliance
