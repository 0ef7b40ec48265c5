#include "cli/cli_args.h"

#include <cerrno>
#include <cstdlib>
#include <map>
#include <set>

#include "cli/cli_checkpoints.h"
#include "cli/cli_live_move.h"
#include "cli/cli_move.h"
#include "config/names.h"
#include "config/size.h"

namespace appliance {

using nlohmann::json;

namespace {

base::Error Usage(const std::string& message) { return base::Error(base::Code::kInvalidArgument, message); }

std::string Absolute(const std::string& path, const std::string& cwd) {
  if (path.empty() || path[0] == '/') return path;
  return cwd + "/" + path;
}

base::Result<json> ParseDiskOption(const std::string& text, const std::string& cwd) {
  // PATH[,format=raw|qcow2][,ro|,rw]
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t comma = text.find(',', start);
    parts.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (parts[0].empty()) return Usage("--disk needs a path: --disk PATH[,format=raw|qcow2][,ro]");
  json disk = {{"path", Absolute(parts[0], cwd)}, {"format", "raw"}, {"read_only", false}};
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p == "ro") disk["read_only"] = true;
    else if (p == "rw") disk["read_only"] = false;
    else if (p.rfind("format=", 0) == 0) disk["format"] = p.substr(7);
    else return Usage("--disk " + text + ": unknown option \"" + p + "\" (use format=raw|qcow2, ro)");
  }
  return disk;
}

base::Result<uint64_t> ParseCount(const std::string& option, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || text[0] == '-')
    return Usage(option + " needs a number, not \"" + text + "\"");
  return uint64_t(v);
}

}  // namespace

std::string UsageText() {
  return "usage: ferry [--socket PATH] [--json] COMMAND\n"
         "\n"
         "commands:\n"
         "  vm create NAME (--guest NAME | --program PATH) [--memory SIZE] [--vcpus N]\n"
         "            [--cmdline TEXT] [--disk PATH[,format=raw|qcow2][,ro]]... [--processor-compatibility]\n"
         "  vm list\n"
         "  vm show NAME\n"
         "  vm start|stop|pause|resume NAME\n"
         "  vm save NAME [--to FILE]\n"
         "  vm restore NAME [--from FILE]\n"
         "  vm delete NAME\n"
         "  console NAME [--follow]\n"
         "  host show\n"
         "  vm checkpoint create|apply|delete VM NAME   (apply: [--force] stops a running vm)\n"
         "  vm checkpoint list VM\n"
         "  move-storage NAME --destination-storage-path PATH [--max-rate SIZE] [--no-wait]\n"
         "  vm resolve NAME [--force]      settle a live move in doubt (asks the destination;\n"
         "                                 --force keeps the vm here if it cannot be asked)\n"
         "  move-vm VM HOST --include-storage --destination-storage-path PATH [--streams N]\n"
         "          [--bandwidth-limit RATE] [--downtime-ms MS] [--time-limit S] [--no-wait]   (live, to another host)\n"
         "  jobs [ID]\n"
         "\n"
         "options:\n"
         "  --socket PATH  ferryd's API socket (default $FERRY_SOCKET, else /run/ferry/ferryd.sock)\n"
         "  --json         print the API's JSON instead of tables\n";
}

