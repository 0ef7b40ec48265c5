// PeerService (the destination ferryd's side of live moves) on 127.0.0.1:0
// in a temp storage root: the pre-flight matrix, malformed control streams,
// and the launch / adopt / clean-up / recovery paths with a fake incoming
// worker (fake_incoming_worker.cc), so no KVM is needed.
#include "daemon/peer_service.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "ipc/vm_dir_files.h"
#include "peer/peer_client.h"
#include "common/process.h"
#include "daemon/runtime_record.h"
#include "base/clock.h"
#include "config/vm_definition.h"
#include "test_dir.h"
#include "transport/frame_stream.h"
#include "transport/tcp.h"

namespace appliance {
namespace {

using nlohmann::json;

bool PathExists(const std::string& p) {
  struct stat st{};
  return ::lstat(p.c_str(), &st) == 0;
}
bool IsSymlink(const std::string& p) {
  struct stat st{};
  return ::lstat(p.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

class PeerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("FAKE_INCOMING_MODE");
    ::mkdir((dir_ / "guests").c_str(), 0755);
    std::ofstream(dir_ / "guests/memory-guest.bin") << "fake program";
    vm_options_.host.storage_root = dir_ / "root";
    // VmService never launches a worker here (only adopts incoming ones).
    vm_options_.worker_binary = FAKE_INCOMING_WORKER_PATH;
    vm_options_.guest_dir = dir_ / "guests";
    vm_options_.worker_ready_timeout_ms = 10000;
    vm_options_.exit_timeout_ms = 5000;
    auto vms = VmService::Open(vm_options_);
    ASSERT_TRUE(vms.has_value()) << vms.error().ToString();
    vms_ = std::move(*vms);

    options_.host = vm_options_.host;
    options_.host.incoming_enabled = true;
    options_.host.max_live_moves = 2;
    options_.host.listen_addresses = {config::ListenAddress{"127.0.0.1", 0, "127.0.0.1:0"}};
    options_.worker_binary = FAKE_INCOMING_WORKER_PATH;
    options_.host_cpu = HostCpu{"GenuineIntel", {"fpu", "sse", "sse2"}};
    options_.worker_ready_timeout_ms = 10000;
    options_.io_timeout_ms = 5000;
    options_.poll_interval_ms = 20;
    options_.worker_call_timeout_ms = 2000;
  }

  void TearDown() override {
    // Every fake worker this test started goes, and is reaped; the records
    // name them. waitid(WNOWAIT) says whether it is still our child, so a
    // recycled pid is never signalled.
    std::vector<base::Fd> mine;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_ / "root/incoming-records", ec)) {
      auto text = base::ReadFileToString(e.path().string());
      if (!text) continue;
      json j = json::parse(*text, nullptr, false);
      auto pidfd = PidfdOpen(j.value("pid", int64_t{0}));
      if (!pidfd) continue;
      siginfo_t info{};
      if (::waitid(P_PIDFD, id_t(pidfd->get()), &info, WEXITED | WNOHANG | WNOWAIT) != 0) continue;
      (void)PidfdSignal(pidfd->get(), SIGKILL);
      mine.push_back(std::move(*pidfd));
    }
    peer_.reset();
    vms_.reset();
    for (const base::Fd& pidfd : mine) (void)PidfdReap(pidfd.get(), /*nohang=*/false);
    ::unsetenv("FAKE_INCOMING_MODE");
  }

  // Show as the API emits it.
  base::Result<json> ShowJson(const std::string& name) {
    auto r = vms_->Show(name);
    if (!r) return r.error();
    return VmViewToJson(*r);
  }

  void StartPeer() {
    auto p = PeerService::Start(*vms_, options_);
    ASSERT_TRUE(p.has_value()) << p.error().ToString();
    peer_ = std::move(*p);
    ASSERT_EQ(peer_->listening().size(), 1u);
    endpoint_ = PeerEndpoint{"127.0.0.1", peer_->listening()[0].second, ""};
  }

  PrepareRequest Request(const std::string& name) {
    config::VmDefinition def;
    def.name = name;
    def.id = config::NewUuid();
    def.memory_bytes = 64ull << 20;
    def.program = dir_ / "guests/memory-guest.bin";
    def.disks.push_back(config::DiskSpec{dir_ / ("dest/" + name + ".img"), config::DiskFormat::kRaw, false});
    PrepareRequest r;
    r.migration_id = NewMigrationId();
    r.vm_name = name;
    r.vm_id = def.id;
    r.definition_toml = config::FormatVmDefinition(def);
    r.memory_bytes = def.memory_bytes;
    r.cpu_vendor = "GenuineIntel";
    r.cpu_features = {"sse2"};
    r.destination = dir_ / "dest";
    PreparedDisk disk;
    disk.index = 0;
    disk.format = "raw";
    disk.disk_size = 1 << 20;
    disk.top = def.disks[0].path;
    r.disks.push_back(disk);
    r.disk_bytes = 1 << 20;
    r.performance = "tcp";
    return r;
  }

