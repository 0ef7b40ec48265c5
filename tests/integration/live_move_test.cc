// Shared-nothing live moves between two ferryds on this machine (`ferry
// move-vm`): host A listens on 127.0.0.1, host B on 127.0.0.2, each with its
// own storage root. The memory guest must keep its heartbeat sequence across
// the move (no gap, no repeat: it ran on exactly one host at a time) with no
// errors, and a paused VM arrives paused and runs on only when resumed at
// B; the disk guest moves with its qcow2 chain and a checkpoint and its
// blocks verify at the destination. Refusals (outgoing disabled, incoming
// disabled, a source outside the destination's networks, no
// --include-storage) leave the VM running on A.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "support/ferryd_harness.h"

namespace ferry_it {
namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

bool HaveQemuImg() {
  return RunProcess({"/usr/bin/qemu-img", "--version"}, {}, 30000).exit_code == 0;
}

// Holds a console file open across a move: the source's file is deleted
// once the VM left, and an open descriptor keeps the deleted file's contents
// (everything the source printed, up to its last line) readable. Reading it
// after the move, not racing the deletion, means no line can be missed.
class HeldFile {
 public:
  explicit HeldFile(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    EXPECT_GE(fd_, 0) << path << ": " << std::strerror(errno);
  }
  ~HeldFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  HeldFile(const HeldFile&) = delete;
  HeldFile& operator=(const HeldFile&) = delete;

  std::string Text() const {
    std::string text;
    char buf[65536];
    for (off_t at = 0; fd_ >= 0;) {
      ssize_t n = ::pread(fd_, buf, sizeof buf, at);
      if (n <= 0) break;
      text.append(buf, size_t(n));
      at += n;
    }
    return text;
  }

 private:
  int fd_;
};

class LiveMoveTest : public FerryTest {
 protected:
  void SetUp() override {
    FerryTest::SetUp();
    port_a_ = FreePort("127.0.0.1");
    port_b_ = FreePort("127.0.0.2");
    ConfigureA(true);
    b_ = std::make_unique<ExtraFerryd>(dir(), "b");
    ConfigureB(true, "[\"any\"]");
  }
  void TearDown() override {
    b_.reset();  // its workers and ferryd, before the directory goes
    FerryTest::TearDown();
  }

  void ConfigureA(bool outgoing) {
    std::ofstream(config(), std::ios::trunc)
        << "storage_root = \"" << storage() << "\"\n"
        << "api_socket = \"" << socket() << "\"\n"
        << "guest_dir = \"" << FERRY_GUEST_DIR << "\"\n"
        << LiveMoveHostToml("127.0.0.1:" + std::to_string(port_a_), true, outgoing);
  }
  void ConfigureB(bool incoming, const std::string& networks) {
    b_->WriteConfig(
        LiveMoveHostToml("127.0.0.2:" + std::to_string(port_b_), incoming, true, networks));
  }
  void RestartA() {
    KillFerryd();
    StartFerryd();
  }
  void RestartB() {
    b_->Kill();
    b_->Start();
  }

  std::string HostB() const { return "127.0.0.2:" + std::to_string(port_b_); }
  std::string DestB() const { return dir() + "/b-disks"; }

  ProcessResult MoveVm(const std::string& vm,
                       std::vector<std::string> extra = {"--include-storage"}) {
    std::vector<std::string> args = {"move-vm", vm,          HostB(), "--destination-storage-path",
                                     DestB(),   "--streams", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Ferry(args, 300000);
  }

  std::vector<std::string> VmNames(const nlohmann::json& list) {
    std::vector<std::string> names;
    for (const auto& vm : list["vms"]) names.push_back(vm["name"].get<std::string>());
    return names;
  }
  bool HasVm(const nlohmann::json& list, const std::string& vm) {
    for (const auto& n : VmNames(list))
      if (n == vm) return true;
    return false;
  }

  // A refused move: exit 1, the message names the reason, the VM still runs
  // on A and B has no trace of it.
  void ExpectRefused(const std::string& vm, const ProcessResult& r, const std::string& reason) {
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find(reason), std::string::npos) << "want \"" << reason << "\" in: " << r.err;
    EXPECT_EQ(State(vm), "running");
    EXPECT_FALSE(HasVm(b_->FerryJson({"vm", "list"}), vm));
  }

