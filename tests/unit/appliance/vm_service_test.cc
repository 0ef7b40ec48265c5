// VmService against fake_worker (the real control protocol, no KVM): the
// life-cycle, persistence, crash detection and re-attachment after a restart.
#include "daemon/vm_service.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <thread>

#include "base/clock.h"
#include "common/process.h"
#include "fakes/stray_workers.h"
#include "ipc/worker_protocol.h"
#include "storage/qcow2.h"
#include "support/temp_dir.h"
#include "support/wait_for.h"

namespace appliance {
namespace {

using nlohmann::json;

class VmServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("FAKE_WORKER_MODE");
    ::unsetenv("FAKE_WORKER_CODE");
    std::ofstream(dir_ / "disk.img") << std::string(4096, '\0');
    options_.host.storage_root = dir_ / "root";
    options_.worker_binary = FAKE_WORKER_PATH;
    options_.guest_dir = fake::MakeGuestDir(dir_.path());
    options_.worker_ready_timeout_ms = 10000;
    options_.exit_timeout_ms = 5000;
    Open();
  }

  void TearDown() override {
    // Every worker this test started goes, and is reaped.
    fake::StrayWorkers strays(started_);
    service_.reset();
    strays.Reap();
    ::unsetenv("FAKE_WORKER_MODE");
    ::unsetenv("FAKE_WORKER_CODE");
  }

  void Open() {
    auto s = VmService::Open(options_);
    ASSERT_TRUE(s.has_value()) << s.error().ToString();
    service_ = std::move(*s);
  }

  json CreateVm(const std::string& name) {
    CreateRequest req;
    req.definition.name = name;
    req.definition.memory_bytes = 64ull << 20;
    req.guest = "memory";
    auto r = service_->Create(req);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.has_value() ? VmViewToJson(*r) : json();
  }

  // Show as the API emits it.
  base::Result<json> ShowJson(const std::string& name) {
    auto r = service_->Show(name);
    if (!r) return r.error();
    return VmViewToJson(*r);
  }
  json ListJson() { return VmListToJson(service_->List()); }

  json Act(const std::string& name, VmAction action, const std::string& file = "") {
    auto acted = service_->Act(name, action, file);
    EXPECT_TRUE(acted.has_value()) << ToString(action) << ": " << acted.error().ToString();
    if (!acted.has_value()) return json();
    json r = VmViewToJson(*acted);
    if (r.contains("worker") && r["worker"].is_object())
      started_.push_back(r["worker"]["pid"].get<int64_t>());
    return r;
  }

  // Polls show (the supervisor updates it from its own thread) until the
  // state is `state`; fails the test after 10 s.
  json WaitForState(const std::string& name, const std::string& state) {
    json vm;
    ::testing::AssertionResult reached =
        ferry_test::WaitFor("vm " + name + " to become " + state, std::chrono::seconds(10), [&] {
          auto r = ShowJson(name);
          if (r.has_value()) vm = *r;
          return r.has_value() && (*r)["state"] == state;
        });
    EXPECT_TRUE(reached) << "last: " << vm.dump();
    return vm;
  }

  ferry_test::TempDir dir_;
  ServiceOptions options_;
  std::unique_ptr<VmService> service_;
  std::vector<int64_t> started_;
};

bool Alive(int64_t pid) {
  // A zombie (exited, not yet reaped) counts as gone.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  auto paren = line.rfind(')');
  return paren != std::string::npos && line.size() > paren + 2 && line[paren + 2] != 'Z';
}

TEST_F(VmServiceTest, CreateListShowDelete) {
  json vm = CreateVm("web1");
  EXPECT_EQ(vm["state"], "stopped");
  EXPECT_EQ(vm["definition"]["program"], dir_ / "guests/memory-guest.bin");
  EXPECT_EQ(vm["id"].get<std::string>().size(), 36u);
  json list = ListJson();
  ASSERT_EQ(list["vms"].size(), 1u);
  EXPECT_EQ(list["vms"][0]["name"], "web1");
  EXPECT_TRUE(ShowJson("web1").has_value());
  ASSERT_TRUE(service_->Delete("web1").has_value());
  EXPECT_EQ(ShowJson("web1").error().code(), base::Code::kNotFound);
  EXPECT_EQ(service_->Delete("web1").error().code(), base::Code::kNotFound);
}

