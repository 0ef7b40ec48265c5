// DepartureRecord: its JSON and its file (departure_record.h).
#include "daemon/departure_record.h"

#include <unistd.h>

#include <cerrno>

#include "base/fd.h"

namespace appliance {

using nlohmann::json;

std::string_view ToString(DepartureState state) {
  switch (state) {
    case DepartureState::kMoving: return "moving";
    case DepartureState::kInDoubt: return "in-doubt";
  }
  return "?";
}

json ToJson(const DepartureRecord& r) {
  return json{{"migration_id", r.migration_id},
              {"job", r.job},
              {"host", r.host},
              {"destination", r.destination},
              {"destination_fingerprint", r.destination_fingerprint},
              {"state", ToString(r.state)},
              {"message", r.message},
              {"resume_here", r.resume_here},
              {"started_unix_ms", r.started_unix_ms},
              {"changed_unix_ms", r.changed_unix_ms}};
}

base::Result<DepartureRecord> DepartureFromJson(const json& j, std::string_view source) {
  auto bad = [&](const std::string& why) {
    return base::Error(base::Code::kDataLoss, std::string(source) + ": " + why);
  };
  if (!j.is_object()) return bad("not a JSON object");
  for (const char* key : {"migration_id", "host", "state"}) {
    if (!j.contains(key) || !j[key].is_string() || j[key].get<std::string>().empty())
      return bad(std::string("no \"") + key + "\"");
  }
  DepartureRecord r;
  r.migration_id = j["migration_id"].get<std::string>();
  r.host = j["host"].get<std::string>();
  const std::string state = j["state"].get<std::string>();
  if (state == ToString(DepartureState::kMoving))
    r.state = DepartureState::kMoving;
  else if (state == ToString(DepartureState::kInDoubt))
    r.state = DepartureState::kInDoubt;
  else
    return bad("unknown state \"" + state + "\"");
  auto text = [&](const char* key) {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
  };
  auto number = [&](const char* key) {
    return j.contains(key) && j[key].is_number_integer() ? j[key].get<int64_t>() : int64_t(0);
  };
  r.job = text("job");
  r.destination = text("destination");
  r.destination_fingerprint = text("destination_fingerprint");
  r.message = text("message");
  r.resume_here =
      j.contains("resume_here") && j["resume_here"].is_boolean() && j["resume_here"].get<bool>();
  r.started_unix_ms = number("started_unix_ms");
  r.changed_unix_ms = number("changed_unix_ms");
  return r;
}

std::string DeparturePath(const std::string& vm_dir) { return vm_dir + "/departure.json"; }

base::Result<std::optional<DepartureRecord>> ReadDeparture(const std::string& vm_dir) {
  const std::string path = DeparturePath(vm_dir);
  if (::access(path.c_str(), F_OK) != 0) {
    if (errno == ENOENT) return std::optional<DepartureRecord>();
    return base::ErrnoError("read " + path);
  }
  auto text = base::ReadFileToString(path);
  if (!text) return text.error().Wrap("read " + path);
  ASSIGN_OR_RETURN(DepartureRecord record,
                   DepartureFromJson(json::parse(*text, nullptr, false), path));
  return std::optional<DepartureRecord>(std::move(record));
}

base::Status WriteDeparture(const std::string& vm_dir, const DepartureRecord& record) {
  const std::string path = DeparturePath(vm_dir);
  auto st = base::WriteFileAtomically(path, ToJson(record).dump(2) + "\n");
  if (!st) return st.error().Wrap("record the departure in " + path);
  return base::Ok();
}

base::Status RemoveDeparture(const std::string& vm_dir) {
  const std::string path = DeparturePath(vm_dir);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return base::Ok();
    return base::ErrnoError("remove " + path);
  }
  return base::SyncParentDirectory(path);
}

}  // namespace appliance
