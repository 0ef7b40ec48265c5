// ferry's command line: words and options in, the API request out, by the
// table of verbs (cli_verbs.h); the help text from the same table.
#include "cli/cli_args.h"

#include <algorithm>

#include "cli_remote_args.h"
#include "cli_verbs.h"
#include "config/names.h"

namespace appliance {

namespace {

// argv split into the words (commands and operands) and the options, which
// may appear anywhere.
struct CommandLine {
  std::vector<std::string> words;
  OptionValues options;
};

const CliOption* FindOption(std::string_view name) {
  for (const CliOption& o : CliOptions()) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

base::Result<CommandLine> SplitCommandLine(const std::vector<std::string>& args) {
  CommandLine line;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    std::string value;
    bool has_inline_value = false;
    if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {
      value = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
      has_inline_value = true;
    }
    const CliOption* option = FindOption(a);
    if (option != nullptr && !option->value_name.empty()) {
      if (!has_inline_value) {
        if (i + 1 >= args.size()) return UsageError(a + " needs a value");
        value = args[++i];
      }
      line.options[a].push_back(value);
    } else if (option != nullptr && !has_inline_value) {
      line.options[a].push_back("");
    } else if (a.size() > 1 && a[0] == '-') {
      return UsageError("unknown option " + args[i]);
    } else {
      line.words.push_back(a);
    }
  }
  for (const auto& [name, values] : line.options) {
    if (values.size() > 1 && name != "--disk") return UsageError(name + " given more than once");
  }
  return line;
}

std::string Join(std::span<const std::string_view> words, std::string_view separator) {
  std::string out;
  for (std::string_view w : words)
    out += (out.empty() ? "" : std::string(separator)) + std::string(w);
  return out;
}

bool StartsWith(const std::vector<std::string>& words, std::span<const std::string_view> prefix) {
  return words.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), words.begin());
}

// The verb the leading words name (the longest match), or the usage error
// for words that name none: what the words began, and what could follow.
base::Result<const CliVerb*> FindVerb(const std::vector<std::string>& words) {
  const CliVerb* found = nullptr;
  size_t group = 0;  // how many leading words begin some verb's words
  for (const CliVerb& verb : CliVerbs()) {
    if (StartsWith(words, verb.words)) {
      if (found == nullptr || verb.words.size() > found->words.size()) found = &verb;
      continue;
    }
    size_t same = 0;
    while (same < words.size() && same < verb.words.size() && words[same] == verb.words[same])
      ++same;
    group = std::max(group, same);
  }
  if (found != nullptr) return found;
  std::vector<std::string_view> next;  // the words that may follow the group, in table order
  const CliVerb* last = nullptr;
  size_t verbs = 0;
  for (const CliVerb& verb : CliVerbs()) {
    if (verb.words.size() <= group || !StartsWith(words, std::span(verb.words).first(group)))
      continue;
    if (std::find(next.begin(), next.end(), verb.words[group]) == next.end())
      next.push_back(verb.words[group]);
    last = &verb;
    ++verbs;
  }
  const CliVerb* only = verbs == 1 ? last : nullptr;  // "host": the group is one verb
  std::vector<std::string_view> prefix(words.begin(), words.begin() + long(group));
  const std::string named = Join(prefix, " ");
  if (group == 0)
    return UsageError("unknown command \"" + words[0] + "\" (commands: " + Join(next, ", ") + ")");
  if (words.size() == group) {
    if (only != nullptr) return UsageError("missing argument: ferry " + std::string(only->form));
    return UsageError("missing " + named + " command (" + Join(next, ", ") + ")");
  }
  const std::string hint = only != nullptr ? "try: ferry " + std::string(only->form)
                                           : named + " commands: " + Join(next, ", ");
  return UsageError("unknown command \"" + named + " " + words[group] + "\" (" + hint + ")");
}

// "{vm}" and "{checkpoint}" in a verb's path, from the operands.
std::string ExpandPath(std::string_view pattern, const CliInvocation& inv) {
  std::string path(pattern);
  const std::pair<std::string_view, const std::string*> fields[] = {
      {"{vm}", &inv.vm_name}, {"{checkpoint}", &inv.checkpoint}};
  for (const auto& [name, value] : fields) {
    if (size_t at = path.find(name); at != std::string::npos) path.replace(at, name.size(), *value);
  }
  return path;
}

