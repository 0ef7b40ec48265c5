// A storage move's progress as the worker reports it to ferryd (the "move"
// status request, worker_protocol.h) and ferryd keeps in the job record.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace appliance {

enum class MovePhase {
  kPreparing = 1,
  kCopyingLayers = 2,  // read-only backing layers
  kMirroring = 3,      // bulk copy of the writable layers + write mirroring
  kSwitching = 4,      // guest I/O paused: converge, commit, switch
  kCompleted = 5,
  kFailed = 6,
  kCancelled = 7,
};
std::string_view ToString(MovePhase phase);
bool IsTerminal(MovePhase phase);
base::Result<MovePhase> ParseMovePhase(std::string_view text);

struct MoveStatus {
  std::string job_id;
  std::string destination;
  MovePhase phase = MovePhase::kPreparing;
  uint64_t bytes_total = 0;
  uint64_t bytes_done = 0;  // copied so far (layers + mirror)
  uint64_t bytes_remaining = 0;
  uint64_t bytes_skipped = 0;  // not copied again thanks to a resume bitmap
  double bytes_per_second = 0;
  double eta_seconds = -1;
  bool resumed = false;
  uint64_t switch_pause_us = 0;  // how long guest I/O was paused for the switch
  std::string error_code;        // base::CodeName, when failed
  std::string error;
  std::vector<std::string> new_paths;  // disk paths after a completed move
};

struct MoveRequest {
  std::string job_id;
  std::string destination;
  uint64_t max_bytes_per_second = 0;  // mirror pacing; 0: unlimited
};

// The status as the worker reports it (the "move" member of its reply).
nlohmann::json MoveStatusToJson(const MoveStatus& status);
base::Result<MoveStatus> MoveStatusFromJson(const nlohmann::json& j);

}  // namespace appliance
