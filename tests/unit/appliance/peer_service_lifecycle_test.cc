// PeerService: launching the incoming worker, adopting a committed move,
// cleaning up (also when that fails) and recovery after a ferryd restart (the
// fixture: peer_service_fixture.h).
#include "peer_service_fixture.h"

namespace appliance::peer_service_test {
namespace {

// ---- Launch, adopt, clean up --------------------------------------------------

TEST_F(PeerServiceTest, PrepareLaunchesTheIncomingWorker) {
  ASSERT_NO_FATAL_FAILURE(StartPeerAndPrepareVm1());
  EXPECT_EQ(reply_["data_host"], "127.0.0.1");
  EXPECT_GT(reply_["data_port"].get<int>(), 0);
  const std::string dir = IncomingDir(req_.migration_id);
  EXPECT_TRUE(PathExists(dir + "/vm.toml"));
  EXPECT_TRUE(PathExists(dir + "/" + kIncomingPlanFile));
  EXPECT_TRUE(PathExists(dir_ / "dest"));
  EXPECT_EQ(Record(req_.migration_id)["state"], "running");
}

TEST_F(PeerServiceTest, CommitIsAdoptedWhileTheWorkerRuns) {
  ASSERT_NO_FATAL_FAILURE(StartPeerAndPrepareVm1());
  Tell(reply_, 'c');
  ASSERT_TRUE(Eventually([&] { return vms_->incoming().HasVm("vm1"); }));
  auto shown = ShowJson("vm1");
  ASSERT_TRUE(shown.has_value());
  EXPECT_EQ((*shown)["state"], "running") << shown->dump();
  EXPECT_TRUE(IsSymlink(IncomingDir(req_.migration_id)))
      << "keeps the worker's --vm-dir paths valid";
  EXPECT_TRUE(PathExists(dir_ / "root/vms/vm1/vm.toml"));
  EXPECT_EQ(Status(req_.migration_id)["state"], "committed");
  EXPECT_EQ(Abort(req_.migration_id)["state"], "committed")
      << "an abort after the commit changes nothing";
  EXPECT_TRUE(vms_->incoming().HasVm("vm1"));

  // The adopted VM is an ordinary one: stopping it works, and once its
  // worker is gone the symlink goes too.
  auto stopped = vms_->Act("vm1", VmAction::kStop, "");
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_TRUE(Eventually([&] { return !PathExists(IncomingDir(req_.migration_id)); }));
  EXPECT_EQ(Status(req_.migration_id)["state"], "committed");
}

// The runtime record goes in before the rename, so the adopted VM's
// directory holds it (a ferryd restarting right after finds the VM with its
// worker); a VM paused at the source is recorded and shown paused.
TEST_F(PeerServiceTest, AdoptionRecordsTheStateTheVmArrivedIn) {
  StartPeer();
  for (bool paused : {false, true}) {
    const std::string name = paused ? "paused1" : "running1";
    SCOPED_TRACE(name);
    PrepareRequest req = Request(name);
    req.paused = paused;
    auto reply = Prepare(req);
    ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
    Tell(*reply, 'c');
    ASSERT_TRUE(Eventually([&] { return vms_->incoming().HasVm(name); }));
    const std::string expected = paused ? "paused" : "running";
    auto text = base::ReadFileToString(dir_ / ("root/vms/" + name + "/runtime.json"));
    ASSERT_TRUE(text.has_value()) << text.error().ToString();
    auto runtime = ParseRuntime(*text, "runtime.json");
    ASSERT_TRUE(runtime.has_value()) << runtime.error().ToString();
    EXPECT_EQ(ToString(runtime->state), expected) << *text;
    EXPECT_EQ(runtime->worker_pid, Record(req.migration_id)["pid"].get<int64_t>());
    auto shown = ShowJson(name);
    ASSERT_TRUE(shown.has_value());
    EXPECT_EQ((*shown)["state"], expected) << shown->dump();
  }
}

TEST_F(PeerServiceTest, CommitThenCrashIsAdoptedAsCrashed) {
  ASSERT_NO_FATAL_FAILURE(StartPeerAndPrepareVm1());
  Tell(reply_, 'e');
  ASSERT_TRUE(Eventually([&] { return vms_->incoming().HasVm("vm1"); }));
  ASSERT_TRUE(Eventually([&] { return (*ShowJson("vm1"))["state"] == "crashed"; }))
      << ShowJson("vm1")->dump();
  EXPECT_EQ(Status(req_.migration_id)["state"], "committed");
}

TEST_F(PeerServiceTest, WorkerFailureIsCleanedUp) {
  ASSERT_NO_FATAL_FAILURE(StartPeerAndPrepareVm1());
  std::ofstream(req_.disks[0].top + ".part") << "half a disk";
  Tell(reply_, 'x');
  ASSERT_TRUE(Eventually([&] { return !PathExists(IncomingDir(req_.migration_id)); }));
  EXPECT_FALSE(PathExists(req_.disks[0].top + ".part"));
  EXPECT_FALSE(vms_->incoming().HasVm("vm1"));
  json status = Status(req_.migration_id);
  EXPECT_EQ(status["state"], "aborted");
  EXPECT_NE(status["message"].get<std::string>().find("fake stream failure"), std::string::npos)
      << status.dump();
  // The slot and the name are free again.
  EXPECT_TRUE(Prepare(Request("vm1")).has_value());
}

TEST_F(PeerServiceTest, AbortStopsTheWorkerAndRemovesTheFiles) {
  ASSERT_NO_FATAL_FAILURE(StartPeerAndPrepareVm1());
  std::ofstream(req_.disks[0].top) << "partly written";
  const int64_t pid = Record(req_.migration_id)["pid"];
  EXPECT_EQ(Abort(req_.migration_id)["state"], "aborted");
  EXPECT_FALSE(PathExists(IncomingDir(req_.migration_id)));
  EXPECT_FALSE(PathExists(req_.disks[0].top));
  EXPECT_FALSE(PidfdOpen(pid).has_value()) << "worker gone and reaped";
  EXPECT_EQ(Status(req_.migration_id)["state"], "aborted");
}

// The name is reserved from Prepare until the move ends: a VM created
// under it meanwhile would make the adoption fail after the commit.
TEST_F(PeerServiceTest, CreateRefusesANameArrivingUntilTheMoveIsAborted) {
  ASSERT_NO_FATAL_FAILURE(StartPeerAndPrepareVm1());
  CreateRequest create;
  create.definition.name = "vm1";
  create.definition.memory_bytes = 64ull << 20;
  create.guest = "memory";
  auto refused = vms_->Create(create);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), base::Code::kAlreadyExists) << refused.error().ToString();
  EXPECT_NE(refused.error().message().find("vm vm1 is arriving here by a live move"),
            std::string::npos)
      << refused.error().message();
  EXPECT_FALSE(vms_->incoming().HasVm("vm1"));

