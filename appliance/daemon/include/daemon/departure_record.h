// The source host's durable note that a VM is leaving it by a live move:
// <vm dir>/departure.json. ferryd writes it before the source worker is told
// to start (so before any switchover can happen) and removes it only once the
// move's outcome is known and the VM stays here; a VM that moved is removed
// with its directory. While the record exists, nothing on this host may run
// the VM anew (start, restore, checkpoint apply, delete, another move): the
// destination may run it. A ferryd that starts and finds the record resolves
// it with the destination's Status before it lets the VM do anything.
//
//   {"migration_id": "...", "job": "live-0f1e2d3c", "host": "10.0.0.2:7430",
//    "destination": "/srv/vms", "state": "moving" | "in-doubt",
//    "message": "...", "resume_here": true, "started_unix_ms": 0, "changed_unix_ms": 0}
//
// "moving": a job watches the move (or will, once a restarted ferryd
// re-attaches to it). "in-doubt": the source sent the VM's state and nobody
// could learn whether the destination committed; an admin resolves it
// (`ferry vm resolve VM`, which asks again, or `--force`).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace appliance {

enum class DepartureState { kMoving = 1, kInDoubt = 2 };

struct DepartureRecord {
  std::string migration_id;
  std::string job;          // the source job's id
  std::string host;         // the destination ferryd's migration address, as given
  std::string destination;  // storage path at the destination
  // The certificate the destination presented at Prepare ("" before): only
  // that host's word settles the move (VmDepartures::PinDestination).
  std::string destination_fingerprint;
  DepartureState state = DepartureState::kMoving;
  std::string message;  // why it is in doubt
  // The VM was running when the move began, so the move's switchover paused
  // it: a move that turns out not to have committed resumes it here (as the
  // worker does itself when it learns that in time). A VM paused by its
  // admin stays paused.
  bool resume_here = false;
  int64_t started_unix_ms = 0;
  int64_t changed_unix_ms = 0;
};

std::string_view ToString(DepartureState state);
nlohmann::json ToJson(const DepartureRecord& record);
// source names the file in errors (kDataLoss for a malformed record).
base::Result<DepartureRecord> DepartureFromJson(const nlohmann::json& j, std::string_view source);

// <vm_dir>/departure.json
std::string DeparturePath(const std::string& vm_dir);
// nullopt when there is none; kDataLoss for a record that cannot be read
// (callers treat the VM as in doubt: a damaged record never frees a VM).
base::Result<std::optional<DepartureRecord>> ReadDeparture(const std::string& vm_dir);
// Atomically, fsynced with its directory: on return the record survives a
// crash of the host.
base::Status WriteDeparture(const std::string& vm_dir, const DepartureRecord& record);
// Removes the record (and syncs the directory); no record is fine.
base::Status RemoveDeparture(const std::string& vm_dir);

}  // namespace appliance
