#include "daemon/runtime_record.h"

#include <chrono>

namespace appliance {

using nlohmann::json;

int64_t UnixMillisNow() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json ToJson(const RuntimeRecord& r) {
  return json{{"state", ToString(r.state)},         {"worker_pid", r.worker_pid},
              {"control_socket", r.control_socket}, {"last_error", r.last_error},
              {"saved_state", r.saved_state},       {"changed_unix_ms", r.changed_unix_ms}};
}

base::Result<RuntimeRecord> RuntimeFromJson(const json& j, std::string_view source) {
  auto bad = [&](const std::string& what) {
    return base::Error(base::Code::kDataLoss, std::string(source) + ": " + what);
  };
  if (!j.is_object()) return bad("not a JSON object");
  RuntimeRecord r;
  auto state = j.find("state");
  if (state == j.end() || !state->is_string()) return bad("no \"state\" string");
  auto parsed = ParseVmState(state->get<std::string>());
  if (!parsed) return bad(parsed.error().message());
  r.state = *parsed;
  for (auto [key, field] :
       {std::pair{"worker_pid", &r.worker_pid}, std::pair{"changed_unix_ms", &r.changed_unix_ms}}) {
    auto it = j.find(key);
    if (it == j.end()) continue;
    if (!it->is_number_integer()) return bad(std::string("\"") + key + "\" must be an integer");
    *field = it->get<int64_t>();
  }
  for (auto [key, field] :
       {std::pair{"control_socket", &r.control_socket}, std::pair{"last_error", &r.last_error},
        std::pair{"saved_state", &r.saved_state}}) {
    auto it = j.find(key);
    if (it == j.end()) continue;
    if (!it->is_string()) return bad(std::string("\"") + key + "\" must be a string");
    *field = it->get<std::string>();
  }
  if (HasWorker(r.state) && (r.worker_pid <= 0 || r.control_socket.empty()))
    return bad(std::string("state ") + std::string(ToString(r.state)) +
               " needs a worker_pid and a control_socket");
  return r;
}

std::string FormatRuntime(const RuntimeRecord& record) { return ToJson(record).dump(2) + "\n"; }

base::Result<RuntimeRecord> ParseRuntime(std::string_view text, std::string_view source) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return base::Error(base::Code::kDataLoss, std::string(source) + ": not valid JSON");
  return RuntimeFromJson(j, source);
}

}  // namespace appliance
