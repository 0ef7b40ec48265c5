// VmService's answers (vm_views.h) in the API's JSON form (vm_json.h).
#include "daemon/vm_json.h"
#include "daemon/vm_stats_json.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "unknown"
#endif

namespace appliance {

using nlohmann::json;

std::string_view ToString(ResolveOutcome::Kind kind) {
  switch (kind) {
    case ResolveOutcome::Kind::kNone: return "none";
    case ResolveOutcome::Kind::kMoved: return "moved";
    case ResolveOutcome::Kind::kHere: return "here";
  }
  return "none";
}

json VmViewToJson(const VmView& view) {
  const RuntimeRecord& r = view.runtime;
  json j = {{"name", view.name},
            {"id", view.definition.id},
            {"state", ToString(r.state)},
            {"definition", DefinitionToJson(view.definition)},
            {"last_error", r.last_error},
            {"saved_state", r.saved_state},
            {"changed_unix_ms", r.changed_unix_ms},
            {"dir", view.dir},
            {"console", view.console}};
  if (HasWorker(r.state))
    j["worker"] = {{"pid", r.worker_pid}, {"control_socket", r.control_socket}};
  else
    j["worker"] = nullptr;
  if (view.departure) {
    j["departure"] = ToJson(*view.departure);
    // Moving but unwatched: a restarted ferryd has not taken the move up
    // (yet); the next action or `ferry vm resolve` asks the destination.
    j["departure"]["watched"] = view.departure_watched;
  } else {
    j["departure"] = nullptr;
  }
  if (view.live) {
    j["stats"] = StatsToJson(view.live->stats, view.definition);
    j["worker"]["vm_state"] = view.live->vm_state;
    // A disk failure does not stop the VM (the guest handles its I/O
    // error), so it is what the admin must see while it runs.
    if (r.last_error.empty()) j["last_error"] = FirstDiskError(view.live->stats, view.definition);
  }
  return j;
}

json VmListToJson(const std::vector<VmView>& vms) {
  json list = json::array();
  for (const VmView& vm : vms) list.push_back(VmViewToJson(vm));
  return json{{"vms", list}};
}

json HostInfoToJson(const HostInfo& host) {
  const config::HostSettings& h = host.settings;
  return json{{"hostname", host.hostname},
              {"version", host.version},
              {"config", h.source_path},
              {"storage_root", h.storage_root},
              {"api_socket", h.api_socket},
              {"guest_dir", host.guest_dir},
              {"guests", host.guests},
              {"kvm_device", host.kvm_device},
              {"kvm_available", host.kvm_available},
              {"vms", host.vms},
              {"vms_running", host.vms_running},
              {"migration",
               {{"incoming_enabled", h.incoming_enabled},
                {"outgoing_enabled", h.outgoing_enabled},
                {"max_live_moves", h.max_live_moves},
                {"max_storage_moves", h.max_storage_moves},
                {"authentication", config::ToString(h.authentication)},
                {"admins", h.admins},
                {"performance", config::ToString(h.performance)},
                {"incoming_directories", h.incoming_directories}}},
              {"tls",
               {{"certificate", h.tls.certificate},
                {"fingerprint", host.tls_fingerprint},
                {"trusted_ca", h.tls.trusted_ca},
                {"trusted_fingerprints", h.tls.trusted_fingerprints},
                {"ready", host.tls_trusts_peers}}},
              // What `ferry` makes its Negotiate token for (kerberos mode).
              {"kerberos", {{"service_principal", h.kerberos.service_principal}}}};
}

json CheckpointToJson(const CheckpointView& checkpoint) {
  const config::CheckpointSpec& c = checkpoint.spec;
  return json{{"name", c.name},
              {"created_unix_ms", c.created_unix_ms},
              {"parent", c.parent},
              {"current", checkpoint.current},
              {"layers", c.layers}};
}

json CheckpointListToJson(const CheckpointList& list) {
  json checkpoints = json::array();
  for (const CheckpointView& c : list.checkpoints) checkpoints.push_back(CheckpointToJson(c));
  return json{{"vm", list.vm},
              {"current_checkpoint", list.current_checkpoint},
              {"checkpoints", checkpoints}};
}

json AppliedCheckpointToJson(const AppliedCheckpoint& applied) {
  return json{{"checkpoint", CheckpointToJson(applied.checkpoint)},
              {"removed_files", applied.removed_files},
              {"vm", VmViewToJson(applied.vm)}};
}

json DeletedCheckpointToJson(const DeletedCheckpoint& deleted) {
  // Arrays even when empty ("removed_files": []), as the API always sent them.
  json removed = json::array(), kept = json::array();
  for (const std::string& f : deleted.removed_files) removed.push_back(f);
  for (const std::string& f : deleted.kept_files) kept.push_back(f);
  return json{{"deleted", deleted.checkpoint},
              {"vm", deleted.vm},
              {"removed_files", removed},
              {"kept_files", kept}};
}

json ResolveOutcomeToJson(const ResolveOutcome& outcome) {
  json j = {{"vm", outcome.vm}, {"outcome", ToString(outcome.kind)}, {"message", outcome.message}};
  if (outcome.kind == ResolveOutcome::Kind::kNone) return j;
  j["destination"] = outcome.destination;
  j["migration_id"] = outcome.migration_id;
  if (outcome.forced) j["forced"] = true;
  if (outcome.kind == ResolveOutcome::Kind::kHere) j["state"] = ToString(outcome.state);
  if (outcome.kind == ResolveOutcome::Kind::kMoved) j["removed"] = outcome.removed;
  return j;
}

}  // namespace appliance
