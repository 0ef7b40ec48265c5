// The verbs of the ferry command line (cli_verbs.h) and the builders of the
// vm commands. The rows are in the order `ferry help` lists them.
#include "cli_verbs.h"

#include <cerrno>
#include <cstdlib>

#include "config/names.h"
#include "config/size.h"

namespace appliance {

using nlohmann::json;

namespace {

base::Result<json> ParseDiskOption(const std::string& text, const std::string& cwd) {
  // PATH[,format=raw|qcow2][,ro|,rw]
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t comma = text.find(',', start);
    parts.push_back(
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (parts[0].empty())
    return UsageError("--disk needs a path: --disk PATH[,format=raw|qcow2][,ro]");
  json disk = {{"path", AbsolutePath(parts[0], cwd)}, {"format", "raw"}, {"read_only", false}};
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p == "ro")
      disk["read_only"] = true;
    else if (p == "rw")
      disk["read_only"] = false;
    else if (p.rfind("format=", 0) == 0)
      disk["format"] = p.substr(7);
    else
      return UsageError("--disk " + text + ": unknown option \"" + p +
                        "\" (use format=raw|qcow2, ro)");
  }
  return disk;
}

base::Result<uint64_t> ParseCount(const std::string& option, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || text[0] == '-')
    return UsageError(option + " needs a number, not \"" + text + "\"");
  return uint64_t(v);
}

base::Status BuildVmCreate(const VerbArgs& args, CliInvocation& inv) {
  // The name first: a bad name is the error whatever else is wrong.
  RETURN_IF_ERROR(config::ValidateVmName(inv.vm_name));
  json body = {{"name", inv.vm_name}};
  const bool guest = args.Has("--guest"), program = args.Has("--program");
  if (guest == program)
    return UsageError("vm create needs exactly one of --guest NAME and --program PATH");
  if (guest) body["guest"] = *args.Value("--guest");
  if (program) body["program"] = AbsolutePath(*args.Value("--program"), args.cwd);
  if (auto memory = args.Value("--memory")) {
    ASSIGN_OR_RETURN(uint64_t bytes, config::ParseSize(*memory));
    body["memory_bytes"] = bytes;
  }
  if (auto vcpus = args.Value("--vcpus")) {
    ASSIGN_OR_RETURN(uint64_t n, ParseCount("--vcpus", *vcpus));
    body["vcpus"] = n;
  }
  if (auto cmdline = args.Value("--cmdline")) body["cmdline"] = *cmdline;
  if (args.Has("--processor-compatibility")) body["processor_compatibility"] = true;
  if (auto disks = args.options.find("--disk"); disks != args.options.end()) {
    json list = json::array();
    for (const std::string& d : disks->second) {
      ASSIGN_OR_RETURN(json disk, ParseDiskOption(d, args.cwd));
      list.push_back(disk);
    }
    body["disks"] = list;
  }
  inv.body = body;
  return base::Ok();
}

// start, stop, pause, resume, save and restore: POST .../ACTION with an
// object body (save's --to, restore's --from).
base::Status BuildVmAction(const VerbArgs& args, CliInvocation& inv) {
  inv.action = std::string(args.verb.words.back());
  inv.body = json::object();
  if (auto to = args.Value("--to")) inv.body["to"] = AbsolutePath(*to, args.cwd);
  if (auto from = args.Value("--from")) inv.body["from"] = AbsolutePath(*from, args.cwd);
  return base::Ok();
}

base::Status BuildConsole(const VerbArgs& args, CliInvocation& inv) {
  inv.follow = args.Has("--follow");
  if (inv.follow) inv.path += "?follow=1";
  return base::Ok();
}

using enum Operand;

// The synopses of the long commands, for usage errors (help wraps them).
constexpr const char* kMoveVmForm =
    "move-vm VM HOST --include-storage --destination-storage-path PATH [--streams N] "
    "[--bandwidth-limit RATE] [--downtime-ms MS] [--time-limit SECONDS] [--no-wait]";

