// The source ferryd's side of live moves against fake_worker (no KVM, no
// peer): LiveMoveService's refusals before anything moves, its job history
// across a restart, and VmService's removal of a VM whose worker exited
// "moved" (here: while ferryd was down).
#include "daemon/live_move_service.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "common/process.h"
#include "daemon/departure_record.h"
#include "daemon/peer_service.h"
#include "fakes/stray_workers.h"
#include "ipc/worker_protocol.h"
#include "support/temp_dir.h"
#include "support/test_tls.h"
#include "support/wait_for.h"

namespace appliance {
namespace {

using nlohmann::json;

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

class LiveMoveServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("FAKE_WORKER_MODE");
    std::ofstream(dir_ / "a.img") << std::string(4096, '\0');
    std::ofstream(dir_ / "shared.img") << std::string(4096, '\0');
    options_.host.storage_root = dir_ / "root";
    options_.host.outgoing_enabled = true;
    options_.worker_binary = FAKE_WORKER_PATH;
    options_.guest_dir = fake::MakeGuestDir(dir_.path());
    options_.worker_ready_timeout_ms = 10000;
    options_.exit_timeout_ms = 5000;
    options_.peer_tls = ferry_test::TestTlsContext(dir_ / "host-a", "host-a");
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
    o.tls = options_.peer_tls;
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
    for (const auto& d : disks)
      req.definition.disks.push_back({d, config::DiskFormat::kRaw, false});
    req.guest = "memory";
    auto r = service_->Create(req);
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
  }
  json Start(const std::string& name) {
    auto started = service_->Act(name, VmAction::kStart, "");
    EXPECT_TRUE(started.has_value()) << started.error().ToString();
    if (!started.has_value()) return json();
    json r = VmViewToJson(*started);
    started_.push_back(r["worker"]["pid"].get<int64_t>());
    return r;
  }
  // Show and resolve as the API emits them.
  base::Result<json> ShowJson(const std::string& name) {
    auto r = service_->Show(name);
    if (!r) return r.error();
    return VmViewToJson(*r);
  }
  base::Result<json> ResolveJson(const std::string& name, bool force) {
    auto r = service_->departures().Resolve(name, force);
    if (!r) return r.error();
    return ResolveOutcomeToJson(*r);
  }
  LiveMoveArgs Args(const std::string& vm) {
    LiveMoveArgs a;
    a.vm = vm;
    a.host = "127.0.0.1:1";  // nothing listens there
    a.destination = dir_ / "dest";
    a.include_storage = true;
    return a;
  }
  static constexpr const char* kMigration = "01234567-89ab-4def-8123-456789abcdef";
  DepartureRecord Departure() {
    DepartureRecord d;
    d.migration_id = kMigration;
    d.job = "live-01234567";
    d.host = "127.0.0.1:1";  // nothing listens there
    d.destination = dir_ / "dest";
    return d;
  }
  std::string Error(const LiveMoveArgs& args) {
    auto r = live_->Start(args);
    return r ? std::string("(started)")
             : std::string(base::CodeName(r.error().code())) + ": " + r.error().message();
  }

  ferry_test::TempDir dir_;
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
  EXPECT_EQ(Error(a),
            "failed-precondition: --include-storage is required: the hosts share no storage");
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
  EXPECT_EQ(ShowJson("a")->at("state"), "running");
  EXPECT_EQ(live_->List()->at("jobs").size(), 0u);
  // A stopped VM does not move live.
  CreateVm("s", {});
  EXPECT_NE(Error(Args("s")).find("only a running or paused vm"), std::string::npos);
  EXPECT_NE(Error(Args("nope")).find("not-found"), std::string::npos);
}

TEST_F(LiveMoveServiceTest, DisabledHost) {
  CreateVm("a", {});
  Start("a");
  Close();
  options_.host.outgoing_enabled = false;
  Open();
  EXPECT_EQ(Error(Args("a")),
            "failed-precondition: outgoing live moves are disabled on this host (host.toml "
            "migration.outgoing_enabled)");
}