  base::Result<json> Prepare(const PrepareRequest& r) {
    return CallPeer(endpoint_, MoveFrame::kPrepare, ToJson(r), MoveFrame::kPrepareReply, 15000);
  }
  // Starts the peer and a move of vm1 whose Prepare succeeds: req_ and
  // reply_ describe it, and its fake incoming worker runs.
  void StartPeerAndPrepareVm1() {
    StartPeer();
    req_ = Request("vm1");
    auto reply = Prepare(req_);
    ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
    reply_ = *reply;
  }
  // A Prepare refused with `code`, its message naming `part`.
  static void ExpectRefused(const base::Result<json>& r, base::Code code, const std::string& part) {
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), code) << r.error().ToString();
    EXPECT_NE(r.error().message().find(part), std::string::npos) << r.error().message();
  }
  // A VM of that name that already exists on this host.
  void CreateVm(const std::string& name) {
    CreateRequest create;
    create.definition.name = name;
    create.definition.memory_bytes = 64ull << 20;
    create.guest = "memory";
    ASSERT_TRUE(vms_->Create(create).has_value());
  }
  json Status(const std::string& id) {
    auto r = CallPeer(endpoint_, MoveFrame::kStatusQuery, json{{"migration_id", id}}, MoveFrame::kStatusReply, 60000);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.has_value() ? *r : json();
  }
  json Abort(const std::string& id) {
    auto r = CallPeer(endpoint_, MoveFrame::kAbort, json{{"migration_id", id}, {"reason", "test"}},
                      MoveFrame::kAbortReply, 60000);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.has_value() ? *r : json();
  }
  // Sends one byte to the fake incoming worker's data port: 'c' commits.
  void Tell(const json& prepare_reply, char what) {
    auto fd = transport::TcpConnect(prepare_reply["data_host"], prepare_reply["data_port"], "", 5000);
    ASSERT_TRUE(fd.has_value()) << fd.error().ToString();
    ASSERT_EQ(::write(fd->get(), &what, 1), 1);
  }
  // Polls (every 10 ms, up to 10 s) for an effect of another thread.
  bool Eventually(const std::function<bool()>& pred) {
    const uint64_t deadline = base::MonotonicNanos() + 10'000'000'000ull;
    while (base::MonotonicNanos() < deadline) {
      if (pred()) return true;
      ::usleep(10000);
    }
    return pred();
  }
  std::string IncomingDir(const std::string& id) { return dir_ / ("root/incoming/" + id); }
  // Tells vm1's worker to commit and waits for its commit marker.
  void CommitVm1() {
    Tell(reply_, 'c');
    ASSERT_TRUE(Eventually([&] { return PathExists(IncomingDir(req_.migration_id) + "/committed"); }));
  }
  json Record(const std::string& id) {
    auto text = base::ReadFileToString(dir_ / ("root/incoming-records/" + id + ".json"));
    return text ? json::parse(*text, nullptr, false) : json();
  }

  test::TestDir dir_;
  ServiceOptions vm_options_;
  PeerService::Options options_;
  std::unique_ptr<VmService> vms_;
  std::unique_ptr<PeerService> peer_;
  PeerEndpoint endpoint_;
  PrepareRequest req_;  // StartPeerAndPrepareVm1's move
  json reply_;
};

// ---- Pre-flight -------------------------------------------------------------

TEST_F(PeerServiceTest, RefusedWhenIncomingDisabled) {
  options_.host.incoming_enabled = false;
  StartPeer();
  auto r = Prepare(Request("vm1"));
  ExpectRefused(r, base::Code::kFailedPrecondition,
                "incoming live moves are disabled on this host (host.toml migration.incoming_enabled)");
  EXPECT_NE(r.error().message().find("127.0.0.1:"), std::string::npos) << "names the peer";
}

