// The incoming worker process (ferry-vmm --incoming) around a
// LiveMoveDestination (the fixture: live_move_destination_fixture.h).
#include "live_move_destination_fixture.h"

namespace appliance::dest_test {
namespace {

// The incoming worker itself (ferry-vmm --incoming): ready line with the
// port, "incoming" status while receiving, other requests refused; after the
// commit an ordinary worker whose VM runs; a failed move ends the worker
// with an exit record naming the error.
class IncomingWorkerTest : public DestinationTest {
 protected:
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    DestinationTest::TearDown();
  }

  // Writes D/vm.toml and D/incoming.json for a one-raw-disk VM and starts
  // ferry-vmm; returns the data port from its ready line.
  uint16_t Launch(const PrepareRequest& plan) {
    const std::string d = dir_ / "vm";
    WriteFile(d + "/guest.bin", vm::test_guests::kCounter);
    config::VmDefinition def = MachineFor(plan, d).definition;
    EXPECT_TRUE(base::WriteFileAtomically(d + "/vm.toml", config::FormatVmDefinition(def)));
    EXPECT_TRUE(base::WriteFileAtomically(d + "/" + kIncomingPlanFile, ToJson(plan).dump()));
    // As the destination ferryd writes it: this host's identity, and the
    // source's certificate as the only one its streams may present.
    const ferry_test::TestTlsFiles mine =
        ferry_test::IssueTestCertificate(dir_ / "dest-host", "dest");
    const PeerTrust trust{mine.certificate, mine.key, mine.ca, {}, source_tls_->fingerprint()};
    EXPECT_TRUE(base::WriteFileAtomically(d + "/" + kIncomingTlsFile, ToJson(trust).dump()));
    int pipefd[2];
    EXPECT_EQ(::pipe(pipefd), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(pipefd[0]);
      std::string fd = std::to_string(pipefd[1]);
      std::string sock = d + "/ctl.sock";
      ::execl(FERRY_VMM_PATH, "ferry-vmm", "--vm-dir", d.c_str(), "--control-socket", sock.c_str(),
              "--incoming", "127.0.0.1", "--migration-id", kMigrationId, "--ready-fd", fd.c_str(),
              nullptr);
      ::_exit(127);
    }
    ::close(pipefd[1]);
    base::Fd r(pipefd[0]);
    char buf[64] = {};
    size_t got = 0;
    while (got < sizeof buf - 1) {
      ssize_t n = ::read(r.get(), buf + got, sizeof buf - 1 - got);
      if (n <= 0) break;
      got += size_t(n);
      if (buf[got - 1] == '\n') break;
    }
    std::string line(buf, got);
    EXPECT_EQ(line.rfind("ready ", 0), 0u) << "ready line: " << line;
    return line.size() > 6 ? uint16_t(std::stoi(line.substr(6))) : 0;
  }

  base::Result<WorkerReply> Call(WorkerOp op) {
    WorkerRequest req{op, ""};
    return CallWorker(dir_ / "vm/ctl.sock", req, 5000);
  }

  // Waits for the worker to exit; returns its exit status.
  int WaitExit() {
    int status = 0;
    ::testing::AssertionResult exited = ferry_test::WaitFor(
        "the worker to exit", std::chrono::seconds(20),
        [&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, std::chrono::milliseconds(50));
    if (!exited) {
      ADD_FAILURE() << exited.message();
      return -1;
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // The source host's identity (the tests' CA signs both).
  std::shared_ptr<const transport::TlsContext> source_tls_ =
      ferry_test::TestTlsContext(dir_ / "source-host", "source");
  pid_t pid_ = -1;
};

TEST_F(IncomingWorkerTest, CommitsThenServesAsAnOrdinaryWorker) {
  FERRY_SKIP_WITHOUT_KVM();
  PrepareRequest plan = RawPlan(1 << 20);
  // The source VM: the counter guest with one raw disk, paused.
  WriteFile(dir_ / "src/guest.bin", vm::test_guests::kCounter);
  WriteFile(dir_ / "src/s0.raw", std::vector<uint8_t>(1 << 20));
  vm::MachineOptions so = MachineFor(plan, dir_ / "src");
  so.definition.disks = {{dir_ / "src/s0.raw", config::DiskFormat::kRaw, false}};
  auto created = vm::Machine::Create(so);
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  source_vm_ = std::move(*created);
  ASSERT_TRUE(source_vm_->Start());
  // A sleep on purpose: the guest runs a moment so its state is not the boot state.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(source_vm_->Pause());
  auto state = source_vm_->SaveDeviceState();
  ASSERT_TRUE(state.has_value()) << state.error().ToString();

  const uint16_t port = Launch(plan);
  ASSERT_NE(port, 0);
  auto st = Call(WorkerOp::kStatus);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_EQ(st->state, "incoming");
  auto status = LiveMoveStatusFromJson(nlohmann::json::parse(st->live_move));
  ASSERT_TRUE(status.has_value()) << st->live_move;
  EXPECT_EQ(status->migration_id, kMigrationId);
  auto refused = Call(WorkerOp::kPause);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), base::Code::kFailedPrecondition);
  EXPECT_NE(refused.error().message().find("vm is incoming"), std::string::npos);

  auto s = FakeSource::Connect(port, 2, kMigrationId, source_tls_.get());
  ASSERT_TRUE(s);
  const uint8_t* memory = source_vm_->memory_base();
  for (uint64_t g = 0; g < kMemory / kPageBytes / kMaxPagesPerBatch; ++g) {
    std::vector<PageEntry> pages = NonZeroPagesOfGroup(memory, g);
    if (!pages.empty()) s->Pages(pages, memory);
  }
  s->Extent(0, 4096, Pattern(8192, 5));
  s->End(0);
  s->End(1);
  s->Control(
      0, MoveFrame::kDeviceState,
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(state->data()), state->size()));
  auto committed = s->streams[0]->Receive(transport::kMaxFramePayload, -1, 20000);
  ASSERT_TRUE(committed.has_value()) << committed.error().ToString();
  EXPECT_EQ(committed->type, uint16_t(MoveFrame::kCommitted));
  s.reset();
  EXPECT_TRUE(std::filesystem::exists(dir_ / "vm/committed"));

