// The move commands' shared handling of a job (GET /v1/jobs/{id}):
// FollowJob, the wait loop behind `ferry move-storage` and `ferry move-vm`,
// and FormatJobDetails, `ferry jobs ID`. Each kind of job says how it is
// read through a JobView.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "cli/http_client.h"

namespace appliance {

// How one kind of job is read.
struct JobView {
  bool (*ended)(const nlohmann::json& job);            // a final phase
  std::string (*title)(const nlohmann::json& job);     // "storage move move-1a2b of vm web"
  std::string (*progress)(const nlohmann::json& job);  // one line, redrawn while it runs
  std::string (*report)(const nlohmann::json& job);    // lines, printed once it ended
  // Off a terminal: whether the final phase gets its own line before the
  // report, as every phase before it does.
  bool print_final_phase;
  const char* failed;  // on stderr when a job that did not complete has no error message
};

// After the POST that started the job answered with `started`: with no_wait,
// says how to follow it (or prints it, with json_output). Otherwise polls
// the job every 250 ms until it ends, redrawing the progress line on a
// terminal (\r; one line per phase otherwise), then prints the report (or,
// with json_output, the final job JSON). Exit status as ferry's: 1 when the
// job ended other than completed or the API cannot be asked, else 0.
int FollowJob(HttpClient& client, const nlohmann::json& started, bool json_output, bool no_wait,
              const JobView& view);

// The report, and the progress line while the job runs.
std::string FormatJobDetails(const nlohmann::json& job, const JobView& view);

}  // namespace appliance
