// The destination ferryd's peer listener (PeerService) driven directly over
// its control protocol (CallPeer), against a real ferryd and real incoming
// ferry-vmm workers: Prepare launches a worker that listens on the address
// the control connection arrived at; Abort and Status end it and remove its
// files; refusals name their reasons; a ferryd restart re-watches a running
// incoming worker and cleans up one that died. (Whole moves through `ferry
// move-vm` are live_move_test.cc's.)
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "config/vm_definition.h"
#include "daemon/host_cpu.h"
#include "ipc/vm_dir_files.h"
#include "peer/peer_client.h"
#include "protocol/move_protocol.h"
#include "support/ferryd_harness.h"
#include "support/files.h"
#include "support/test_tls.h"
#include "transport/frame_stream.h"
#include "transport/tcp.h"
#include "transport/tls.h"

namespace ferry_it {
namespace {

using appliance::MoveFrame;
using nlohmann::json;

bool PathExists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

bool Alive(int64_t pid) {
  std::string stat;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::getline(in, stat);
  auto paren = stat.rfind(')');
  return !stat.empty() && paren != std::string::npos && stat.size() > paren + 2 &&
         stat[paren + 2] != 'Z';
}

class PeerIntegrationTest : public FerryTest {
 protected:
  void SetUp() override {
    FerryTest::SetUp();
    port_ = FreePort("127.0.0.2");
    Configure(true, "[\"any\"]");
  }

  void Configure(bool incoming, const std::string& networks) {
    std::ofstream(config(), std::ios::trunc)
        << "storage_root = \"" << storage() << "\"\n"
        << "api_socket = \"" << socket() << "\"\n"
        << "guest_dir = \"" << FERRY_GUEST_DIR << "\"\n"
        << LiveMoveHostToml("127.0.0.2:" + std::to_string(port_), incoming, true, networks);
  }

  // This test plays a source host with its own certificate from the tests' CA.
  appliance::PeerEndpoint Peer() {
    if (source_tls_ == nullptr)
      source_tls_ = ferry_test::TestTlsContext(dir() + "/source", "source");
    return appliance::PeerEndpoint{"127.0.0.2", port_, "", source_tls_, ""};
  }

  appliance::PrepareRequest Request(const std::string& name) {
    config::VmDefinition def;
    def.name = name;
    def.id = config::NewUuid();
    def.memory_bytes = 32ull << 20;
    def.program = std::string(FERRY_GUEST_DIR) + "/memory-guest.bin";
    appliance::PrepareRequest r;
    r.migration_id = appliance::NewMigrationId();
    r.vm_name = name;
    r.vm_id = def.id;
    r.definition_toml = config::FormatVmDefinition(def);
    r.memory_bytes = def.memory_bytes;
    // What the source would send: this host's own CPU, read the same way.
    auto cpu = appliance::ReadHostCpu("/dev/kvm");
    EXPECT_TRUE(cpu.has_value()) << cpu.error().ToString();
    if (cpu.has_value()) {
      r.cpu_vendor = cpu->vendor;
      r.cpu_features = cpu->features;
    }
    r.destination = dir() + "/dest";
    r.performance = "tcp";
    r.streams = 2;
    r.source_host = "127.0.0.1";
    return r;
  }

  base::Result<json> Call(MoveFrame type, const json& request, MoveFrame reply) {
    return appliance::CallPeer(Peer(), type, request, reply, 60000);
  }
  std::string IncomingDir(const std::string& id) const { return storage() + "/incoming/" + id; }
  int64_t WorkerPid(const std::string& id) {
    std::ifstream in(storage() + "/incoming-records/" + id + ".json");
    json j = json::parse(in, nullptr, false);
    return j.is_object() ? j.value("pid", int64_t{0}) : 0;
  }

