// ferry move-vm and ferry vm resolve: their builders (cli_verbs.h), output
// and the wait loop (cli_live_move.h).
#include "cli/cli_live_move.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "cli/cli_move.h"
#include "cli_job_follow.h"
#include "cli_verbs.h"
#include "config/size.h"

namespace appliance {

using nlohmann::json;

namespace {

double Num(const json& j, const char* key, double fallback = 0) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<double>() : fallback;
}
std::string Str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}
const json& Status(const json& job) {
  static const json kEmpty = json::object();
  return job.contains("live_move") && job["live_move"].is_object() ? job["live_move"] : kEmpty;
}
bool Ended(const json& job) {
  std::string phase = Str(job, "phase");
  return phase == "completed" || phase == "failed" || phase == "in-doubt";
}
std::string Mib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / (1024.0 * 1024.0));
  return buf;
}

base::Result<uint32_t> ParseCount(const std::string& option, const std::string& text, uint32_t min,
                                  uint32_t max) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || text[0] == '-' || v < min || v > max)
    return UsageError(option + " needs a number from " + std::to_string(min) + " to " +
                      std::to_string(max) + ", not \"" + text + "\"");
  return uint32_t(v);
}

}  // namespace

base::Result<uint64_t> ParseRate(const std::string& text) {
  std::string t = text;
  for (const char* suffix : {"/s", "/S", "ps"}) {
    if (t.size() > 2 && t.compare(t.size() - 2, 2, suffix) == 0) {
      t.resize(t.size() - 2);
      break;
    }
  }
  auto bytes = config::ParseSize(t);
  if (!bytes) return UsageError("--bandwidth-limit: " + bytes.error().message() + " per second");
  return *bytes;
}

base::Status BuildResolve(const VerbArgs& args, CliInvocation& inv) {
  inv.body = json{{"force", args.Has("--force")}};
  return base::Ok();
}

base::Status BuildMoveVm(const VerbArgs& args, CliInvocation& inv) {
  const std::string& host = args.operands[1];
  if (host.empty())
    return UsageError("move-vm needs the destination host: ferry " + std::string(args.verb.form));
  auto dest = args.Value("--destination-storage-path");
  if (!dest || dest->empty())
    return UsageError("move-vm needs --destination-storage-path PATH (on the destination host)");
  json body = {{"host", host},
               {"destination", AbsoluteStoragePath(*dest, args.cwd)},
               {"include_storage", args.Has("--include-storage")}};
  if (auto streams = args.Value("--streams")) {
    ASSIGN_OR_RETURN(uint32_t n, ParseCount("--streams", *streams, 1, 64));
    body["streams"] = n;
  }
  if (auto rate = args.Value("--bandwidth-limit")) {
    ASSIGN_OR_RETURN(uint64_t bytes, ParseRate(*rate));
    body["bandwidth_limit"] = bytes;
  }
  if (auto downtime = args.Value("--downtime-ms")) {
    ASSIGN_OR_RETURN(uint32_t ms, ParseCount("--downtime-ms", *downtime, 1, 600000));
    body["downtime_ms"] = ms;
  }
  if (auto limit = args.Value("--time-limit")) {
    ASSIGN_OR_RETURN(uint32_t s, ParseCount("--time-limit", *limit, 1, 7 * 24 * 3600));
    body["time_limit_s"] = s;
  }
  inv.no_wait = args.Has("--no-wait");
  inv.body = body;
  return base::Ok();
}

namespace {

std::string Title(const json& job) {
  return "live move " + Str(job, "id") + " of vm " + Str(job, "vm") + " to " + Str(job, "host");
}
const JobView kLiveMoveView{Ended,
                            Title,
                            FormatLiveMoveProgress,
                            FormatLiveMoveReport,
                            /*print_final_phase=*/false,
                            "live move failed"};

}  // namespace

bool IsLiveMoveJob(const json& job) { return Str(job, "kind") == "live-vm"; }

std::string FormatResolveResult(const json& reply) {
  std::string out = Str(reply, "message");
  if (out.empty()) out = "vm " + Str(reply, "vm") + ": " + Str(reply, "outcome");
  out += "\n";
  if (Str(reply, "outcome") == "here" && !Str(reply, "state").empty())
    out += "vm " + Str(reply, "vm") + " is " + Str(reply, "state") + " on this host\n";
  if (reply.value("forced", false))
    out +=
        "warning: kept here without the destination's word; if it runs the vm there too, stop one "
        "copy\n";
  return out;
}

