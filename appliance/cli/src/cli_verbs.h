// The ferry command line as a table of verbs. ParseCommandLine (cli_args.cc)
// finds the verb its words name, checks the operands and options against the
// verb's row and builds the API request the row names; `ferry help` prints
// the same rows. A new command is a new row (cli_verbs.cc) plus, if it takes
// options or sends a body, a builder next to its output code.
//
// Private to the cli room: the table is how the parser is built, not an API.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "cli/cli_args.h"

namespace appliance {

// The options on a command line: option -> its values in order. Only --disk
// may repeat; the parser refuses any other given twice before a verb sees it.
using OptionValues = std::map<std::string, std::vector<std::string>, std::less<>>;

// What an operand position means; the parser stores each in the request.
enum class Operand {
  kVm = 1,          // inv.vm_name, checked as a vm name; "{vm}" in the path
  kCheckpoint = 2,  // inv.checkpoint, checked as a checkpoint name; "{checkpoint}"
  kJob = 3,         // inv.job_id
  kHost = 4,        // left to the builder (move-vm's destination)
  kUser = 5,        // left to the builder (logon, logoff)
};

struct CliVerb;

// What a verb's builder reads. Borrowed from ParseCommandLine for the call.
struct VerbArgs {
  const CliVerb& verb;
  const std::vector<std::string>& operands;  // the words after the verb's own
  const OptionValues& options;               // --socket, --json and --help already taken
  const std::string& cwd;

  bool Has(std::string_view option) const { return options.find(option) != options.end(); }
  // The option's value (its first, for --disk), nullopt if not given.
  std::optional<std::string> Value(std::string_view option) const;
};

// Reads the verb's options into the request (body, flags, a path that
// depends on them). inv already has the command, method, path and operands.
// Errors are usage errors: kInvalidArgument, fit for "ferry: <message>".
using VerbBuilder = base::Status (*)(const VerbArgs& args, CliInvocation& inv);

struct CliVerb {
  std::vector<std::string_view> words;  // "vm", "create"
  std::string_view form;                // the synopsis after "ferry " in usage errors
  // Lines under "commands:" in `ferry help`: nullptr prints `form`; "" means
  // an earlier row's help covers this verb too ("vm start|stop|...").
  const char* help;
  std::vector<Operand> operands;
  size_t required_operands;               // the others may be left off (jobs [ID])
  std::vector<std::string_view> options;  // the options it takes; others "do not apply"
  CliCommand command;
  std::string_view method;  // the API request it makes
  std::string_view path;    // "{vm}" and "{checkpoint}" from the operands
  VerbBuilder build;        // nullptr: no options, no body
};

struct CliOption {
  std::string_view name;        // "--to"
  std::string_view value_name;  // "FILE"; empty: a flag
  std::string_view help;        // only the options every command takes have one
};

std::span<const CliVerb> CliVerbs();
std::span<const CliOption> CliOptions();

// A path given on the command line as ferryd must see it: ferryd resolves
// paths in its own working directory, so a relative one is taken from cwd.
std::string AbsolutePath(const std::string& path, const std::string& cwd);
// A --destination-storage-path as sent to ferryd: absolute, without
// trailing slashes. `path` is not empty.
std::string AbsoluteStoragePath(const std::string& path, const std::string& cwd);

base::Error UsageError(const std::string& message);

// Builders that live with their command's output code.
base::Status BuildMoveStorage(const VerbArgs& args, CliInvocation& inv);  // cli_move.cc
base::Status BuildJobs(const VerbArgs& args, CliInvocation& inv);         // cli_move.cc
base::Status BuildMoveVm(const VerbArgs& args, CliInvocation& inv);       // cli_live_move.cc
base::Status BuildResolve(const VerbArgs& args, CliInvocation& inv);      // cli_live_move.cc
base::Status BuildCheckpoint(const VerbArgs& args, CliInvocation& inv);   // cli_checkpoints.cc
base::Status BuildLogon(const VerbArgs& args, CliInvocation& inv);        // cli_logon.cc
// A local account name as logon, logoff and --as take it (cli_logon.cc):
// not empty, no '/', no spaces or control characters; `what` names the word.
base::Status ValidateUserName(const std::string& user, std::string_view what);

}  // namespace appliance