TEST_F(PeerServiceTest, RefusedFromOutsideTheMigrationNetworks) {
  options_.host.any_network = false;
  options_.host.networks = {*config::ParseCidr("10.9.0.0/16")};
  StartPeer();
  PrepareRequest req = Request("vm1");
  req.memory_bytes = 1ull << 50;  // not revealed to an unauthorized peer
  auto r = Prepare(req);
  ExpectRefused(r, base::Code::kPermissionDenied,
                "peer address 127.0.0.1 is not inside migration.networks [10.9.0.0/16]");
  EXPECT_EQ(r.error().message().find("memory"), std::string::npos) << r.error().message();
}

TEST_F(PeerServiceTest, AllowedNetworkAccepts) {
  options_.host.any_network = false;
  options_.host.networks = {*config::ParseCidr("127.0.0.0/8")};
  StartPeer();
  auto r = Prepare(Request("vm1"));
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
}

TEST_F(PeerServiceTest, RefusedWithoutAFreeSlot) {
  options_.host.max_live_moves = 1;
  StartPeer();
  auto first = Prepare(Request("vm1"));
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  ExpectRefused(Prepare(Request("vm2")), base::Code::kResourceExhausted,
                "no free live-move slot: 1 incoming moves running, host.toml migration.max_live_moves is 1");
}

TEST_F(PeerServiceTest, RefusedWhenTheNameExists) {
  StartPeer();
  CreateVm("taken");
  ExpectRefused(Prepare(Request("taken")), base::Code::kFailedPrecondition,
                "a vm named taken already exists on this host");
}

TEST_F(PeerServiceTest, RefusedWhenAnIncomingMoveHasTheName) {
  StartPeer();
  ASSERT_TRUE(Prepare(Request("vm1")).has_value());
  ExpectRefused(Prepare(Request("vm1")), base::Code::kFailedPrecondition, "a vm named vm1 is already moving here");
}

TEST_F(PeerServiceTest, RefusedWhenMemoryIsShort) {
  StartPeer();
  PrepareRequest req = Request("vm1");
  req.memory_bytes = 1ull << 50;
  ExpectRefused(Prepare(req), base::Code::kFailedPrecondition, "not enough free memory: the vm needs 1073741824.0 MiB");
}

TEST_F(PeerServiceTest, RefusedWhenDiskSpaceIsShort) {
  StartPeer();
  PrepareRequest req = Request("vm1");
  req.disk_bytes = 1ull << 60;
  ExpectRefused(Prepare(req), base::Code::kFailedPrecondition,
                "not enough disk space at " + dir_.path() + ": the move needs");
  EXPECT_FALSE(PathExists(dir_ / "dest")) << "a refused move creates nothing";
}

TEST_F(PeerServiceTest, RefusedWhenADestinationFileExists) {
  StartPeer();
  PrepareRequest req = Request("vm1");
  std::filesystem::create_directories(dir_ / "dest");
  std::ofstream(req.disks[0].top) << "someone's disk";
  ExpectRefused(Prepare(req), base::Code::kFailedPrecondition,
                "destination file " + req.disks[0].top + " already exists");
}

TEST_F(PeerServiceTest, EveryFailureIsListedTogether) {
  StartPeer();
  CreateVm("taken");
  PrepareRequest req = Request("taken");
  req.memory_bytes = 1ull << 50;
  req.disk_bytes = 1ull << 60;
  req.cpu_vendor = "AuthenticAMD";
  req.cpu_features = {"sse2", "avx512f", "avx2"};
  req.config_version = 99;
  auto r = Prepare(req);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kFailedPrecondition);
  const std::string& m = r.error().message();
  for (const char* part : {"live move of vm taken refused: ",
                           "vm configuration version 99 is not supported here",
                           "a vm named taken already exists",
                           "processor vendor differs: the vm runs on AuthenticAMD, this host is GenuineIntel",
                           "not offered by KVM here: avx512f avx2", "not enough free memory",
                           "not enough disk space"}) {
    EXPECT_NE(m.find(part), std::string::npos) << "missing \"" << part << "\" in: " << m;
  }
}

// A directory under vms/ without a vm.toml is no VM, but the adoption's
// rename onto it would fail after the commit: Prepare refuses instead, and
// leaves no incoming directory behind.
TEST_F(PeerServiceTest, RefusedWhenALeftOverVmDirectoryHasTheName) {
  StartPeer();
  const std::string left_over = dir_ / "root/vms/vm1";
  ASSERT_TRUE(std::filesystem::create_directories(left_over));
  ExpectRefused(Prepare(Request("vm1")), base::Code::kFailedPrecondition,
                left_over + " exists without a vm.toml");
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "root/incoming"));
  EXPECT_FALSE(vms_->incoming().HasVm("vm1"));
}