TEST_F(LiveMoveServiceTest, BeginLiveMoveHoldsTheVmUntilEnd) {
  CreateVm("a", {});
  Start("a");
  const std::string record = dir_ / "root/vms/a/departure.json";
  auto t = service_->moves().BeginLiveMove("a", Departure());
  ASSERT_TRUE(t.has_value()) << t.error().ToString();
  EXPECT_FALSE(t->control_socket.empty());
  // Durable before the worker hears of the move.
  auto written = ReadDeparture(dir_ / "root/vms/a");
  ASSERT_TRUE(written.has_value() && written->has_value()) << record;
  EXPECT_EQ((*written)->migration_id, kMigration);
  EXPECT_EQ((*written)->state, DepartureState::kMoving);
  EXPECT_EQ(ShowJson("a")->at("departure")["state"], "moving");
  EXPECT_NE(service_->moves()
                .BeginLiveMove("a", Departure())
                .error()
                .message()
                .find("moving to 127.0.0.1:1"),
            std::string::npos);
  EXPECT_FALSE(service_->Delete("a").has_value());
  service_->moves().EndLiveMove("a", kMigration);
  EXPECT_FALSE(Exists(record));
  EXPECT_TRUE(ShowJson("a")->at("departure").is_null());
  EXPECT_TRUE(service_->moves().BeginLiveMove("a", Departure()).has_value());
  service_->moves().EndLiveMove("a", kMigration);
}

// A departure found at start-up that nobody can settle (the destination
// does not answer): every action that could run the VM a second time is
// refused naming the destination and the way out; --force is the way out.
TEST_F(LiveMoveServiceTest, InDoubtVmIsHeldUntilResolved) {
  CreateVm("a", {});
  int64_t pid = Start("a")["worker"]["pid"];
  Close();
  DepartureRecord d = Departure();
  d.state = DepartureState::kInDoubt;
  d.message = "lost the destination after sending the state";
  ASSERT_TRUE(WriteDeparture(dir_ / "root/vms/a", d).has_value());
  KillAndReap(pid);  // and the worker died meanwhile
  Open();
  json vm = *ShowJson("a");
  EXPECT_EQ(vm["state"], "crashed");
  EXPECT_EQ(vm["departure"]["state"], "in-doubt");
  EXPECT_EQ(vm["departure"]["host"], "127.0.0.1:1");
  auto refused = [&](const base::Status& st, const std::string& what) {
    ASSERT_FALSE(st.has_value()) << what << " was allowed";
    EXPECT_EQ(st.error().code(), base::Code::kFailedPrecondition) << st.error().ToString();
    EXPECT_NE(st.error().message().find("127.0.0.1:1"), std::string::npos) << st.error().message();
    EXPECT_NE(st.error().message().find("ferry vm resolve a"), std::string::npos)
        << st.error().message();
  };
  auto status = [](const auto& r) -> base::Status {
    if (r) return base::Ok();
    return r.error();
  };
  refused(status(service_->Act("a", VmAction::kStart, "")), "start");
  refused(status(service_->Act("a", VmAction::kRestore, dir_ / "nothing.fvs")), "restore");
  refused(service_->Delete("a"), "delete");
  refused(status(service_->checkpoints().Apply("a", "c1", true)), "checkpoint apply");
  refused(status(service_->moves().BeginStorageMove("a")), "move-storage");
  EXPECT_EQ(ResolveJson("a", false).error().code(), base::Code::kUnavailable);
  // --force: kept here, the admin was told what it risks.
  auto forced = ResolveJson("a", true);
  ASSERT_TRUE(forced.has_value()) << forced.error().ToString();
  EXPECT_EQ((*forced)["outcome"], "here");
  EXPECT_EQ((*forced)["forced"], true);
  EXPECT_FALSE(Exists(dir_ / "root/vms/a/departure.json"));
  EXPECT_EQ((*ResolveJson("a", false))["outcome"], "none");
  Start("a");
}

// A damaged departure record names no destination: the VM is held, the
// messages say the record is damaged, and only --force frees it.
TEST_F(LiveMoveServiceTest, DamagedDepartureRecordHoldsTheVmUntilForced) {
  CreateVm("a", {});
  Close();
  ASSERT_TRUE(base::WriteFileAtomically(dir_ / "root/vms/a/departure.json", "{\"migration_id\": 7")
                  .has_value());
  Open();
  EXPECT_EQ(ShowJson("a")->at("departure")["state"], "in-doubt");
  auto start = service_->Act("a", VmAction::kStart, "");
  ASSERT_FALSE(start.has_value());
  EXPECT_NE(start.error().message().find("departure record is damaged"), std::string::npos)
      << start.error().message();
  auto forced = ResolveJson("a", true);
  ASSERT_TRUE(forced.has_value()) << forced.error().ToString();
  EXPECT_EQ((*forced)["forced"], true);
  EXPECT_FALSE(Exists(dir_ / "root/vms/a/departure.json"));
  Start("a");
}

