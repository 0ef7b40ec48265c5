// A running VM's disk failures on their way to the admin: the worker's
// status reply carries them per disk, ferryd's show turns them into stats and
// last_error, and `ferry vm show` prints them.
#include "daemon/vm_stats_json.h"

#include <gtest/gtest.h>

#include "cli/cli_output.h"
#include "ipc/worker_protocol.h"

namespace appliance {
namespace {

using nlohmann::json;

config::VmDefinition TwoDisks() {
  config::VmDefinition def;
  def.name = "web1";
  def.disks = {{"/srv/web1.qcow2", config::DiskFormat::kQcow2, false},
               {"/srv/data.img", config::DiskFormat::kRaw, false}};
  return def;
}

WorkerStats FailingStats() {
  WorkerStats s;
  s.disk_reads = 10;
  s.disks.resize(2);
  s.disks[0].reads = 10;
  s.disks[1].read_errors = 2;
  s.disks[1].write_errors = 1;
  s.disks[1].first_error =
      "read at offset 8192 (4096 bytes): /srv/data.img: Input/output error (unknown)";
  s.disks[1].first_error_unix_ms = 1763770000000;
  return s;
}

TEST(VmStatsJsonTest, DiskStatsSurviveTheWorkerReply) {
  WorkerReply reply;
  reply.state = "running";
  reply.pid = 42;
  reply.stats = FailingStats();
  auto decoded = DecodeReply(EncodeReply(reply));
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  ASSERT_EQ(decoded->stats.disks.size(), 2u);
  EXPECT_EQ(decoded->stats.disks[0].reads, 10u);
  EXPECT_EQ(decoded->stats.disks[1].read_errors, 2u);
  EXPECT_EQ(decoded->stats.disks[1].write_errors, 1u);
  EXPECT_EQ(decoded->stats.disks[1].first_error, FailingStats().disks[1].first_error);
  EXPECT_EQ(decoded->stats.disks[1].first_error_unix_ms, 1763770000000);

  // A worker from before per-disk stats sends none: no disks, no error.
  auto old = DecodeReply(R"({"ok":true,"state":"running","pid":1,"stats":{"disk_reads":3}})");
  ASSERT_TRUE(old.has_value());
  EXPECT_TRUE(old->stats.disks.empty());
  EXPECT_EQ(FirstDiskError(old->stats, TwoDisks()), "");
}

TEST(VmStatsJsonTest, StatsJsonHasPerDiskCountersAndATotal) {
  json j = StatsToJson(FailingStats(), TwoDisks());
  EXPECT_EQ(j["disk_errors"], 3);
  ASSERT_EQ(j["disks"].size(), 2u);
  EXPECT_EQ(j["disks"][1]["path"], "/srv/data.img");
  EXPECT_EQ(j["disks"][1]["errors"], 3);
  EXPECT_EQ(j["disks"][1]["read_errors"], 2);
  EXPECT_EQ(j["disks"][0]["first_error"], "");
}

TEST(VmStatsJsonTest, LastErrorIsTheEarliestFirstFailure) {
  WorkerStats s = FailingStats();
  EXPECT_EQ(
      FirstDiskError(s, TwoDisks()),
      "disk 1 (/srv/data.img): read at offset 8192 (4096 bytes): /srv/data.img: Input/output error "
      "(unknown) (2 read errors, 1 write error, 0 flush errors so far)");
  s.disks[0].flush_errors = 1;
  s.disks[0].first_error = "flush: boom";
  s.disks[0].first_error_unix_ms = s.disks[1].first_error_unix_ms + 5;
  EXPECT_EQ(FirstDiskError(s, TwoDisks()).rfind("disk 1 ", 0), 0u) << "disk 1 failed first";
  s.disks[0].first_error_unix_ms = s.disks[1].first_error_unix_ms - 5;
  EXPECT_EQ(FirstDiskError(s, TwoDisks()).rfind("disk 0 (/srv/web1.qcow2): flush: boom", 0), 0u);
  EXPECT_EQ(FirstDiskError(WorkerStats{}, TwoDisks()), "");
}

TEST(VmStatsJsonTest, ShowPrintsTheErrorsOfEachFailingDisk) {
  json vm = {{"name", "web1"},
             {"state", "running"},
             {"last_error", FirstDiskError(FailingStats(), TwoDisks())},
             {"dir", "/srv/vms/web1"},
             {"worker", {{"pid", 7}}},
             {"definition",
              {{"vcpus", 1}, {"memory_bytes", 256ull << 20}, {"program", "/g/disk-guest.bin"}}},
             {"stats", StatsToJson(FailingStats(), TwoDisks())}};
  std::string out = FormatVm(vm);
  EXPECT_NE(out.find("disk i/o:      10 reads, 0 writes, 0 flushes, 3 errors\n"), std::string::npos)
      << out;
  EXPECT_NE(
      out.find(
          "disk 1 errors: 2 read, 1 write, 0 flush; first: read at offset 8192 (4096 bytes): "),
      std::string::npos)
      << out;
  EXPECT_EQ(out.find("disk 0 errors"), std::string::npos) << out;
  EXPECT_NE(out.find("last error:    disk 1 (/srv/data.img): read at offset 8192"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace appliance