  EXPECT_EQ(Abort(req_.migration_id)["state"], "aborted");
  auto created = vms_->Create(create);
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  EXPECT_TRUE(vms_->incoming().HasVm("vm1"));
}

TEST_F(PeerServiceTest, StatusOfARunningMoveEndsIt) {
  ASSERT_NO_FATAL_FAILURE(StartPeerAndPrepareVm1());
  json status = Status(req_.migration_id);
  EXPECT_EQ(status["state"], "aborted") << status.dump();
  EXPECT_FALSE(PathExists(IncomingDir(req_.migration_id)));
}

TEST_F(PeerServiceTest, StatusKillsAWorkerThatIgnoresTheAbort) {
  ::setenv("FAKE_INCOMING_MODE", "ignore-abort", 1);
  ASSERT_NO_FATAL_FAILURE(StartPeerAndPrepareVm1());
  const int64_t pid = Record(req_.migration_id)["pid"];
  EXPECT_EQ(Status(req_.migration_id)["state"], "aborted");
  EXPECT_FALSE(PidfdOpen(pid).has_value());
}

TEST_F(PeerServiceTest, StatusAfterACommitDoesNotKill) {
  options_.poll_interval_ms = 3600000;  // the monitor must not adopt first
  ASSERT_NO_FATAL_FAILURE(StartPeerAndPrepareVm1());
  ASSERT_NO_FATAL_FAILURE(CommitVm1());
  EXPECT_EQ(Status(req_.migration_id)["state"], "committed");
  auto shown = ShowJson("vm1");
  ASSERT_TRUE(shown.has_value());
  EXPECT_EQ((*shown)["state"], "running");
}

