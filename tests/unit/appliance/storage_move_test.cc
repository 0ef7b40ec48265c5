// Storage moves without KVM: planning (where every layer goes, backing names
// kept valid), the offline copy, the CLI's parsing and output, the status
// codec, and StorageMover on TrackingDisks with a writer running.
#include <fcntl.h>
#include <unistd.h>

#include <sys/stat.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "base/fd.h"
#include "cli/cli_args.h"
#include "cli/cli_move.h"
#include "engine/storage_mover.h"
#include "plan/storage_move_plan.h"
#include "storage/disk.h"
#include "storage/qcow2.h"
#include "storage/tracking_disk.h"
#include "support/temp_dir.h"
#include "support/wait_for.h"

namespace appliance {
namespace {

using ferry_test::TempDir;

void MakeFile(const std::string& path, uint64_t size, uint8_t fill) {
  base::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  std::vector<uint8_t> buf(size, fill);
  ASSERT_TRUE(base::WriteAll(fd.get(), buf.data(), buf.size()).has_value());
}

std::string ReadAll(const std::string& path) {
  auto s = base::ReadFileToString(path);
  return s ? *s : "";
}

config::VmDefinition Def(std::vector<config::DiskSpec> disks) {
  config::VmDefinition d;
  d.name = "vm1";
  d.disks = std::move(disks);
  return d;
}

TEST(StorageMovePlanTest, RawDiskGoesToDestinationUnderItsName) {
  TempDir dir;
  MakeFile(dir / "a.img", 1 << 20, 1);
  auto plan = PlanStorageMove(Def({{dir / "a.img", config::DiskFormat::kRaw, false}}), dir.path(),
                              dir / "dst/");
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  ASSERT_EQ(plan->disks.size(), 1u);
  EXPECT_EQ(plan->destination, dir / "dst");
  EXPECT_EQ(plan->disks[0].top.dest, dir / "dst/a.img");
  EXPECT_EQ(plan->moved_definition.disks[0].path, dir / "dst/a.img");
  EXPECT_EQ(plan->bytes_total, 1u << 20);
  EXPECT_TRUE(plan->disks[0].backing.empty());
}

TEST(StorageMovePlanTest, RefusesRelativeDestinationSameFilesAndNameClashes) {
  TempDir dir;
  MakeFile(dir / "a.img", 4096, 1);
  ::mkdir((dir / "x").c_str(), 0755);
  MakeFile(dir / "x/a.img", 4096, 1);
  auto def = Def({{dir / "a.img", config::DiskFormat::kRaw, false}});
  EXPECT_EQ(PlanStorageMove(def, dir.path(), "rel").error().code(), base::Code::kInvalidArgument);
  EXPECT_EQ(PlanStorageMove(def, dir.path(), dir.path()).error().code(),
            base::Code::kFailedPrecondition);
  auto two = Def({{dir / "a.img", config::DiskFormat::kRaw, false},
                  {dir / "x/a.img", config::DiskFormat::kRaw, false}});
  EXPECT_EQ(PlanStorageMove(two, dir.path(), dir / "dst").error().code(),
            base::Code::kAlreadyExists);
}

TEST(StorageMovePlanTest, Qcow2ChainKeepsRelativeNamesAndRewritesAbsoluteOnes) {
  TempDir dir;
  ::mkdir((dir / "src").c_str(), 0755);
  ::mkdir((dir / "elsewhere").c_str(), 0755);
  storage::Qcow2CreateOptions base;
  base.size = 1 << 20;
  ASSERT_TRUE(storage::CreateQcow2(dir / "elsewhere/base.qcow2", base).has_value());
  storage::Qcow2CreateOptions mid;
  mid.backing_file = dir / "elsewhere/base.qcow2";  // absolute: rewritten
  ASSERT_TRUE(storage::CreateQcow2(dir / "src/mid.qcow2", mid).has_value());
  storage::Qcow2CreateOptions top;
  top.backing_file = "mid.qcow2";  // relative: kept
  ASSERT_TRUE(storage::CreateQcow2(dir / "src/top.qcow2", top).has_value());
  auto plan = PlanStorageMove(Def({{dir / "src/top.qcow2", config::DiskFormat::kQcow2, false}}),
                              dir.path(), dir / "dst");
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  const DiskMove& d = plan->disks[0];
  ASSERT_EQ(d.backing.size(), 2u);
  EXPECT_EQ(d.backing[0].source, dir / "elsewhere/base.qcow2");  // bottom first
  EXPECT_EQ(d.backing[0].dest, dir / "dst/base.qcow2");
  EXPECT_EQ(d.backing[1].dest, dir / "dst/mid.qcow2");
  EXPECT_EQ(d.backing[1].rewrite_backing, "base.qcow2");
  EXPECT_EQ(d.top_backing_name, "mid.qcow2");
  EXPECT_FALSE(d.top_backing_rewritten);
  EXPECT_EQ(d.disk_size, 1u << 20);

  // The offline copy produces a chain that opens at the destination.
  ASSERT_TRUE(PrepareDestination(plan->destination).has_value());
  ASSERT_TRUE(CopyStorageOffline(*plan, -1, nullptr).has_value());
  auto info = storage::ReadQcow2Info(dir / "dst/mid.qcow2");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->backing_file, "base.qcow2");
  auto opened = storage::OpenDisk(dir / "dst/top.qcow2", config::DiskFormat::kQcow2, true);
  EXPECT_TRUE(opened.has_value()) << opened.error().ToString();
  ASSERT_TRUE(RemoveMoveSources(*plan).has_value());
  EXPECT_NE(::access((dir / "src/top.qcow2").c_str(), F_OK), 0);
  EXPECT_NE(::access((dir / "elsewhere/base.qcow2").c_str(), F_OK), 0);
}

TEST(StorageMovePlanTest, CheckpointLayersFollowTheirFiles) {
  TempDir dir;
  storage::Qcow2CreateOptions base;
  base.size = 1 << 20;
  ASSERT_TRUE(storage::CreateQcow2(dir / "base.qcow2", base).has_value());
  storage::Qcow2CreateOptions top;
  top.backing_file = "base.qcow2";
  ASSERT_TRUE(storage::CreateQcow2(dir / "top.qcow2", top).has_value());
  auto def = Def({{dir / "top.qcow2", config::DiskFormat::kQcow2, false}});
  config::CheckpointSpec cp;
  cp.name = "cp1";
  cp.layers = {"base.qcow2"};  // relative to the VM directory
  def.checkpoints.push_back(cp);
  auto plan = PlanStorageMove(def, dir.path(), dir / "dst");
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  EXPECT_EQ(plan->moved_definition.checkpoints[0].layers[0], dir / "dst/base.qcow2");
  // A layer no current disk builds on (a branch) is refused, not left behind.
  MakeFile(dir / "branch.qcow2", 4096, 0);
  def.checkpoints[0].layers = {dir / "branch.qcow2"};
  EXPECT_EQ(PlanStorageMove(def, dir.path(), dir / "dst").error().code(),
            base::Code::kUnimplemented);
}

// Two VMs' overlays over one base image: moving the first must not delete
// the base the second still builds on.
TEST(StorageMovePlanTest, SourcesAnotherVmUsesAreKept) {
  TempDir dir;
  ::mkdir((dir / "shared").c_str(), 0755);
  ::mkdir((dir / "vm2").c_str(), 0755);
  storage::Qcow2CreateOptions base;
  base.size = 1 << 20;
  ASSERT_TRUE(storage::CreateQcow2(dir / "shared/base.qcow2", base).has_value());
  storage::Qcow2CreateOptions overlay;
  overlay.backing_file = "base.qcow2";  // relative to the overlay's directory
  ASSERT_TRUE(storage::CreateQcow2(dir / "shared/a.qcow2", overlay).has_value());
  ASSERT_TRUE(storage::CreateQcow2(dir / "shared/b.qcow2", overlay).has_value());
  MakeFile(dir / "vm2/cp.img", 4096, 0);

  // vm2 uses its disk b.qcow2 (absolute path), b's backing base.qcow2 and a
  // checkpoint layer named relative to its VM directory.
  config::VmDefinition other = Def({{dir / "shared/b.qcow2", config::DiskFormat::kQcow2, false}});
  other.name = "vm2";
  config::CheckpointSpec cp;
  cp.name = "c1";
  cp.layers = {"cp.img"};
  other.checkpoints.push_back(cp);
  std::vector<std::string> files = FilesOfVm(other, dir / "vm2");
  EXPECT_EQ(files, (std::vector<std::string>{dir / "shared/b.qcow2", dir / "shared/base.qcow2",
                                             dir / "vm2/cp.img"}));

  auto plan = PlanStorageMove(Def({{dir / "shared/a.qcow2", config::DiskFormat::kQcow2, false}}),
                              dir.path(), dir / "dst");
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  ASSERT_TRUE(PrepareDestination(plan->destination).has_value());
  ASSERT_TRUE(CopyStorageOffline(*plan, -1, nullptr).has_value());
  // Another spelling of the same file (through a symlink) is matched too.
  ASSERT_EQ(::symlink((dir / "shared").c_str(), (dir / "link").c_str()), 0);
  std::map<std::string, std::string> in_use = {{dir / "link/base.qcow2", "vm2"}};
  auto kept = RemoveMoveSources(*plan, in_use);
  ASSERT_TRUE(kept.has_value()) << kept.error().ToString();
  ASSERT_EQ(kept->size(), 1u);
  EXPECT_EQ((*kept)[0].path, dir / "shared/base.qcow2");
  EXPECT_EQ((*kept)[0].used_by, "vm2");
  EXPECT_NE(::access((dir / "shared/a.qcow2").c_str(), F_OK), 0) << "the moved top goes";
  EXPECT_TRUE(
      storage::OpenDisk(dir / "shared/b.qcow2", config::DiskFormat::kQcow2, true).has_value())
      << "vm2's chain still opens";
  EXPECT_TRUE(storage::OpenDisk(dir / "dst/a.qcow2", config::DiskFormat::kQcow2, true).has_value());
}

TEST(StorageMovePlanTest, MarkerListsAndRemovesOnlyDestinationFiles) {
  TempDir dir;
  MakeFile(dir / "a.img", 4096, 1);
  auto plan = PlanStorageMove(Def({{dir / "a.img", config::DiskFormat::kRaw, false}}), dir.path(),
                              dir / "dst");
  ASSERT_TRUE(plan.has_value());
  ASSERT_TRUE(PrepareDestination(plan->destination).has_value());
  MakeFile(PartPath(dir / "dst/a.img"), 4096, 2);
  ASSERT_TRUE(WriteMoveMarker(*plan, "copying").has_value());
  auto removed = RemoveMoveDestinationByMarker(MoveMarkerPath(*plan), {});
  EXPECT_EQ(removed.size(), 2u);
  EXPECT_NE(::access(PartPath(dir / "dst/a.img").c_str(), F_OK), 0);
  EXPECT_EQ(::access((dir / "a.img").c_str(), F_OK), 0) << "sources are never touched";
}

// A worker that died after its commit point (the new vm.toml) left a marker
// whose final file is now the VM's disk: cleaning up must keep it.
TEST(StorageMovePlanTest, MarkerCleanupKeepsFilesTheCommittedDefinitionUses) {
  TempDir dir;
  MakeFile(dir / "a.img", 4096, 1);
  auto plan = PlanStorageMove(Def({{dir / "a.img", config::DiskFormat::kRaw, false}}), dir.path(),
                              dir / "dst");
  ASSERT_TRUE(plan.has_value());
  ASSERT_TRUE(PrepareDestination(plan->destination).has_value());
  ASSERT_TRUE(WriteMoveMarker(*plan, "switching").has_value());
  MakeFile(dir / "dst/a.img", 4096, 3);  // renamed into place, then committed
  auto committed = FilesOfVm(plan->moved_definition, dir.path());
  std::set<std::string> in_use(committed.begin(), committed.end());
  ASSERT_TRUE(in_use.count(dir / "dst/a.img")) << "the moved definition names the destination";
  RemoveMoveDestinationByMarker(MoveMarkerPath(*plan), in_use);
  EXPECT_EQ(::access((dir / "dst/a.img").c_str(), F_OK), 0)
      << "the VM's committed disk was deleted";
  EXPECT_NE(::access(MoveMarkerPath(*plan).c_str(), F_OK), 0) << "the marker itself goes";
}

TEST(StorageMovePlanTest, PrepareDestinationNamesTheProblem) {
  TempDir dir;
  MakeFile(dir / "file", 1, 1);
  auto st = PrepareDestination(dir / "file");
  ASSERT_FALSE(st.has_value());
  EXPECT_NE(st.error().message().find(dir / "file"), std::string::npos) << st.error().message();
  EXPECT_TRUE(PrepareDestination(dir / "a/b/c").has_value());
}

// A damaged source is refused before anything is copied: a plain copy would
// carry the damage over and report success.
TEST(StorageMovePlanTest, OfflineCopyRefusesADamagedSourceAndCopiesNothing) {
  TempDir dir;
  storage::Qcow2CreateOptions o;
  o.size = 4 << 20;
  ASSERT_TRUE(storage::CreateQcow2(dir / "a.qcow2", o).has_value());
  {
    auto d = storage::OpenQcow2Disk(dir / "a.qcow2", false);
    ASSERT_TRUE(d.has_value());
    std::vector<uint8_t> data(3 << 20, 7);
    ASSERT_TRUE((*d)->Write(data.data(), data.size(), 0).has_value());
  }
  MakeFile(dir / "b.img", 1 << 20, 2);
  auto def = Def({{dir / "b.img", config::DiskFormat::kRaw, false},
                  {dir / "a.qcow2", config::DiskFormat::kQcow2, false}});
  auto plan = PlanStorageMove(def, dir.path(), dir / "dst");
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  ASSERT_TRUE(PrepareDestination(plan->destination).has_value());
  // The tables (ferry appends them after the data) now point past the end.
  ASSERT_EQ(::truncate((dir / "a.qcow2").c_str(), 1 << 20), 0);
  auto copied = CopyStorageOffline(*plan, -1, nullptr);
  ASSERT_FALSE(copied.has_value());
  EXPECT_EQ(copied.error().code(), base::Code::kDataLoss);
  EXPECT_NE(copied.error().message().find(
                "disk 1 (" + (dir / "a.qcow2") +
                ") cannot be moved, nothing was copied: " + (dir / "a.qcow2") + ": "),
            std::string::npos)
      << copied.error().message();
  EXPECT_NE(copied.error().message().find("points past end of file"), std::string::npos);
  EXPECT_FALSE(::access((dir / "dst/b.img").c_str(), F_OK) == 0)
      << "the sound disk was not copied either";
  EXPECT_FALSE(::access((dir / "dst/a.qcow2").c_str(), F_OK) == 0);
}

TEST(StorageMovePlanTest, LoopingChainIsRefusedAsALoop) {
  TempDir dir;
  storage::Qcow2CreateOptions o;
  o.size = 1 << 20;
  ASSERT_TRUE(storage::CreateQcow2(dir / "b.qcow2", o).has_value());
  o.backing_file = "b.qcow2";
  ASSERT_TRUE(storage::CreateQcow2(dir / "a.qcow2", o).has_value());
  ASSERT_TRUE(
      storage::SetQcow2Backing(dir / "b.qcow2", "a.qcow2", config::DiskFormat::kQcow2).has_value());
  auto plan = PlanStorageMove(Def({{dir / "a.qcow2", config::DiskFormat::kQcow2, false}}),
                              dir.path(), dir / "dst");
  ASSERT_FALSE(plan.has_value());
  EXPECT_EQ(plan.error().code(), base::Code::kDataLoss);
  EXPECT_NE(plan.error().message().find("the backing chain of " + (dir / "a.qcow2") + " loops"),
            std::string::npos)
      << plan.error().message();
}

TEST(StorageMoveCliTest, ParsesMoveStorageAndJobs) {
  auto inv = ParseCommandLine({"move-storage", "web1", "--destination-storage-path", "rel/dir/",
                               "--max-rate", "8M", "--no-wait"},
                              nullptr, "/home/x");
  ASSERT_TRUE(inv.has_value()) << inv.error().message();
  EXPECT_EQ(inv->command, CliCommand::kMoveStorage);
  EXPECT_EQ(inv->method, "POST");
  EXPECT_EQ(inv->path, "/v1/vms/web1/move-storage");
  EXPECT_EQ(inv->body["destination_storage_path"], "/home/x/rel/dir");
  EXPECT_EQ(inv->body["max_bytes_per_second"], 8u << 20);
  EXPECT_TRUE(inv->no_wait);
  EXPECT_FALSE(ParseCommandLine({"move-storage", "web1"}, nullptr, "/").has_value());
  EXPECT_FALSE(ParseCommandLine({"move-storage", "--destination-storage-path", "/d"}, nullptr, "/")
                   .has_value());
  inv = ParseCommandLine({"jobs"}, nullptr, "/");
  ASSERT_TRUE(inv.has_value());
  EXPECT_EQ(inv->path, "/v1/jobs");
  inv = ParseCommandLine({"jobs", "move-1"}, nullptr, "/");
  ASSERT_TRUE(inv.has_value());
  EXPECT_EQ(inv->command, CliCommand::kJobShow);
  EXPECT_EQ(inv->path, "/v1/jobs/move-1");
}

TEST(StorageMoveCliTest, FormatsProgressAndReport) {
  nlohmann::json job = {{"id", "move-1"},          {"vm", "web1"},
                        {"kind", "live"},          {"destination", "/d"},
                        {"phase", "mirroring"},    {"bytes_total", 4 << 20},
                        {"bytes_done", 1 << 20},   {"bytes_per_second", 1 << 20},
                        {"eta_seconds", 3.0},      {"elapsed_seconds", 1.0},
                        {"switch_pause_us", 1500}, {"new_paths", {"/d/a.img"}}};
  std::string line = FormatMoveProgress(job);
  EXPECT_NE(line.find("mirroring"), std::string::npos) << line;
  EXPECT_NE(line.find("1.0 MiB / 4.0 MiB"), std::string::npos) << line;
  EXPECT_NE(line.find("25.0%"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 0:03"), std::string::npos) << line;
  job["phase"] = "completed";
  std::string report = FormatMoveReport(job);
  EXPECT_NE(report.find("paused 1.5 ms"), std::string::npos) << report;
  EXPECT_NE(report.find("/d/a.img"), std::string::npos) << report;
  job["kept_sources"] = {{{"path", "/s/base.img"}, {"used_by", "vm2"}}};
  report = FormatMoveReport(job);
  EXPECT_NE(report.find("kept:        /s/base.img (used by vm vm2)"), std::string::npos) << report;
  EXPECT_NE(FormatJobList({{"jobs", {job}}}).find("move-1"), std::string::npos);
  EXPECT_EQ(FormatDuration(3725), "1:02:05");
}

TEST(StorageMoveStatusTest, JsonRoundTrip) {
  MoveStatus s;
  s.job_id = "j";
  s.destination = "/d";
  s.phase = MovePhase::kFailed;
  s.bytes_total = 10;
  s.bytes_done = 4;
  s.bytes_skipped = 2;
  s.resumed = true;
  s.error_code = "resource-exhausted";
  s.error = "destination /d: No space left on device";
  auto back = MoveStatusFromJson(MoveStatusToJson(s));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->phase, MovePhase::kFailed);
  EXPECT_EQ(back->bytes_done, 4u);
  EXPECT_TRUE(back->resumed);
  EXPECT_EQ(back->error, s.error);
  EXPECT_FALSE(MoveStatusFromJson(nlohmann::json{{"phase", "bogus"}}).has_value());
}

// The worker's mover on real files: a writer thread keeps writing through the
// tracking disk during the whole move; afterwards the destination equals what
// the writer wrote last and the definition was committed. The source stays
// (ferryd removes it, knowing which files other VMs use).
TEST(StorageMoverTest, MovesARawDiskUnderLoadAndSwitches) {
  TempDir dir;
  constexpr uint64_t kSize = 8 << 20;
  MakeFile(dir / "a.img", kSize, 0x5a);
  auto inner = storage::OpenRawDisk(dir / "a.img", false);
  ASSERT_TRUE(inner.has_value());
  auto tracking = storage::TrackingDisk::Create(std::move(*inner));
  ASSERT_TRUE(tracking.has_value());
  std::atomic<bool> stop{false};
  std::vector<uint8_t> model(kSize, 0x5a);
  std::mutex model_mu;
  std::thread writer([&] {
    uint32_t seed = 1;
    std::vector<uint8_t> buf(4096);
    while (!stop) {
      seed = seed * 1103515245 + 12345;
      uint64_t off = (seed >> 8) % (kSize / 4096) * 4096;
      std::fill(buf.begin(), buf.end(), uint8_t(seed >> 24));
      std::lock_guard lock(model_mu);
      ASSERT_TRUE((*tracking)->Write(buf.data(), buf.size(), off).has_value());
      std::copy(buf.begin(), buf.end(), model.begin() + off);
    }
  });
  config::VmDefinition committed;
  StorageMover::Options o;
  o.vm_dir = dir.path();
  o.commit = [&](const config::VmDefinition& d) {
    committed = d;
    return base::Ok();
  };
  auto mover = StorageMover::Create(o);
  ASSERT_TRUE(mover.has_value());
  MoveRequest r;
  r.job_id = "t";
  r.destination = dir / "dst";
  ASSERT_TRUE(
      (*mover)
          ->Start(r, Def({{dir / "a.img", config::DiskFormat::kRaw, false}}), {tracking->get()})
          .has_value());
  MoveStatus s;
  EXPECT_TRUE(ferry_test::WaitFor("the move to end", std::chrono::seconds(30), [&] {
    s = (*mover)->Status();
    return IsTerminal(s.phase);
  }));
  stop = true;
  writer.join();
  ASSERT_EQ(s.phase, MovePhase::kCompleted) << s.error;
  ASSERT_EQ(committed.disks.size(), 1u);
  EXPECT_EQ(committed.disks[0].path, dir / "dst/a.img");
  EXPECT_EQ(::access((dir / "a.img").c_str(), F_OK), 0) << "the mover leaves the sources to ferryd";
  ASSERT_TRUE((*tracking)->Flush().has_value());
  EXPECT_EQ(ReadAll(dir / "dst/a.img"), std::string(model.begin(), model.end()));
}

}  // namespace
}  // namespace appliance