// One verb per row: the table reads as a table.
// clang-format off
const std::vector<CliVerb>& VerbTable() {
  static const std::vector<CliVerb> kVerbs = {
      {{"vm", "create"}, "vm create NAME (--guest NAME | --program PATH) [options]",
       "vm create NAME (--guest NAME | --program PATH) [--memory SIZE] [--vcpus N]\n"
       "          [--cmdline TEXT] [--disk PATH[,format=raw|qcow2][,ro]]... [--processor-compatibility]",
       {kVm}, 1, {"--guest", "--program", "--memory", "--vcpus", "--cmdline", "--disk", "--processor-compatibility"},
       CliCommand::kVmCreate, "POST", "/v1/vms", BuildVmCreate},
      {{"vm", "list"}, "vm list", nullptr, {}, 0, {}, CliCommand::kVmList, "GET", "/v1/vms", nullptr},
      {{"vm", "show"}, "vm show NAME", nullptr, {kVm}, 1, {}, CliCommand::kVmShow, "GET", "/v1/vms/{vm}", nullptr},
      {{"vm", "start"}, "vm start NAME", "vm start|stop|pause|resume NAME", {kVm}, 1, {}, CliCommand::kVmAction,
       "POST", "/v1/vms/{vm}/start", BuildVmAction},
      {{"vm", "stop"}, "vm stop NAME", "", {kVm}, 1, {}, CliCommand::kVmAction, "POST", "/v1/vms/{vm}/stop",
       BuildVmAction},
      {{"vm", "pause"}, "vm pause NAME", "", {kVm}, 1, {}, CliCommand::kVmAction, "POST", "/v1/vms/{vm}/pause",
       BuildVmAction},
      {{"vm", "resume"}, "vm resume NAME", "", {kVm}, 1, {}, CliCommand::kVmAction, "POST", "/v1/vms/{vm}/resume",
       BuildVmAction},
      {{"vm", "save"}, "vm save NAME [--to FILE]", nullptr, {kVm}, 1, {"--to"}, CliCommand::kVmAction, "POST",
       "/v1/vms/{vm}/save", BuildVmAction},
      {{"vm", "restore"}, "vm restore NAME [--from FILE]", nullptr, {kVm}, 1, {"--from"}, CliCommand::kVmAction,
       "POST", "/v1/vms/{vm}/restore", BuildVmAction},
      {{"vm", "delete"}, "vm delete NAME", nullptr, {kVm}, 1, {}, CliCommand::kVmDelete, "DELETE", "/v1/vms/{vm}",
       nullptr},
      {{"console"}, "console NAME [--follow]", nullptr, {kVm}, 1, {"--follow"}, CliCommand::kConsole, "GET",
       "/v1/vms/{vm}/console", BuildConsole},
      {{"host", "show"}, "host show", nullptr, {}, 0, {}, CliCommand::kHostShow, "GET", "/v1/host", nullptr},
      {{"host", "certificate", "show"}, "host certificate show", nullptr, {}, 0, {},
       CliCommand::kHostCertificateShow, "GET", "/v1/host", nullptr},
      {{"vm", "checkpoint", "create"}, "vm checkpoint create VM NAME",
       "vm checkpoint create|apply|delete VM NAME   (apply: [--force] stops a running vm)", {kVm, kCheckpoint}, 2,
       {}, CliCommand::kCheckpointCreate, "POST", "/v1/vms/{vm}/checkpoints", BuildCheckpoint},
      {{"vm", "checkpoint", "apply"}, "vm checkpoint apply VM NAME [--force]", "", {kVm, kCheckpoint}, 2,
       {"--force"}, CliCommand::kCheckpointApply, "POST", "/v1/vms/{vm}/checkpoints/{checkpoint}/apply",
       BuildCheckpoint},
      {{"vm", "checkpoint", "delete"}, "vm checkpoint delete VM NAME", "", {kVm, kCheckpoint}, 2, {},
       CliCommand::kCheckpointDelete, "DELETE", "/v1/vms/{vm}/checkpoints/{checkpoint}", BuildCheckpoint},
      {{"vm", "checkpoint", "list"}, "vm checkpoint list VM", nullptr, {kVm}, 1, {}, CliCommand::kCheckpointList,
       "GET", "/v1/vms/{vm}/checkpoints", BuildCheckpoint},
      {{"move-storage"}, "move-storage NAME --destination-storage-path PATH [--max-rate SIZE] [--no-wait]", nullptr,
       {kVm}, 1, {"--destination-storage-path", "--max-rate", "--no-wait"}, CliCommand::kMoveStorage, "POST",
       "/v1/vms/{vm}/move-storage", BuildMoveStorage},
      {{"vm", "resolve"}, "vm resolve NAME [--force]",
       "vm resolve NAME [--force]      settle a live move in doubt (asks the destination;\n"
       "                               --force keeps the vm here if it cannot be asked)",
       {kVm}, 1, {"--force"}, CliCommand::kVmResolve, "POST", "/v1/vms/{vm}/resolve", BuildResolve},
      {{"move-vm"}, kMoveVmForm,
       "move-vm VM HOST --include-storage --destination-storage-path PATH [--streams N]\n"
       "        [--bandwidth-limit RATE] [--downtime-ms MS] [--time-limit S] [--no-wait]   (live, to another host)",
       {kVm, kHost}, 2,
       {"--include-storage", "--destination-storage-path", "--streams", "--bandwidth-limit", "--downtime-ms",
        "--time-limit", "--no-wait"},
       CliCommand::kMoveVm, "POST", "/v1/vms/{vm}/move-vm", BuildMoveVm},
      {{"jobs"}, "jobs [ID]", nullptr, {kJob}, 0, {}, CliCommand::kJobs, "GET", "/v1/jobs", BuildJobs},
      {{"logon"}, "logon USER [--password-stdin]",
       "logon USER [--password-stdin]  keep USER's password at this host for moves started with\n"
       "                               --as USER (credssp); prompts unless --password-stdin",
       {kUser}, 1, {"--password-stdin"}, CliCommand::kLogon, "POST", "/v1/logon", BuildLogon},
      {{"logoff"}, "logoff USER", nullptr, {kUser}, 1, {}, CliCommand::kLogoff, "DELETE", "/v1/logon", BuildLogon},
      {{"logons"}, "logons", nullptr, {}, 0, {}, CliCommand::kLogons, "GET", "/v1/logons", nullptr},
  };
  return kVerbs;
}
// clang-format on

}  // namespace

