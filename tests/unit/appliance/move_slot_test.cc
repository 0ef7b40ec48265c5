// The live-move slot a starting job holds (move_slot.h): refused at the
// limit with the message ferry prints, given back on every early return of
// a start, kept once the job runs. And PeerService's pre-flight table
// against the list in docs/live_move.md.
#include "move_slot.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "daemon/live_move_service.h"
#include "daemon/peer_service.h"
#include "job_table.h"
#include "support/temp_dir.h"

namespace appliance {
namespace {

// A job as JobTable needs it, with the live moves' own record and codec.
struct TestJob {
  LiveMoveJobRecord record;
  std::thread thread;
};
using Slot = MoveSlot<TestJob>;

constexpr size_t kLimit = 1;
constexpr const char* kWhat = "move vm b to 127.0.0.1:7430";

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::shared_ptr<TestJob> NewJob(const std::string& id, const std::string& vm) {
  auto job = std::make_shared<TestJob>();
  job->record.id = id;
  job->record.vm = vm;
  job->record.migration_id = "01234567-89ab-4def-8123-456789abcdef";
  job->record.started_unix_ms = 1;
  return job;
}

std::string Describe(const base::Error& e) {
  return std::string(base::CodeName(e.code())) + ": " + e.message();
}

class MoveSlotTest : public ::testing::Test {
 protected:
  std::string RecordPath(const std::string& id) { return dir_ / ("live-moves/" + id + ".json"); }
  void SetUp() override {
    ASSERT_TRUE(jobs_.Load([](LiveMoveJobRecord&) { return false; }).has_value());
  }

  ferry_test::TempDir dir_;
  JobTable<TestJob> jobs_{dir_ / "live-moves", 100, LiveMoveJobToJson, LiveMoveJobFromJson};
};

// Start's shape: every step after the slot may fail, and returns at once.
base::Result<int> StartLike(JobTable<TestJob>& jobs, std::shared_ptr<TestJob> job,
                            int fail_at_step) {
  ASSIGN_OR_RETURN(Slot slot, Slot::Acquire(jobs, std::move(job), kLimit, kWhat));
  for (int step = 1; step <= 3; ++step) {
    if (step == fail_at_step)
      return base::Error(base::Code::kUnavailable, "step " + std::to_string(step));
  }
  slot.Commit();
  return 0;
}

TEST_F(MoveSlotTest, AcquireAddsTheJobAndWritesItsRecord) {
  auto slot = Slot::Acquire(jobs_, NewJob("live-a", "a"), kLimit, kWhat);
  ASSERT_TRUE(slot.has_value()) << slot.error().ToString();
  EXPECT_EQ(slot->job()->record.id, "live-a");
  EXPECT_TRUE(jobs_.Contains("live-a"));
  EXPECT_TRUE(Exists(RecordPath("live-a")));
}

TEST_F(MoveSlotTest, LimitReachedIsRefusedNamingTheRunningJobs) {
  auto first = Slot::Acquire(jobs_, NewJob("live-a", "a"), kLimit, kWhat);
  ASSERT_TRUE(first.has_value());
  auto second = Slot::Acquire(jobs_, NewJob("live-b", "b"), kLimit, kWhat);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(
      Describe(second.error()),
      "resource-exhausted: cannot move vm b to 127.0.0.1:7430: 1 live moves are running, the host "
      "allows 1 "
      "at once (migration.max_live_moves): live-a (vm a); wait for one to finish (ferry jobs)");
  EXPECT_FALSE(jobs_.Contains("live-b"));
  EXPECT_FALSE(Exists(RecordPath("live-b")));
}

TEST_F(MoveSlotTest, EveryEarlyReturnGivesTheSlotBack) {
  for (int step = 1; step <= 3; ++step) {
    auto r = StartLike(jobs_, NewJob("live-a", "a"), step);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message(), "step " + std::to_string(step));
    EXPECT_FALSE(jobs_.Contains("live-a")) << "after a failure at step " << step;
    EXPECT_FALSE(Exists(RecordPath("live-a"))) << "after a failure at step " << step;
  }
  // The one slot is free: a start that does not fail gets it.
  EXPECT_TRUE(StartLike(jobs_, NewJob("live-b", "b"), 0).has_value());
}

TEST_F(MoveSlotTest, CommittedSlotIsKeptUntilTheJobFinishes) {
  ASSERT_TRUE(StartLike(jobs_, NewJob("live-a", "a"), 0).has_value());
  EXPECT_TRUE(jobs_.Contains("live-a"));
  EXPECT_TRUE(Exists(RecordPath("live-a")));
  auto refused = StartLike(jobs_, NewJob("live-b", "b"), 0);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), base::Code::kResourceExhausted);
  {
    // The job ends (as LiveMoveService::Finish does): the slot is free again.
    base::MutexLock lock(jobs_.mu());
    auto running = jobs_.RunningJobs();
    ASSERT_EQ(running.size(), 1u);
    running[0]->record.ended_unix_ms = 2;
    jobs_.RecordFinished(running[0]->record);
  }
  EXPECT_TRUE(StartLike(jobs_, NewJob("live-b", "b"), 0).has_value());
  EXPECT_TRUE(jobs_.Contains("live-a"));  // kept in the history
}

TEST_F(MoveSlotTest, AMovedSlotIsGivenBackOnce) {
  {
    auto acquired = Slot::Acquire(jobs_, NewJob("live-a", "a"), kLimit, kWhat);
    ASSERT_TRUE(acquired.has_value());
    Slot moved(std::move(*acquired));
    EXPECT_TRUE(jobs_.Contains("live-a"));
  }
  EXPECT_FALSE(jobs_.Contains("live-a"));
  EXPECT_TRUE(Slot::Acquire(jobs_, NewJob("live-b", "b"), kLimit, kWhat).has_value());
}

TEST_F(MoveSlotTest, StoppingFerrydRefuses) {
  jobs_.StopAndJoin();
  auto slot = Slot::Acquire(jobs_, NewJob("live-a", "a"), kLimit, kWhat);
  ASSERT_FALSE(slot.has_value());
  EXPECT_EQ(Describe(slot.error()), "unavailable: ferryd is stopping");
  EXPECT_FALSE(jobs_.Contains("live-a"));
}

// docs/live_move.md, "Destination ferryd": the numbered list under Prepare,
// one "N. `name`: ..." line per check.
std::vector<std::string> DocumentedPreflightChecks() {
  std::ifstream in(std::string(FERRY_SOURCE_DIR) + "/docs/live_move.md");
  std::vector<std::string> names;
  const std::regex item(R"(^\s+\d+\. `([a-z-]+)`:)");
  bool in_list = false;
  for (std::string line; std::getline(in, line);) {
    if (line.find("**Prepare** → pre-flight") != std::string::npos) {
      in_list = true;
      continue;
    }
    if (!in_list) continue;
    if (line.empty()) break;
    if (std::smatch m; std::regex_search(line, m, item)) names.push_back(m[1]);
  }
  return names;
}

TEST(PreflightChecksTest, MatchTheDocsListInOrder) {
  const std::vector<std::string> documented = DocumentedPreflightChecks();
  ASSERT_FALSE(documented.empty()) << "no pre-flight list found in docs/live_move.md";
  EXPECT_EQ(PeerService::PreflightCheckNames(), documented);
}

}  // namespace
}  // namespace appliance