TEST_F(PeerServiceTest, ProcessorCompatibilityAllowsAnotherVendor) {
  StartPeer();
  PrepareRequest req = Request("vm1");
  req.cpu_vendor = "AuthenticAMD";
  req.processor_compatibility = true;
  EXPECT_TRUE(Prepare(req).has_value());
}

TEST_F(PeerServiceTest, RelativeDestinationIsRefused) {
  StartPeer();
  json j = ToJson(Request("vm1"));
  j["destination"] = "relative/path";
  auto r = CallPeer(endpoint_, MoveFrame::kPrepare, j, MoveFrame::kPrepareReply, 5000);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("destination"), std::string::npos) << r.error().message();
}

// ---- Protocol robustness ----------------------------------------------------

TEST_F(PeerServiceTest, StatusOfAnUnknownMove) {
  StartPeer();
  const std::string id = NewMigrationId();
  json reply = Status(id);
  EXPECT_EQ(reply["state"], "unknown");
  EXPECT_EQ(reply["migration_id"], id);
}

TEST_F(PeerServiceTest, AbortOfAnUnknownMoveIsAborted) {
  StartPeer();
  EXPECT_EQ(Abort(NewMigrationId())["state"], "aborted");
}

// Opens a control (or data) stream by hand, sends one raw frame and returns
// the reply frame.
base::Result<transport::Frame> RawExchange(uint16_t port, transport::StreamRole role, uint16_t type,
                                           const std::string& payload) {
  ASSIGN_OR_RETURN(base::Fd fd, transport::TcpConnect("127.0.0.1", port, "", 5000));
  transport::FrameStream stream(std::move(fd), "test stream");
  transport::Hello hello;
  hello.role = role;
  RETURN_IF_ERROR(transport::ClientHello(stream, hello, 5000));
  std::vector<uint8_t> bytes(payload.begin(), payload.end());
  RETURN_IF_ERROR(stream.Send(type, bytes, {}, nullptr, -1, 5000));
  return stream.Receive(1 << 20, -1, 5000);
}

TEST_F(PeerServiceTest, MalformedRequestsGetAnErrorAndServiceContinues) {
  StartPeer();
  const uint16_t port = endpoint_.port;
  const uint16_t kError = uint16_t(transport::FrameType::kError);
  {
    auto f = RawExchange(port, transport::StreamRole::kControl, uint16_t(MoveFrame::kPrepare), "{not json");
    ASSERT_TRUE(f.has_value()) << f.error().ToString();
    ASSERT_EQ(f->type, kError);
    base::Error e = transport::DecodeErrorPayload(f->payload);
    EXPECT_EQ(e.code(), base::Code::kDataLoss);
    EXPECT_NE(e.message().find("not JSON"), std::string::npos) << e.message();
  }
  {
    auto f = RawExchange(port, transport::StreamRole::kControl, uint16_t(MoveFrame::kPageBatch), "{}");
    ASSERT_TRUE(f.has_value()) << f.error().ToString();
    ASSERT_EQ(f->type, kError);
    EXPECT_NE(transport::DecodeErrorPayload(f->payload).message().find("unexpected frame type 32"),
              std::string::npos);
  }
  {
    auto f = RawExchange(port, transport::StreamRole::kControl, uint16_t(MoveFrame::kPrepare), "{}");
    ASSERT_TRUE(f.has_value()) << f.error().ToString();
    ASSERT_EQ(f->type, kError);
    EXPECT_EQ(transport::DecodeErrorPayload(f->payload).code(), base::Code::kInvalidArgument);
  }
  {
    // A data-role hello on the control port: refused after the hello.
    auto f = RawExchange(port, transport::StreamRole::kData, uint16_t(MoveFrame::kPageBatch), "x");
    if (f.has_value()) {
      ASSERT_EQ(f->type, kError);
      EXPECT_NE(transport::DecodeErrorPayload(f->payload).message().find("control streams only"),
                std::string::npos);
    } else {
      // The refusal may overtake our frame; then the send or receive fails.
      SUCCEED() << f.error().ToString();
    }
  }
  {
    // Garbage instead of a hello.
    auto fd = transport::TcpConnect("127.0.0.1", port, "", 5000);
    ASSERT_TRUE(fd.has_value());
    std::string junk(64, 'z');
    ASSERT_EQ(::write(fd->get(), junk.data(), junk.size()), ssize_t(junk.size()));
  }
  // Still serving.
  EXPECT_EQ(Status(NewMigrationId())["state"], "unknown");
}