std::span<const CliVerb> CliVerbs() { return VerbTable(); }

std::span<const CliOption> CliOptions() {
  static constexpr CliOption kOptions[] = {
      // Every command's.
      {"--socket", "PATH",
       "ferryd's API socket (default $FERRY_SOCKET, else /run/ferry/ferryd.sock)"},
      {"--json", "", "print the API's JSON instead of tables"},
      {"--as", "USER", "start moves with USER's log-on at this host (ferry logon USER; credssp)"},
      // Remote management (cli_remote_args.h).
      {"--host", "HOST[:PORT]",
       "ferryd's HTTPS API on that host (its api_listen; port 7443 by default; $FERRY_HOST)"},
      {"--ca", "FILE", "with --host: the CA that issued that ferryd's certificate"},
      {"--fingerprint", "SHA256:...",
       "with --host: that ferryd's certificate (`ferry host certificate show` there)"},
      {"--user", "USER", "with --host: log on as USER (credssp mode); password prompted"},
      {"--password-stdin", "", "with --user: read the password from stdin"},
      {"--help", "", ""},
      // The verbs' (each row lists those it takes).
      {"--guest", "NAME", ""},
      {"--program", "PATH", ""},
      {"--memory", "SIZE", ""},
      {"--vcpus", "N", ""},
      {"--cmdline", "TEXT", ""},
      {"--disk", "PATH", ""},
      {"--processor-compatibility", "", ""},
      {"--to", "FILE", ""},
      {"--from", "FILE", ""},
      {"--follow", "", ""},
      {"--force", "", ""},
      {"--destination-storage-path", "PATH", ""},
      {"--max-rate", "SIZE", ""},
      {"--no-wait", "", ""},
      {"--include-storage", "", ""},
      {"--streams", "N", ""},
      {"--bandwidth-limit", "RATE", ""},
      {"--downtime-ms", "MS", ""},
      {"--time-limit", "SECONDS", ""},
      {"--password-stdin", "", ""},
  };
  return kOptions;
}

}  // namespace appliance