base::Result<CliInvocation> ParseCommandLine(const std::vector<std::string>& args, const char* env_socket,
                                             const std::string& cwd) {
  CliInvocation inv;
  inv.socket = env_socket != nullptr && *env_socket != '\0' ? env_socket : kDefaultApiSocket;
  std::vector<std::string> words;
  std::map<std::string, std::vector<std::string>> options;  // option -> values, in order
  static const std::set<std::string> kWithValue = {"--socket", "--guest", "--program", "--memory", "--vcpus",
                                                   "--cmdline", "--disk", "--to", "--from",
                                                   "--destination-storage-path", "--max-rate",
                                                   "--streams", "--bandwidth-limit", "--downtime-ms",
                                                   "--time-limit"};
  static const std::set<std::string> kFlags = {"--json", "--follow", "--processor-compatibility", "--help",
                                               "--no-wait", "--force", "--include-storage"};
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    std::string value;
    bool has_inline_value = false;
    if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {
      value = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
      has_inline_value = true;
    }
    if (kWithValue.count(a)) {
      if (!has_inline_value) {
        if (i + 1 >= args.size()) return Usage(a + " needs a value");
        value = args[++i];
      }
      options[a].push_back(value);
    } else if (kFlags.count(a) && !has_inline_value) {
      options[a].push_back("");
    } else if (a.size() > 1 && a[0] == '-') {
      return Usage("unknown option " + args[i]);
    } else {
      words.push_back(a);
    }
  }
  for (const auto& [opt, values] : options) {
    if (values.size() > 1 && opt != "--disk") return Usage(opt + " given more than once");
  }
  auto take = [&](const std::string& opt) -> std::string {
    auto it = options.find(opt);
    if (it == options.end()) return "";
    std::string v = it->second.front();
    options.erase(it);
    return v;
  };
  auto has = [&](const std::string& opt) { return options.count(opt) != 0; };
  if (has("--socket")) {
    inv.socket = take("--socket");
    if (inv.socket.empty()) return Usage("--socket needs a path");
    inv.socket = Absolute(inv.socket, cwd);
  }
  if (has("--json")) {
    take("--json");
    inv.json_output = true;
  }
  if (has("--help") || words.empty() || words[0] == "help") {
    take("--help");
    inv.command = CliCommand::kHelp;
    return inv;
  }

  auto need_words = [&](size_t n, const std::string& form) -> base::Status {
    if (words.size() < n) return Usage("missing argument: ferry " + form);
    if (words.size() > n) return Usage("unexpected argument \"" + words[n] + "\": ferry " + form);
    return base::Ok();
  };
  auto vm_path = [&] { return "/v1/vms/" + inv.vm_name; };

  const std::string& group = words[0];
  ASSIGN_OR_RETURN(bool move_command, ParseMoveCommand(words, options, cwd, inv));
  if (!move_command) {
    ASSIGN_OR_RETURN(move_command, ParseLiveMoveCommand(words, options, cwd, inv));
  }
  ASSIGN_OR_RETURN(bool checkpoint_command,
                   move_command ? false : ParseCheckpointCommand(words, options, inv));
  if (move_command || checkpoint_command) {
    // cli_move.cc or cli_checkpoints.cc filled inv.
  } else if (group == "host") {
    RETURN_IF_ERROR(need_words(2, "host show"));
    if (words[1] != "show") return Usage("unknown command \"host " + words[1] + "\" (try: ferry host show)");
    inv.command = CliCommand::kHostShow;
    inv.method = "GET";
    inv.path = "/v1/host";
  } else if (group == "console") {
    RETURN_IF_ERROR(need_words(2, "console NAME [--follow]"));
    inv.command = CliCommand::kConsole;
    inv.vm_name = words[1];
    inv.follow = has("--follow");
    take("--follow");
    inv.method = "GET";
    inv.path = vm_path() + "/console" + (inv.follow ? "?follow=1" : "");
  } else if (group == "vm") {
    if (words.size() < 2) return Usage("missing vm command (create, list, show, start, stop, pause, resume, save, restore, delete)");
    const std::string& verb = words[1];
    if (verb == "list") {
      RETURN_IF_ERROR(need_words(2, "vm list"));
      inv.command = CliCommand::kVmList;
      inv.method = "GET";
      inv.path = "/v1/vms";
    } else if (verb == "create") {
      RETURN_IF_ERROR(need_words(3, "vm create NAME (--guest NAME | --program PATH) [options]"));
      inv.command = CliCommand::kVmCreate;
      inv.vm_name = words[2];
      RETURN_IF_ERROR(config::ValidateVmName(inv.vm_name));
      json body = {{"name", inv.vm_name}};
      bool guest = has("--guest"), program = has("--program");
      if (guest == program) return Usage("vm create needs exactly one of --guest NAME and --program PATH");
      if (guest) body["guest"] = take("--guest");
      if (program) body["program"] = Absolute(take("--program"), cwd);
      if (has("--memory")) {
        ASSIGN_OR_RETURN(uint64_t bytes, config::ParseSize(take("--memory")));
        body["memory_bytes"] = bytes;
      }
      if (has("--vcpus")) {
        ASSIGN_OR_RETURN(uint64_t vcpus, ParseCount("--vcpus", take("--vcpus")));
        body["vcpus"] = vcpus;
      }
      if (has("--cmdline")) body["cmdline"] = take("--cmdline");
      if (has("--processor-compatibility")) {
        take("--processor-compatibility");
        body["processor_compatibility"] = true;
      }
      if (has("--disk")) {
        json disks = json::array();
        for (const std::string& d : options["--disk"]) {
          ASSIGN_OR_RETURN(json disk, ParseDiskOption(d, cwd));
          disks.push_back(disk);
        }
        options.erase("--disk");
        body["disks"] = disks;
      }
      inv.method = "POST";
      inv.path = "/v1/vms";
      inv.body = body;
    } else if (verb == "show" || verb == "delete") {
      RETURN_IF_ERROR(need_words(3, "vm " + verb + " NAME"));
      inv.vm_name = words[2];
      inv.command = verb == "show" ? CliCommand::kVmShow : CliCommand::kVmDelete;
      inv.method = verb == "show" ? "GET" : "DELETE";
      inv.path = vm_path();
    } else if (verb == "start" || verb == "stop" || verb == "pause" || verb == "resume" || verb == "save" ||
               verb == "restore") {
      std::string extra = verb == "save" ? " [--to FILE]" : verb == "restore" ? " [--from FILE]" : "";
      RETURN_IF_ERROR(need_words(3, "vm " + verb + " NAME" + extra));
      inv.command = CliCommand::kVmAction;
      inv.vm_name = words[2];
      inv.action = verb;
      inv.method = "POST";
      inv.path = vm_path() + "/" + verb;
      inv.body = json::object();
      if (verb == "save" && has("--to")) inv.body["to"] = Absolute(take("--to"), cwd);
      if (verb == "restore" && has("--from")) inv.body["from"] = Absolute(take("--from"), cwd);
    } else {
      return Usage("unknown command \"vm " + verb + "\"");
    }
  } else {
    return Usage("unknown command \"" + group + "\" (commands: vm, console, host, move-storage, move-vm, jobs)");
  }
  if (!options.empty())
    return Usage(options.begin()->first + " does not apply to \"ferry " + group +
                 (words.size() > 1 && group != "console" ? " " + words[1] : "") + "\"");
  if (!inv.vm_name.empty()) RETURN_IF_ERROR(config::ValidateVmName(inv.vm_name));
  return inv;
}

}  // namespace appliance