// The operands' count and names, then the verb's builder, then the options
// it does not take.
base::Status BuildRequest(const CliVerb& verb, const CommandLine& line, const std::string& cwd,
                          CliInvocation& inv) {
  const std::vector<std::string> operands(line.words.begin() + long(verb.words.size()),
                                          line.words.end());
  const std::string form(verb.form);
  if (operands.size() < verb.required_operands)
    return UsageError("missing argument: ferry " + form);
  if (operands.size() > verb.operands.size())
    return UsageError("unexpected argument \"" + operands[verb.operands.size()] + "\": ferry " +
                      form);
  for (size_t i = 0; i < operands.size(); ++i) {
    switch (verb.operands[i]) {
      case Operand::kVm: inv.vm_name = operands[i]; break;
      case Operand::kCheckpoint:
        inv.checkpoint = operands[i];
        RETURN_IF_ERROR(config::ValidateCheckpointName(inv.checkpoint));
        break;
      case Operand::kJob: inv.job_id = operands[i]; break;
      case Operand::kHost:  // the builder's
      case Operand::kUser: break;
    }
  }
  inv.command = verb.command;
  inv.method = std::string(verb.method);
  inv.path = ExpandPath(verb.path, inv);
  if (verb.build != nullptr)
    RETURN_IF_ERROR(verb.build(VerbArgs{verb, operands, line.options, cwd}, inv));
  for (const auto& [name, values] : line.options) {
    if (std::find(verb.options.begin(), verb.options.end(), name) == verb.options.end())
      return UsageError(name + " does not apply to \"ferry " + Join(verb.words, " ") + "\"");
  }
  if (!inv.vm_name.empty()) RETURN_IF_ERROR(config::ValidateVmName(inv.vm_name));
  return base::Ok();
}

}  // namespace

base::Error UsageError(const std::string& message) {
  return base::Error(base::Code::kInvalidArgument, message);
}

std::string AbsolutePath(const std::string& path, const std::string& cwd) {
  if (path.empty() || path[0] == '/') return path;
  return cwd + "/" + path;
}

std::string AbsoluteStoragePath(const std::string& path, const std::string& cwd) {
  std::string absolute = path[0] == '/' ? path : cwd + "/" + path;
  while (absolute.size() > 1 && absolute.back() == '/') absolute.pop_back();
  return absolute;
}

std::optional<std::string> VerbArgs::Value(std::string_view option) const {
  auto it = options.find(option);
  if (it == options.end()) return std::nullopt;
  return it->second.front();
}

std::string UsageText() {
  std::string out =
      "usage: ferry [--socket PATH] [--json] [--as USER] COMMAND\n"
      "       ferry --host HOST[:PORT] (--ca FILE | --fingerprint SHA256:...) [--user USER\n"
      "             [--password-stdin]] [--json] COMMAND\n\ncommands:\n";
  for (const CliVerb& verb : CliVerbs()) {
    std::string_view help = verb.help == nullptr ? verb.form : std::string_view(verb.help);
    while (!help.empty()) {
      const size_t end = std::min(help.find('\n'), help.size());
      out += "  " + std::string(help.substr(0, end)) + "\n";
      help.remove_prefix(std::min(end + 1, help.size()));
    }
  }
  out += "\noptions:\n";
  size_t width = 0;
  for (const CliOption& o : CliOptions()) {
    if (!o.help.empty()) width = std::max(width, o.name.size() + 1 + o.value_name.size());
  }
  for (const CliOption& o : CliOptions()) {
    if (o.help.empty()) continue;
    std::string synopsis =
        std::string(o.name) + (o.value_name.empty() ? "" : " " + std::string(o.value_name));
    out += "  " + synopsis + std::string(width - synopsis.size() + 2, ' ') + std::string(o.help) +
           "\n";
  }
  return out;
}

base::Result<CliInvocation> ParseCommandLine(const std::vector<std::string>& args,
                                             const char* env_socket, const std::string& cwd,
                                             const char* env_host) {
  CliInvocation inv;
  inv.socket = env_socket != nullptr && *env_socket != '\0' ? env_socket : kDefaultApiSocket;
  ASSIGN_OR_RETURN(CommandLine line, SplitCommandLine(args));
  // The options every command takes.
  ASSIGN_OR_RETURN(inv.remote, TakeRemoteOptions(line.options, env_host));
  if (auto socket = line.options.extract("--socket")) {
    inv.socket = socket.mapped().front();
    if (inv.socket.empty()) return UsageError("--socket needs a path");
    inv.socket = AbsolutePath(inv.socket, cwd);
  }
  inv.json_output = line.options.erase("--json") != 0;
  if (auto as = line.options.extract("--as")) {
    inv.as_user = as.mapped().front();
    RETURN_IF_ERROR(ValidateUserName(inv.as_user, "--as"));
  }
  if (line.options.erase("--help") != 0 || line.words.empty() || line.words[0] == "help") {
    inv.command = CliCommand::kHelp;
    return inv;
  }
  ASSIGN_OR_RETURN(const CliVerb* verb, FindVerb(line.words));
  RETURN_IF_ERROR(BuildRequest(*verb, line, cwd, inv));
  return inv;
}

}  // namespace appliance