  // The memory guest's heartbeats go on at B: A's output (`before`) and
  // B's console are one serial stream (a line the pause cut in two ends at
  // B). Waits for 20 beats past A's last, then expects one sequence without
  // gap or repeat (a guest that ran on both hosts would repeat numbers),
  // errors=0 and no MISMATCH. Returns the beats for further checks.
  std::vector<Heartbeat> ExpectOneHeartbeatSequence(const std::string& before,
                                                    const std::string& b_console,
                                                    uint64_t last_at_a) {
    std::vector<Heartbeat> beats;
    WaitFor("20 heartbeats at B", 60000, [&] {
      beats = ParseHeartbeats(before + ReadAll(b_console), "HB");
      return beats.back().n > last_at_a + 20;
    });
    for (size_t i = 0; i < beats.size(); ++i) {
      EXPECT_EQ(beats[i].errors, 0u) << "heartbeat " << beats[i].n;
      if (i == 0) continue;
      EXPECT_EQ(beats[i].n, beats[i - 1].n + 1)
          << "gap or repeat in the heartbeat sequence (ran on both hosts?)";
    }
    std::string b_text = ReadAll(b_console);
    EXPECT_EQ(Count(b_text, "MISMATCH"), 0u) << b_text;
    return beats;
  }

  // Both ferryds, and the memory guest m1 (128 MiB, 2 vCPUs, 32 MiB working
  // set) running at A with 10 heartbeats out.
  void StartHostsWithMemoryGuest() {
    StartFerryd();
    b_->Start();
    ASSERT_TRUE(CreateAndStart("m1", {"--guest", "memory", "--memory", "128M", "--vcpus", "2",
                                      "--cmdline", "ws_mib=32 rate=5000 hb_ms=50"}));
    WaitForHeartbeats("m1", "HB", 10);
  }

