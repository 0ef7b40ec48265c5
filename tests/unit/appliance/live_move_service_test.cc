// The source ferryd's side of live moves against fake_worker (no KVM, no
// peer): LiveMoveService's refusals before anything moves, its job history
// across a restart, and VmService's removal of a VM whose worker exited
// "moved" (here: while ferryd was down).
#include "appliance/live_move_service.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <vector>

#include "appliance/process.h"
#include "appliance/worker_protocol.h"
#include "base/fd.h"
#include "test_dir.h"

namespace appliance {
namespace {

using nlohmann::json;

bool Exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

class LiveMoveServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("FAKE_WORKER_MODE");
    ::mkdir((dir_ / "guests").c_str(), 0755);
    std::ofstream(dir_ / "guests/memory-guest.bin") << "fake program";
    std::ofstream(dir_ / "a.img") << std::string(4096, '\0');
    std::ofstream(dir_ / "shared.img") << std::string(4096, '\0');
    options_.host.storage_root = dir_ / "root";
    options_.host.outgoing_enabled = true;
    options_.worker_binary = FAKE_WORKER_PATH;
    options_.guest_dir = dir_ / "guests";
    options_.worker_ready_timeout_ms = 10000;
    options_.exit_timeout_ms = 5000;
    Open();
  }
  void TearDown() override {
    live_.reset();
    while (!started_.empty()) KillAndReap(started_.back());
    service_.reset();
  }
  // Kills and reaps a started worker once: after the reap its pid may be
  // reused by an unrelated process.
  void KillAndReap(int64_t pid) {
    std::erase(started_, pid);
    ::kill(pid_t(pid), SIGKILL);
    ::waitpid(pid_t(pid), nullptr, 0);
  }
  void Open() {
    auto s = VmService::Open(options_);
    ASSERT_TRUE(s.has_value()) << s.error().ToString();
    service_ = std::move(*s);
    LiveMoveService::Options o;
    o.host = options_.host;
    o.jobs_dir = dir_ / "root/live-moves";
    o.prepare_timeout_ms = 2000;
    auto l = LiveMoveService::Open(*service_, o);
    ASSERT_TRUE(l.has_value()) << l.error().ToString();
    live_ = std::move(*l);
  }
  void Close() {
    live_.reset();
    service_.reset();
  }
  void CreateVm(const std::string& name, const std::vector<std::string>& disks) {
    CreateRequest req;
    req.definition.name = name;
    req.definition.memory_bytes = 64ull << 20;
    for (const auto& d : disks) req.definition.disks.push_back({d, config::DiskFormat::kRaw, false});
    req.guest = "memory";
    auto r = service_->Create(req);
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
  }
  json Start(const std::string& name) {
    auto r = service_->Act(name, VmAction::kStart, "");
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    if (!r.has_value()) return json();
    started_.push_back((*r)["worker"]["pid"].get<int64_t>());
    return *r;
  }
  LiveMoveArgs Args(const std::string& vm) {
    LiveMoveArgs a;
    a.vm = vm;
    a.host = "127.0.0.1:1";  // nothing listens there
    a.destination = dir_ / "dest";
    a.include_storage = true;
    return a;
  }
  std::string Error(const LiveMoveArgs& args) {
    auto r = live_->Start(args);
    return r ? std::string("(started)") : std::string(base::CodeName(r.error().code())) + ": " + r.error().message();
  }

  test::TestDir dir_;
  ServiceOptions options_;
  std::unique_ptr<VmService> service_;
  std::unique_ptr<LiveMoveService> live_;
  std::vector<int64_t> started_;
};

TEST_F(LiveMoveServiceTest, RefusalsBeforeAnythingMoves) {
  CreateVm("a", {dir_ / "a.img"});
  Start("a");
  LiveMoveArgs a = Args("a");
  a.include_storage = false;
  EXPECT_EQ(Error(a), "failed-precondition: --include-storage is required: the hosts share no storage");
  a = Args("a");
  a.destination = "relative/path";
  EXPECT_NE(Error(a).find("must be absolute"), std::string::npos);
  a = Args("a");
  a.streams = 0;
  EXPECT_NE(Error(a).find("streams must be from 1 to 64"), std::string::npos);
  a = Args("a");
  a.host = "[::1";
  EXPECT_NE(Error(a).find("invalid-argument"), std::string::npos) << Error(a);
  // The destination does not answer: the request's error, and the VM is not
  // left marked as moving (a second attempt gets the same answer, not "already moving").
  std::string unreachable = Error(Args("a"));
  EXPECT_NE(unreachable.find("move vm a to 127.0.0.1:1"), std::string::npos) << unreachable;
  EXPECT_EQ(Error(Args("a")), unreachable);
  EXPECT_EQ(service_->Show("a")->at("state"), "running");
  EXPECT_EQ(live_->List()->at("jobs").size(), 0u);
  // A stopped VM does not move live.
  CreateVm("s", {});
  EXPECT_NE(Error(Args("s")).find("only a running or paused vm"), std::string::npos);
  EXPECT_NE(Error(Args("nope")).find("not-found"), std::string::npos);
}

