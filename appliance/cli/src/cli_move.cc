// ferry move-storage and ferry jobs: their builders (cli_verbs.h), output
// and the wait loop (cli_move.h).
#include "cli/cli_move.h"

#include <cmath>
#include <cstdio>

#include "base/escape.h"
#include "cli_job_follow.h"
#include "cli_verbs.h"
#include "config/size.h"

namespace appliance {

using nlohmann::json;

namespace {

double Num(const json& j, const char* key, double fallback = 0) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : fallback;
}
std::string Str(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}
bool Ended(const json& job) {
  std::string phase = Str(job, "phase");
  return phase == "completed" || phase == "failed" || phase == "cancelled";
}

}  // namespace

base::Status BuildMoveStorage(const VerbArgs& args, CliInvocation& inv) {
  auto dest = args.Value("--destination-storage-path");
  if (!dest || dest->empty())
    return UsageError("move-storage needs --destination-storage-path PATH");
  inv.body = {{"destination_storage_path", AbsoluteStoragePath(*dest, args.cwd)}};
  if (auto rate = args.Value("--max-rate")) {
    ASSIGN_OR_RETURN(uint64_t bytes, config::ParseSize(*rate));
    inv.body["max_bytes_per_second"] = bytes;
  }
  inv.no_wait = args.Has("--no-wait");
  return base::Ok();
}

// `ferry jobs` lists; `ferry jobs ID` shows one.
base::Status BuildJobs(const VerbArgs& args, CliInvocation& inv) {
  if (args.operands.empty()) return base::Ok();
  inv.command = CliCommand::kJobShow;
  inv.path += "/" + inv.job_id;
  return base::Ok();
}

std::string FormatBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

std::string FormatDuration(double seconds) {
  if (seconds < 0 || !std::isfinite(seconds)) return "?";
  auto s = uint64_t(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%llu:%02llu:%02llu", (unsigned long long)(s / 3600),
                  (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%llu:%02llu", (unsigned long long)(s / 60),
                  (unsigned long long)(s % 60));
  return buf;
}

std::string FormatMoveProgress(const json& job) {
  double total = Num(job, "bytes_total"), done = Num(job, "bytes_done");
  double pct = total > 0 ? std::min(100.0, 100.0 * done / total) : 0;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-14s %10s / %-10s %5.1f%%  %10s/s  ETA %s",
                Str(job, "phase").c_str(), FormatBytes(done).c_str(), FormatBytes(total).c_str(),
                pct, FormatBytes(Num(job, "bytes_per_second")).c_str(),
                FormatDuration(Num(job, "eta_seconds", -1)).c_str());
  return buf;
}

std::string FormatMoveReport(const json& job) {
  std::string out;
  std::string phase = Str(job, "phase");
  out += "storage move " + Str(job, "id") + " of vm " + Str(job, "vm") + ": " + phase + "\n";
  out += "  destination: " + Str(job, "destination") + "\n";
  out += "  kind:        " + Str(job, "kind") + "\n";
  out += "  copied:      " + FormatBytes(Num(job, "bytes_done")) + " of " +
         FormatBytes(Num(job, "bytes_total"));
  if (job.value("resumed", false))
    out += " (resumed: " + FormatBytes(Num(job, "bytes_skipped")) + " not copied again)";
  out += "\n";
  char buf[128];
  std::snprintf(buf, sizeof buf, "  time:        %.1f s (%s/s)\n", Num(job, "elapsed_seconds"),
                FormatBytes(Num(job, "bytes_per_second")).c_str());
  out += buf;
  if (phase == "completed" && Str(job, "kind") == "live") {
    std::snprintf(buf, sizeof buf, "  switch:      guest I/O paused %.1f ms (vCPUs kept running)\n",
                  Num(job, "switch_pause_us") / 1000.0);
    out += buf;
  }
  if (job.contains("new_paths") && job["new_paths"].is_array()) {
    for (const auto& p : job["new_paths"]) {
      if (p.is_string()) out += "  disk:        " + p.get<std::string>() + "\n";
    }
  }
  if (job.contains("kept_sources") && job["kept_sources"].is_array()) {
    for (const auto& k : job["kept_sources"]) {
      if (k.is_object())
        // A kept source may be a backing file, whose name came from an image.
        out += "  kept:        " + base::Escaped(k.value("path", "")) + " (used by vm " +
               k.value("used_by", "") + ")\n";
    }
  }
  if (job.contains("error") && job["error"].is_object())
    out += "  error:       " + job["error"].value("message", "") + "\n";
  if (job.contains("cleaned_up") && job["cleaned_up"].is_array() && !job["cleaned_up"].empty())
    out += "  removed " + std::to_string(job["cleaned_up"].size()) + " partial destination files\n";
  return out;
}

namespace {

std::string Title(const json& job) {
  return "storage move " + Str(job, "id") + " of vm " + Str(job, "vm");
}
const JobView kMoveView{Ended,
                        Title,
                        FormatMoveProgress,
                        FormatMoveReport,
                        /*print_final_phase=*/true,
                        "storage move failed"};

}  // namespace

std::string FormatJobList(const json& list) {
  std::string out = "ID             VM              STATE       PROGRESS  DESTINATION\n";
  if (!list.contains("jobs") || !list["jobs"].is_array()) return out;
  for (const auto& job : list["jobs"]) {
    double total = Num(job, "bytes_total"), done = Num(job, "bytes_done");
    char buf[512];
    std::snprintf(buf, sizeof buf, "%-14s %-15s %-11s %7.1f%%  %s\n", Str(job, "id").c_str(),
                  Str(job, "vm").c_str(), Str(job, "phase").c_str(),
                  total > 0 ? 100.0 * done / total : 0.0, Str(job, "destination").c_str());
    out += buf;
  }
  return out;
}

std::string FormatJob(const json& job) { return FormatJobDetails(job, kMoveView); }

int FollowMoveJob(HttpClient& client, const json& started, bool json_output, bool no_wait) {
  return FollowJob(client, started, json_output, no_wait, kMoveView);
}

}  // namespace appliance