  uint16_t port_ = 0;
  std::shared_ptr<const transport::TlsContext> source_tls_;
};

TEST_F(PeerIntegrationTest, PrepareStartsAnIncomingWorkerAndAbortRemovesIt) {
  StartFerryd();
  appliance::PrepareRequest req = Request("in1");
  auto reply = Call(MoveFrame::kPrepare, appliance::ToJson(req), MoveFrame::kPrepareReply);
  ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
  auto parsed = appliance::PrepareReplyFromJson(*reply);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(parsed->data_host, "127.0.0.2") << "the address the control connection arrived at";
  const int64_t pid = WorkerPid(req.migration_id);
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(Alive(pid));
  EXPECT_TRUE(PathExists(IncomingDir(req.migration_id) + "/" + appliance::kIncomingPlanFile));
  {
    // The incoming worker really listens there (a data stream would start
    // with a hello; connecting is enough to show the port is live).
    auto fd = transport::TcpConnect(parsed->data_host, parsed->data_port, "", 5000);
    EXPECT_TRUE(fd.has_value()) << fd.error().ToString();
  }
  // Not listed as a VM until it commits.
  EXPECT_TRUE(FerryJson({"vm", "list"})["vms"].empty());

  auto aborted =
      Call(MoveFrame::kAbort, json{{"migration_id", req.migration_id}, {"reason", "test"}},
           MoveFrame::kAbortReply);
  ASSERT_TRUE(aborted.has_value()) << aborted.error().ToString();
  EXPECT_EQ((*aborted)["state"], "aborted");
  EXPECT_FALSE(PathExists(IncomingDir(req.migration_id)));
  WaitFor("the incoming worker to exit", 10000, [&] { return !Alive(pid); });

  auto status = Call(MoveFrame::kStatusQuery, json{{"migration_id", req.migration_id}},
                     MoveFrame::kStatusReply);
  ASSERT_TRUE(status.has_value()) << status.error().ToString();
  EXPECT_EQ((*status)["state"], "aborted");
}

TEST_F(PeerIntegrationTest, StatusOfAMoveThatLostItsSourceIsAborted) {
  StartFerryd();
  appliance::PrepareRequest req = Request("in2");
  ASSERT_TRUE(
      Call(MoveFrame::kPrepare, appliance::ToJson(req), MoveFrame::kPrepareReply).has_value());
  const int64_t pid = WorkerPid(req.migration_id);
  auto status = Call(MoveFrame::kStatusQuery, json{{"migration_id", req.migration_id}},
                     MoveFrame::kStatusReply);
  ASSERT_TRUE(status.has_value()) << status.error().ToString();
  EXPECT_EQ((*status)["state"], "aborted");
  EXPECT_FALSE(Alive(pid));
  EXPECT_FALSE(PathExists(IncomingDir(req.migration_id)));
}

TEST_F(PeerIntegrationTest, RefusalsNameTheirReasons) {
  Configure(false, "[\"10.9.0.0/16\"]");
  StartFerryd();
  auto r = Call(MoveFrame::kPrepare, appliance::ToJson(Request("in3")), MoveFrame::kPrepareReply);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kPermissionDenied);
  EXPECT_NE(r.error().message().find("127.0.0.2:" + std::to_string(port_) + ": "),
            std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("incoming live moves are disabled on this host"),
            std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("is not inside migration.networks [10.9.0.0/16]"),
            std::string::npos)
      << r.error().message();
  EXPECT_FALSE(PathExists(storage() + "/incoming/" + Request("x").migration_id));
}

TEST_F(PeerIntegrationTest, DataStreamsAreNotServedOnTheControlPort) {
  StartFerryd();
  auto fd = transport::TcpConnect("127.0.0.2", port_, "", 5000);
  ASSERT_TRUE(fd.has_value());
  auto session = transport::TlsConnect(*Peer().tls, fd->get(), "", 5000);
  ASSERT_TRUE(session.has_value()) << session.error().ToString();
  transport::FrameStream stream(std::move(*fd), "test", std::move(*session));
  transport::Hello hello;
  hello.role = transport::StreamRole::kData;
  ASSERT_TRUE(transport::ClientHello(stream, hello, 5000).has_value());
  auto frame = stream.Receive(1 << 20, -1, 5000);
  ASSERT_TRUE(frame.has_value()) << frame.error().ToString();
  EXPECT_EQ(frame->type, uint16_t(transport::FrameType::kError));
  // And it keeps serving.
  auto status = Call(MoveFrame::kStatusQuery, json{{"migration_id", appliance::NewMigrationId()}},
                     MoveFrame::kStatusReply);
  ASSERT_TRUE(status.has_value()) << status.error().ToString();
  EXPECT_EQ((*status)["state"], "unknown");
}

TEST_F(PeerIntegrationTest, RestartWatchesARunningIncomingWorkerAgain) {
  StartFerryd();
  appliance::PrepareRequest req = Request("in4");
  ASSERT_TRUE(
      Call(MoveFrame::kPrepare, appliance::ToJson(req), MoveFrame::kPrepareReply).has_value());
  const int64_t pid = WorkerPid(req.migration_id);
  KillFerryd();
  StartFerryd();
  EXPECT_TRUE(Alive(pid)) << "a ferryd restart does not end an incoming move";
  EXPECT_TRUE(PathExists(IncomingDir(req.migration_id)));
  // The slot is still taken by it: its name cannot be prepared twice.
  auto again =
      Call(MoveFrame::kPrepare, appliance::ToJson(Request("in4")), MoveFrame::kPrepareReply);
  ASSERT_FALSE(again.has_value());
  EXPECT_NE(again.error().message().find("already moving here"), std::string::npos)
      << again.error().message();
  auto aborted =
      Call(MoveFrame::kAbort, json{{"migration_id", req.migration_id}}, MoveFrame::kAbortReply);
  ASSERT_TRUE(aborted.has_value()) << aborted.error().ToString();
  EXPECT_EQ((*aborted)["state"], "aborted");
  WaitFor("the incoming worker to exit", 10000, [&] { return !Alive(pid); });
  EXPECT_FALSE(PathExists(IncomingDir(req.migration_id)));
}

TEST_F(PeerIntegrationTest, RestartCleansUpAnIncomingMoveWhoseWorkerDied) {
  StartFerryd();
  appliance::PrepareRequest req = Request("in5");
  ASSERT_TRUE(
      Call(MoveFrame::kPrepare, appliance::ToJson(req), MoveFrame::kPrepareReply).has_value());
  const int64_t pid = WorkerPid(req.migration_id);
  KillFerryd();
  ::kill(pid_t(pid), SIGKILL);
  WaitFor("the incoming worker to exit", 10000, [&] { return !Alive(pid); });
  StartFerryd();
  EXPECT_FALSE(PathExists(IncomingDir(req.migration_id)));
  auto status = Call(MoveFrame::kStatusQuery, json{{"migration_id", req.migration_id}},
                     MoveFrame::kStatusReply);
  ASSERT_TRUE(status.has_value()) << status.error().ToString();
  EXPECT_EQ((*status)["state"], "aborted");
}

// A whole move through `ferry move-vm` from another ferryd: the VM is
// adopted here, keeps running through a restart of this (destination)
// ferryd, and stopping it later removes the incoming/ symlink its worker's
// paths needed.
TEST_F(PeerIntegrationTest, AnAdoptedVmSurvivesADestinationRestart) {
  StartFerryd();
  ExtraFerryd a(dir(), "a");
  a.WriteConfig(LiveMoveHostToml("127.0.0.1:" + std::to_string(FreePort("127.0.0.1"))));
  a.Start();
  ASSERT_EQ(a.Ferry({"vm", "create", "m1", "--guest", "memory", "--memory", "64M", "--cmdline",
                     "ws_mib=16 hb_ms=50"})
                .exit_code,
            0);
  ASSERT_EQ(a.Ferry({"vm", "start", "m1"}).exit_code, 0);
  ProcessResult moved =
      a.Ferry({"move-vm", "m1", "127.0.0.2:" + std::to_string(port_), "--include-storage",
               "--destination-storage-path", dir() + "/b-disks", "--streams", "2"},
              300000);
  ASSERT_EQ(moved.exit_code, 0) << moved.out << moved.err;
  // The source's job asks this ferryd for the move's status before it
  // reports success, and that adopts the committed VM: no waiting here.
  EXPECT_EQ(State("m1"), "running");
  std::vector<std::string> links;
  for (const auto& e : std::filesystem::directory_iterator(storage() + "/incoming")) {
    if (e.is_symlink()) links.push_back(e.path().string());
  }
  ASSERT_EQ(links.size(), 1u) << "the running worker's --vm-dir is kept valid";
  EXPECT_EQ(std::filesystem::read_symlink(links[0]).string(), storage() + "/vms/m1");
  const size_t beats = WaitForHeartbeats("m1", "HB", 1).size();

  KillFerryd();
  StartFerryd();
  EXPECT_EQ(State("m1"), "running") << "re-attached after the restart";
  WaitForHeartbeats("m1", "HB", beats + 5);

  ASSERT_EQ(Ferry({"vm", "stop", "m1"}).exit_code, 0);
  EXPECT_EQ(State("m1"), "stopped");
  WaitFor("the incoming/ symlink to go", 10000, [&] { return !PathExists(links[0]); });
  // An ordinary VM of this host now: it starts from vms/m1.
  ASSERT_EQ(Ferry({"vm", "start", "m1"}).exit_code, 0);
  EXPECT_EQ(State("m1"), "running");
}

}  // namespace