std::string FormatLiveMoveProgress(const json& job) {
  const json& s = Status(job);
  double total = Num(s, "memory_bytes") + Num(s, "disk_bytes");
  double sent = Num(s, "memory_sent") + Num(s, "disk_sent");
  std::string phase = Str(job, "phase");
  char round[32] = "";
  if (Num(s, "round") > 0) std::snprintf(round, sizeof round, " round %.0f", Num(s, "round"));
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-12s%-9s %10s / %-10s %10s/s  ETA %s", phase.c_str(), round,
                FormatBytes(sent).c_str(), FormatBytes(total).c_str(),
                FormatBytes(Num(s, "bytes_per_second")).c_str(),
                FormatDuration(Num(s, "eta_seconds", -1)).c_str());
  std::string out = buf;
  double predicted = Num(s, "predicted_downtime_ms", -1);
  if (predicted >= 0) {
    std::snprintf(buf, sizeof buf, "  downtime ~%.0f ms", predicted);
    out += buf;
  }
  if (Num(s, "throttle_percent") > 0) {
    std::snprintf(buf, sizeof buf, "  throttle %.0f%%", Num(s, "throttle_percent"));
    out += buf;
  }
  return out;
}

std::string FormatLiveMoveReport(const json& job) {
  const json& s = Status(job);
  const std::string phase = Str(job, "phase");
  const std::string vm = Str(job, "vm"), host = Str(job, "host");
  std::string out;
  char buf[512];
  double seconds =
      Num(s, "total_ms", -1) >= 0 ? Num(s, "total_ms") / 1000.0 : Num(job, "elapsed_seconds");
  if (phase == "completed") {
    double downtime = Num(s, "downtime_ms", -1);
    std::string dt =
        downtime >= 0 ? std::to_string(int64_t(std::llround(downtime))) + " ms" : "unknown";
    std::snprintf(buf, sizeof buf,
                  "moved vm %s to %s in %.1f s; downtime %s (source paused until the destination "
                  "committed)\n",
                  vm.c_str(), host.c_str(), seconds, dt.c_str());
    out += buf;
  } else if (Ended(job)) {
    std::snprintf(buf, sizeof buf, "live move %s of vm %s to %s: %s after %.1f s\n",
                  Str(job, "id").c_str(), vm.c_str(), host.c_str(), phase.c_str(), seconds);
    out += buf;
  } else {
    out += "live move " + Str(job, "id") + " of vm " + vm + " to " + host + ": " + phase + "\n";
  }
  // Bytes on the wire, per stream.
  double wire = Num(s, "wire_bytes");
  std::string per_stream;
  size_t streams = 0;
  if (s.contains("streams") && s["streams"].is_array()) {
    streams = s["streams"].size();
    double sum = 0;
    for (const auto& st : s["streams"]) {
      double b = Num(st, "bytes_sent");
      sum += b;
      per_stream += (per_stream.empty() ? "" : ", ") + Mib(b);
    }
    if (wire <= 0) wire = sum;
  }
  if (streams == 0) streams = size_t(Num(job, "streams"));
  out += "  sent " + Mib(wire) + " over " + std::to_string(streams) + " streams";
  if (!per_stream.empty()) out += " (per stream: " + per_stream + ")";
  std::snprintf(buf, sizeof buf, "; rounds %.0f; zero pages skipped %.0f\n", Num(s, "round"),
                Num(s, "zero_pages"));
  out += buf;
  out += "  memory " + FormatBytes(Num(s, "memory_bytes")) + " (" + Mib(Num(s, "memory_sent")) +
         " of pages sent), disks " + FormatBytes(Num(s, "disk_bytes")) + " (" +
         Mib(Num(s, "disk_sent")) + " sent)\n";
  out += "  destination: " + host + ":" + Str(job, "destination") + "\n";
  if (job.contains("kept_sources") && job["kept_sources"].is_array()) {
    for (const auto& k : job["kept_sources"]) {
      if (k.is_object())
        out += "  kept:        " + k.value("path", "") + " (used by vm " + k.value("used_by", "") +
               ")\n";
    }
  }
  if (job.contains("removed_sources") && job["removed_sources"].is_array() &&
      !job["removed_sources"].empty())
    out += "  removed " + std::to_string(job["removed_sources"].size()) +
           " source files on this host\n";
  if (job.contains("error") && job["error"].is_object()) {
    out += "  error:       " + job["error"].value("message", "") + "\n";
    if (phase == "failed") out += "  vm " + vm + " stays on this host\n";
    if (phase == "in-doubt")
      out += "  vm " + vm + " is paused and held on this host until " + host +
             " answers (ferryd asks it again; `ferry vm resolve " + vm + "` asks now)\n";
  }
  if (phase == "completed")
    out += "  vm " + vm + " runs at " + host + " and no longer on this host\n";
  return out;
}

std::string FormatLiveMoveJob(const json& job) { return FormatJobDetails(job, kLiveMoveView); }

int FollowLiveMoveJob(HttpClient& client, const json& started, bool json_output, bool no_wait) {
  return FollowJob(client, started, json_output, no_wait, kLiveMoveView);
}

}  // namespace appliance
