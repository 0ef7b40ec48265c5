// PeerService: the pre-flight matrix, malformed control streams, the peer
// client and the host CPU check (the fixture: peer_service_fixture.h).
#include "peer_service_fixture.h"

namespace appliance::peer_service_test {
namespace {

// ---- Pre-flight -------------------------------------------------------------

TEST_F(PeerServiceTest, RefusedWhenIncomingDisabled) {
  options_.host.incoming_enabled = false;
  StartPeer();
  auto r = Prepare(Request("vm1"));
  ExpectRefused(
      r, base::Code::kFailedPrecondition,
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

// The default migration.incoming_directories lies inside the storage root:
// a move may use that area (and only it) of the root.
TEST_F(PeerServiceTest, TheDefaultIncomingAreaUnderTheStorageRootIsAccepted) {
  const std::string area = options_.host.storage_root + "/" + config::kIncomingDisksDir;
  options_.host.incoming_directories = {area};
  StartPeer();
  PrepareRequest req = Request("vm1");
  req.destination = area + "/vm1";
  req.disks[0].top = req.destination + "/vm1.img";
  auto def = config::ParseVmDefinition(req.definition_toml, "vm.toml");
  ASSERT_TRUE(def.has_value()) << def.error().ToString();
  def->disks[0].path = req.disks[0].top;
  req.definition_toml = config::FormatVmDefinition(*def);
  auto r = Prepare(req);
  EXPECT_TRUE(r.has_value()) << r.error().ToString();
  // Elsewhere in the root (the inventory) stays refused.
  PrepareRequest inventory = Request("vm2");
  inventory.destination = options_.host.storage_root + "/vms/vm2";
  ExpectRefused(Prepare(inventory), base::Code::kPermissionDenied,
                "is not inside a directory this host accepts moves into");
}

TEST_F(PeerServiceTest, RefusedWithoutAFreeSlot) {
  options_.host.max_live_moves = 1;
  StartPeer();
  auto first = Prepare(Request("vm1"));
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  ExpectRefused(
      Prepare(Request("vm2")), base::Code::kResourceExhausted,
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
  ExpectRefused(Prepare(Request("vm1")), base::Code::kFailedPrecondition,
                "a vm named vm1 is already moving here");
}

TEST_F(PeerServiceTest, RefusedWhenMemoryIsShort) {
  StartPeer();
  PrepareRequest req = Request("vm1");
  req.memory_bytes = 1ull << 50;
  ExpectRefused(Prepare(req), base::Code::kFailedPrecondition,
                "not enough free memory: the vm needs 1073741824.0 MiB");
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
  for (const char* part :
       {"live move of vm taken refused: ", "vm configuration version 99 is not supported here",
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
base::Result<transport::Frame> RawExchange(const PeerEndpoint& peer, transport::StreamRole role,
                                           uint16_t type, const std::string& payload) {
  ASSIGN_OR_RETURN(base::Fd fd, transport::TcpConnect("127.0.0.1", peer.port, "", 5000));
  ASSIGN_OR_RETURN(std::unique_ptr<transport::TlsSession> tls,
                   transport::TlsConnect(*peer.tls, fd.get(), "", 5000));
  transport::FrameStream stream(std::move(fd), "test stream", std::move(tls));
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
    auto f = RawExchange(endpoint_, transport::StreamRole::kControl, uint16_t(MoveFrame::kPrepare),
                         "{not json");
    ASSERT_TRUE(f.has_value()) << f.error().ToString();
    ASSERT_EQ(f->type, kError);
    base::Error e = transport::DecodeErrorPayload(f->payload);
    EXPECT_EQ(e.code(), base::Code::kDataLoss);
    EXPECT_NE(e.message().find("not JSON"), std::string::npos) << e.message();
  }
  {
    auto f = RawExchange(endpoint_, transport::StreamRole::kControl,
                         uint16_t(MoveFrame::kPageBatch), "{}");
    ASSERT_TRUE(f.has_value()) << f.error().ToString();
    ASSERT_EQ(f->type, kError);
    EXPECT_NE(transport::DecodeErrorPayload(f->payload).message().find("unexpected frame type 32"),
              std::string::npos);
  }
  {
    auto f = RawExchange(endpoint_, transport::StreamRole::kControl, uint16_t(MoveFrame::kPrepare),
                         "{}");
    ASSERT_TRUE(f.has_value()) << f.error().ToString();
    ASSERT_EQ(f->type, kError);
    EXPECT_EQ(transport::DecodeErrorPayload(f->payload).code(), base::Code::kInvalidArgument);
  }
  {
    // A data-role hello on the control port: refused after the hello.
    auto f =
        RawExchange(endpoint_, transport::StreamRole::kData, uint16_t(MoveFrame::kPageBatch), "x");
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
  auto r = CallPeer(PeerEndpoint{"127.0.0.1", port, "", nullptr, ""}, MoveFrame::kStatusQuery,
                    json{{"migration_id", "x"}}, MoveFrame::kStatusReply, 2000);
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
  } ok[] = {{"10.0.0.2", "10.0.0.2", 7430},      {"10.0.0.2:7431", "10.0.0.2", 7431},
            {"[fd00::2]:7432", "fd00::2", 7432}, {"[fd00::2]", "fd00::2", 7430},
            {"fd00::2", "fd00::2", 7430},        {"host2.example:9", "host2.example", 9}};
  for (const Case& c : ok) {
    auto e = ParsePeerEndpoint(c.text, kDefaultPeerPort);
    ASSERT_TRUE(e.has_value()) << c.text << ": " << e.error().ToString();
    EXPECT_EQ(e->host, c.host) << c.text;
    EXPECT_EQ(e->port, c.port) << c.text;
  }
  for (const char* bad : {"", ":7430", "10.0.0.2:", "10.0.0.2:0", "10.0.0.2:65536", "10.0.0.2:x",
                          "[fd00::2", "[fd00::2]7430", "[]:7430"}) {
    auto e = ParsePeerEndpoint(bad, kDefaultPeerPort);
    EXPECT_FALSE(e.has_value()) << bad;
    if (!e.has_value()) {
      EXPECT_EQ(e.error().code(), base::Code::kInvalidArgument);
    }
  }
  EXPECT_EQ((PeerEndpoint{"fd00::2", 5, "", nullptr, ""}).ToString(), "[fd00::2]:5");
  EXPECT_EQ((PeerEndpoint{"10.0.0.2", 5, "", nullptr, ""}).ToString(), "10.0.0.2:5");
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

}  // namespace
}  // namespace appliance::peer_service_test