// A departure whose destination answers: "committed" removes the VM here
// (its paused worker is killed), "unknown" there frees it here.
TEST_F(LiveMoveServiceTest, ResolveAsksTheDestination) {
  // The destination: a second ferryd's VmService and PeerService.
  ServiceOptions dest_vm = options_;
  dest_vm.host.storage_root = dir_ / "dest-root";
  auto dest_vms = VmService::Open(dest_vm);
  ASSERT_TRUE(dest_vms.has_value()) << dest_vms.error().ToString();
  PeerService::Options po;
  po.host = dest_vm.host;
  po.host.incoming_enabled = true;
  po.host.listen_addresses = {config::ListenAddress{"127.0.0.1", 0, "127.0.0.1:0"}};
  po.worker_binary = FAKE_WORKER_PATH;
  po.host_cpu = HostCpu{"GenuineIntel", {"fpu"}};
  po.io_timeout_ms = 5000;
  po.tls = ferry_test::TestTlsContext(dir_ / "host-b", "host-b");
  auto peer = PeerService::Start(**dest_vms, po);
  ASSERT_TRUE(peer.has_value()) << peer.error().ToString();
  const std::string host = "127.0.0.1:" + std::to_string((*peer)->listening()[0].second);
  // It committed this migration (its record says so).
  ASSERT_TRUE(
      base::WriteFileAtomically(
          dir_ / ("dest-root/incoming-records/" + std::string(kMigration) + ".json"),
          json{{"migration_id", kMigration}, {"vm_name", "a"}, {"state", "committed"}}.dump())
          .has_value());

  CreateVm("a", {dir_ / "a.img"});
  int64_t pid = Start("a")["worker"]["pid"];
  DepartureRecord d = Departure();
  d.host = host;
  ASSERT_TRUE(service_->moves().BeginLiveMove("a", d).has_value());
  service_->departures().MarkInDoubt("a", kMigration, "test");
  // Settled before the action: the VM is there, so it is not here.
  auto save = service_->Act("a", VmAction::kSave, "");
  ASSERT_FALSE(save.has_value());
  EXPECT_NE(save.error().message().find("moved to " + host), std::string::npos)
      << save.error().message();
  EXPECT_FALSE(ShowJson("a").has_value());
  EXPECT_FALSE(Exists(dir_ / "a.img"));
  EXPECT_TRUE(service_->moves().MovedAway("a").has_value());
  auto pidfd = PidfdOpen(pid);
  EXPECT_TRUE(!pidfd || *PidfdWaitExit(pidfd->get(), 5000))
      << "the worker of the moved vm still runs";

  // Another VM whose move the destination never heard of: it stays here,
  // and runs again (it was running when the move began, and the move's
  // switchover left it paused).
  CreateVm("b", {});
  Start("b");
  d.migration_id = "11111111-2222-4333-8444-555555555555";
  ASSERT_TRUE(service_->moves().BeginLiveMove("b", d).has_value());
  ASSERT_TRUE(service_->Act("b", VmAction::kPause, "").has_value());
  service_->departures().MarkInDoubt("b", d.migration_id, "test");
  EXPECT_EQ(ShowJson("b")->at("state"), "paused");
  auto resolved = ResolveJson("b", false);
  ASSERT_TRUE(resolved.has_value()) << resolved.error().ToString();
  EXPECT_EQ((*resolved)["outcome"], "here");
  EXPECT_EQ((*resolved)["state"], "running") << resolved->dump();
  EXPECT_NE((*resolved)["message"].get<std::string>().find("runs again"), std::string::npos)
      << resolved->dump();
  // One its admin had paused before the move stays paused.
  CreateVm("c", {});
  Start("c");
  ASSERT_TRUE(service_->Act("c", VmAction::kPause, "").has_value());
  d.migration_id = "22222222-2222-4333-8444-555555555555";
  ASSERT_TRUE(service_->moves().BeginLiveMove("c", d).has_value());
  service_->departures().MarkInDoubt("c", d.migration_id, "test");
  resolved = ResolveJson("c", false);
  ASSERT_TRUE(resolved.has_value()) << resolved.error().ToString();
  EXPECT_EQ((*resolved)["state"], "paused") << resolved->dump();
  EXPECT_TRUE(ShowJson("b")->at("departure").is_null());
  peer->reset();
}

