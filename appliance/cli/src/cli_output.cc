// ferry's tables and key: value lines, from the API's JSON (cli_output.h).
#include "cli/cli_output.h"

#include <algorithm>
#include <sstream>
#include <vector>

#include "config/host_settings.h"
#include "config/size.h"

namespace appliance {

using nlohmann::json;

namespace {

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

uint64_t U64(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

std::string Basename(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string Lines(const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t w = 0;
  for (const auto& [k, v] : fields) w = std::max(w, k.size());
  std::string out;
  for (const auto& [k, v] : fields) out += k + ":" + std::string(w - k.size() + 1, ' ') + v + "\n";
  return out;
}

// A VM with a departure record: "moving", "in doubt" (list column suffix).
std::string DepartureState(const json& vm) {
  const json d = vm.value("departure", json());
  if (!d.is_object()) return "";
  return Str(d, "state") == "in-doubt" ? "in doubt" : "moving";
}

// Where a departing VM may be and what to do about it.
std::string DepartureNote(const json& vm) {
  const json d = vm.value("departure", json());
  if (!d.is_object()) return "";
  const std::string to = Str(d, "host") + " (migration " + Str(d, "migration_id") + ")";
  if (Str(d, "state") == "in-doubt")
    return "in doubt: a live move to " + to + " may have committed there; `ferry vm resolve " +
           Str(vm, "name") + "` asks again" +
           (Str(d, "message").empty() ? "" : " (" + Str(d, "message") + ")");
  return "moving to " + to +
         (d.value("watched", false) ? ", job " + Str(d, "job") : ", being settled");
}

}  // namespace

std::string FormatVmList(const json& list) {
  const json vms = list.contains("vms") ? list["vms"] : json::array();
  if (vms.empty()) return "no vms\n";
  std::vector<std::vector<std::string>> rows = {{"NAME", "STATE", "VCPUS", "MEMORY", "PROGRAM"}};
  std::string errors;
  for (const json& vm : vms) {
    const json def = vm.value("definition", json::object());
    const std::string departure = DepartureState(vm);
    rows.push_back({Str(vm, "name"), Str(vm, "state") + (departure.empty() ? "" : ", " + departure),
                    Str(def, "vcpus"), config::FormatSize(U64(def, "memory_bytes")),
                    Basename(Str(def, "program"))});
    if (!Str(vm, "last_error").empty())
      errors += Str(vm, "name") + ": " + Str(vm, "last_error") + "\n";
    if (departure == "in doubt") errors += Str(vm, "name") + ": " + DepartureNote(vm) + "\n";
  }
  std::string out = Table(rows);
  if (!errors.empty()) out += "\nlast errors:\n" + errors;
  return out;
}

std::string FormatVm(const json& vm) {
  const json def = vm.value("definition", json::object());
  std::vector<std::pair<std::string, std::string>> f = {
      {"name", Str(vm, "name")},
      {"id", Str(vm, "id")},
      {"state", Str(vm, "state")},
      {"vcpus", Str(def, "vcpus")},
      {"memory", config::FormatSize(U64(def, "memory_bytes"))},
      {"program", Str(def, "program")},
  };
  if (!Str(def, "cmdline").empty()) f.push_back({"cmdline", Str(def, "cmdline")});
  for (const json& d : def.value("disks", json::array()))
    f.push_back({"disk", Str(d, "path") + " (" + Str(d, "format") +
                             (d.value("read_only", false) ? ", read-only" : "") + ")"});
  const json worker = vm.value("worker", json());
  if (worker.is_object()) f.push_back({"worker pid", Str(worker, "pid")});
  if (vm.contains("stats")) {
    const json& s = vm["stats"];
    f.push_back({"disk i/o", Str(s, "disk_reads") + " reads, " + Str(s, "disk_writes") +
                                 " writes, " + Str(s, "disk_flushes") + " flushes, " +
                                 std::to_string(U64(s, "disk_errors")) + " errors"});
    // One line per disk that failed a request; the message is the first failure.
    for (const json& d : s.value("disks", json::array())) {
      if (U64(d, "errors") == 0) continue;
      f.push_back({"disk " + Str(d, "index") + " errors",
                   Str(d, "read_errors") + " read, " + Str(d, "write_errors") + " write, " +
                       Str(d, "flush_errors") + " flush; first: " + Str(d, "first_error")});
    }
  }
  if (!Str(vm, "saved_state").empty()) f.push_back({"saved state", Str(vm, "saved_state")});
  if (!Str(vm, "last_error").empty()) f.push_back({"last error", Str(vm, "last_error")});
  if (!DepartureNote(vm).empty()) f.push_back({"live move", DepartureNote(vm)});
  f.push_back({"directory", Str(vm, "dir")});
  return Lines(f);
}

std::string FormatActionResult(const std::string& action, const json& vm) {
  std::string line = "vm " + Str(vm, "name") + ": " + Str(vm, "state");
  if (action == "save" && !Str(vm, "saved_state").empty()) line += " to " + Str(vm, "saved_state");
  return line + "\n";
}

std::string FormatHost(const json& host) {
  std::string guests;
  for (const json& g : host.value("guests", json::array()))
    guests += (guests.empty() ? "" : ", ") + g.get<std::string>();
  const json m = host.value("migration", json::object());
  std::vector<std::pair<std::string, std::string>> fields = {
      {"hostname", Str(host, "hostname")},
      {"version", Str(host, "version")},
      {"config", Str(host, "config")},
      {"storage root", Str(host, "storage_root")},
      {"api socket", Str(host, "api_socket")},
      {"kvm", Str(host, "kvm_device") +
                  (host.value("kvm_available", false) ? " (available)" : " (NOT available)")},
      {"guest dir", Str(host, "guest_dir")},
      {"guests", guests.empty() ? "(none)" : guests},
      {"vms", Str(host, "vms") + " (" + Str(host, "vms_running") + " running)"},
      {"incoming moves", m.value("incoming_enabled", false) ? "enabled" : "disabled"},
      {"outgoing moves", m.value("outgoing_enabled", false) ? "enabled" : "disabled"},
  };
  if (!Str(m, "authentication").empty()) {
    std::string admins;
    for (const json& a : m.value("admins", json::array()))
      admins += (admins.empty() ? "" : ", ") + a.get<std::string>();
    fields.push_back({"authentication", Str(m, "authentication") +
                                            (admins.empty() ? "" : " (admins: " + admins + ")")});
  }
  if (!Str(m, "performance").empty()) fields.push_back({"performance", Str(m, "performance")});
  std::string dirs;
  for (const json& d : m.value("incoming_directories", json::array()))
    dirs += (dirs.empty() ? "" : ", ") + d.get<std::string>();
  if (!dirs.empty()) fields.push_back({"incoming into", dirs});
  const json tls = host.value("tls", json::object());
  if (!Str(tls, "fingerprint").empty())
    fields.push_back({"tls fingerprint", Str(tls, "fingerprint")});
  return Lines(fields);
}

std::string FormatHostCertificate(const json& host) {
  const json tls = host.value("tls", json::object());
  std::string trusted;
  for (const json& f : tls.value("trusted_fingerprints", json::array()))
    trusted += (trusted.empty() ? "" : "\n    ") + f.get<std::string>();
  std::vector<std::pair<std::string, std::string>> fields = {
      {"certificate", Str(tls, "certificate")},
      {"fingerprint", Str(tls, "fingerprint")},
      {"trusted ca", Str(tls, "trusted_ca").empty() ? "(none)" : Str(tls, "trusted_ca")},
      {"trusted fingerprints", trusted.empty() ? "(none)" : trusted},
  };
  if (!tls.value("ready", false))
    fields.push_back({"peers", "none trusted: no move is possible until [tls] trusts a peer"});
  return Lines(fields);
}

std::string ErrorMessage(long http_status, const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_object()) {
    std::string message = Str(j["error"], "message");
    if (!message.empty()) return message;
  }
  std::string trimmed = body;
  while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == '\r')) trimmed.pop_back();
  return "ferryd answered HTTP " + std::to_string(http_status) +
         (trimmed.empty() ? "" : ": " + trimmed);
}

}  // namespace appliance
