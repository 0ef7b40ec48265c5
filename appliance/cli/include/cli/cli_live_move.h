// The ferry CLI's live-move commands: the rate parser and human output, pure
// like cli_move.h, plus the wait loop that follows the job (FollowLiveMoveJob,
// the only part that does I/O). Their arguments are rows of the verb table
// (src/cli_verbs.cc), parsed by ParseCommandLine.
//
//   ferry move-vm VM HOST --include-storage --destination-storage-path PATH
//         [--streams N] [--bandwidth-limit RATE] [--downtime-ms MS] [--time-limit SECONDS]
//         [--no-wait]
//   ferry vm resolve VM [--force]
//
// HOST is the destination ferryd's migration address ("10.0.0.2",
// "10.0.0.2:7430", "[fd00::2]:7430"); RATE is bytes per second with the
// sizes' units ("100M", "1G", "1G/s"). --include-storage is sent as given:
// ferryd refuses a move without it, so the API and the CLI say the same.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "cli/cli_args.h"
#include "cli/http_client.h"

namespace appliance {

// "100M", "1G/s", "1048576" -> bytes per second.
base::Result<uint64_t> ParseRate(const std::string& text);

// One progress line of a live-move job (GET /v1/jobs/{id}): phase, round,
// bytes sent / total, rate, ETA, predicted downtime, throttle.
std::string FormatLiveMoveProgress(const nlohmann::json& job);
// The report printed when the move ends ("moved vm X to H in S s; downtime
// D ms ...", or the failure and what happened to the VM).
std::string FormatLiveMoveReport(const nlohmann::json& job);
// `ferry jobs ID` for a live move: the report, plus progress while it runs.
std::string FormatLiveMoveJob(const nlohmann::json& job);
bool IsLiveMoveJob(const nlohmann::json& job);  // kind "live-vm"
// `ferry vm resolve`'s answer: where the VM runs now, and why.
std::string FormatResolveResult(const nlohmann::json& reply);

// After POST .../move-vm answered with `job`: unless no_wait, polls the job
// until it ends, redrawing one progress line on a terminal (\r; one line per
// phase otherwise), then prints the report (or, with json_output, the final
// job JSON). Exit status as ferry's: 0 completed, 1 failed or in doubt.
int FollowLiveMoveJob(HttpClient& client, const nlohmann::json& job, bool json_output,
                      bool no_wait);

}  // namespace appliance