// A storage move rewrites vm.toml and copies the files the checkpoints name:
// checkpoint operations wait until it ends.
TEST_F(VmServiceTest, CheckpointsAreRefusedDuringAStorageMove) {
  CreateRequest req;
  req.definition.name = "m1";
  req.definition.memory_bytes = 64ull << 20;
  req.definition.disks = {{dir_ / "disk.img", config::DiskFormat::kRaw, false}};
  req.guest = "memory";
  ASSERT_TRUE(service_->Create(req).has_value());
  ASSERT_TRUE(service_->moves().BeginStorageMove("m1").has_value());
  EXPECT_TRUE(service_->moves().StorageMoveActive("m1"));
  auto created = service_->checkpoints().Create("m1", "c1");
  ASSERT_FALSE(created.has_value());
  EXPECT_EQ(created.error().code(), base::Code::kFailedPrecondition);
  EXPECT_NE(created.error().message().find("storage move"), std::string::npos)
      << created.error().message();
  EXPECT_EQ(service_->checkpoints().Apply("m1", "c1", true).error().code(),
            base::Code::kFailedPrecondition);
  EXPECT_EQ(service_->checkpoints().Delete("m1", "c1").error().code(),
            base::Code::kFailedPrecondition);
  service_->moves().EndStorageMove("m1", false);
  auto again = service_->checkpoints().Create("m1", "c1");
  EXPECT_TRUE(again.has_value()) << again.error().ToString();
}

// The files a move of one VM must keep: whatever the others use, backing
// chains included.
TEST_F(VmServiceTest, FilesUsedByOtherVmsFollowBackingChains) {
  storage::Qcow2CreateOptions base;
  base.size = 1 << 20;
  ASSERT_TRUE(storage::CreateQcow2(dir_ / "base.qcow2", base).has_value());
  storage::Qcow2CreateOptions overlay;
  overlay.backing_file = "base.qcow2";
  ASSERT_TRUE(storage::CreateQcow2(dir_ / "a.qcow2", overlay).has_value());
  ASSERT_TRUE(storage::CreateQcow2(dir_ / "b.qcow2", overlay).has_value());
  for (const char* name : {"a", "b"}) {
    CreateRequest req;
    req.definition.name = name;
    req.definition.memory_bytes = 64ull << 20;
    req.definition.disks = {
        {dir_ / (std::string(name) + ".qcow2"), config::DiskFormat::kQcow2, false}};
    req.guest = "memory";
    ASSERT_TRUE(service_->Create(req).has_value());
  }
  auto used = service_->moves().FilesUsedByOtherVms("a");
  EXPECT_EQ(used, (std::map<std::string, std::string>{{dir_ / "b.qcow2", "b"},
                                                      {dir_ / "base.qcow2", "b"}}));
}

TEST_F(VmServiceTest, CreateErrorsAreClear) {
  CreateRequest req;
  req.definition.name = "a";
  req.guest = "nope";
  auto r = service_->Create(req);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kNotFound);
  EXPECT_NE(r.error().message().find("guest \"nope\" not found"), std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("available: memory"), std::string::npos)
      << r.error().message();

  req.guest.clear();
  req.definition.program = dir_ / "missing.bin";
  r = service_->Create(req);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kNotFound);
  EXPECT_NE(r.error().message().find("missing.bin"), std::string::npos) << r.error().message();

  req.definition.program = "relative.bin";
  EXPECT_EQ(service_->Create(req).error().code(), base::Code::kInvalidArgument);

  req.definition.program.clear();
  req.guest = "memory";
  req.definition.disks.push_back({dir_ / "no-such-disk.img", config::DiskFormat::kRaw, false});
  r = service_->Create(req);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("disk " + (dir_ / "no-such-disk.img")), std::string::npos)
      << r.error().message();
  EXPECT_TRUE(ListJson().at("vms").empty()) << "a failed create must leave nothing behind";

  CreateVm("dup");
  req.definition.disks.clear();
  req.definition.name = "dup";
  EXPECT_EQ(service_->Create(req).error().code(), base::Code::kAlreadyExists);
}

TEST_F(VmServiceTest, StartPauseResumeStop) {
  CreateVm("a");
  json vm = Act("a", VmAction::kStart);
  EXPECT_EQ(vm["state"], "running");
  int64_t pid = vm["worker"]["pid"];
  EXPECT_TRUE(Alive(pid));
  auto shown = ShowJson("a");
  ASSERT_TRUE(shown.has_value());
  EXPECT_EQ((*shown)["worker"]["vm_state"], "running") << "show asks the live worker";
  EXPECT_EQ(Act("a", VmAction::kPause)["state"], "paused");
  EXPECT_EQ(service_->Act("a", VmAction::kPause, "").error().code(),
            base::Code::kFailedPrecondition);
  EXPECT_EQ(Act("a", VmAction::kResume)["state"], "running");
  EXPECT_EQ(service_->Delete("a").error().code(), base::Code::kFailedPrecondition);
  EXPECT_EQ(Act("a", VmAction::kStop)["state"], "stopped");
  EXPECT_FALSE(Alive(pid));
  EXPECT_EQ(ShowJson("a")->at("worker"), nullptr);
}

