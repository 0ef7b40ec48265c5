// Maps (method, path) of an API request to what it asks for. Pure, so the
// whole URL space is unit-tested; docs/api.md lists the same table.
//
//   GET    /v1/host                    kHost
//   GET    /v1/vms                     kListVms
//   POST   /v1/vms                     kCreateVm
//   GET    /v1/vms/{name}              kGetVm
//   DELETE /v1/vms/{name}              kDeleteVm
//   POST   /v1/vms/{name}/{action}     kVmAction  (start stop pause resume save restore)
//   GET    /v1/vms/{name}/console      kConsole
#pragma once

#include <string>
#include <string_view>

#include "appliance/vm_state.h"

namespace appliance {

enum class RouteId {
  kNotFound = 1,
  kMethodNotAllowed = 2,
  kHost = 3,
  kListVms = 4,
  kCreateVm = 5,
  kGetVm = 6,
  kDeleteVm = 7,
  kVmAction = 8,
  kConsole = 9,
};

struct Route {
  RouteId id = RouteId::kNotFound;
  std::string name;                    // the {name} segment, not yet validated
  VmAction action = VmAction::kStart;  // for kVmAction
  std::string allow;                   // for kMethodNotAllowed: the methods the path takes
};

Route MatchRoute(std::string_view method, std::string_view path);

}  // namespace appliance