  uint16_t port_a_ = 0, port_b_ = 0;
  std::unique_ptr<ExtraFerryd> b_;
};

TEST_F(LiveMoveTest, MemoryGuestMovesWithoutAGap) {
  ASSERT_NO_FATAL_FAILURE(StartHostsWithMemoryGuest());
  const std::string a_dir = storage() + "/vms/m1";

  HeldFile a_console(a_dir + "/console.log");
  ProcessResult r = MoveVm("m1");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("moved vm m1 to " + HostB() + " in "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("; downtime "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" over 2 streams (per stream: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("zero pages skipped"), std::string::npos) << r.out;
  std::cout << r.out;

  // A forgot it and its files; B runs it.
  EXPECT_FALSE(HasVm(FerryJson({"vm", "list"}), "m1"));
  EXPECT_FALSE(Exists(a_dir)) << a_dir;
  EXPECT_EQ(b_->State("m1"), "running");
  nlohmann::json jobs = FerryJson({"jobs"});
  ASSERT_FALSE(jobs["jobs"].empty());
  EXPECT_EQ(jobs["jobs"].back()["kind"], "live-vm");
  EXPECT_EQ(jobs["jobs"].back()["phase"], "completed");

  // The heartbeats continue at B, and guest time with them.
  const std::string b_console = b_->storage() + "/vms/m1/console.log";
  const std::string before = a_console.Text();
  ASSERT_FALSE(ParseHeartbeats(before, "HB").empty());
  const uint64_t last_at_a = ParseHeartbeats(before, "HB").back().n;
  std::vector<Heartbeat> beats = ExpectOneHeartbeatSequence(before, b_console, last_at_a);
  for (size_t i = 1; i < beats.size(); ++i)
    EXPECT_LT(beats[i].t_ms - beats[i - 1].t_ms, 5000u)
        << "guest time jumped at heartbeat " << beats[i].n;
}

// A paused VM moves as it is: the source neither pauses it again nor
// resumes it, and B adopts it paused without resuming it. The guest runs
// again only when resumed at B, and then continues its heartbeat sequence
// where it stopped at A.
TEST_F(LiveMoveTest, PausedVmMovesAndArrivesPaused) {
  ASSERT_NO_FATAL_FAILURE(StartHostsWithMemoryGuest());
  HeldFile a_console(storage() + "/vms/m1/console.log");
  ASSERT_EQ(Ferry({"vm", "pause", "m1"}).exit_code, 0);
  ASSERT_EQ(State("m1"), "paused");
  const std::vector<Heartbeat> at_pause = ParseHeartbeats(a_console.Text(), "HB");
  ASSERT_FALSE(at_pause.empty());
  const uint64_t last_at_a = at_pause.back().n;

  ProcessResult r = MoveVm("m1");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::cout << r.out;
  EXPECT_FALSE(HasVm(FerryJson({"vm", "list"}), "m1"));
  EXPECT_EQ(b_->State("m1"), "paused");

  // Nothing ran in between: A printed no heartbeat after the pause (it was
  // not resumed for or after the move), and B prints none while it stays
  // paused. A line the pause cut in two ends at B, so the two consoles are
  // read as one stream.
  const std::string before = a_console.Text();
  const std::string b_console = b_->storage() + "/vms/m1/console.log";
  ASSERT_EQ(ParseHeartbeats(before, "HB").back().n, last_at_a) << "A ran the guest after the pause";
  // A sleep on purpose: time must pass for "nothing ran" to mean anything
  // (the guest beats every 50 ms); there is no event to wait for.
  ::usleep(1'000'000);
  EXPECT_EQ(ParseHeartbeats(before + ReadAll(b_console), "HB").back().n, last_at_a)
      << "B ran the guest before it was resumed";
  EXPECT_EQ(b_->State("m1"), "paused");

  ProcessResult resumed = b_->Ferry({"vm", "resume", "m1"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_EQ(b_->State("m1"), "running");
  ExpectOneHeartbeatSequence(before, b_console, last_at_a);
}

// There and back, and there again: an adopted VM's directory holds nothing
// of its move, so when it leaves B the directory goes, and B takes the same
// name again (a leftover vms/m1 would refuse it at pre-flight).
TEST_F(LiveMoveTest, AVmMovesThereAndBackAndThereAgain) {
  StartFerryd();
  b_->Start();
  ASSERT_TRUE(CreateAndStart(
      "m1", {"--guest", "memory", "--memory", "64M", "--cmdline", "ws_mib=8 rate=2000 hb_ms=50"}));
  WaitForHeartbeats("m1", "HB", 5);

  ProcessResult r = MoveVm("m1");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_EQ(b_->State("m1"), "running");
  for (const char* leftover : {"/vms/m1/committed", "/vms/m1/incoming.json"})
    EXPECT_FALSE(Exists(b_->storage() + leftover)) << leftover;

  // Back to A, into a directory of A's.
  const std::string back = dir() + "/a-back";
  r = b_->Ferry({"move-vm", "m1", "127.0.0.1:" + std::to_string(port_a_), "--include-storage",
                 "--destination-storage-path", back, "--streams", "2"},
                300000);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(State("m1"), "running");
  EXPECT_FALSE(HasVm(b_->FerryJson({"vm", "list"}), "m1"));
  EXPECT_FALSE(Exists(b_->storage() + "/vms/m1")) << "B kept the moved VM's directory";

  // And to B again: the name is free there.
  r = MoveVm("m1");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(b_->State("m1"), "running");
  EXPECT_FALSE(HasVm(FerryJson({"vm", "list"}), "m1"));
  const std::string b_console = b_->storage() + "/vms/m1/console.log";
  WaitFor("heartbeats at B after the third move", 60000,
          [&] { return ParseHeartbeats(ReadAll(b_console), "HB").size() >= 5; });
  for (const Heartbeat& beat : ParseHeartbeats(ReadAll(b_console), "HB"))
    EXPECT_EQ(beat.errors, 0u);
}

TEST_F(LiveMoveTest, DiskGuestMovesWithItsCheckpointChain) {
  StartFerryd();
  b_->Start();
  std::filesystem::create_directories(dir() + "/a-disks");
  std::string disk = dir() + "/a-disks/d1.qcow2";
  std::string format = "qcow2";
  if (HaveQemuImg()) {
    ASSERT_EQ(
        RunProcess({"/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", disk, "16M"}, {}, 30000)
            .exit_code,
        0);
  } else {
    disk = dir() + "/a-disks/d1.img";  // the checkpoint's overlay is qcow2 anyway
    format = "raw";
    MakeSparseFile(disk, 16 << 20);
  }
  ASSERT_TRUE(CreateAndStart(
      "d1", {"--guest", "disk", "--memory", "32M", "--disk", disk + ",format=" + format,
             "--cmdline", "hb_ms=50 rate=500 flush_every=16 blocks=2048"}));
  WaitForHeartbeats("d1", "DISK", 5);
  ProcessResult r = Ferry({"vm", "checkpoint", "create", "d1", "cp1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  WaitForHeartbeats("d1", "DISK", ParseHeartbeats(Console("d1"), "DISK").size() + 5);

  r = MoveVm("d1");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::cout << r.out;
  EXPECT_FALSE(HasVm(FerryJson({"vm", "list"}), "d1"));
  EXPECT_FALSE(Exists(disk)) << "the source disk stays after the move";
  EXPECT_EQ(b_->State("d1"), "running");

  // B knows the checkpoint, and every file of the chain is at the destination.
  nlohmann::json cps = b_->FerryJson({"vm", "checkpoint", "list", "d1"});
  ASSERT_EQ(cps["checkpoints"].size(), 1u) << cps.dump();
  EXPECT_EQ(cps["checkpoints"][0]["name"], "cp1");
  std::string layer = cps["checkpoints"][0]["layers"][0].get<std::string>();
  EXPECT_EQ(layer.rfind(DestB() + "/", 0), 0u) << layer;
  EXPECT_TRUE(Exists(layer)) << layer;
  nlohmann::json shown = b_->FerryJson({"vm", "show", "d1"});
  std::string top = shown["definition"]["disks"][0]["path"].get<std::string>();
  EXPECT_EQ(top.rfind(DestB() + "/", 0), 0u) << top;
  EXPECT_TRUE(Exists(top)) << top;

  // The guest keeps writing at B without a mismatch.
  const std::string b_console = b_->storage() + "/vms/d1/console.log";
  size_t seen = ParseHeartbeats(ReadAll(b_console), "DISK").size();
  WaitFor("disk heartbeats at B", 60000,
          [&] { return ParseHeartbeats(ReadAll(b_console), "DISK").size() >= seen + 10; });
  std::string text = ReadAll(b_console);
  EXPECT_EQ(Count(text, "DISK-MISMATCH"), 0u) << text;
  EXPECT_EQ(Count(text, "DISK-IOERR"), 0u) << text;
  auto beats = ParseHeartbeats(text, "DISK");
  ASSERT_FALSE(beats.empty());
  EXPECT_EQ(beats.back().errors, 0u);

  // Stopped at B, its disk verifies there.
  ASSERT_EQ(b_->Ferry({"vm", "stop", "d1"}).exit_code, 0);
  r = b_->Ferry({"vm", "create", "v1", "--guest", "disk", "--memory", "32M", "--disk",
                 top + ",format=qcow2,ro", "--cmdline", "mode=verify blocks=2048"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(b_->Ferry({"vm", "start", "v1"}).exit_code, 0);
  WaitFor("the verifier at B to power off", 60000, [&] {
    std::string s = b_->State("v1");
    return s == "powered-off" || s == "crashed";
  });
  std::string out = ReadAll(b_->storage() + "/vms/v1/console.log");
  EXPECT_EQ(b_->State("v1"), "powered-off") << out;
  auto pos = out.find("DISK-VERIFY blocks=2048 written=");
  ASSERT_NE(pos, std::string::npos) << out;
  EXPECT_NE(out.find(" bad=0", pos), std::string::npos) << out;
}

TEST_F(LiveMoveTest, RefusalsLeaveTheVmRunningAtTheSource) {
  ConfigureA(/*outgoing=*/false);
  StartFerryd();
  b_->Start();
  ASSERT_TRUE(CreateAndStart(
      "m1", {"--guest", "memory", "--memory", "32M", "--cmdline", "ws_mib=8 hb_ms=50"}));
  WaitForHeartbeats("m1", "HB", 3);

  ExpectRefused("m1", MoveVm("m1"), "outgoing live moves are disabled on this host");
  ConfigureA(true);
  RestartA();  // the worker keeps running; ferryd re-attaches
  ASSERT_EQ(State("m1"), "running");

  ExpectRefused("m1", MoveVm("m1", {}), "--include-storage is required");

  ConfigureB(/*incoming=*/false, "[\"any\"]");
  RestartB();
  ExpectRefused("m1", MoveVm("m1"), "incoming");

  ConfigureB(true, "[\"10.9.9.0/24\"]");
  RestartB();
  ExpectRefused("m1", MoveVm("m1"), "127.0.0.1");

  // Nothing was left behind at B, and A still serves the VM.
  EXPECT_FALSE(Exists(DestB() + "/m1")) << "no files at the destination";
  auto beats = WaitForHeartbeats("m1", "HB", ParseHeartbeats(Console("m1"), "HB").size() + 3);
  ASSERT_FALSE(beats.empty());
  EXPECT_EQ(beats.back().errors, 0u);
}

}  // namespace
}  // namespace ferry_it