// ---- Clean-up that fails ------------------------------------------------------
// The fault: vm1's ".part" name is a non-empty directory, which unlink()
// cannot remove (EISDIR), as a read-only or immutable destination would
// refuse. Removing the directory removes the fault.

class PeerCleanUpTest : public PeerServiceTest {
 protected:
  std::string Part() const { return req_.disks[0].top + ".part"; }
  std::string Marker() { return IncomingDir(req_.migration_id) + "/cleanup-pending"; }
  // Prepares vm1, plants the fault, fails the worker, and waits until the
  // first clean-up attempt failed.
  void FailVm1WithAnUndeletableLeftover() {
    ASSERT_NO_FATAL_FAILURE(StartPeerAndPrepareVm1());
    std::ofstream(req_.disks[0].top) << "partly written";
    ASSERT_TRUE(std::filesystem::create_directory(Part()));
    std::ofstream(Part() + "/in-the-way") << "x";
    Tell(reply_, 'x');
    ASSERT_TRUE(Eventually([&] { return PathExists(Marker()); }));
  }
  void RemoveTheFault() { std::filesystem::remove_all(Part()); }
};

TEST_F(PeerCleanUpTest, AFailedCleanUpIsRecordedAndRetriedUntilItSucceeds) {
  options_.cleanup_retry_min_ms = 50;
  options_.cleanup_retry_max_ms = 200;
  ASSERT_NO_FATAL_FAILURE(FailVm1WithAnUndeletableLeftover());
  // What could go went; what could not is listed with the reason.
  EXPECT_FALSE(PathExists(req_.disks[0].top));
  json marker = json::parse(*base::ReadFileToString(Marker()));
  EXPECT_EQ(marker["files"], json::array({Part()})) << marker.dump();
  EXPECT_NE(marker["error"].get<std::string>().find("remove " + Part() + ": Is a directory"),
            std::string::npos)
      << marker.dump();
  EXPECT_TRUE(PathExists(IncomingDir(req_.migration_id) + "/" + kIncomingPlanFile));
  // The move is over all the same: aborted, its name free.
  EXPECT_EQ(Status(req_.migration_id)["state"], "aborted");
  EXPECT_TRUE(vms_->incoming().NameConflict("vm1").empty()) << vms_->incoming().NameConflict("vm1");
  // Still failing: retried (the marker counts the attempts), nothing else touched.
  ASSERT_TRUE(Eventually([&] {
    auto text = base::ReadFileToString(Marker());
    return text && json::parse(*text, nullptr, false).value("attempts", 0) >= 3;
  }));
  EXPECT_TRUE(PathExists(Part() + "/in-the-way"));
  RemoveTheFault();
  ASSERT_TRUE(Eventually([&] { return !PathExists(IncomingDir(req_.migration_id)); }));
  EXPECT_FALSE(PathExists(Part()));
  EXPECT_EQ(Status(req_.migration_id)["state"], "aborted");
}

TEST_F(PeerCleanUpTest, APrepareRetriesTheCleanUpOfLeftoversInItsWay) {
  options_.cleanup_retry_min_ms = 3600000;  // only the Prepare retries
  ASSERT_NO_FATAL_FAILURE(FailVm1WithAnUndeletableLeftover());
  const std::string aborted = req_.migration_id;
  ExpectRefused(Prepare(Request("vm1")), base::Code::kFailedPrecondition,
                "destination file " + Part() + " is left over from the aborted incoming move " +
                    aborted + " of vm vm1, whose clean-up keeps failing (remove " + Part() +
                    ": Is a directory)");
  RemoveTheFault();
  auto again = Prepare(Request("vm1"));
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  EXPECT_FALSE(PathExists(IncomingDir(aborted)));
}

