// What ferryd and a worker say to each other about a live move
// (docs/live_move.md): the worker op "live-move" carries
//   {"action":"start", "request":{LiveMoveRequest}}
//   {"action":"status"}   (also renews the lease)
//   {"action":"abort","reason":"..."}
// and every reply carries the status as "live_move" (LiveMoveStatus JSON).
// The same status JSON is what the API's job records and `ferry jobs` show.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "protocol/move_protocol.h"
#include "protocol/peer_trust.h"

namespace appliance {

enum class LiveMovePhase {
  kPreparing = 1,      // pre-flight and set-up (ferryd), connecting (worker)
  kCopyingLayers = 2,  // read-only checkpoint layers
  kPrecopy = 3,        // memory rounds + disk mirrors
  kSwitchover = 4,     // source paused: last pages/blocks, state
  kResolving = 5,      // state sent, waiting for the destination's verdict
  kCompleted = 6,      // destination committed; the VM runs there
  kFailed = 7,         // the VM runs on the source; error says why
  kInDoubt = 8,        // source paused, destination unreachable after the state was sent
};
std::string_view ToString(LiveMovePhase phase);
base::Result<LiveMovePhase> ParseLiveMovePhase(std::string_view text);
bool IsTerminal(LiveMovePhase phase);  // completed, failed, in-doubt

// The worker's answer (kNotFound) to a live-move status request when no move
// was ever started on it: a restarted ferryd that took a job up learns from
// it that the move never began (told apart from a socket that is gone, also
// kNotFound, by the text).
inline constexpr const char* kNoLiveMoveStarted = "no live move has been started on this vm";

// ferryd -> source worker.
struct LiveMoveRequest {
  PrepareRequest prepare;    // what the destination accepted
  std::string control_host;  // destination ferryd's peer listener (Status queries)
  uint16_t control_port = 0;
  std::string data_host;  // the incoming worker (PrepareReply)
  uint16_t data_port = 0;
  std::string source_host;  // bind local side of every connection here ("" any)
  uint32_t streams = 4;
  bool compression = true;
  uint64_t bandwidth_limit = 0;  // bytes/s for memory + disk together; 0 none
  uint32_t downtime_ms = 0;      // 0: the default (LiveMoveSource::kDefaultDowntimeMs)
  uint32_t time_limit_s = 600;   // give up (VM stays on the source) after this
  // TLS for the data streams and Status queries. ferryd always sends it (the
  // JSON field is required); unset only where engine tests and benchmarks
  // build a request in C++ and want plain streams.
  std::optional<PeerTrust> tls;
};
nlohmann::json ToJson(const LiveMoveRequest& request);
base::Result<LiveMoveRequest> LiveMoveRequestFromJson(const nlohmann::json& j);

struct StreamReport {
  uint64_t bytes_sent = 0;     // on the wire, headers included
  uint64_t payload_bytes = 0;  // before compression
  uint64_t frames = 0;
};

// worker -> ferryd, and the job record's "progress"/"report".
struct LiveMoveStatus {
  std::string migration_id;
  LiveMovePhase phase = LiveMovePhase::kPreparing;
  uint32_t round = 0;  // memory round (1 = the full pass)
  uint64_t memory_bytes = 0;
  uint64_t memory_sent = 0;       // page bytes sent, all rounds (zero pages not counted)
  uint64_t memory_remaining = 0;  // dirty now (estimate during a round)
  uint64_t disk_bytes = 0;        // layer files + disk sizes
  uint64_t disk_sent = 0;
  uint64_t disk_remaining = 0;
  double bytes_per_second = 0;        // on the wire, smoothed
  double dirty_bytes_per_second = 0;  // guest memory dirty rate, last round
  double predicted_downtime_ms = -1;
  double eta_seconds = -1;
  int throttle_percent = 0;  // auto-converge
  uint64_t zero_pages = 0;   // pages that never crossed as data
  std::vector<StreamReport> streams;
  // Report (once completed): the source's pause (vCPUs stopped) until the
  // destination's Committed arrived, and total time since start.
  double downtime_ms = -1;
  double total_ms = -1;
  uint64_t wire_bytes = 0;  // sum over streams
  std::string error_code;   // base::CodeName when failed / in doubt
  std::string error;
};
nlohmann::json ToJson(const LiveMoveStatus& status);
base::Result<LiveMoveStatus> LiveMoveStatusFromJson(const nlohmann::json& j);

}  // namespace appliance
