// ferryd + ferry-vmm + ferry end to end: a VM's life, crashes, a ferryd
// restart, and the error paths an admin meets first.
#include <signal.h>

#include <fstream>

#include "support/ferryd_harness.h"

namespace ferry_it {
namespace {

const std::vector<std::string> kMemoryVm = {"--guest", "memory",    "--memory",
                                            "64M",     "--cmdline", "ws_mib=16 rate=2000 hb_ms=50"};

std::vector<std::string> Args(std::vector<std::string> head, const std::vector<std::string>& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

TEST_F(FerryTest, MemoryGuestRunsAndShowsHeartbeats) {
  StartFerryd();
  ProcessResult r = Ferry(Args({"vm", "create", "m1"}, kMemoryVm));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "vm m1 created\n");
  r = Ferry({"vm", "start", "m1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "vm m1: running\n");

  auto beats = WaitForHeartbeats("m1", "HB", 3);
  ASSERT_GE(beats.size(), 3u);
  for (size_t i = 0; i < beats.size(); ++i) {
    EXPECT_EQ(beats[i].n, i + 1);
    EXPECT_EQ(beats[i].errors, 0u);
  }
  r = Ferry({"vm", "list"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("m1    running  1      64 MiB  memory-guest.bin"), std::string::npos)
      << r.out;

  EXPECT_EQ(Ferry({"vm", "pause", "m1"}).exit_code, 0);
  EXPECT_EQ(State("m1"), "paused");
  EXPECT_EQ(Ferry({"vm", "resume", "m1"}).exit_code, 0);
  EXPECT_EQ(State("m1"), "running");
  r = Ferry({"vm", "delete", "m1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("stop it first"), std::string::npos) << r.err;
  r = Ferry({"vm", "stop", "m1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(State("m1"), "stopped");
  EXPECT_EQ(Ferry({"vm", "delete", "m1"}).exit_code, 0);
  EXPECT_EQ(Ferry({"vm", "show", "m1"}).exit_code, 1);
}

TEST_F(FerryTest, ConsoleFollowStreamsNewOutput) {
  StartFerryd();
  ASSERT_EQ(Ferry(Args({"vm", "create", "m1"}, kMemoryVm)).exit_code, 0);
  ASSERT_EQ(Ferry({"vm", "start", "m1"}).exit_code, 0);
  // A follow ends only when the client goes away: run it for a bounded time
  // and check it delivered heartbeats written after it began.
  size_t before = ParseHeartbeats(Console("m1"), "HB").size();
  ProcessResult r = Ferry({"console", "m1", "--follow"}, 5000);
  EXPECT_TRUE(r.timed_out) << "follow ended by itself: " << r.err;
  auto beats = ParseHeartbeats(r.out, "HB");
  ASSERT_FALSE(beats.empty()) << r.out;
  EXPECT_GT(beats.back().n, before + 5) << "the follow must keep delivering new heartbeats";
}

TEST_F(FerryTest, KilledWorkerMeansCrashedAndFerrydKeepsServing) {
  StartFerryd();
  ASSERT_EQ(Ferry(Args({"vm", "create", "m1"}, kMemoryVm)).exit_code, 0);
  ASSERT_EQ(Ferry({"vm", "start", "m1"}).exit_code, 0);
  int64_t pid = FerryJson({"vm", "show", "m1"})["worker"]["pid"];
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid_t(pid), SIGKILL), 0);
  WaitFor("vm m1 to be crashed", 10000, [&] { return State("m1") == "crashed"; });
  nlohmann::json vm = FerryJson({"vm", "show", "m1"});
  EXPECT_EQ(vm["last_error"], "worker exited on signal 9");
  ProcessResult r = Ferry({"vm", "show", "m1"});
  EXPECT_NE(r.out.find("last error: worker exited on signal 9"), std::string::npos) << r.out;
  EXPECT_EQ(Ferry({"host", "show"}).exit_code, 0);
  // And it starts again from scratch.
  ASSERT_EQ(Ferry({"vm", "start", "m1"}).exit_code, 0);
  WaitForHeartbeats("m1", "HB", 1);
}

TEST_F(FerryTest, FerrydRestartReattachesToTheRunningVm) {
  StartFerryd();
  ASSERT_EQ(Ferry(Args({"vm", "create", "m1"}, kMemoryVm)).exit_code, 0);
  ASSERT_EQ(Ferry({"vm", "start", "m1"}).exit_code, 0);
  int64_t pid = FerryJson({"vm", "show", "m1"})["worker"]["pid"];
  WaitForHeartbeats("m1", "HB", 2);

  KillFerryd();
  EXPECT_EQ(Ferry({"vm", "list"}).exit_code, 3) << "ferryd is down";
  uint64_t last_while_down = 0;
  // The VM keeps running without ferryd: its console keeps growing.
  WaitFor("heartbeats while ferryd is down", 10000, [&] {
    std::ifstream in(storage() + "/vms/m1/console.log");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto beats = ParseHeartbeats(text, "HB");
    if (last_while_down == 0 && !beats.empty()) last_while_down = beats.back().n;
    return !beats.empty() && beats.back().n >= last_while_down + 3;
  });

  StartFerryd();
  nlohmann::json vm = FerryJson({"vm", "show", "m1"});
  EXPECT_EQ(vm["state"], "running");
  EXPECT_EQ(vm["worker"]["pid"], pid) << "the same worker, re-attached";
  auto beats = WaitForHeartbeats("m1", "HB", size_t(last_while_down) + 3);
  for (size_t i = 0; i < beats.size(); ++i) {
    ASSERT_EQ(beats[i].n, i + 1);
    EXPECT_EQ(beats[i].errors, 0u);
  }
  // Fully under control again.
  EXPECT_EQ(Ferry({"vm", "pause", "m1"}).exit_code, 0);
  ProcessResult r = Ferry({"vm", "stop", "m1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(State("m1"), "stopped");
}

TEST_F(FerryTest, GuestPowerOffIsRecorded) {
  StartFerryd();
  ASSERT_TRUE(CreateAndStart("short", {"--guest", "memory", "--memory", "32M", "--cmdline",
                                       "ws_mib=4 hb_ms=50 seconds=1"}));
  ASSERT_EQ(WaitForPowerOff("short", 30000), "powered-off");
  EXPECT_NE(Console("short").find("MEMGUEST done"), std::string::npos);
  EXPECT_EQ(Ferry({"vm", "start", "short"}).exit_code, 0) << "a powered-off vm starts again";
}

TEST_F(FerryTest, MissingProgramDiskAndBadNamesAreClearErrors) {
  StartFerryd();
  ProcessResult r = Ferry({"vm", "create", "a", "--program", dir() + "/no-such-program.bin"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(
      r.err.find("guest program " + dir() + "/no-such-program.bin: No such file or directory"),
      std::string::npos)
      << r.err;
  r = Ferry({"vm", "create", "a", "--guest", "windows"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("guest \"windows\" not found"), std::string::npos) << r.err;
  r = Ferry({"vm", "create", "a", "--guest", "disk", "--disk", dir() + "/no-such-disk.img"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("disk " + dir() + "/no-such-disk.img: No such file or directory"),
            std::string::npos)
      << r.err;
  r = Ferry({"vm", "create", "bad name", "--guest", "memory"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("invalid vm name \"bad name\""), std::string::npos) << r.err;
  r = Ferry({"vm", "show", "nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "ferry: no vm named nope\n");
  EXPECT_EQ(Ferry({"vm", "list"}).out, "no vms\n") << "failed creates leave nothing behind";

  // A disk that vanishes after create: start fails and names it.
  std::ofstream(dir() + "/d.img") << std::string(1 << 20, '\0');
  ASSERT_EQ(Ferry({"vm", "create", "d", "--guest", "disk", "--disk", dir() + "/d.img"}).exit_code,
            0);
  ASSERT_EQ(::unlink((dir() + "/d.img").c_str()), 0);
  r = Ferry({"vm", "start", "d"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(dir() + "/d.img"), std::string::npos) << r.err;
  EXPECT_EQ(State("d"), "stopped");
}

TEST_F(FerryTest, UnreachableFerrydIsExplained) {
  ProcessResult r = RunProcess({std::string(FERRY_BIN_DIR) + "/ferry", "vm", "list"},
                               {"FERRY_SOCKET=" + dir() + "/nothing.sock"}, 10000);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "ferry: cannot reach ferryd at " + dir() +
                       "/nothing.sock: No such file or directory — is ferryd running?\n");
}

TEST_F(FerryTest, InvalidHostConfigStopsFerrydWithTheReason) {
  std::ofstream(config()) << "storage_root = \"" << storage()
                          << "\"\n[migration]\nmax_live_moves = 0\n";
  ProcessResult r =
      RunProcess({std::string(FERRY_BIN_DIR) + "/ferryd", "--config", config()}, {}, 10000);
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("migration.max_live_moves"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(config()), std::string::npos) << r.err;

  r = RunProcess({std::string(FERRY_BIN_DIR) + "/ferryd", "--config", dir() + "/missing.toml"}, {},
                 10000);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(dir() + "/missing.toml"), std::string::npos) << r.err;
}

TEST_F(FerryTest, MissingKvmIsReportedAtStart) {
  StartFerryd({"FERRY_KVM_DEVICE=/nonexistent/kvm"});
  ASSERT_EQ(Ferry(Args({"vm", "create", "m1"}, kMemoryVm)).exit_code, 0);
  EXPECT_NE(Ferry({"host", "show"}).out.find("/nonexistent/kvm (NOT available)"),
            std::string::npos);
  ProcessResult r = Ferry({"vm", "start", "m1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("KVM"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/kvm"), std::string::npos) << r.err;
  nlohmann::json vm = FerryJson({"vm", "show", "m1"});
  EXPECT_EQ(vm["state"], "stopped");
  EXPECT_NE(vm["last_error"].get<std::string>().find("KVM"), std::string::npos);
}

}  // namespace
}  // namespace ferry_it
