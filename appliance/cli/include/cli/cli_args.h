// The ferry command line: parsing argv into the API request it makes. Pure
// (no I/O), so every command and every usage error is unit-tested.
//
//   ferry [--socket PATH] [--json] [--as USER] COMMAND [OPERANDS] [OPTIONS]
//   ferry --host HOST[:PORT] (--ca FILE | --fingerprint SHA256:…)
//         [--user USER [--password-stdin]] COMMAND ...
//
// The commands are a table of verbs (src/cli_verbs.cc): each row has its
// words ("vm save"), synopsis, operands, options, API request and a builder
// for the body; `ferry help` (UsageText) prints the same rows. Options may
// appear anywhere after "ferry". The socket is --socket, else $FERRY_SOCKET,
// else /run/ferry/ferryd.sock. --host (else $FERRY_HOST, unless --socket is
// given) reaches another host's ferryd over HTTPS instead (http_client.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace appliance {

inline constexpr const char* kDefaultApiSocket = "/run/ferry/ferryd.sock";

enum class CliCommand {
  kHelp = 1,
  kVmCreate = 2,
  kVmList = 3,
  kVmShow = 4,
  kVmDelete = 5,
  kVmAction = 6,  // start stop pause resume save restore
  kConsole = 7,
  kHostShow = 8,
  kHostCertificateShow = 9,
  // Storage moves (cli_move.h).
  kMoveStorage = 30,
  kJobs = 31,
  kJobShow = 32,
  // Checkpoints (cli_checkpoints.h).
  kCheckpointCreate = 40,
  kCheckpointList = 41,
  kCheckpointApply = 42,
  kCheckpointDelete = 43,
  // Live moves to another host (cli_live_move.h).
  kMoveVm = 50,
  kVmResolve = 51,
  // Log-ons at this host, for credssp moves (cli_logon.h).
  kLogon = 60,
  kLogoff = 61,
  kLogons = 62,
};

// The port of a ferryd's api_listen when `--host` names none.
inline constexpr uint16_t kDefaultRemoteApiPort = 7443;

// `ferry --host`: ferryd's HTTPS API on another host (its api_listen).
struct RemoteOptions {
  std::string host;             // a name or IP literal, IPv6 without brackets
  uint16_t port = kDefaultRemoteApiPort;
  std::string ca_file;          // exactly one of these two
  std::string fingerprint;      // "SHA256:…" as given (checked by the parser)
  std::string user;             // HTTP Basic (credssp mode) when not empty
  bool password_stdin = false;  // read the password from stdin, not a prompt
};

struct CliInvocation {
  std::string socket;
  std::optional<RemoteOptions> remote;  // set: --host, and socket is unused
  bool json_output = false;
  CliCommand command = CliCommand::kHelp;
  std::string vm_name;
  std::string action;           // for kVmAction
  bool follow = false;          // for kConsole
  bool no_wait = false;         // for kMoveStorage
  std::string job_id;           // for kJobShow
  std::string checkpoint;       // for kCheckpointCreate, kCheckpointApply, kCheckpointDelete
  std::string user;             // for kLogon, kLogoff
  bool password_stdin = false;  // for kLogon: read the password from stdin, no prompt
  // --as USER: sent as the x-ferry-user header, naming the log-on at this
  // host whose credentials a move delegates (credssp mode).
  std::string as_user;
  // The API request to make.
  std::string method;
  std::string path;
  nlohmann::json body;  // null: no body
};

// args excludes argv[0]. env_socket is $FERRY_SOCKET and env_host $FERRY_HOST
// (null if unset); cwd
// makes relative --program, --disk, --to and --from paths absolute, since
// ferryd resolves paths in its own working directory, not the caller's.
// Errors are kInvalidArgument with a message fit for "ferry: <message>".
base::Result<CliInvocation> ParseCommandLine(const std::vector<std::string>& args,
                                             const char* env_socket, const std::string& cwd,
                                             const char* env_host = nullptr);

// The help text printed by "ferry help" and after usage errors.
std::string UsageText();

}  // namespace appliance