// The issue's zombie: the source worker exited "moved" but nobody reaped it
// yet when ferryd started. Its pid still opens; its exit record decides.
TEST_F(LiveMoveServiceTest, ZombieWorkerThatMovedIsNotCrashed) {
  CreateVm("a", {dir_ / "a.img"});
  int64_t pid = Start("a")["worker"]["pid"];
  Close();
  ASSERT_TRUE(WriteDeparture(dir_ / "root/vms/a", Departure()).has_value());
  WorkerExitRecord record;
  record.pid = pid;
  record.state = "moved";
  ASSERT_TRUE(base::WriteFileAtomically(dir_ / "root/vms/a/worker.exit", EncodeExitRecord(record))
                  .has_value());
  ::kill(pid_t(pid), SIGKILL);  // not reaped: a zombie until KillAndReap
  Open();
  EXPECT_FALSE(ShowJson("a").has_value()) << ShowJson("a")->dump();
  EXPECT_TRUE(service_->moves().MovedAway("a").has_value());
  EXPECT_FALSE(service_->Act("a", VmAction::kStart, "").has_value());
  KillAndReap(pid);
}

// A departure left "moving" without any job (its job record was lost):
// nobody watches it, so the resolver settles it or declares it in doubt.
TEST_F(LiveMoveServiceTest, UnwatchedDepartureBecomesInDoubt) {
  CreateVm("a", {});
  Start("a");
  Close();
  ASSERT_TRUE(WriteDeparture(dir_ / "root/vms/a", Departure()).has_value());
  Open();
  json vm;
  EXPECT_TRUE(ferry_test::WaitFor("vm a's departure to be in doubt", std::chrono::seconds(10), [&] {
    vm = *ShowJson("a");
    return vm["departure"].is_object() && vm["departure"]["state"] == "in-doubt";
  }));
  EXPECT_EQ(vm["departure"]["state"], "in-doubt") << vm.dump();
  EXPECT_EQ(vm["departure"]["watched"], false);
  EXPECT_EQ(vm["state"], "running");
  EXPECT_FALSE(service_->Act("a", VmAction::kSave, "").has_value());
}

TEST(DepartureRecordTest, JsonRoundTripAndDamage) {
  DepartureRecord r;
  r.migration_id = "01234567-89ab-4def-8123-456789abcdef";
  r.job = "live-01234567";
  r.host = "[fd00::2]:7430";
  r.destination = "/srv";
  r.state = DepartureState::kInDoubt;
  r.message = "why";
  r.resume_here = true;
  r.started_unix_ms = 5;
  r.changed_unix_ms = 6;
  auto back = DepartureFromJson(ToJson(r), "x");
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(ToJson(*back), ToJson(r));
  for (const char* text : {"[]", "{}", R"({"migration_id":"m","host":"h","state":"gone"})",
                           R"({"migration_id":"m","state":"moving"})"}) {
    auto bad = DepartureFromJson(json::parse(text), "departure.json");
    ASSERT_FALSE(bad.has_value()) << text;
    EXPECT_EQ(bad.error().code(), base::Code::kDataLoss);
    EXPECT_NE(bad.error().message().find("departure.json"), std::string::npos);
  }
  ferry_test::TempDir dir;
  EXPECT_FALSE(ReadDeparture(dir.path())->has_value());
  ASSERT_TRUE(base::WriteFileAtomically(DeparturePath(dir.path()), "{not json").has_value());
  EXPECT_EQ(ReadDeparture(dir.path()).error().code(), base::Code::kDataLoss);
  ASSERT_TRUE(RemoveDeparture(dir.path()).has_value());
  ASSERT_TRUE(RemoveDeparture(dir.path()).has_value());
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
  ASSERT_TRUE(
      base::WriteFileAtomically(vm_dir + "/worker.exit", EncodeExitRecord(record)).has_value());
  Open();
  auto list = std::optional<json>(VmListToJson(service_->List()));
  ASSERT_EQ(list->at("vms").size(), 1u) << list->dump();
  EXPECT_EQ(list->at("vms")[0]["name"], "b");
  EXPECT_FALSE(ShowJson("a").has_value());
  EXPECT_FALSE(Exists(dir_ / "a.img"));
  EXPECT_TRUE(Exists(dir_ / "shared.img")) << "vm b still uses it";
  EXPECT_FALSE(Exists(vm_dir));
  auto moved = service_->moves().MovedAway("a");
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(moved->removed, std::vector<std::string>{dir_ / "a.img"});
  ASSERT_EQ(moved->kept.size(), 1u);
  EXPECT_EQ(moved->kept[0].path, dir_ / "shared.img");
  EXPECT_EQ(moved->kept[0].used_by, "b");
  // A new VM of that name can be created here again.
  CreateVm("a", {});
}