  // Once the worker has taken the outcome it is an ordinary worker.
  std::string last;
  EXPECT_TRUE(
      ferry_test::WaitFor("the worker to run as an ordinary worker", std::chrono::seconds(10), [&] {
        auto r = Call(WorkerOp::kStatus);
        last = r.has_value() ? r->state : r.error().ToString();
        return r.has_value() && r->state == "running" && r->live_move.empty();
      }));
  EXPECT_EQ(last, "running");
  auto paused = Call(WorkerOp::kPause);
  ASSERT_TRUE(paused.has_value()) << paused.error().ToString();
  EXPECT_EQ(paused->state, "paused");
  auto stopped = Call(WorkerOp::kStop);
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_EQ(WaitExit(), kWorkerExitOk);
  auto exit = base::ReadFileToString(dir_ / "vm/worker.exit");
  ASSERT_TRUE(exit.has_value());
  EXPECT_NE(exit->find("\"stopped\""), std::string::npos) << *exit;
  auto data = ReadBytes(dir_ / "dst/data.raw");
  ASSERT_EQ(data.size(), 1u << 20);
  auto pattern = Pattern(8192, 5);
  EXPECT_TRUE(std::equal(pattern.begin(), pattern.end(), data.begin() + 4096));
}

TEST_F(IncomingWorkerTest, AFailedMoveEndsTheWorkerWithTheError) {
  FERRY_SKIP_WITHOUT_KVM();
  const uint16_t port = Launch(RawPlan());
  ASSERT_NE(port, 0);
  auto s = FakeSource::Connect(port, 2, kMigrationId, source_tls_.get());
  ASSERT_TRUE(s);
  s->End(0, +3);
  base::Error sent = s->ReceiveError();
  EXPECT_EQ(sent.code(), base::Code::kDataLoss) << sent.ToString();
  EXPECT_EQ(WaitExit(), kWorkerExitVmFailed);
  auto text = base::ReadFileToString(dir_ / "vm/worker.exit");
  ASSERT_TRUE(text.has_value());
  auto exit = DecodeExitRecord(*text, "worker.exit");
  ASSERT_TRUE(exit.has_value()) << *text;
  EXPECT_EQ(exit->state, "failed");
  EXPECT_EQ(exit->code, "data-loss");
  EXPECT_NE(exit->message.find("the source sent 3 data frames, 0 arrived"), std::string::npos)
      << exit->message;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "vm/committed"));
}

TEST_F(IncomingWorkerTest, StopAbortsTheMove) {
  FERRY_SKIP_WITHOUT_KVM();
  const uint16_t port = Launch(RawPlan());
  ASSERT_NE(port, 0);
  auto s = FakeSource::Connect(port, 2, kMigrationId, source_tls_.get());
  ASSERT_TRUE(s);
  auto stopped = Call(WorkerOp::kStop);
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_EQ(stopped->state, "stopped");
  EXPECT_EQ(WaitExit(), kWorkerExitOk);
  auto text = base::ReadFileToString(dir_ / "vm/worker.exit");
  ASSERT_TRUE(text.has_value());
  EXPECT_NE(text->find("incoming move aborted"), std::string::npos) << *text;
}

// Its data streams must come from the host that sent the Prepare: another
// host the destination trusts (same CA) is refused, a plaintext peer too,
// and the move still waits for its own source.
TEST_F(IncomingWorkerTest, StreamsFromAnyOtherHostAreRefused) {
  FERRY_SKIP_WITHOUT_KVM();
  const uint16_t port = Launch(RawPlan(1 << 20));
  ASSERT_NE(port, 0);
  auto other = ferry_test::TestTlsContext(dir_ / "other-host", "other");
  auto fd = transport::TcpConnect("127.0.0.1", port, "", 5000);
  ASSERT_TRUE(fd.has_value()) << fd.error().ToString();
  auto session = transport::TlsConnect(*other, fd->get(), "", 5000);
  if (session.has_value()) {  // TLS 1.3: the refusal arrives at the first read
    transport::FrameStream fs(std::move(*fd), "other host", std::move(*session));
    transport::Hello h;
    h.role = transport::StreamRole::kData;
    h.migration_id = *ParseMigrationId(kMigrationId);
    auto reply = transport::ClientHello(fs, h, 5000);
    ASSERT_FALSE(reply.has_value());
    EXPECT_EQ(reply.error().code(), base::Code::kPermissionDenied) << reply.error().ToString();
  } else {
    EXPECT_EQ(session.error().code(), base::Code::kPermissionDenied);
  }
  base::Error plain = test::RefusalOf(port, test::HelloFrameBytes(0, /*data=*/true));
  EXPECT_NE(plain.message().find("requires TLS"), std::string::npos) << plain.ToString();
  auto st = Call(WorkerOp::kStatus);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_EQ(st->state, "incoming");
  auto s = FakeSource::Connect(port, 1, kMigrationId, source_tls_.get());
  ASSERT_NE(s, nullptr) << "the move's own source is still let in";
}

}  // namespace
}  // namespace appliance::dest_test