TEST_F(VmServiceTest, SaveThenRestoreRemovesTheStaleStateFile) {
  CreateVm("a");
  Act("a", VmAction::kStart);
  json saved = Act("a", VmAction::kSave);
  EXPECT_EQ(saved["state"], "saved");
  std::string state_file = dir_ / "root/vms/a/saved.fvs";
  EXPECT_EQ(saved["saved_state"], state_file);
  EXPECT_EQ(*base::ReadFileToString(state_file), "fake-state\n");
  auto start = service_->Act("a", VmAction::kStart, "");
  ASSERT_FALSE(start.has_value());
  EXPECT_NE(start.error().message().find("restore it"), std::string::npos);
  EXPECT_EQ(Act("a", VmAction::kRestore)["state"], "running");
  EXPECT_FALSE(base::ReadFileToString(state_file).has_value())
      << "the used state file must be gone";
}

TEST_F(VmServiceTest, SaveToAndRestoreFromAnExplicitFileKeepsIt) {
  CreateVm("a");
  Act("a", VmAction::kStart);
  std::string file = dir_ / "elsewhere.fvs";
  EXPECT_EQ(Act("a", VmAction::kSave, file)["saved_state"], file);
  EXPECT_EQ(Act("a", VmAction::kRestore)["state"], "running");
  EXPECT_TRUE(base::ReadFileToString(file).has_value()) << "an admin's file is theirs to keep";
  EXPECT_EQ(service_->Act("a", VmAction::kSave, "rel.fvs").error().code(),
            base::Code::kInvalidArgument);
}

TEST_F(VmServiceTest, CorruptStateFileIsRefusedAndTheVmStaysSaved) {
  CreateVm("a");
  Act("a", VmAction::kStart);
  Act("a", VmAction::kSave);
  std::ofstream(dir_ / "root/vms/a/saved.fvs") << "fake-stbte\n";
  auto r = service_->Act("a", VmAction::kRestore, "");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kDataLoss);
  EXPECT_NE(r.error().message().find("corrupt state file, nothing was restored"), std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("checksum mismatch"), std::string::npos)
      << r.error().message();
  json vm = *ShowJson("a");
  EXPECT_EQ(vm["state"], "saved");
  EXPECT_NE(vm["last_error"].get<std::string>().find("corrupt"), std::string::npos);
}

TEST_F(VmServiceTest, RestoreWithoutStateIsNotFound) {
  CreateVm("a");
  auto r = service_->Act("a", VmAction::kRestore, "");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kNotFound);
  EXPECT_NE(r.error().message().find("no saved state"), std::string::npos);
}

TEST_F(VmServiceTest, KilledWorkerMeansCrashedAndTheServiceGoesOn) {
  CreateVm("a");
  CreateVm("b");
  int64_t pid = Act("a", VmAction::kStart)["worker"]["pid"];
  Act("b", VmAction::kStart);
  ASSERT_EQ(::kill(pid_t(pid), SIGKILL), 0);
  json vm = WaitForState("a", "crashed");
  EXPECT_EQ(vm["last_error"], "worker exited on signal 9");
  EXPECT_EQ(ShowJson("b")->at("state"), "running");
  // A crashed VM starts again.
  EXPECT_EQ(Act("a", VmAction::kStart)["state"], "running");
}

TEST_F(VmServiceTest, GuestPowerOffIsRecorded) {
  ::setenv("FAKE_WORKER_MODE", "power-off-on-stop", 1);
  CreateVm("a");
  json vm = Act("a", VmAction::kStart);
  // The worker ends by itself, not at ferryd's request.
  ASSERT_TRUE(CallWorker(vm["worker"]["control_socket"], WorkerRequest{WorkerOp::kStop, ""}, 5000)
                  .has_value());
  json after = WaitForState("a", "powered-off");
  EXPECT_EQ(after["last_error"], "");
}