TEST_F(LiveMoveServiceTest, DisabledAndSmbHosts) {
  CreateVm("a", {});
  Start("a");
  Close();
  options_.host.outgoing_enabled = false;
  Open();
  EXPECT_EQ(Error(Args("a")),
            "failed-precondition: outgoing live moves are disabled on this host (host.toml "
            "migration.outgoing_enabled)");
  Close();
  options_.host.outgoing_enabled = true;
  options_.host.performance = config::PerformanceOption::kSmb;
  Open();
  EXPECT_EQ(Error(Args("a")), "unimplemented: performance option smb is not supported for live moves yet");
}

TEST_F(LiveMoveServiceTest, BeginLiveMoveHoldsTheVmUntilEnd) {
  CreateVm("a", {});
  Start("a");
  auto t = service_->BeginLiveMove("a");
  ASSERT_TRUE(t.has_value()) << t.error().ToString();
  EXPECT_FALSE(t->control_socket.empty());
  EXPECT_NE(service_->BeginLiveMove("a").error().message().find("already moving"), std::string::npos);
  EXPECT_FALSE(service_->Delete("a").has_value());
  service_->EndLiveMove("a");
  EXPECT_TRUE(service_->BeginLiveMove("a").has_value());
  service_->EndLiveMove("a");
}

TEST_F(LiveMoveServiceTest, WorkerThatMovedWhileFerrydWasDownIsRemoved) {
  CreateVm("a", {dir_ / "a.img", dir_ / "shared.img"});
  CreateVm("b", {dir_ / "shared.img"});
  int64_t pid = Start("a")["worker"]["pid"];
  const std::string vm_dir = dir_ / "root/vms/a";
  Close();
  // The worker commits at the destination and exits "moved" meanwhile.
  KillAndReap(pid);
  WorkerExitRecord record;
  record.pid = pid;
  record.state = "moved";
  record.message = "moved to 127.0.0.2";
  ASSERT_TRUE(base::WriteFileAtomically(vm_dir + "/worker.exit", EncodeExitRecord(record)).has_value());
  Open();
  auto list = service_->List();
  ASSERT_EQ(list->at("vms").size(), 1u) << list->dump();
  EXPECT_EQ(list->at("vms")[0]["name"], "b");
  EXPECT_FALSE(service_->Show("a").has_value());
  EXPECT_FALSE(Exists(dir_ / "a.img"));
  EXPECT_TRUE(Exists(dir_ / "shared.img")) << "vm b still uses it";
  EXPECT_FALSE(Exists(vm_dir));
  auto moved = service_->MovedAway("a");
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(moved->removed, std::vector<std::string>{dir_ / "a.img"});
  ASSERT_EQ(moved->kept.size(), 1u);
  EXPECT_EQ(moved->kept[0].path, dir_ / "shared.img");
  EXPECT_EQ(moved->kept[0].used_by, "b");
  // A new VM of that name can be created here again.
  CreateVm("a", {});
}

TEST_F(LiveMoveServiceTest, InterruptedJobIsListedAsFailedAfterARestart) {
  LiveMoveJobRecord r;
  r.id = "live-01234567";
  r.vm = "gone";
  r.host = "10.0.0.2";
  r.destination = "/srv";
  r.migration_id = "01234567-89ab-4def-8123-456789abcdef";
  r.started_unix_ms = 1000;
  r.status.phase = LiveMovePhase::kPrecopy;
  ASSERT_TRUE(base::WriteFileAtomically(dir_ / "root/live-moves/live-01234567.json", LiveMoveJobToJson(r).dump())
                  .has_value());
  Close();
  Open();
  EXPECT_TRUE(live_->Owns("live-01234567"));
  json job = *live_->Get("live-01234567");
  EXPECT_EQ(job["phase"], "failed");
  EXPECT_NE(job["error"]["message"].get<std::string>().find("interrupted"), std::string::npos) << job.dump();
  EXPECT_NE(job["ended_unix_ms"], 0);
  EXPECT_EQ(live_->List()->at("jobs").size(), 1u);
  EXPECT_FALSE(live_->Get("live-nope").has_value());
}

}  // namespace
}  // namespace appliance
