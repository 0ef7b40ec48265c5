// `ferry move-vm`: parsing into the API request, the progress line and the
// final report; and the source ferryd's pure parts (job JSON, Prepare
// request built from a storage plan, the move-vm route).
#include "cli/cli_live_move.h"

#include <gtest/gtest.h>

#include "cli/cli_args.h"
#include "daemon/live_move_service.h"
#include "daemon/router.h"

namespace appliance {
namespace {

using nlohmann::json;

base::Result<CliInvocation> Parse(std::vector<std::string> args) {
  return ParseCommandLine(args, nullptr, "/home/admin");
}

TEST(CliLiveMoveTest, FullCommandBuildsTheRequest) {
  auto inv =
      Parse({"move-vm", "web1", "10.0.0.2:7430", "--include-storage", "--destination-storage-path",
             "/srv/vms/", "--streams", "8", "--bandwidth-limit", "100M", "--downtime-ms", "250",
             "--no-wait", "--time-limit", "90", "--json"});
  ASSERT_TRUE(inv.has_value()) << inv.error().ToString();
  EXPECT_EQ(inv->command, CliCommand::kMoveVm);
  EXPECT_EQ(inv->vm_name, "web1");
  EXPECT_EQ(inv->method, "POST");
  EXPECT_EQ(inv->path, "/v1/vms/web1/move-vm");
  EXPECT_TRUE(inv->no_wait);
  EXPECT_TRUE(inv->json_output);
  json expected = {{"host", "10.0.0.2:7430"},
                   {"destination", "/srv/vms"},
                   {"include_storage", true},
                   {"streams", 8},
                   {"bandwidth_limit", 100 << 20},
                   {"downtime_ms", 250},
                   {"time_limit_s", 90}};
  EXPECT_EQ(inv->body, expected) << inv->body.dump();
}

TEST(CliLiveMoveTest, ResolveAsksOrForces) {
  auto inv = Parse({"vm", "resolve", "web1"});
  ASSERT_TRUE(inv.has_value()) << inv.error().ToString();
  EXPECT_EQ(inv->command, CliCommand::kVmResolve);
  EXPECT_EQ(inv->method, "POST");
  EXPECT_EQ(inv->path, "/v1/vms/web1/resolve");
  EXPECT_EQ(inv->body, (json{{"force", false}}));
  inv = Parse({"vm", "resolve", "--force", "web1"});
  ASSERT_TRUE(inv.has_value()) << inv.error().ToString();
  EXPECT_EQ(inv->body, (json{{"force", true}}));
  EXPECT_FALSE(Parse({"vm", "resolve"}).has_value());
  EXPECT_FALSE(Parse({"vm", "resolve", "a", "b"}).has_value());
  EXPECT_FALSE(Parse({"vm", "resolve", "a", "--streams", "2"}).has_value());
  EXPECT_FALSE(Parse({"vm", "resolve", "bad/name"}).has_value());
  const std::string out = FormatResolveResult(json{{"vm", "a"},
                                                   {"outcome", "here"},
                                                   {"state", "paused"},
                                                   {"forced", true},
                                                   {"message", "kept here by force"}});
  EXPECT_NE(out.find("kept here by force"), std::string::npos) << out;
  EXPECT_NE(out.find("vm a is paused on this host"), std::string::npos) << out;
  EXPECT_NE(out.find("warning"), std::string::npos) << out;
}

TEST(CliLiveMoveTest, DefaultsAndRelativePath) {
  auto inv =
      Parse({"move-vm", "a", "host2", "--destination-storage-path=vms", "--include-storage"});
  ASSERT_TRUE(inv.has_value()) << inv.error().ToString();
  EXPECT_EQ(
      inv->body,
      (json{{"host", "host2"}, {"destination", "/home/admin/vms"}, {"include_storage", true}}));
  EXPECT_FALSE(inv->no_wait);
}

TEST(CliLiveMoveTest, MissingIncludeStorageIsLeftToFerryd) {
  // ferryd refuses it with the reason; the CLI sends what was asked.
  auto inv = Parse({"move-vm", "a", "host2", "--destination-storage-path", "/x"});
  ASSERT_TRUE(inv.has_value());
  EXPECT_EQ(inv->body["include_storage"], false);
}

TEST(CliLiveMoveTest, UsageErrors) {
  auto error = [](std::vector<std::string> args) {
    auto inv = Parse(std::move(args));
    return inv ? std::string("(parsed)") : inv.error().message();
  };
  EXPECT_NE(error({"move-vm", "a", "--include-storage", "--destination-storage-path", "/x"})
                .find("missing argument"),
            std::string::npos);
  EXPECT_NE(error({"move-vm", "a", "h", "extra", "--destination-storage-path", "/x"})
                .find("unexpected argument"),
            std::string::npos);
  EXPECT_NE(error({"move-vm", "a", "h", "--include-storage"}).find("--destination-storage-path"),
            std::string::npos);
  EXPECT_NE(error({"move-vm", "a", "h", "--destination-storage-path", "/x", "--streams", "0"})
                .find("--streams"),
            std::string::npos);
  EXPECT_NE(error({"move-vm", "a", "h", "--destination-storage-path", "/x", "--streams", "65"})
                .find("1 to 64"),
            std::string::npos);
  EXPECT_NE(
      error({"move-vm", "a", "h", "--destination-storage-path", "/x", "--bandwidth-limit", "fast"})
          .find("--bandwidth-limit"),
      std::string::npos);
  EXPECT_NE(error({"move-vm", "a", "h", "--destination-storage-path", "/x", "--downtime-ms", "-5"})
                .find("--downtime-ms"),
            std::string::npos);
  EXPECT_NE(error({"move-vm", "bad/name", "h", "--destination-storage-path", "/x"}), "(parsed)");
  EXPECT_NE(error({"move-vm", "a", "h", "--destination-storage-path", "/x", "--time-limit", "0"})
                .find("--time-limit"),
            std::string::npos);
  // Options of other commands do not apply.
  EXPECT_NE(error({"move-vm", "a", "h", "--destination-storage-path", "/x", "--max-rate", "1M"})
                .find("does not apply"),
            std::string::npos);
  EXPECT_NE(error({"move-storage", "a", "--destination-storage-path", "/x", "--streams", "2"})
                .find("does not apply"),
            std::string::npos);
}

TEST(CliLiveMoveTest, ParseRateAcceptsPerSecondSuffixes) {
  EXPECT_EQ(*ParseRate("100M"), 100ull << 20);
  EXPECT_EQ(*ParseRate("1G/s"), 1ull << 30);
  EXPECT_EQ(*ParseRate("512Kps"), 512ull << 10);
  EXPECT_EQ(*ParseRate("1000"), 1000u);
  EXPECT_FALSE(ParseRate("/s").has_value());
  EXPECT_FALSE(ParseRate("1X").has_value());
}

TEST(CliLiveMoveTest, UsageTextMentionsMoveVm) {
  EXPECT_NE(UsageText().find("move-vm VM HOST --include-storage"), std::string::npos);
}

LiveMoveJobRecord SampleJob(LiveMovePhase phase) {
  LiveMoveJobRecord r;
  r.id = "live-0f1e2d3c";
  r.vm = "web1";
  r.host = "127.0.0.2:7431";
  r.destination = "/srv/b";
  r.migration_id = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
  r.streams = 2;
  r.started_unix_ms = 1000;
  r.ended_unix_ms = phase == LiveMovePhase::kPrecopy ? 0 : 4500;
  LiveMoveStatus& s = r.status;
  s.migration_id = r.migration_id;
  s.phase = phase;
  s.round = 3;
  s.memory_bytes = 256ull << 20;
  s.memory_sent = 100ull << 20;
  s.disk_bytes = 64ull << 20;
  s.disk_sent = 32ull << 20;
  s.bytes_per_second = 50.0 * (1 << 20);
  s.predicted_downtime_ms = 120;
  s.eta_seconds = 4;
  s.throttle_percent = 20;
  s.zero_pages = 1234;
  s.streams = {{70ull << 20, 80ull << 20, 10}, {62ull << 20, 60ull << 20, 9}};
  s.wire_bytes = 132ull << 20;
  if (phase == LiveMovePhase::kCompleted) {
    s.downtime_ms = 42.4;
    s.total_ms = 3456;
    r.removed = {"/a/web1.img"};
  }
  if (phase == LiveMovePhase::kFailed) {
    s.error_code = "unavailable";
    s.error = "connect 127.0.0.2:40000: refused";
  }
  return r;
}

TEST(CliLiveMoveTest, JobJsonRoundTrips) {
  for (LiveMovePhase phase :
       {LiveMovePhase::kPrecopy, LiveMovePhase::kCompleted, LiveMovePhase::kFailed}) {
    LiveMoveJobRecord r = SampleJob(phase);
    r.kept = {{"/base.img", "other"}};
    json j = LiveMoveJobToJson(r);
    EXPECT_EQ(j["kind"], "live-vm");
    EXPECT_EQ(j["bytes_total"], 320ull << 20);
    EXPECT_TRUE(IsLiveMoveJob(j));
    auto back = LiveMoveJobFromJson(json::parse(j.dump()));
    ASSERT_TRUE(back.has_value()) << back.error().ToString();
    // A running job's elapsed time is computed from the clock at each
    // encoding: everything else must survive the round trip unchanged.
    json again = LiveMoveJobToJson(*back);
    again.erase("elapsed_seconds");
    j.erase("elapsed_seconds");
    EXPECT_EQ(again.dump(), j.dump()) << "phase " << ToString(phase);
  }
  EXPECT_EQ(LiveMoveJobToJson(SampleJob(LiveMovePhase::kFailed))["error"]["code"], "unavailable");
  EXPECT_TRUE(LiveMoveJobToJson(SampleJob(LiveMovePhase::kCompleted))["error"].is_null());
  // A storage move's record is not a live move's.
  EXPECT_FALSE(LiveMoveJobFromJson(json{{"id", "move-1"}, {"kind", "live"}, {"phase", "completed"}})
                   .has_value());
}

TEST(CliLiveMoveTest, ProgressLine) {
  std::string line = FormatLiveMoveProgress(LiveMoveJobToJson(SampleJob(LiveMovePhase::kPrecopy)));
  EXPECT_NE(line.find("precopy"), std::string::npos) << line;
  EXPECT_NE(line.find("round 3"), std::string::npos) << line;
  EXPECT_NE(line.find("132.0 MiB / 320.0 MiB"), std::string::npos) << line;
  EXPECT_NE(line.find("50.0 MiB/s"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 0:04"), std::string::npos) << line;
  EXPECT_NE(line.find("downtime ~120 ms"), std::string::npos) << line;
  EXPECT_NE(line.find("throttle 20%"), std::string::npos) << line;
}

TEST(CliLiveMoveTest, CompletedReport) {
  std::string report =
      FormatLiveMoveReport(LiveMoveJobToJson(SampleJob(LiveMovePhase::kCompleted)));
  EXPECT_NE(report.find(
                "moved vm web1 to 127.0.0.2:7431 in 3.5 s; downtime 42 ms (source paused until the "
                "destination committed)"),
            std::string::npos)
      << report;
  EXPECT_NE(
      report.find(
          "sent 132.0 MiB over 2 streams (per stream: 70.0 MiB, 62.0 MiB); rounds 3; zero pages "
          "skipped 1234"),
      std::string::npos)
      << report;
  EXPECT_NE(report.find("removed 1 source files"), std::string::npos) << report;
}

TEST(CliLiveMoveTest, FailedReportSaysWhereTheVmIs) {
  std::string report = FormatLiveMoveReport(LiveMoveJobToJson(SampleJob(LiveMovePhase::kFailed)));
  EXPECT_NE(report.find("failed"), std::string::npos) << report;
  EXPECT_NE(report.find("refused"), std::string::npos) << report;
  EXPECT_NE(report.find("stays on this host"), std::string::npos) << report;
  std::string job = FormatLiveMoveJob(LiveMoveJobToJson(SampleJob(LiveMovePhase::kPrecopy)));
  EXPECT_NE(job.find("progress:"), std::string::npos) << job;
}

TEST(CliLiveMoveTest, RouteAndSourceHost) {
  EXPECT_EQ(MatchRoute("POST", "/v1/vms/web1/move-vm").id, RouteId::kMoveVm);
  EXPECT_EQ(MatchRoute("GET", "/v1/vms/web1/move-vm").id, RouteId::kMethodNotAllowed);
  EXPECT_EQ(MatchRoute("POST", "/v1/vms/web1/resolve").id, RouteId::kResolveVm);
  EXPECT_EQ(MatchRoute("GET", "/v1/vms/web1/resolve").id, RouteId::kMethodNotAllowed);
  config::HostSettings host;
  EXPECT_EQ(MigrationSourceHost(host), "");
  host.listen_addresses.push_back({"127.0.0.1", 7430, "127.0.0.1:7430"});
  host.listen_addresses.push_back({"10.0.0.1", 7430, "10.0.0.1:7430"});
  EXPECT_EQ(MigrationSourceHost(host), "127.0.0.1");
}

TEST(CliLiveMoveTest, PrepareRequestFollowsThePlan) {
  config::VmDefinition def;
  def.name = "web1";
  def.id = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
  def.memory_bytes = 64ull << 20;
  def.vcpus = 2;
  def.processor_compatibility = true;
  def.program = "/guests/disk-guest.bin";
  def.disks = {{"/a/web1.qcow2", config::DiskFormat::kQcow2, false}};
  StorageMovePlan plan;
  plan.vm_name = "web1";
  plan.destination = "/b";
  DiskMove d;
  d.index = 0;
  d.spec = def.disks[0];
  d.top = {"/a/web1.qcow2",          "/b/web1.qcow2", config::DiskFormat::kQcow2, "",
           config::DiskFormat::kRaw, 1 << 20};
  d.backing.push_back({"/a/base.img", "/b/base.img", config::DiskFormat::kRaw, "",
                       config::DiskFormat::kRaw, 8 << 20});
  d.top_backing_name = "base.img";
  d.top_backing_format = config::DiskFormat::kRaw;
  d.disk_size = 8 << 20;
  plan.disks.push_back(d);
  plan.moved_definition = def;
  plan.moved_definition.disks[0].path = "/b/web1.qcow2";
  plan.bytes_total = (8 << 20) + (8 << 20);
  PrepareRequest r =
      BuildPrepareRequest(def, plan, 4, config::PerformanceOption::kTcp, "127.0.0.1");
  EXPECT_EQ(r.vm_name, "web1");
  EXPECT_EQ(r.vm_id, def.id);
  EXPECT_EQ(r.memory_bytes, 64ull << 20);
  EXPECT_EQ(r.vcpus, 2u);
  EXPECT_TRUE(r.processor_compatibility);
  EXPECT_EQ(r.destination, "/b");
  EXPECT_EQ(r.performance, "tcp");
  EXPECT_EQ(r.source_host, "127.0.0.1");
  EXPECT_EQ(r.streams, 4u);
  EXPECT_EQ(r.disk_bytes, uint64_t(16 << 20));
  ASSERT_EQ(r.disks.size(), 1u);
  EXPECT_EQ(r.disks[0].format, "qcow2");
  EXPECT_EQ(r.disks[0].top, "/b/web1.qcow2");
  EXPECT_EQ(r.disks[0].top_backing_name, "base.img");
  EXPECT_EQ(r.disks[0].top_backing_format, "raw");
  ASSERT_EQ(r.disks[0].backing.size(), 1u);
  EXPECT_EQ(r.disks[0].backing[0].dest, "/b/base.img");
  EXPECT_EQ(r.disks[0].backing[0].file_size, uint64_t(8 << 20));
  auto moved = config::ParseVmDefinition(r.definition_toml, "moved");
  ASSERT_TRUE(moved.has_value()) << moved.error().ToString();
  EXPECT_EQ(moved->disks[0].path, "/b/web1.qcow2");
  EXPECT_EQ(
      BuildPrepareRequest(def, plan, 4, config::PerformanceOption::kCompression, "").performance,
      "compression");
}

}  // namespace
}  // namespace appliance
