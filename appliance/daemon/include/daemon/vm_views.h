// What VmService and its pieces answer, as plain values. The API layer
// (vm_json.h) turns them into the JSON of docs/api.md; nothing here knows
// JSON, so a test or another service can read the fields directly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/host_settings.h"
#include "config/vm_definition.h"
#include "daemon/departure_record.h"
#include "daemon/runtime_record.h"
#include "daemon/vm_state.h"
#include "ipc/worker_protocol.h"
#include "plan/storage_move_plan.h"  // KeptSource

namespace appliance {

// One VM as ferryd records it (GET /v1/vms/{name}, list, create, actions).
struct VmView {
  std::string name;
  config::VmDefinition definition;
  RuntimeRecord runtime;
  std::string dir;      // its directory in the inventory
  std::string console;  // its console log
  // Its unresolved live move, if any; watched: a job follows it (a restarted
  // ferryd that has not taken the move up yet leaves it unwatched).
  std::optional<DepartureRecord> departure;
  bool departure_watched = false;
  // Show only: what the worker said just now, if it answered in time.
  struct Live {
    WorkerStats stats;
    std::string vm_state;  // the worker's own word ("running", "paused")
  };
  std::optional<Live> live;
};

// GET /v1/host.
struct HostInfo {
  std::string hostname;
  std::string version;
  config::HostSettings settings;  // config path, storage root, socket, migration
  std::string guest_dir;
  std::vector<std::string> guests;
  std::string kvm_device;
  bool kvm_available = false;
  std::string tls_fingerprint;    // this host's certificate, for peers to pin
  bool tls_trusts_peers = false;  // a TLS context is loaded: moves are possible
  size_t vms = 0;
  size_t vms_running = 0;
};

// One checkpoint of a VM; current: the VM's disks build on it now.
struct CheckpointView {
  config::CheckpointSpec spec;
  bool current = false;
};
struct CheckpointList {
  std::string vm;
  std::string current_checkpoint;
  std::vector<CheckpointView> checkpoints;
};
struct AppliedCheckpoint {
  CheckpointView checkpoint;
  std::vector<std::string> removed_files;  // the abandoned tops
  VmView vm;
};
struct DeletedCheckpoint {
  std::string checkpoint;
  std::string vm;
  std::vector<std::string> removed_files;
  std::vector<std::string> kept_files;  // merged layers left in place (base images, failures)
};

// What resolving a VM's departure came to (`ferry vm resolve`).
struct ResolveOutcome {
  enum class Kind {
    kNone = 1,  // no departure to resolve: only vm and message are set
    kMoved,     // the destination committed: the VM was removed here
    kHere,      // the VM stays here
  };
  Kind kind = Kind::kNone;
  std::string vm;
  std::string destination;
  std::string migration_id;
  std::string message;
  bool forced = false;                // kHere by force, without the destination's word
  VmState state = VmState::kStopped;  // kHere: the VM's state afterwards
  std::vector<std::string> removed;   // kMoved: the files deleted here
};
std::string_view ToString(ResolveOutcome::Kind kind);

// What a move needs of the VM it moves (storage or live).
struct MoveTarget {
  VmState state = VmState::kStopped;
  config::VmDefinition definition;
  std::string vm_dir;
  std::string control_socket;  // when a worker runs the VM
};

// What the clean-up of a VM that left by a live move did (FinishMovedVm).
// report: the exit record's live_move (the worker's final LiveMoveStatus
// JSON, if it left one).
struct MovedVm {
  std::string name;
  std::string report;
  std::vector<std::string> removed;
  std::vector<KeptSource> kept;
};

// A VM with a departure record, and whether a job watches it.
struct Departure {
  std::string vm;
  DepartureRecord record;
  bool watched = false;
};

}  // namespace appliance
