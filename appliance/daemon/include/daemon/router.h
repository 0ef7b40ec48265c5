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
//   POST   /v1/vms/{name}/move-storage kMoveStorage
//   POST   /v1/vms/{name}/move-vm      kMoveVm    (live move to another host)
//   POST   /v1/vms/{name}/resolve      kResolveVm (settle a live move in doubt)
//   GET    /v1/jobs                    kListJobs
//   GET    /v1/jobs/{id}               kGetJob
//   GET    /v1/vms/{name}/checkpoints                 kListCheckpoints
//   POST   /v1/vms/{name}/checkpoints                 kCreateCheckpoint
//   GET    /v1/vms/{name}/checkpoints/{cp}            kGetCheckpoint
//   DELETE /v1/vms/{name}/checkpoints/{cp}            kDeleteCheckpoint
//   POST   /v1/vms/{name}/checkpoints/{cp}/apply      kApplyCheckpoint
//   POST   /v1/logon                   kLogon       (credssp: an admin logs on here)
//   DELETE /v1/logon/{user}            kLogoff
//   GET    /v1/logons                  kListLogons
#pragma once

#include <string>
#include <string_view>

#include "daemon/vm_state.h"

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
  // Storage moves and their jobs.
  kMoveStorage = 30,
  kListJobs = 31,
  kGetJob = 32,
  // Checkpoints.
  kListCheckpoints = 40,
  kCreateCheckpoint = 41,
  kGetCheckpoint = 42,
  kDeleteCheckpoint = 43,
  kApplyCheckpoint = 44,
  // Live moves to another host (jobs listed with kListJobs).
  kMoveVm = 50,
  kResolveVm = 51,
  // Log-ons at this host (migration.authentication = "credssp").
  kLogon = 60,
  kLogoff = 61,
  kListLogons = 62,
};

struct Route {
  RouteId id = RouteId::kNotFound;
  std::string
      name;  // the {name} segment (a job id for kGetJob, the user for kLogoff), not yet validated
  VmAction action = VmAction::kStart;  // for kVmAction
  std::string allow;                   // for kMethodNotAllowed: the methods the path takes
  std::string checkpoint;              // the {cp} segment of checkpoint routes, not yet validated
};

Route MatchRoute(std::string_view method, std::string_view path);

}  // namespace appliance