TEST_F(PeerCleanUpTest, AFerrydStartContinuesAPendingCleanUp) {
  options_.cleanup_retry_min_ms = 3600000;  // only starts retry
  ASSERT_NO_FATAL_FAILURE(FailVm1WithAnUndeletableLeftover());
  peer_.reset();
  // Restarted with the fault still there: tried once more, still pending.
  StartPeer();
  EXPECT_EQ(json::parse(*base::ReadFileToString(Marker())).value("attempts", 0), 2) << Marker();
  EXPECT_EQ(Status(req_.migration_id)["state"], "aborted");
  peer_.reset();
  RemoveTheFault();
  StartPeer();
  EXPECT_FALSE(PathExists(IncomingDir(req_.migration_id)));
  EXPECT_EQ(Status(req_.migration_id)["state"], "aborted");
  EXPECT_TRUE(Prepare(Request("vm1")).has_value());
}

TEST_F(PeerCleanUpTest, ACleanUpNeverRemovesAFileAVmUses) {
  ASSERT_NO_FATAL_FAILURE(StartPeerAndPrepareVm1());
  std::ofstream(req_.disks[0].top) << std::string(4096, 'd');  // vm create checks it is a disk
  // Someone made a VM of this host use the file meanwhile.
  CreateRequest create;
  create.definition.name = "other";
  create.definition.memory_bytes = 64ull << 20;
  create.definition.disks.push_back(
      config::DiskSpec{req_.disks[0].top, config::DiskFormat::kRaw, false});
  create.guest = "memory";
  auto created = vms_->Create(create);
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  Tell(reply_, 'x');
  ASSERT_TRUE(Eventually([&] { return !PathExists(IncomingDir(req_.migration_id)); }));
  EXPECT_TRUE(PathExists(req_.disks[0].top));
}

// ---- Recovery after a ferryd restart -----------------------------------------

TEST_F(PeerServiceTest, RestartAdoptsACommittedMove) {
  options_.poll_interval_ms = 3600000;
  ASSERT_NO_FATAL_FAILURE(StartPeerAndPrepareVm1());
  ASSERT_NO_FATAL_FAILURE(CommitVm1());
  peer_.reset();
  EXPECT_FALSE(vms_->incoming().HasVm("vm1"));
  StartPeer();
  EXPECT_TRUE(vms_->incoming().HasVm("vm1"));
  EXPECT_EQ((*ShowJson("vm1"))["state"], "running");
  EXPECT_EQ(Status(req_.migration_id)["state"], "committed");
}

TEST_F(PeerServiceTest, RestartWatchesARunningMoveAgain) {
  ASSERT_NO_FATAL_FAILURE(StartPeerAndPrepareVm1());
  peer_.reset();
  StartPeer();
  EXPECT_TRUE(PathExists(IncomingDir(req_.migration_id) + "/vm.toml"));
  Tell(reply_, 'c');
  ASSERT_TRUE(Eventually([&] { return vms_->incoming().HasVm("vm1"); }));
}

TEST_F(PeerServiceTest, RestartCleansUpAMoveWhoseWorkerDied) {
  ASSERT_NO_FATAL_FAILURE(StartPeerAndPrepareVm1());
  peer_.reset();
  const int64_t pid = Record(req_.migration_id)["pid"];
  auto pidfd = PidfdOpen(pid);
  ASSERT_TRUE(pidfd.has_value());
  ASSERT_TRUE(PidfdSignal(pidfd->get(), SIGKILL).has_value());
  ASSERT_TRUE(PidfdReap(pidfd->get(), false).has_value());
  StartPeer();
  EXPECT_FALSE(PathExists(IncomingDir(req_.migration_id)));
  EXPECT_EQ(Status(req_.migration_id)["state"], "aborted");
}

}  // namespace
}  // namespace appliance::peer_service_test