// ---- Who may move a VM in (issue 10) ----------------------------------------

TEST_F(PeerIntegrationTest, PrepareOutsideTheIncomingDirectoriesIsRefused) {
  StartFerryd();
  for (const std::string dest : {"/etc/cron.d", "/tmp/../etc/cron.d", "/"}) {
    appliance::PrepareRequest req = Request("evil");
    req.destination = dest;
    // The disk file as a source would name it, under the destination.
    auto r = Call(MoveFrame::kPrepare, appliance::ToJson(req), MoveFrame::kPrepareReply);
    ASSERT_FALSE(r.has_value()) << dest;
    EXPECT_EQ(r.error().code(), base::Code::kPermissionDenied) << r.error().ToString();
    // Outside the allowed list, or spelled so that it might lead out of it.
    const bool dotted = dest.find("..") != std::string::npos || dest == "/";
    EXPECT_NE(r.error().message().find(dotted ? "without \".\", \"..\""
                                              : "migration.incoming_directories"),
              std::string::npos)
        << r.error().ToString();
    EXPECT_FALSE(PathExists(IncomingDir(req.migration_id)));
  }
  EXPECT_FALSE(PathExists("/etc/cron.d/evil.img"));
}

TEST_F(PeerIntegrationTest, OnlyTheHostThatPreparedAMoveMayAskAboutOrAbortIt) {
  StartFerryd();
  appliance::PrepareRequest req = Request("in5");
  ASSERT_TRUE(
      Call(MoveFrame::kPrepare, appliance::ToJson(req), MoveFrame::kPrepareReply).has_value());
  const int64_t pid = WorkerPid(req.migration_id);
  // Another host the destination trusts (same CA), knowing the migration id.
  appliance::PeerEndpoint other = Peer();
  other.tls = ferry_test::TestTlsContext(dir() + "/other", "other");
  for (MoveFrame type : {MoveFrame::kStatusQuery, MoveFrame::kAbort}) {
    auto r = appliance::CallPeer(
        other, type, json{{"migration_id", req.migration_id}},
        type == MoveFrame::kAbort ? MoveFrame::kAbortReply : MoveFrame::kStatusReply, 10000);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), base::Code::kPermissionDenied) << r.error().ToString();
    EXPECT_NE(r.error().message().find("prepared by another host"), std::string::npos)
        << r.error().ToString();
  }
  EXPECT_TRUE(Alive(pid)) << "a refused Status or Abort must not end the move";
  auto aborted =
      Call(MoveFrame::kAbort, json{{"migration_id", req.migration_id}}, MoveFrame::kAbortReply);
  ASSERT_TRUE(aborted.has_value()) << aborted.error().ToString();
  EXPECT_EQ((*aborted)["state"], "aborted");
}

