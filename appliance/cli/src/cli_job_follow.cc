// The move commands' shared handling of a job (cli_job_follow.h).
#include "cli_job_follow.h"

#include <unistd.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "cli/cli_output.h"

namespace appliance {

using nlohmann::json;

namespace {

std::string Str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

}  // namespace

int FollowJob(HttpClient& client, const json& started, bool json_output, bool no_wait,
              const JobView& view) {
  const std::string id = Str(started, "id");
  if (no_wait) {
    if (json_output)
      std::cout << started.dump() << "\n";
    else
      std::cout << view.title(started) << " started; follow it with: ferry jobs " << id << "\n";
    return 0;
  }
  const bool tty = ::isatty(STDOUT_FILENO) == 1 && !json_output;
  json job = started;
  std::string last_phase;
  while (!view.ended(job)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    auto r = client.Request("GET", "/v1/jobs/" + id, nullptr, 30);
    if (!r) {
      std::cerr << (tty ? "\n" : "") << "ferry: " << r.error().message() << "\n";
      return 1;
    }
    if (r->status != 200) {
      std::cerr << (tty ? "\n" : "") << "ferry: " << ErrorMessage(r->status, r->body) << "\n";
      return 1;
    }
    json next = json::parse(r->body, nullptr, false);
    if (next.is_discarded()) continue;
    job = next;
    const std::string phase = Str(job, "phase");
    if (tty) {
      std::cout << "\r\033[K" << view.progress(job) << std::flush;
    } else if (!json_output && phase != last_phase &&
               (view.print_final_phase || !view.ended(job))) {
      std::cout << phase << "\n" << std::flush;  // one line per phase when not a terminal
    }
    last_phase = phase;
  }
  if (tty) std::cout << "\n";
  if (json_output)
    std::cout << job.dump() << "\n";
  else
    std::cout << view.report(job);
  if (Str(job, "phase") != "completed") {
    if (job.contains("error") && job["error"].is_object())
      std::cerr << "ferry: " << job["error"].value("message", view.failed) << "\n";
    return 1;
  }
  return 0;
}

std::string FormatJobDetails(const json& job, const JobView& view) {
  std::string out = view.report(job);
  if (!view.ended(job)) out += "  progress:    " + view.progress(job) + "\n";
  return out;
}

}  // namespace appliance
