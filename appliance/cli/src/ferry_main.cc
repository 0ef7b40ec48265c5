// ferry: the admin's command line for ferryd. Exit status: 0 success,
// 1 ferryd refused or failed the request, 2 usage error, 3 ferryd unreachable.
#include <curl/curl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>

#include "cli/cli_args.h"
#include "cli/cli_checkpoints.h"
#include "cli/cli_kerberos.h"
#include "cli/cli_live_move.h"
#include "cli/cli_logon.h"
#include "cli/cli_move.h"
#include "cli/cli_output.h"
#include "cli/cli_remote.h"
#include "cli/http_client.h"

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;
// A save writes all of guest memory; ferryd's own limit is 600 s.
constexpr long kRequestTimeoutSeconds = 660;

std::string CurrentDirectory() {
  char buf[4096];
  return ::getcwd(buf, sizeof buf) != nullptr ? std::string(buf) : std::string(".");
}

int Fail(const base::Error& error) {
  std::cerr << "ferry: " << error.message() << "\n";
  return error.code() == base::Code::kUnavailable ? kExitUnreachable : kExitFailed;
}

// `ferry console NAME --follow`: the console as it grows, until ferryd ends
// it or the user interrupts.
int FollowConsole(appliance::HttpClient& client, const std::string& path) {
  auto result = client.Stream(path, [](std::string_view data) {
    return std::fwrite(data.data(), 1, data.size(), stdout) == data.size() &&
           std::fflush(stdout) == 0;
  });
  if (!result) return Fail(result.error());
  if (result->status != 200) {
    std::cerr << "ferry: " << appliance::ErrorMessage(result->status, result->body) << "\n";
    return kExitFailed;
  }
  return 0;
}

// The request's JSON body; a log-on's password is read only now (prompt).
base::Result<nlohmann::json> RequestBody(const appliance::CliInvocation& inv) {
  if (inv.command != appliance::CliCommand::kLogon) return inv.body;
  ASSIGN_OR_RETURN(auto password, appliance::ReadLogonPassword(inv.user, inv.password_stdin));
  return nlohmann::json{{"user", inv.user}, {"password", password}};
}

int Run(const appliance::CliInvocation& inv) {
  using appliance::CliCommand;
  auto opened = appliance::OpenClient(inv);
  if (!opened) return Fail(opened.error());
  appliance::HttpClient& client = *opened;
  if (!inv.as_user.empty()) client.AddHeader("x-ferry-user: " + inv.as_user);
  if (inv.command == CliCommand::kConsole && inv.follow) return FollowConsole(client, inv.path);
  auto request_body = RequestBody(inv);
  if (!request_body) return Fail(request_body.error());
  std::string body = request_body->is_null() ? "" : request_body->dump();
  // A move acts for the admin at the destination: in kerberos mode ferryd
  // needs the admin's ticket (a token it accepts once, hence this request
  // only).
  std::vector<std::string> headers;
  // (Over --host the session itself answers ferryd's Negotiate, bound to the
  // certificate it saw: see http_client.h.)
  if (inv.command == CliCommand::kMoveVm && !inv.remote)
    headers = appliance::MoveAuthorizationHeaders(client);
  auto result = client.Request(inv.method, inv.path, request_body->is_null() ? nullptr : &body,
                               kRequestTimeoutSeconds, headers);
  if (!result) return Fail(result.error());
  if (result->status >= 300) {
    if (inv.json_output) std::cout << result->body;
    std::cerr << "ferry: " << appliance::ErrorMessage(result->status, result->body) << "\n";
    return kExitFailed;
  }
  if (inv.command == CliCommand::kMoveStorage || inv.command == CliCommand::kMoveVm) {
    auto job = nlohmann::json::parse(result->body, nullptr, /*allow_exceptions=*/false);
    if (job.is_discarded()) {
      std::cerr << "ferry: ferryd sent a reply that is not JSON\n";
      return kExitFailed;
    }
    if (inv.command == CliCommand::kMoveVm)
      return appliance::FollowLiveMoveJob(client, job, inv.json_output, inv.no_wait);
    return appliance::FollowMoveJob(client, job, inv.json_output, inv.no_wait);
  }
  if (inv.json_output || inv.command == CliCommand::kConsole) {
    std::cout << result->body;
    return 0;
  }
  auto json = nlohmann::json::parse(result->body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    std::cerr << "ferry: ferryd sent a reply that is not JSON\n";
    return kExitFailed;
  }
  switch (inv.command) {
    case CliCommand::kVmList: std::cout << appliance::FormatVmList(json); break;
    case CliCommand::kVmShow: std::cout << appliance::FormatVm(json); break;
    case CliCommand::kVmCreate: std::cout << "vm " << inv.vm_name << " created\n"; break;
    case CliCommand::kVmDelete: std::cout << "vm " << inv.vm_name << " deleted\n"; break;
    case CliCommand::kVmAction: std::cout << appliance::FormatActionResult(inv.action, json); break;
    case CliCommand::kHostShow: std::cout << appliance::FormatHost(json); break;
    case CliCommand::kHostCertificateShow:
      std::cout << appliance::FormatHostCertificate(json);
      break;
    case CliCommand::kJobs: std::cout << appliance::FormatJobList(json); break;
    case CliCommand::kJobShow:
      std::cout << (appliance::IsLiveMoveJob(json) ? appliance::FormatLiveMoveJob(json)
                                                   : appliance::FormatJob(json));
      break;
    case CliCommand::kMoveStorage:
    case CliCommand::kMoveVm: break;
    case CliCommand::kVmResolve: std::cout << appliance::FormatResolveResult(json); break;
    case CliCommand::kCheckpointList: std::cout << appliance::FormatCheckpointList(json); break;
    case CliCommand::kCheckpointCreate:
    case CliCommand::kCheckpointApply:
    case CliCommand::kCheckpointDelete:
      std::cout << appliance::FormatCheckpointResult(inv, json);
      break;
    case CliCommand::kLogon: std::cout << appliance::FormatLogon(json); break;
    case CliCommand::kLogoff: std::cout << inv.user << " logged off at this host\n"; break;
    case CliCommand::kLogons: std::cout << appliance::FormatLogonList(json); break;
    case CliCommand::kHelp:
    case CliCommand::kConsole: break;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a closed stdout ends a console follow via the write error
  auto inv = appliance::ParseCommandLine(std::vector<std::string>(argv + 1, argv + argc),
                                         std::getenv("FERRY_SOCKET"), CurrentDirectory(),
                                         std::getenv("FERRY_HOST"));
  if (!inv) {
    std::cerr << "ferry: " << inv.error().message() << "\n\n" << appliance::UsageText();
    return kExitUsage;
  }
  if (inv->command == appliance::CliCommand::kHelp) {
    std::cout << appliance::UsageText();
    return 0;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    std::cerr << "ferry: cannot initialize libcurl\n";
    return kExitFailed;
  }
  int rc = Run(*inv);
  curl_global_cleanup();
  return rc;
}