TEST_F(PeerIntegrationTest, PeersWithoutATrustedCertificateCannotTakeTheMoveSlots) {
  StartFerryd();
  // Plaintext Prepares (an attacker's script) and a ferryd with its own
  // self-signed identity: none gets past TLS, none takes a slot.
  for (int i = 0; i < 3; ++i) {
    auto fd = transport::TcpConnect("127.0.0.2", port_, "", 5000);
    ASSERT_TRUE(fd.has_value());
    transport::FrameStream plain(std::move(*fd), "attacker");
    auto hello = transport::ClientHello(plain, transport::Hello{}, 5000);
    ASSERT_FALSE(hello.has_value());
    EXPECT_NE(hello.error().message().find("requires TLS"), std::string::npos)
        << hello.error().ToString();
  }
  ASSERT_TRUE(
      transport::GenerateHostIdentity(dir() + "/stranger.crt", dir() + "/stranger.key", "stranger")
          .has_value());
  auto stranger = transport::TlsContext::Create(
      {dir() + "/stranger.crt", dir() + "/stranger.key", "", {"SHA256:" + std::string(64, '0')}});
  ASSERT_TRUE(stranger.has_value()) << stranger.error().ToString();
  appliance::PeerEndpoint from_stranger = Peer();
  from_stranger.tls = *stranger;
  for (int i = 0; i < 3; ++i) {
    auto r = appliance::CallPeer(from_stranger, MoveFrame::kPrepare,
                                 appliance::ToJson(Request("s" + std::to_string(i))),
                                 MoveFrame::kPrepareReply, 10000);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), base::Code::kPermissionDenied) << r.error().ToString();
  }
  EXPECT_NE(ferry_test::ReadFile(dir() + "/ferryd.log").find("refused 127.0.0."),
            std::string::npos);
  // Both slots (max_live_moves = 2) are still free for trusted sources.
  for (const char* name : {"t1", "t2"}) {
    auto r = Call(MoveFrame::kPrepare, appliance::ToJson(Request(name)), MoveFrame::kPrepareReply);
    EXPECT_TRUE(r.has_value()) << name << ": " << r.error().ToString();
  }
}

}  // namespace ferry_it
