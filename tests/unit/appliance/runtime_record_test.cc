#include "daemon/runtime_record.h"

#include <gtest/gtest.h>

#include "daemon/worker_exit.h"

namespace appliance {
namespace {

TEST(RuntimeRecordTest, RoundTrip) {
  RuntimeRecord r;
  r.state = VmState::kPaused;
  r.worker_pid = 321;
  r.control_socket = "/srv/vms/a/control.sock";
  r.last_error = "";
  r.changed_unix_ms = 1700000000000;
  auto back = ParseRuntime(FormatRuntime(r), "runtime.json");
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->state, VmState::kPaused);
  EXPECT_EQ(back->worker_pid, 321);
  EXPECT_EQ(back->control_socket, r.control_socket);
  EXPECT_EQ(back->changed_unix_ms, r.changed_unix_ms);
}

TEST(RuntimeRecordTest, CorruptRecordsAreDataLossNamingTheFile) {
  for (const char* text :
       {"", "{", "[]", R"({"state":"flying"})", R"({"worker_pid":1})",
        R"({"state":"running"})",  // running needs a worker
        R"({"state":"stopped","worker_pid":"x"})", R"({"state":"stopped","last_error":3})"}) {
    auto r = ParseRuntime(text, "/v/a/runtime.json");
    ASSERT_FALSE(r.has_value()) << text;
    EXPECT_EQ(r.error().code(), base::Code::kDataLoss) << text;
    EXPECT_NE(r.error().message().find("/v/a/runtime.json"), std::string::npos)
        << r.error().message();
  }
}

RuntimeRecord Running() {
  RuntimeRecord r;
  r.state = VmState::kRunning;
  r.worker_pid = 50;
  r.control_socket = "/s";
  return r;
}

TEST(WorkerExitTest, SignalMeansCrashedWhateverTheRecordSays) {
  WorkerExitRecord stale;
  stale.pid = 50;
  stale.state = "powered-off";
  ProcessExit killed{true, true, 9};
  RuntimeRecord after = RuntimeAfterWorkerExit(Running(), &stale, killed, 5);
  EXPECT_EQ(after.state, VmState::kCrashed);
  EXPECT_EQ(after.last_error, "worker exited on signal 9");
  EXPECT_EQ(after.worker_pid, 0);
  EXPECT_TRUE(after.control_socket.empty());
  EXPECT_EQ(after.changed_unix_ms, 5);
}

TEST(WorkerExitTest, RecordDecidesForCleanExits) {
  ProcessExit clean{true, false, 0};
  WorkerExitRecord r;
  r.pid = 50;
  r.state = "powered-off";
  EXPECT_EQ(RuntimeAfterWorkerExit(Running(), &r, clean, 0).state, VmState::kPoweredOff);
  r.state = "stopped";
  EXPECT_EQ(RuntimeAfterWorkerExit(Running(), &r, clean, 0).state, VmState::kStopped);
  r.state = "saved";
  r.saved_path = "/s.fvs";
  RuntimeRecord saved = RuntimeAfterWorkerExit(Running(), &r, clean, 0);
  EXPECT_EQ(saved.state, VmState::kSaved);
  EXPECT_EQ(saved.saved_state, "/s.fvs");
  r.state = "failed";
  r.message = "emulation failure at rip 0x100000";
  ProcessExit failed{true, false, 3};
  RuntimeRecord crashed = RuntimeAfterWorkerExit(Running(), &r, failed, 0);
  EXPECT_EQ(crashed.state, VmState::kCrashed);
  EXPECT_EQ(crashed.last_error, "vm failed: emulation failure at rip 0x100000");
}

TEST(WorkerExitTest, NoRecordIsACrashWithTheStatus) {
  RuntimeRecord after =
      RuntimeAfterWorkerExit(Running(), nullptr, ProcessExit{true, false, 134}, 0);
  EXPECT_EQ(after.state, VmState::kCrashed);
  EXPECT_EQ(after.last_error, "worker exited with status 134");
  RuntimeRecord unknown = RuntimeAfterWorkerExit(Running(), nullptr, ProcessExit{}, 0);
  EXPECT_EQ(unknown.state, VmState::kCrashed);
  EXPECT_NE(unknown.last_error.find("status unknown"), std::string::npos) << unknown.last_error;
}

}  // namespace
}  // namespace appliance
