#include "daemon/supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>

#include <condition_variable>

extern char** environ;

namespace appliance {
namespace {

// Starts `sleep 60` as our child; the tests end it long before that.
int64_t SpawnSleeper() {
  pid_t pid = 0;
  char arg0[] = "sleep", arg1[] = "60";
  char* argv[] = {arg0, arg1, nullptr};
  if (::posix_spawnp(&pid, "sleep", nullptr, nullptr, argv, environ) != 0) return -1;
  return pid;
}

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s =
        Supervisor::Start([this](const std::string& name, int64_t pid, const ProcessExit& exit) {
          std::lock_guard lock(mu_);
          exits_.push_back({name, pid, exit});
          cv_.notify_all();
        });
    ASSERT_TRUE(s.has_value());
    supervisor_ = std::move(*s);
  }
  bool WaitForExits(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return exits_.size() >= n; });
  }
  struct Exit {
    std::string name;
    int64_t pid;
    ProcessExit exit;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Exit> exits_;
  std::unique_ptr<Supervisor> supervisor_;
};

TEST_F(SupervisorTest, ReportsAKilledChildWithItsSignal) {
  int64_t pid = SpawnSleeper();
  ASSERT_GT(pid, 0);
  auto pidfd = PidfdOpen(pid);
  ASSERT_TRUE(pidfd.has_value());
  ASSERT_TRUE(supervisor_->Watch("vm1", pid, std::move(*pidfd), /*is_child=*/true).has_value());
  EXPECT_EQ(supervisor_->watched_count(), 1u);
  ASSERT_TRUE(supervisor_->Signal(pid, SIGKILL).has_value());
  ASSERT_TRUE(WaitForExits(1)) << "timed out waiting for the supervisor to report the killed child";
  EXPECT_EQ(exits_[0].name, "vm1");
  EXPECT_EQ(exits_[0].pid, pid);
  EXPECT_TRUE(exits_[0].exit.known);
  EXPECT_TRUE(exits_[0].exit.signaled);
  EXPECT_EQ(exits_[0].exit.value, SIGKILL);
  EXPECT_EQ(exits_[0].exit.Describe(), "exited on signal 9");
  EXPECT_EQ(supervisor_->watched_count(), 0u);
  // Reaped: no zombie is left.
  EXPECT_NE(::kill(pid_t(pid), 0), 0);
}

TEST_F(SupervisorTest, WatchesSeveralAndReportsEachOnce) {
  int64_t a = SpawnSleeper(), b = SpawnSleeper();
  ASSERT_TRUE(supervisor_->Watch("a", a, *PidfdOpen(a), true).has_value());
  ASSERT_TRUE(supervisor_->Watch("b", b, *PidfdOpen(b), true).has_value());
  ASSERT_TRUE(supervisor_->Signal(b, SIGTERM).has_value());
  ASSERT_TRUE(WaitForExits(1));
  EXPECT_EQ(exits_[0].name, "b");
  EXPECT_EQ(exits_[0].exit.value, SIGTERM);
  ASSERT_TRUE(supervisor_->Signal(a, SIGKILL).has_value());
  ASSERT_TRUE(WaitForExits(2));
  EXPECT_EQ(exits_[1].name, "a");
  EXPECT_EQ(exits_.size(), 2u);
}

TEST_F(SupervisorTest, SignalToAnUnwatchedPidIsRefused) {
  EXPECT_EQ(supervisor_->Signal(1, SIGKILL).error().code(), base::Code::kNotFound);
}

}  // namespace
}  // namespace appliance
