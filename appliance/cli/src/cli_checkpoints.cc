// ferry vm checkpoint: the builder (cli_verbs.h) and output (cli_checkpoints.h).
#include "cli/cli_checkpoints.h"

#include <ctime>

#include "cli_verbs.h"

namespace appliance {

using nlohmann::json;

namespace {

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

// create sends the name; apply says whether a running vm may be stopped.
base::Status BuildCheckpoint(const VerbArgs& args, CliInvocation& inv) {
  inv.action = std::string(args.verb.words.back());
  if (inv.command == CliCommand::kCheckpointCreate) inv.body = json{{"name", inv.checkpoint}};
  if (inv.command == CliCommand::kCheckpointApply) inv.body = json{{"force", args.Has("--force")}};
  return base::Ok();
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
                         : "* the disks build on " + current +
                               " (changes since then are in the writable tops)\n";
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
