#include "cli/cli_checkpoints.h"

#include <ctime>

#include "config/names.h"

namespace appliance {

using nlohmann::json;

namespace {

base::Error Usage(const std::string& message) { return base::Error(base::Code::kInvalidArgument, message); }

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

base::Result<bool> ParseCheckpointCommand(const std::vector<std::string>& words,
                                          std::map<std::string, std::vector<std::string>>& options,
                                          CliInvocation& inv) {
  if (words.size() < 2 || words[0] != "vm" || words[1] != "checkpoint") return false;
  const std::string forms = "vm checkpoint create|apply|delete VM NAME, vm checkpoint list VM";
  if (words.size() < 3) return Usage("missing checkpoint command: ferry " + forms);
  const std::string& verb = words[2];
  const bool named = verb == "create" || verb == "apply" || verb == "delete";
  if (!named && verb != "list") return Usage("unknown command \"vm checkpoint " + verb + "\" (ferry " + forms + ")");
  const std::string form = "vm checkpoint " + verb + " VM" + (named ? " NAME" : "") + (verb == "apply" ? " [--force]" : "");
  const size_t want = named ? 5 : 4;
  if (words.size() < want) return Usage("missing argument: ferry " + form);
  if (words.size() > want) return Usage("unexpected argument \"" + words[want] + "\": ferry " + form);
  inv.vm_name = words[3];
  inv.action = verb;
  const std::string base = "/v1/vms/" + inv.vm_name + "/checkpoints";
  if (named) {
    inv.checkpoint = words[4];
    RETURN_IF_ERROR(config::ValidateCheckpointName(inv.checkpoint));
  }
  if (verb == "create") {
    inv.command = CliCommand::kCheckpointCreate;
    inv.method = "POST";
    inv.path = base;
    inv.body = json{{"name", inv.checkpoint}};
  } else if (verb == "list") {
    inv.command = CliCommand::kCheckpointList;
    inv.method = "GET";
    inv.path = base;
  } else if (verb == "apply") {
    inv.command = CliCommand::kCheckpointApply;
    inv.method = "POST";
    inv.path = base + "/" + inv.checkpoint + "/apply";
    inv.body = json{{"force", options.count("--force") != 0}};
    options.erase("--force");
  } else {
    inv.command = CliCommand::kCheckpointDelete;
    inv.method = "DELETE";
    inv.path = base + "/" + inv.checkpoint;
  }
  return true;
}

std::string FormatUnixMillis(int64_t unix_ms) {
  std::time_t t = std::time_t(unix_ms / 1000);
  std::tm tm{};
  if (::gmtime_r(&t, &tm) == nullptr) return std::to_string(unix_ms);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string FormatCheckpointList(const json& list) {
  const auto& cps = list.value("checkpoints", json::array());
  std::string vm = Str(list, "vm");
  if (cps.empty()) return "vm " + vm + " has no checkpoints\n";
  std::vector<std::vector<std::string>> rows = {{"", "NAME", "CREATED", "PARENT"}};
  for (const json& c : cps) {
    rows.push_back({c.value("current", false) ? "*" : "", Str(c, "name"),
                    FormatUnixMillis(c.value("created_unix_ms", int64_t{0})),
                    Str(c, "parent").empty() ? "-" : Str(c, "parent")});
  }
  std::vector<size_t> width(4, 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  std::string current = Str(list, "current_checkpoint");
  out += current.empty() ? "the disks build on no checkpoint\n"
                         : "* the disks build on " + current + " (changes since then are in the writable tops)\n";
  return out;
}

std::string FormatCheckpointResult(const CliInvocation& inv, const json& reply) {
  const std::string head = "vm " + inv.vm_name + ": checkpoint " + inv.checkpoint + " ";
  if (inv.command == CliCommand::kCheckpointCreate) return head + "created\n";
  if (inv.command == CliCommand::kCheckpointApply) {
    std::string state = reply.contains("vm") ? Str(reply["vm"], "state") : "";
    return head + "applied" + (state.empty() ? "" : "; the vm is " + state) + "\n";
  }
  std::string out = head + "deleted\n";
  for (const json& k : reply.value("kept_files", json::array())) {
    if (k.is_string()) out += "  kept " + k.get<std::string>() + " (no longer used by the vm)\n";
  }
  return out;
}

}  // namespace appliance
