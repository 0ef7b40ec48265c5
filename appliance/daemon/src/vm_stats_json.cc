#include "daemon/vm_stats_json.h"

#include "base/escape.h"

namespace appliance {

using nlohmann::json;

namespace {

std::string DiskPath(const config::VmDefinition& definition, size_t index) {
  return index < definition.disks.size() ? definition.disks[index].path : "";
}

std::string Count(uint64_t n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

}  // namespace

json StatsToJson(const WorkerStats& stats, const config::VmDefinition& definition) {
  json disks = json::array();
  uint64_t errors = 0;
  for (size_t i = 0; i < stats.disks.size(); ++i) {
    const WorkerDiskStats& d = stats.disks[i];
    errors += d.errors();
    disks.push_back({{"index", i},
                     {"path", DiskPath(definition, i)},
                     {"reads", d.reads},
                     {"writes", d.writes},
                     {"flushes", d.flushes},
                     {"read_errors", d.read_errors},
                     {"write_errors", d.write_errors},
                     {"flush_errors", d.flush_errors},
                     {"errors", d.errors()},
                     {"first_error", d.first_error},
                     {"first_error_unix_ms", d.first_error_unix_ms}});
  }
  return {{"memory_bytes", stats.memory_bytes},
          {"disk_reads", stats.disk_reads},
          {"disk_writes", stats.disk_writes},
          {"disk_flushes", stats.disk_flushes},
          {"disk_errors", errors},
          {"exits", stats.exits},
          {"disks", std::move(disks)}};
}

std::string FirstDiskError(const WorkerStats& stats, const config::VmDefinition& definition) {
  const WorkerDiskStats* first = nullptr;
  size_t index = 0;
  for (size_t i = 0; i < stats.disks.size(); ++i) {
    const WorkerDiskStats& d = stats.disks[i];
    if (d.first_error.empty()) continue;
    if (first == nullptr || d.first_error_unix_ms < first->first_error_unix_ms) {
      first = &d;
      index = i;
    }
  }
  if (first == nullptr) return "";
  // The cause is escaped by storage where it names files; the disk path is
  // the admin's own, escaped anyway so the line stays one line.
  return "disk " + std::to_string(index) + " (" + base::Escaped(DiskPath(definition, index)) +
         "): " + first->first_error + " (" + Count(first->read_errors, "read error") + ", " +
         Count(first->write_errors, "write error") + ", " +
         Count(first->flush_errors, "flush error") + " so far)";
}

}  // namespace appliance