TEST_F(PeerServiceTest, NoListenAddressNoListener) {
  options_.host.listen_addresses.clear();
  auto p = PeerService::Start(*vms_, options_);
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_TRUE((*p)->listening().empty());
}

TEST(PeerClientTest, ClosedPortIsUnavailableNamingThePeer) {
  // Bind and close to find a port nobody listens on.
  uint16_t port = 0;
  {
    auto l = transport::TcpListener::Bind("127.0.0.1", 0);
    ASSERT_TRUE(l.has_value());
    port = l->port();
  }
  auto r = CallPeer(PeerEndpoint{"127.0.0.1", port, ""}, MoveFrame::kStatusQuery, json{{"migration_id", "x"}},
                    MoveFrame::kStatusReply, 2000);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kUnavailable);
  EXPECT_NE(r.error().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << r.error().message();
}

TEST(PeerClientTest, ParsePeerEndpoint) {
  struct Case {
    const char* text;
    const char* host;
    uint16_t port;
  } ok[] = {{"10.0.0.2", "10.0.0.2", 7430},       {"10.0.0.2:7431", "10.0.0.2", 7431},
            {"[fd00::2]:7432", "fd00::2", 7432}, {"[fd00::2]", "fd00::2", 7430},
            {"fd00::2", "fd00::2", 7430},        {"host2.example:9", "host2.example", 9}};
  for (const Case& c : ok) {
    auto e = ParsePeerEndpoint(c.text, kDefaultPeerPort);
    ASSERT_TRUE(e.has_value()) << c.text << ": " << e.error().ToString();
    EXPECT_EQ(e->host, c.host) << c.text;
    EXPECT_EQ(e->port, c.port) << c.text;
  }
  for (const char* bad : {"", ":7430", "10.0.0.2:", "10.0.0.2:0", "10.0.0.2:65536", "10.0.0.2:x", "[fd00::2",
                          "[fd00::2]7430", "[]:7430"}) {
    auto e = ParsePeerEndpoint(bad, kDefaultPeerPort);
    EXPECT_FALSE(e.has_value()) << bad;
    if (!e.has_value()) {
      EXPECT_EQ(e.error().code(), base::Code::kInvalidArgument);
    }
  }
  EXPECT_EQ((PeerEndpoint{"fd00::2", 5, ""}).ToString(), "[fd00::2]:5");
  EXPECT_EQ((PeerEndpoint{"10.0.0.2", 5, ""}).ToString(), "10.0.0.2:5");
}

TEST(HostCpuTest, MissingFeatures) {
  HostCpu cpu{"GenuineIntel", {"fpu", "sse2"}};
  std::vector<std::string> wanted = {"sse2", "avx2", "fpu", "x2apic"};
  EXPECT_EQ(MissingCpuFeatures(cpu, wanted), (std::vector<std::string>{"avx2", "x2apic"}));
}

TEST(HostCpuTest, ReadsWhatKvmOffers) {
  auto cpu = ReadHostCpu("/dev/kvm");
  if (!cpu.has_value()) GTEST_SKIP() << cpu.error().ToString();
  EXPECT_FALSE(cpu->vendor.empty());
  EXPECT_TRUE(std::is_sorted(cpu->features.begin(), cpu->features.end()));
  EXPECT_TRUE(MissingCpuFeatures(*cpu, std::vector<std::string>{"fpu", "tsc"}).empty());
  auto again = ReadHostCpu("/dev/kvm");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->features, cpu->features) << "both ends must compare like with like";
}

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
  EXPECT_TRUE(IsSymlink(IncomingDir(req_.migration_id))) << "keeps the worker's --vm-dir paths valid";
  EXPECT_TRUE(PathExists(dir_ / "root/vms/vm1/vm.toml"));
  EXPECT_EQ(Status(req_.migration_id)["state"], "committed");
  EXPECT_EQ(Abort(req_.migration_id)["state"], "committed") << "an abort after the commit changes nothing";
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
  EXPECT_NE(status["message"].get<std::string>().find("fake stream failure"), std::string::npos) << status.dump();
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
  EXPECT_NE(refused.error().message().find("vm vm1 is arriving here by a live move"), std::string::npos)
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
  EXPECT_NE(marker["error"].get<std::string>().find("remove " + Part() + ": Is a directory"), std::string::npos)
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
                "destination file " + Part() + " is left over from the aborted incoming move " + aborted +
                    " of vm vm1, whose clean-up keeps failing (remove " + Part() + ": Is a directory)");
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
  create.definition.disks.push_back(config::DiskSpec{req_.disks[0].top, config::DiskFormat::kRaw, false});
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
}  // namespace appliance
