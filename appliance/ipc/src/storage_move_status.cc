#include "ipc/storage_move_status.h"

namespace appliance {

std::string_view ToString(MovePhase phase) {
  switch (phase) {
    case MovePhase::kPreparing: return "preparing";
    case MovePhase::kCopyingLayers: return "copying-layers";
    case MovePhase::kMirroring: return "mirroring";
    case MovePhase::kSwitching: return "switching";
    case MovePhase::kCompleted: return "completed";
    case MovePhase::kFailed: return "failed";
    case MovePhase::kCancelled: return "cancelled";
  }
  return "unknown";
}

bool IsTerminal(MovePhase phase) {
  return phase == MovePhase::kCompleted || phase == MovePhase::kFailed ||
         phase == MovePhase::kCancelled;
}

base::Result<MovePhase> ParseMovePhase(std::string_view text) {
  for (MovePhase p :
       {MovePhase::kPreparing, MovePhase::kCopyingLayers, MovePhase::kMirroring,
        MovePhase::kSwitching, MovePhase::kCompleted, MovePhase::kFailed, MovePhase::kCancelled}) {
    if (text == ToString(p)) return p;
  }
  return base::Error(base::Code::kInvalidArgument,
                     "unknown move phase \"" + std::string(text) + "\"");
}

nlohmann::json MoveStatusToJson(const MoveStatus& s) {
  nlohmann::json j = {{"job_id", s.job_id},
                      {"destination", s.destination},
                      {"phase", ToString(s.phase)},
                      {"bytes_total", s.bytes_total},
                      {"bytes_done", s.bytes_done},
                      {"bytes_remaining", s.bytes_remaining},
                      {"bytes_skipped", s.bytes_skipped},
                      {"bytes_per_second", s.bytes_per_second},
                      {"eta_seconds", s.eta_seconds},
                      {"resumed", s.resumed},
                      {"switch_pause_us", s.switch_pause_us},
                      {"new_paths", s.new_paths}};
  if (!s.error.empty()) j["error"] = {{"code", s.error_code}, {"message", s.error}};
  return j;
}

base::Result<MoveStatus> MoveStatusFromJson(const nlohmann::json& j) {
  auto bad = [](const std::string& what) {
    return base::Error(base::Code::kInternal, "worker move status: " + what);
  };
  if (!j.is_object()) return bad("not an object");
  MoveStatus s;
  auto str = [&](const char* k) {
    return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : "";
  };
  auto u64 = [&](const char* k) {
    return j.contains(k) && j[k].is_number_unsigned() ? j[k].get<uint64_t>() : 0;
  };
  auto dbl = [&](const char* k, double d) {
    return j.contains(k) && j[k].is_number() ? j[k].get<double>() : d;
  };
  s.job_id = str("job_id");
  s.destination = str("destination");
  auto phase = ParseMovePhase(str("phase"));
  if (!phase) return bad(phase.error().message());
  s.phase = *phase;
  s.bytes_total = u64("bytes_total");
  s.bytes_done = u64("bytes_done");
  s.bytes_remaining = u64("bytes_remaining");
  s.bytes_skipped = u64("bytes_skipped");
  s.bytes_per_second = dbl("bytes_per_second", 0);
  s.eta_seconds = dbl("eta_seconds", -1);
  s.resumed = j.contains("resumed") && j["resumed"].is_boolean() && j["resumed"].get<bool>();
  s.switch_pause_us = u64("switch_pause_us");
  if (j.contains("new_paths") && j["new_paths"].is_array()) {
    for (const auto& p : j["new_paths"]) {
      if (p.is_string()) s.new_paths.push_back(p.get<std::string>());
    }
  }
  if (j.contains("error") && j["error"].is_object()) {
    s.error_code = j["error"].value("code", "unknown");
    s.error = j["error"].value("message", "");
  }
  return s;
}

}  // namespace appliance
