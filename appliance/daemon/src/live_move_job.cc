// The pure parts of LiveMoveService (live_move_service.h): the job record's
// JSON and the Prepare request built from a storage plan.
#include "daemon/live_move_service.h"
#include "daemon/runtime_record.h"

namespace appliance {

using nlohmann::json;

json LiveMoveJobToJson(const LiveMoveJobRecord& job) {
  const LiveMoveStatus& s = job.status;
  const uint64_t total = s.memory_bytes + s.disk_bytes;
  const uint64_t done =
      s.phase == LiveMovePhase::kCompleted ? total : std::min(total, s.memory_sent + s.disk_sent);
  json j = {{"id", job.id},
            {"vm", job.vm},
            {"kind", "live-vm"},
            {"host", job.host},
            {"destination", job.destination},
            {"migration_id", job.migration_id},
            {"destination_fingerprint", job.destination_fingerprint},
            {"streams", job.streams},
            {"bandwidth_limit", job.bandwidth_limit},
            {"downtime_ms", job.downtime_ms},
            {"phase", ToString(s.phase)},
            // Where the VM runs as far as this job knows: "source" (here;
            // also while the move copies), "switching" (its state went out,
            // the verdict is awaited), "destination", or "in-doubt".
            {"vm_runs_at", s.phase == LiveMovePhase::kCompleted   ? "destination"
                           : s.phase == LiveMovePhase::kInDoubt   ? "in-doubt"
                           : s.phase == LiveMovePhase::kResolving ? "switching"
                                                                  : "source"},
            {"bytes_total", total},
            {"bytes_done", done},
            {"bytes_per_second", s.bytes_per_second},
            {"eta_seconds", s.eta_seconds},
            {"live_move", ToJson(s)},
            {"started_unix_ms", job.started_unix_ms},
            {"ended_unix_ms", job.ended_unix_ms},
            {"removed_sources", job.removed},
            {"kept_sources", json::array()}};
  int64_t end = job.ended_unix_ms != 0 ? job.ended_unix_ms : UnixMillisNow();
  j["elapsed_seconds"] = double(end - job.started_unix_ms) / 1000.0;
  for (const KeptSource& k : job.kept)
    j["kept_sources"].push_back({{"path", k.path}, {"used_by", k.used_by}});
  if (!s.error.empty())
    j["error"] = {{"code", s.error_code}, {"message", s.error}};
  else
    j["error"] = nullptr;
  return j;
}

base::Result<LiveMoveJobRecord> LiveMoveJobFromJson(const json& j) {
  if (!j.is_object() || !j.contains("id") || !j["id"].is_string())
    return base::Error(base::Code::kDataLoss, "live move job record without an id");
  if (j.value("kind", "") != "live-vm")
    return base::Error(base::Code::kDataLoss,
                       "job record " + j["id"].get<std::string>() + " is not a live move");
  if (!j.contains("live_move"))
    return base::Error(base::Code::kDataLoss,
                       "live move job record " + j["id"].get<std::string>() + " has no status");
  LiveMoveJobRecord r;
  r.id = j["id"].get<std::string>();
  r.vm = j.value("vm", "");
  r.host = j.value("host", "");
  r.destination = j.value("destination", "");
  r.migration_id = j.value("migration_id", "");
  r.destination_fingerprint = j.value("destination_fingerprint", "");
  r.streams = j.value("streams", uint32_t(4));
  r.bandwidth_limit = j.value("bandwidth_limit", uint64_t(0));
  r.downtime_ms = j.value("downtime_ms", uint32_t(0));
  r.started_unix_ms = j.value("started_unix_ms", int64_t(0));
  r.ended_unix_ms = j.value("ended_unix_ms", int64_t(0));
  if (j.contains("removed_sources") && j["removed_sources"].is_array()) {
    for (const auto& p : j["removed_sources"]) {
      if (p.is_string()) r.removed.push_back(p.get<std::string>());
    }
  }
  if (j.contains("kept_sources") && j["kept_sources"].is_array()) {
    for (const auto& k : j["kept_sources"]) {
      if (k.is_object()) r.kept.push_back({k.value("path", ""), k.value("used_by", "")});
    }
  }
  auto status = LiveMoveStatusFromJson(j["live_move"]);
  if (!status) return status.error().Wrap("live move job record " + r.id);
  r.status = std::move(*status);
  return r;
}

PrepareRequest BuildPrepareRequest(const config::VmDefinition& definition,
                                   const StorageMovePlan& plan, uint32_t streams,
                                   config::PerformanceOption performance,
                                   const std::string& source_host) {
  PrepareRequest r;
  r.vm_name = definition.name;
  r.vm_id = definition.id;
  r.definition_toml = config::FormatVmDefinition(plan.moved_definition);
  r.config_version = definition.config_version;
  r.memory_bytes = definition.memory_bytes;
  r.vcpus = definition.vcpus;
  r.processor_compatibility = definition.processor_compatibility;
  r.destination = plan.destination;
  for (const DiskMove& d : plan.disks) {
    PreparedDisk pd;
    pd.index = uint32_t(d.index);
    pd.format = std::string(config::ToString(d.top.format));
    pd.disk_size = d.disk_size;
    pd.top = d.top.dest;
    pd.top_backing_name = d.top_backing_name;
    if (!d.top_backing_name.empty())
      pd.top_backing_format = std::string(config::ToString(d.top_backing_format));
    for (const LayerMove& l : d.backing) {
      PreparedLayer pl;
      pl.dest = l.dest;
      pl.format = std::string(config::ToString(l.format));
      pl.file_size = l.file_size;
      pl.rewrite_backing = l.rewrite_backing;
      if (!l.rewrite_backing.empty())
        pl.backing_format = std::string(config::ToString(l.backing_format));
      pd.backing.push_back(std::move(pl));
    }
    r.disks.push_back(std::move(pd));
  }
  r.disk_bytes = plan.bytes_total;
  r.streams = streams;
  r.performance = performance == config::PerformanceOption::kTcp ? "tcp" : "compression";
  r.source_host = source_host;
  return r;
}

}  // namespace appliance