// A job that was running when ferryd stopped: if its VM is here without the
// move's departure record, the move never began (or ended here); if the VM
// is gone altogether, the destination is asked how it ended (here it does
// not answer).
TEST_F(LiveMoveServiceTest, InterruptedJobIsListedAsFailedAfterARestart) {
  CreateVm("here", {});
  LiveMoveJobRecord r;
  r.id = "live-01234567";
  r.vm = "here";
  r.host = "127.0.0.1:1";  // nothing listens there
  r.destination = "/srv";
  r.migration_id = "01234567-89ab-4def-8123-456789abcdef";
  r.started_unix_ms = 1000;
  r.status.phase = LiveMovePhase::kPrecopy;
  ASSERT_TRUE(base::WriteFileAtomically(dir_ / "root/live-moves/live-01234567.json",
                                        LiveMoveJobToJson(r).dump())
                  .has_value());
  LiveMoveJobRecord gone = r;
  gone.id = "live-89abcdef";
  gone.vm = "gone";
  gone.migration_id = "89abcdef-89ab-4def-8123-456789abcdef";
  ASSERT_TRUE(base::WriteFileAtomically(dir_ / "root/live-moves/live-89abcdef.json",
                                        LiveMoveJobToJson(gone).dump())
                  .has_value());
  // Declared in doubt just before ferryd stopped, its job not yet ended.
  CreateVm("doubt", {});
  LiveMoveJobRecord doubt = r;
  doubt.id = "live-fedcba98";
  doubt.vm = "doubt";
  doubt.migration_id = "fedcba98-89ab-4def-8123-456789abcdef";
  ASSERT_TRUE(base::WriteFileAtomically(dir_ / "root/live-moves/live-fedcba98.json",
                                        LiveMoveJobToJson(doubt).dump())
                  .has_value());
  DepartureRecord d = Departure();
  d.migration_id = doubt.migration_id;
  d.state = DepartureState::kInDoubt;
  d.message = "lost the destination";
  ASSERT_TRUE(WriteDeparture(dir_ / "root/vms/doubt", d).has_value());
  Close();
  Open();
  json in_doubt = *live_->Get("live-fedcba98");
  EXPECT_EQ(in_doubt["phase"], "in-doubt") << in_doubt.dump();
  EXPECT_EQ(in_doubt["error"]["message"], "lost the destination");
  EXPECT_EQ(in_doubt["vm_runs_at"], "in-doubt");
  EXPECT_TRUE(live_->Owns("live-01234567"));
  json job = *live_->Get("live-01234567");
  EXPECT_EQ(job["phase"], "failed");
  EXPECT_NE(job["error"]["message"].get<std::string>().find("interrupted"), std::string::npos)
      << job.dump();
  EXPECT_NE(job["ended_unix_ms"], 0);
  EXPECT_TRUE(ferry_test::WaitFor("job live-89abcdef to end", std::chrono::seconds(5), [&] {
    return live_->Get("live-89abcdef")->at("ended_unix_ms") != 0;
  }));
  job = *live_->Get("live-89abcdef");
  EXPECT_EQ(job["phase"], "failed") << job.dump();
  EXPECT_NE(job["error"]["message"].get<std::string>().find("no longer on this host"),
            std::string::npos)
      << job.dump();
  EXPECT_EQ(live_->List()->at("jobs").size(), 3u);
  EXPECT_FALSE(live_->Get("live-nope").has_value());
}

}  // namespace
}  // namespace appliance
