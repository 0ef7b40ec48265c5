#include "ipc/worker_protocol.h"

#include <nlohmann/json.hpp>

#include "common/error_codes.h"
#include "common/unix_socket.h"

namespace appliance {
namespace {

using nlohmann::json;

base::Result<json> ParseObject(std::string_view text, std::string_view what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return base::Error(base::Code::kInvalidArgument, std::string(what) + " is not a JSON object");
  return j;
}

// Reads an optional string member; a member of the wrong type is an error.
base::Status GetString(const json& j, const char* key, std::string_view what, std::string* out) {
  auto it = j.find(key);
  if (it == j.end()) return base::Ok();
  if (!it->is_string())
    return base::Error(base::Code::kInvalidArgument,
                       std::string(what) + ": \"" + key + "\" must be a string");
  *out = it->get<std::string>();
  return base::Ok();
}

uint64_t GetU64(const json& j, const char* key) {
  auto it = j.find(key);
  return (it != j.end() && it->is_number_unsigned()) ? it->get<uint64_t>() : 0;
}

int64_t GetI64(const json& j, const char* key) {
  auto it = j.find(key);
  return (it != j.end() && it->is_number_integer()) ? it->get<int64_t>() : 0;
}

json DiskStatsToJson(const WorkerDiskStats& d) {
  return {{"reads", d.reads},
          {"writes", d.writes},
          {"flushes", d.flushes},
          {"read_errors", d.read_errors},
          {"write_errors", d.write_errors},
          {"flush_errors", d.flush_errors},
          {"first_error", d.first_error},
          {"first_error_unix_ms", d.first_error_unix_ms}};
}

WorkerDiskStats DiskStatsFromJson(const json& j) {
  WorkerDiskStats d;
  if (!j.is_object()) return d;
  d.reads = GetU64(j, "reads");
  d.writes = GetU64(j, "writes");
  d.flushes = GetU64(j, "flushes");
  d.read_errors = GetU64(j, "read_errors");
  d.write_errors = GetU64(j, "write_errors");
  d.flush_errors = GetU64(j, "flush_errors");
  // Optional, like the counters: absent or not a string leaves it "".
  (void)GetString(j, "first_error", "worker reply", &d.first_error);
  d.first_error_unix_ms = GetI64(j, "first_error_unix_ms");
  return d;
}

}  // namespace

std::string_view ToString(WorkerOp op) {
  switch (op) {
    case WorkerOp::kStatus: return "status";
    case WorkerOp::kPause: return "pause";
    case WorkerOp::kResume: return "resume";
    case WorkerOp::kStop: return "stop";
    case WorkerOp::kSave: return "save";
    case WorkerOp::kCheckpoint: return "checkpoint";
    case WorkerOp::kMove: return "move";
    case WorkerOp::kLiveMove: return "live-move";
  }
  return "invalid";
}

std::string EncodeRequest(const WorkerRequest& request) {
  json j = {{"op", ToString(request.op)}};
  if (request.op == WorkerOp::kSave) j["path"] = request.path;
  if (request.op == WorkerOp::kCheckpoint)
    j["checkpoint"] = json::parse(request.checkpoint, nullptr, false);
  if (request.op == WorkerOp::kMove) j["move"] = json::parse(request.move, nullptr, false);
  if (request.op == WorkerOp::kLiveMove)
    j["live_move"] = json::parse(request.live_move, nullptr, false);
  return j.dump();
}

base::Result<WorkerRequest> DecodeRequest(std::string_view line) {
  ASSIGN_OR_RETURN(json j, ParseObject(line, "worker request"));
  std::string op;
  RETURN_IF_ERROR(GetString(j, "op", "worker request", &op));
  WorkerRequest request;
  RETURN_IF_ERROR(GetString(j, "path", "worker request", &request.path));
  for (WorkerOp candidate :
       {WorkerOp::kStatus, WorkerOp::kPause, WorkerOp::kResume, WorkerOp::kStop, WorkerOp::kSave,
        WorkerOp::kCheckpoint, WorkerOp::kMove, WorkerOp::kLiveMove}) {
    if (op == ToString(candidate)) {
      request.op = candidate;
      if (candidate == WorkerOp::kCheckpoint) {
        auto action = j.find("checkpoint");
        if (action == j.end() || !action->is_object())
          return base::Error(base::Code::kInvalidArgument,
                             "worker request: checkpoint needs a \"checkpoint\" object");
        request.checkpoint = action->dump();
      }
      if (candidate == WorkerOp::kMove) {
        auto action = j.find("move");
        if (action == j.end() || !action->is_object())
          return base::Error(base::Code::kInvalidArgument,
                             "worker request: move needs a \"move\" object");
        request.move = action->dump();
      }
      if (candidate == WorkerOp::kLiveMove) {
        auto action = j.find("live_move");
        if (action == j.end() || !action->is_object())
          return base::Error(base::Code::kInvalidArgument,
                             "worker request: live-move needs a \"live_move\" object");
        request.live_move = action->dump();
      }
      if (candidate == WorkerOp::kSave && request.path.empty())
        return base::Error(base::Code::kInvalidArgument, "worker request: save needs a \"path\"");
      return request;
    }
  }
  return base::Error(base::Code::kInvalidArgument, "worker request: unknown op \"" + op + "\"");
}

std::string EncodeReply(const base::Result<WorkerReply>& reply) {
  if (!reply.has_value()) {
    return json{
        {"ok", false},
        {"error",
         {{"code", base::CodeName(reply.error().code())}, {"message", reply.error().message()}}}}
        .dump();
  }
  const WorkerReply& r = *reply;
  json j{{"ok", true},
         {"state", r.state},
         {"pid", r.pid},
         {"stats",
          {{"memory_bytes", r.stats.memory_bytes},
           {"disk_reads", r.stats.disk_reads},
           {"disk_writes", r.stats.disk_writes},
           {"disk_flushes", r.stats.disk_flushes},
           {"exits", r.stats.exits}}}};
  json disks = json::array();
  for (const WorkerDiskStats& d : r.stats.disks) disks.push_back(DiskStatsToJson(d));
  j["stats"]["disks"] = std::move(disks);
  if (!r.move.empty()) j["move"] = json::parse(r.move, nullptr, false);
  if (!r.live_move.empty()) j["live_move"] = json::parse(r.live_move, nullptr, false);
  return j.dump();
}

base::Result<WorkerReply> DecodeReply(std::string_view line) {
  auto parsed = ParseObject(line, "worker reply");
  if (!parsed) return base::Error(base::Code::kInternal, parsed.error().message());
  const json& j = *parsed;
  auto ok = j.find("ok");
  if (ok == j.end() || !ok->is_boolean())
    return base::Error(base::Code::kInternal, "worker reply has no boolean \"ok\"");
  if (!ok->get<bool>()) {
    auto err = j.find("error");
    if (err == j.end() || !err->is_object())
      return base::Error(base::Code::kInternal, "worker error reply has no \"error\" object");
    std::string code, message;
    if (!GetString(*err, "code", "worker reply", &code) ||
        !GetString(*err, "message", "worker reply", &message))
      return base::Error(base::Code::kInternal, "worker error reply is malformed");
    return base::Error(CodeFromName(code), message);
  }
  WorkerReply reply;
  if (!GetString(j, "state", "worker reply", &reply.state) || reply.state.empty())
    return base::Error(base::Code::kInternal, "worker reply has no \"state\"");
  auto pid = j.find("pid");
  if (pid == j.end() || !pid->is_number_integer())
    return base::Error(base::Code::kInternal, "worker reply has no integer \"pid\"");
  reply.pid = pid->get<int64_t>();
  auto stats = j.find("stats");
  if (stats != j.end() && stats->is_object()) {
    reply.stats.memory_bytes = GetU64(*stats, "memory_bytes");
    reply.stats.disk_reads = GetU64(*stats, "disk_reads");
    reply.stats.disk_writes = GetU64(*stats, "disk_writes");
    reply.stats.disk_flushes = GetU64(*stats, "disk_flushes");
    reply.stats.exits = GetU64(*stats, "exits");
    if (auto disks = stats->find("disks"); disks != stats->end() && disks->is_array()) {
      for (const json& d : *disks) reply.stats.disks.push_back(DiskStatsFromJson(d));
    }
  }
  if (auto move = j.find("move"); move != j.end() && move->is_object()) reply.move = move->dump();
  if (auto live = j.find("live_move"); live != j.end() && live->is_object())
    reply.live_move = live->dump();
  return reply;
}

base::Result<WorkerReply> CallWorker(const std::string& socket_path, const WorkerRequest& request,
                                     int timeout_ms) {
  ASSIGN_OR_RETURN(base::Fd fd, ConnectUnix(socket_path));
  RETURN_IF_ERROR(WriteLine(fd.get(), EncodeRequest(request)));
  std::string what = "the worker's reply to " + std::string(ToString(request.op));
  ASSIGN_OR_RETURN(std::string line, ReadLine(fd.get(), kMaxWorkerLine, timeout_ms, what));
  return DecodeReply(line);
}

std::string EncodeExitRecord(const WorkerExitRecord& record) {
  json j = {{"pid", record.pid}, {"state", record.state}};
  if (!record.code.empty()) j["code"] = record.code;
  if (!record.message.empty()) j["message"] = record.message;
  if (!record.saved_path.empty()) j["saved_path"] = record.saved_path;
  if (!record.live_move.empty()) j["live_move"] = json::parse(record.live_move, nullptr, false);
  return j.dump() + "\n";
}

base::Result<WorkerExitRecord> DecodeExitRecord(std::string_view text, std::string_view source) {
  ASSIGN_OR_RETURN(json j, ParseObject(text, source));
  WorkerExitRecord record;
  auto pid = j.find("pid");
  if (pid == j.end() || !pid->is_number_integer())
    return base::Error(base::Code::kInvalidArgument, std::string(source) + ": no integer \"pid\"");
  record.pid = pid->get<int64_t>();
  RETURN_IF_ERROR(GetString(j, "state", source, &record.state));
  RETURN_IF_ERROR(GetString(j, "code", source, &record.code));
  RETURN_IF_ERROR(GetString(j, "message", source, &record.message));
  RETURN_IF_ERROR(GetString(j, "saved_path", source, &record.saved_path));
  if (auto live = j.find("live_move"); live != j.end() && live->is_object())
    record.live_move = live->dump();
  if (record.state.empty())
    return base::Error(base::Code::kInvalidArgument, std::string(source) + ": no \"state\"");
  return record;
}

}  // namespace appliance
