// The ferry CLI's storage-move commands: human output, pure like
// cli_output.h, plus the wait loop that follows a job (FollowMoveJob, the only
// part that does I/O). Their arguments are rows of the verb table
// (src/cli_verbs.cc), parsed by ParseCommandLine.
//
//   ferry move-storage NAME --destination-storage-path PATH [--max-rate SIZE] [--no-wait]
//   ferry jobs [ID]
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "cli/cli_args.h"
#include "cli/http_client.h"

namespace appliance {

std::string FormatBytes(double bytes);       // "1.5 GiB"
std::string FormatDuration(double seconds);  // "1:05", "1:02:03"
// One line: phase, bytes done / total, percent, rate, ETA.
std::string FormatMoveProgress(const nlohmann::json& job);
// The report printed when a move ends.
std::string FormatMoveReport(const nlohmann::json& job);
// GET /v1/jobs -> a table; GET /v1/jobs/{id} -> key: value lines.
std::string FormatJobList(const nlohmann::json& list);
std::string FormatJob(const nlohmann::json& job);

// After POST .../move-storage answered with `job`: unless no_wait, polls the
// job until it ends, redrawing one progress line on a terminal (\r), then
// prints the report (or, with json_output, the final job JSON). Exit status
// as ferry's: 0 completed, 1 failed.
int FollowMoveJob(HttpClient& client, const nlohmann::json& job, bool json_output, bool no_wait);

}  // namespace appliance
