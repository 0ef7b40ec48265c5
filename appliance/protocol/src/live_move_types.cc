// JSON codecs of what ferryd and a worker say about a live move
// (live_move_types.h). Field names are the struct members' names.
#include "protocol/live_move_types.h"

#include "json_fields.h"

namespace appliance {
namespace {

using json = nlohmann::json;
using json_fields::Reader;

constexpr LiveMovePhase kPhases[] = {LiveMovePhase::kPreparing, LiveMovePhase::kCopyingLayers,
                                     LiveMovePhase::kPrecopy,   LiveMovePhase::kSwitchover,
                                     LiveMovePhase::kResolving, LiveMovePhase::kCompleted,
                                     LiveMovePhase::kFailed,    LiveMovePhase::kInDoubt};

}  // namespace

std::string_view ToString(LiveMovePhase phase) {
  switch (phase) {
    case LiveMovePhase::kPreparing: return "preparing";
    case LiveMovePhase::kCopyingLayers: return "copying-layers";
    case LiveMovePhase::kPrecopy: return "precopy";
    case LiveMovePhase::kSwitchover: return "switchover";
    case LiveMovePhase::kResolving: return "resolving";
    case LiveMovePhase::kCompleted: return "completed";
    case LiveMovePhase::kFailed: return "failed";
    case LiveMovePhase::kInDoubt: return "in-doubt";
  }
  return "unknown";
}

base::Result<LiveMovePhase> ParseLiveMovePhase(std::string_view text) {
  for (LiveMovePhase p : kPhases) {
    if (ToString(p) == text) return p;
  }
  return base::Error(base::Code::kInvalidArgument,
                     "unknown live move phase \"" + std::string(text) + "\"");
}

bool IsTerminal(LiveMovePhase phase) {
  return phase == LiveMovePhase::kCompleted || phase == LiveMovePhase::kFailed ||
         phase == LiveMovePhase::kInDoubt;
}

nlohmann::json ToJson(const LiveMoveRequest& r) {
  json j{{"prepare", ToJson(r.prepare)},
         {"control_host", r.control_host},
         {"control_port", r.control_port},
         {"data_host", r.data_host},
         {"data_port", r.data_port},
         {"source_host", r.source_host},
         {"streams", r.streams},
         {"compression", r.compression},
         {"bandwidth_limit", r.bandwidth_limit},
         {"downtime_ms", r.downtime_ms},
         {"time_limit_s", r.time_limit_s}};
  if (r.tls) j["tls"] = ToJson(*r.tls);
  return j;
}

base::Result<LiveMoveRequest> LiveMoveRequestFromJson(const nlohmann::json& j) {
  RETURN_IF_ERROR(json_fields::RequireObject(j, "live move request"));
  Reader in(j, "live move request");
  LiveMoveRequest r;
  if (!in.Has("prepare")) return in.Bad("prepare", "missing");
  auto prepare = PrepareRequestFromJson(j["prepare"]);
  if (!prepare)
    return base::Error(prepare.error().code(), "live move request: " + prepare.error().message());
  r.prepare = std::move(*prepare);
  ASSIGN_OR_RETURN(r.control_host, in.String("control_host"));
  ASSIGN_OR_RETURN(uint64_t control_port, in.U64("control_port", true, 0, 65535));
  r.control_port = uint16_t(control_port);
  ASSIGN_OR_RETURN(r.data_host, in.String("data_host"));
  if (r.data_host.empty()) return in.Bad("data_host", "must not be empty");
  ASSIGN_OR_RETURN(uint64_t data_port, in.U64("data_port", true, 0, 65535));
  if (data_port == 0) return in.Bad("data_port", "must be 1..65535");
  r.data_port = uint16_t(data_port);
  ASSIGN_OR_RETURN(r.source_host, in.String("source_host", false));
  ASSIGN_OR_RETURN(uint64_t streams, in.U64("streams", false, r.prepare.streams, 64));
  if (streams == 0) return in.Bad("streams", "must be at least 1");
  r.streams = uint32_t(streams);
  ASSIGN_OR_RETURN(r.compression, in.Bool("compression", false, true));
  ASSIGN_OR_RETURN(r.bandwidth_limit, in.U64("bandwidth_limit", false));
  ASSIGN_OR_RETURN(uint64_t downtime, in.U64("downtime_ms", false, 0, UINT32_MAX));
  r.downtime_ms = uint32_t(downtime);
  ASSIGN_OR_RETURN(uint64_t time_limit, in.U64("time_limit_s", false, 600, UINT32_MAX));
  r.time_limit_s = uint32_t(time_limit);
  if (!in.Has("tls")) return in.Bad("tls", "missing (every live move's streams are TLS)");
  auto tls = PeerTrustFromJson(j["tls"]);
  if (!tls) return base::Error(tls.error().code(), "live move request: " + tls.error().message());
  r.tls = std::move(*tls);
  return r;
}

nlohmann::json ToJson(const LiveMoveStatus& s) {
  json streams = json::array();
  for (const StreamReport& r : s.streams)
    streams.push_back(
        {{"bytes_sent", r.bytes_sent}, {"payload_bytes", r.payload_bytes}, {"frames", r.frames}});
  return json{{"migration_id", s.migration_id},
              {"phase", ToString(s.phase)},
              {"round", s.round},
              {"memory_bytes", s.memory_bytes},
              {"memory_sent", s.memory_sent},
              {"memory_remaining", s.memory_remaining},
              {"disk_bytes", s.disk_bytes},
              {"disk_sent", s.disk_sent},
              {"disk_remaining", s.disk_remaining},
              {"bytes_per_second", s.bytes_per_second},
              {"dirty_bytes_per_second", s.dirty_bytes_per_second},
              {"predicted_downtime_ms", s.predicted_downtime_ms},
              {"eta_seconds", s.eta_seconds},
              {"throttle_percent", s.throttle_percent},
              {"zero_pages", s.zero_pages},
              {"streams", streams},
              {"downtime_ms", s.downtime_ms},
              {"total_ms", s.total_ms},
              {"wire_bytes", s.wire_bytes},
              {"error_code", s.error_code},
              {"error", s.error}};
}

base::Result<LiveMoveStatus> LiveMoveStatusFromJson(const nlohmann::json& j) {
  RETURN_IF_ERROR(json_fields::RequireObject(j, "live move status"));
  Reader in(j, "live move status");
  LiveMoveStatus s;
  ASSIGN_OR_RETURN(s.migration_id, in.String("migration_id", false));
  ASSIGN_OR_RETURN(std::string phase, in.String("phase"));
  auto parsed = ParseLiveMovePhase(phase);
  if (!parsed) return in.Bad("phase", "unknown phase \"" + phase + "\"");
  s.phase = *parsed;
  ASSIGN_OR_RETURN(uint64_t round, in.U64("round", false, 0, UINT32_MAX));
  s.round = uint32_t(round);
  ASSIGN_OR_RETURN(s.memory_bytes, in.U64("memory_bytes", false));
  ASSIGN_OR_RETURN(s.memory_sent, in.U64("memory_sent", false));
  ASSIGN_OR_RETURN(s.memory_remaining, in.U64("memory_remaining", false));
  ASSIGN_OR_RETURN(s.disk_bytes, in.U64("disk_bytes", false));
  ASSIGN_OR_RETURN(s.disk_sent, in.U64("disk_sent", false));
  ASSIGN_OR_RETURN(s.disk_remaining, in.U64("disk_remaining", false));
  ASSIGN_OR_RETURN(s.bytes_per_second, in.Double("bytes_per_second", false));
  ASSIGN_OR_RETURN(s.dirty_bytes_per_second, in.Double("dirty_bytes_per_second", false));
  ASSIGN_OR_RETURN(s.predicted_downtime_ms, in.Double("predicted_downtime_ms", false, -1));
  ASSIGN_OR_RETURN(s.eta_seconds, in.Double("eta_seconds", false, -1));
  ASSIGN_OR_RETURN(int64_t throttle, in.I64("throttle_percent", false));
  if (throttle < 0 || throttle > 100) return in.Bad("throttle_percent", "must be 0..100");
  s.throttle_percent = int(throttle);
  ASSIGN_OR_RETURN(s.zero_pages, in.U64("zero_pages", false));
  ASSIGN_OR_RETURN(const json* streams, in.Array("streams", false));
  for (size_t i = 0; i < streams->size(); ++i) {
    ASSIGN_OR_RETURN(Reader r, in.Element("streams", (*streams)[i], i));
    StreamReport report;
    ASSIGN_OR_RETURN(report.bytes_sent, r.U64("bytes_sent", false));
    ASSIGN_OR_RETURN(report.payload_bytes, r.U64("payload_bytes", false));
    ASSIGN_OR_RETURN(report.frames, r.U64("frames", false));
    s.streams.push_back(report);
  }
  ASSIGN_OR_RETURN(s.downtime_ms, in.Double("downtime_ms", false, -1));
  ASSIGN_OR_RETURN(s.total_ms, in.Double("total_ms", false, -1));
  ASSIGN_OR_RETURN(s.wire_bytes, in.U64("wire_bytes", false));
  ASSIGN_OR_RETURN(s.error_code, in.String("error_code", false));
  ASSIGN_OR_RETURN(s.error, in.String("error", false));
  return s;
}

}  // namespace appliance