TEST_F(VmServiceTest, StartupFailureKeepsTheStateAndReportsTheReason) {
  ::setenv("FAKE_WORKER_MODE", "startup-fail", 1);
  ::setenv("FAKE_WORKER_CODE", "not-found", 1);
  CreateVm("a");
  auto r = service_->Act("a", VmAction::kStart, "");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kNotFound);
  EXPECT_EQ(r.error().message(), "cannot start vm a: fake start-up failure");
  json vm = *ShowJson("a");
  EXPECT_EQ(vm["state"], "stopped");
  EXPECT_EQ(vm["last_error"], "cannot start vm a: fake start-up failure");
}

TEST_F(VmServiceTest, WorkerDyingSilentlyIsReportedWithItsStatus) {
  ::setenv("FAKE_WORKER_MODE", "exit-silently", 1);
  CreateVm("a");
  auto r = service_->Act("a", VmAction::kStart, "");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("worker exited with status 7 before it was ready"),
            std::string::npos)
      << r.error().message();
}

TEST_F(VmServiceTest, RestartReattachesToRunningWorkers) {
  CreateVm("a");
  CreateVm("p");
  int64_t pid = Act("a", VmAction::kStart)["worker"]["pid"];
  Act("p", VmAction::kStart);
  Act("p", VmAction::kPause);
  service_.reset();  // ferryd goes away; the workers do not
  ASSERT_TRUE(Alive(pid));
  Open();
  json vm = *ShowJson("a");
  EXPECT_EQ(vm["state"], "running");
  EXPECT_EQ(vm["worker"]["pid"], pid);
  EXPECT_EQ(ShowJson("p")->at("state"), "paused");
  // Fully controllable again, including a stop of a worker we did not start.
  EXPECT_EQ(Act("a", VmAction::kStop)["state"], "stopped");
  ::waitpid(pid_t(pid), nullptr, 0);  // the test process is its real parent
  EXPECT_FALSE(Alive(pid));
}

TEST_F(VmServiceTest, RestartMarksVanishedWorkersCrashed) {
  CreateVm("a");
  int64_t pid = Act("a", VmAction::kStart)["worker"]["pid"];
  service_.reset();
  ::kill(pid_t(pid), SIGKILL);
  ::waitpid(pid_t(pid), nullptr, 0);
  Open();
  json vm = *ShowJson("a");
  EXPECT_EQ(vm["state"], "crashed");
  EXPECT_NE(vm["last_error"].get<std::string>().find("exited while ferryd was not running"),
            std::string::npos)
      << vm["last_error"];
}

// A delete (or a moved VM's clean-up) stopped after vm.toml went: the next
// ferryd finishes it, so the name is free for a VM arriving later; files
// ferry did not create stay.
TEST_F(VmServiceTest, RestartFinishesAnInterruptedDelete) {
  CreateVm("a");
  CreateVm("b");
  service_.reset();
  const std::string a = options_.host.storage_root + "/vms/a",
                    b = options_.host.storage_root + "/vms/b";
  ASSERT_EQ(::unlink((a + "/vm.toml").c_str()), 0);
  ASSERT_EQ(::unlink((b + "/vm.toml").c_str()), 0);
  std::ofstream(b + "/my-disk.img") << "not ferry's";
  Open();
  struct stat st {};
  EXPECT_NE(::stat(a.c_str(), &st), 0) << "the leftover directory stays";
  EXPECT_EQ(::stat((b + "/my-disk.img").c_str(), &st), 0);
  EXPECT_NE(::stat((b + "/runtime.json").c_str(), &st), 0);
  EXPECT_TRUE(ListJson().at("vms").empty());
}

TEST_F(VmServiceTest, RestartAppliesTheExitRecordOfAWorkerThatEndedMeanwhile) {
  ::setenv("FAKE_WORKER_MODE", "power-off-on-stop", 1);
  CreateVm("a");
  json vm = Act("a", VmAction::kStart);
  int64_t pid = vm["worker"]["pid"];
  service_.reset();
  ASSERT_TRUE(CallWorker(vm["worker"]["control_socket"], WorkerRequest{WorkerOp::kStop, ""}, 5000)
                  .has_value());
  ::waitpid(pid_t(pid), nullptr, 0);
  Open();
  EXPECT_EQ(ShowJson("a")->at("state"), "powered-off");
}

}  // namespace
}  // namespace appliance

namespace appliance {
namespace {

TEST_F(VmServiceTest, OneServicePerInventory) {
  auto second = VmService::Open(options_);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), base::Code::kFailedPrecondition);
  EXPECT_NE(second.error().message().find("another ferryd already manages " + (dir_ / "root")),
            std::string::npos)
      << second.error().message();
  service_.reset();
  Open();  // the lock goes with the service
}

}  // namespace
}  // namespace appliance
