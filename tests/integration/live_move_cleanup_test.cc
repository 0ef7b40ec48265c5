// The destination's clean-up of a failed live move, when the clean-up itself
// fails (docs/live_move.md, "Clean-up at the destination"): host A on
// 127.0.0.1, host B on 127.0.0.2. A disk guest's move is held in pre-copy
// (--bandwidth-limit, incompressible disk data), B's destination directory
// is bind-mounted read-only over itself, and B's incoming worker is killed:
// the move fails, and B cannot remove the half-copied disk. Then the fault
// is removed and
//   - a retry of the move succeeds: its Prepare first retries the pending
//     clean-up, which removes the leftover (instead of "destination file …
//     already exists", which every retry said before);
//   - or B's ferryd is restarted while the clean-up is pending, and its start
//     removes the leftovers.
// Needs root (mount) and /dev/kvm.
#include "live_move_fixture.h"

namespace ferry_it {
namespace {

using namespace live_move_fixture;

class LiveMoveCleanUpTest : public LiveMoveFailureTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "a read-only bind mount needs root";
    LiveMoveFailureTest::SetUp();
    std::filesystem::create_directories(DestB());
  }
  void TearDown() override {
    if (!::testing::Test::IsSkipped()) LiveMoveFailureTest::TearDown();
  }

  std::string Leftover() const { return DestB() + "/d1.img.part"; }

  ProcessResult MoveD1() {
    return Ferry({"move-vm", "d1", HostB(), "--include-storage", "--destination-storage-path",
                  DestB(), "--streams", "2"},
                 120000);
  }

  // The fixture's TearDown unmounts what mounts_ lists.
  void MakeDestBReadOnly() {
    ProcessResult r = RunProcess({"/bin/mount", "--bind", DestB(), DestB()}, {}, 30000);
    ASSERT_EQ(r.exit_code, 0) << "bind mount " << DestB() << ": " << r.err;
    mounts_.push_back(DestB());
    r = RunProcess({"/bin/mount", "-o", "remount,bind,ro", DestB()}, {}, 30000);
    ASSERT_EQ(r.exit_code, 0) << "remount " << DestB() << " read-only: " << r.err;
  }
  void MakeDestBWritable() {
    ProcessResult r = RunProcess({"/bin/umount", DestB()}, {}, 30000);
    EXPECT_EQ(r.exit_code, 0) << "umount " << DestB() << ": " << r.err;
    std::erase(mounts_, DestB());
  }

  // The move fails with B's destination read-only, and B's clean-up with it:
  // the half-copied disk stays, and B keeps the move's incoming directory
  // with the marker. Returns the incoming directory.
  std::string FailAMoveWhoseCleanUpFails() {
    StartFerryd();
    b_->Start();
    StartDiskGuest("d1", 100);
    if (HasFailure()) return "";
    StartMove("d1", "1M");
    nlohmann::json job = WaitPhase("precopy", "make B's destination read-only");
    if (job.is_null()) return "";
    const std::string id = job["migration_id"].get<std::string>();
    const std::string incoming = b_->storage() + "/incoming/" + id;
    EXPECT_TRUE(Exists(Leftover())) << "the move wrote nothing at " << DestB() << " yet";
    MakeDestBReadOnly();
    if (HasFailure()) return "";
    // The fault that makes the move fail: its incoming worker dies.
    auto record = nlohmann::json::parse(
        ReadAll(b_->storage() + "/incoming-records/" + id + ".json"), nullptr, false);
    const pid_t worker = record.is_object() ? pid_t(record.value("pid", 0)) : 0;
    EXPECT_GT(worker, 0) << record.dump();
    if (worker > 0) ::kill(worker, SIGKILL);
    ProcessResult r = WaitMove();
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    std::cout << "the move failed: " << r.err << std::flush;
    EXPECT_EQ(State("d1"), "running");

    WaitFor("B's clean-up to fail", 30000, [&] { return Exists(incoming + "/cleanup-pending"); });
    EXPECT_TRUE(Exists(Leftover()));
    const std::string log = b_->Log();
    EXPECT_NE(log.find("clean-up failed (attempt 1"), std::string::npos) << log;
    std::cout << "B: " << log.substr(log.find("clean-up failed (attempt 1")) << std::flush;
    EXPECT_NE(log.find("remove " + Leftover() + ": Read-only file system"), std::string::npos)
        << log;
    // B answers that the move is aborted all the same.
    auto marker = nlohmann::json::parse(ReadAll(incoming + "/cleanup-pending"), nullptr, false);
    EXPECT_EQ(marker.value("files", nlohmann::json::array()), nlohmann::json::array({Leftover()}))
        << marker.dump();
    return incoming;
  }
};

TEST_F(LiveMoveCleanUpTest, ARetryAfterTheFaultIsGoneRemovesTheLeftoverAndSucceeds) {
  const std::string incoming = FailAMoveWhoseCleanUpFails();
  ASSERT_FALSE(HasFailure());
  // While the fault lasts a retry is refused, naming the leftover and why.
  ProcessResult r = MoveD1();
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  std::cout << "a retry while the fault lasts: " << r.err << std::flush;
  EXPECT_NE(
      r.err.find("destination file " + Leftover() + " is left over from the aborted incoming move"),
      std::string::npos)
      << r.err;
  EXPECT_TRUE(Exists(Leftover()));

  MakeDestBWritable();
  r = MoveD1();
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_FALSE(Exists(incoming)) << "the failed move's incoming directory is still at B";
  EXPECT_FALSE(Exists(Leftover()));
  WaitFor("d1 running at B", 30000, [&] { return b_->State("d1") == "running"; });
  EXPECT_TRUE(Exists(DestB() + "/d1.img"));
  EXPECT_NE(b_->Log().find("clean-up done"), std::string::npos) << b_->Log();
}

TEST_F(LiveMoveCleanUpTest, AFerrydRestartedWhileTheCleanUpIsPendingRemovesTheLeftovers) {
  const std::string incoming = FailAMoveWhoseCleanUpFails();
  ASSERT_FALSE(HasFailure());
  b_->Kill();
  MakeDestBWritable();
  b_->Start();  // returns once B answers: its start-up recovery ran before
  EXPECT_FALSE(Exists(incoming)) << "the pending clean-up was not continued at start";
  EXPECT_FALSE(Exists(Leftover()));
  EXPECT_NE(b_->Log().find("continuing its clean-up"), std::string::npos) << b_->Log();
  EXPECT_EQ(State("d1"), "running");
}

}  // namespace
}  // namespace ferry_it
