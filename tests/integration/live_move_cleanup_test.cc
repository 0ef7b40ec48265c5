// The destination's clean-up of a failed live move, when the clean-up itself
// fails (docs/live_move.md, "Clean-up at the destination"): host A on
// 127.0.0.1, host B on 127.0.0.2. A disk guest's move is held in pre-copy
// (--bandwidth-limit, incompressible disk data), B's destination directory
// is bind-mounted read-only over itself, and B's incoming worker is killed:
// the move fails, and B cannot remove the half-copied disk. Then the fault
// is removed and
//   - a retry of the move succeeds: its Prepare first retries the pending
//     clean-up, which removes the leftover (instead of "destination file …
//     already exists", which every retry said before);
//   - or B's ferryd is restarted while the clean-up is pending, and its start
//     removes the leftovers.
// Needs root (mount) and /dev/kvm.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include "harness.h"

namespace ferry_it {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Exists(const std::string& path) { return std::filesystem::exists(std::filesystem::symlink_status(path)); }

class LiveMoveCleanUpTest : public FerryTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "a read-only bind mount needs root";
    FerryTest::SetUp();
    port_a_ = FreePort("127.0.0.1");
    port_b_ = FreePort("127.0.0.2");
    std::ofstream(config(), std::ios::trunc) << "storage_root = \"" << storage() << "\"\n"
                                             << "api_socket = \"" << socket() << "\"\n"
                                             << "guest_dir = \"" << FERRY_GUEST_DIR << "\"\n"
                                             << LiveMoveHostToml("127.0.0.1:" + std::to_string(port_a_))
                                             // Plain streams, so --bandwidth-limit holds the move.
                                             << "performance = \"tcp\"\n";
    b_ = std::make_unique<ExtraFerryd>(dir(), "b");
    b_->WriteConfig(LiveMoveHostToml(HostB()));
    std::filesystem::create_directories(DestB());
  }

  void TearDown() override {
    if (::testing::Test::IsSkipped()) return;
    if (move_.valid()) {
      KillFerryd();  // ends the CLI's wait
      move_.wait();
    }
    b_.reset();
    if (read_only_) MakeDestBWritable();
    FerryTest::TearDown();
  }

  std::string HostB() const { return "127.0.0.2:" + std::to_string(port_b_); }
  std::string DestB() const { return dir() + "/b-disks"; }
  std::string Leftover() const { return DestB() + "/d1.img.part"; }

  // The disk guest on a 16 MiB raw disk whose second half is incompressible
  // data it never touches: copying it at 1 MiB/s keeps the move in pre-copy
  // for seconds.
  void StartDiskGuest() {
    std::filesystem::create_directories(dir() + "/a-disks");
    const std::string disk = dir() + "/a-disks/d1.img";
    MakeSparseFile(disk, 16 << 20);
    std::vector<uint64_t> noise((8 << 20) / 8);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (uint64_t& w : noise) {  // xorshift64
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      w = x;
    }
    std::fstream f(disk, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8 << 20);
    f.write(reinterpret_cast<const char*>(noise.data()), std::streamsize(noise.size() * 8));
    ASSERT_TRUE(f.good()) << "write the noise half of " << disk;
    f.close();
    ProcessResult r = Ferry({"vm", "create", "d1", "--guest", "disk", "--memory", "32M", "--disk", disk + ",format=raw",
                             "--cmdline", "hb_ms=50 rate=100 flush_every=16 blocks=2048"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = Ferry({"vm", "start", "d1"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    WaitFor("disk heartbeats of d1", 60000, [&] { return ParseHeartbeats(Console("d1"), "DISK").size() >= 3; });
  }

  ProcessResult MoveD1(const std::string& bandwidth) {
    std::vector<std::string> args = {"move-vm", "d1", HostB(), "--include-storage", "--destination-storage-path",
                                     DestB(), "--streams", "2"};
    if (!bandwidth.empty()) args.insert(args.end(), {"--bandwidth-limit", bandwidth});
    return Ferry(args, 120000);
  }

  // A's live-move job, once it is in pre-copy (null on timeout).
  nlohmann::json WaitPrecopy() {
    nlohmann::json job = nullptr;
    WaitFor("the live move to reach pre-copy", 60000, [&] {
      ProcessResult r = Ferry({"--json", "jobs"}, 10000);
      auto j = nlohmann::json::parse(r.out, nullptr, false);
      if (j.is_discarded() || !j.contains("jobs")) return false;
      for (const auto& candidate : j["jobs"])
        if (candidate.value("kind", "") == "live-vm" && candidate.value("phase", "") == "precopy") job = candidate;
      return !job.is_null();
    });
    return job;
  }

  void MakeDestBReadOnly() {
    ProcessResult r = RunProcess({"/bin/mount", "--bind", DestB(), DestB()}, {}, 30000);
    ASSERT_EQ(r.exit_code, 0) << "bind mount " << DestB() << ": " << r.err;
    read_only_ = true;
    r = RunProcess({"/bin/mount", "-o", "remount,bind,ro", DestB()}, {}, 30000);
    ASSERT_EQ(r.exit_code, 0) << "remount " << DestB() << " read-only: " << r.err;
  }
  void MakeDestBWritable() {
    ProcessResult r = RunProcess({"/bin/umount", DestB()}, {}, 30000);
    EXPECT_EQ(r.exit_code, 0) << "umount " << DestB() << ": " << r.err;
    read_only_ = false;
  }

  // The move fails with B's destination read-only, and B's clean-up with it:
  // the half-copied disk stays, and B keeps the move's incoming directory
  // with the marker. Returns the incoming directory.
  std::string FailAMoveWhoseCleanUpFails() {
    StartFerryd();
    b_->Start();
    StartDiskGuest();
    if (HasFailure()) return "";
    move_ = std::async(std::launch::async, [this] { return MoveD1("1M"); });
    nlohmann::json job = WaitPrecopy();
    if (job.is_null()) return "";
    const std::string id = job["migration_id"].get<std::string>();
    const std::string incoming = b_->storage() + "/incoming/" + id;
    EXPECT_TRUE(Exists(Leftover())) << "the move wrote nothing at " << DestB() << " yet";
    MakeDestBReadOnly();
    if (HasFailure()) return "";
    // The fault that makes the move fail: its incoming worker dies.
    auto record = nlohmann::json::parse(ReadAll(b_->storage() + "/incoming-records/" + id + ".json"), nullptr, false);
    const pid_t worker = record.is_object() ? pid_t(record.value("pid", 0)) : 0;
    EXPECT_GT(worker, 0) << record.dump();
    if (worker > 0) ::kill(worker, SIGKILL);
    ProcessResult r = move_.get();
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    std::cout << "the move failed: " << r.err << std::flush;
    EXPECT_EQ(State("d1"), "running");

    WaitFor("B's clean-up to fail", 30000, [&] { return Exists(incoming + "/cleanup-pending"); });
    EXPECT_TRUE(Exists(Leftover()));
    const std::string log = b_->Log();
    EXPECT_NE(log.find("clean-up failed (attempt 1"), std::string::npos) << log;
    std::cout << "B: " << log.substr(log.find("clean-up failed (attempt 1")) << std::flush;
    EXPECT_NE(log.find("remove " + Leftover() + ": Read-only file system"), std::string::npos) << log;
    // B answers that the move is aborted all the same.
    auto marker = nlohmann::json::parse(ReadAll(incoming + "/cleanup-pending"), nullptr, false);
    EXPECT_EQ(marker.value("files", nlohmann::json::array()), nlohmann::json::array({Leftover()})) << marker.dump();
    return incoming;
  }

  uint16_t port_a_ = 0, port_b_ = 0;
  std::unique_ptr<ExtraFerryd> b_;
  std::future<ProcessResult> move_;
  bool read_only_ = false;
};

TEST_F(LiveMoveCleanUpTest, ARetryAfterTheFaultIsGoneRemovesTheLeftoverAndSucceeds) {
  const std::string incoming = FailAMoveWhoseCleanUpFails();
  ASSERT_FALSE(HasFailure());
  // While the fault lasts a retry is refused, naming the leftover and why.
  ProcessResult r = MoveD1("");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  std::cout << "a retry while the fault lasts: " << r.err << std::flush;
  EXPECT_NE(r.err.find("destination file " + Leftover() + " is left over from the aborted incoming move"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(Exists(Leftover()));

  MakeDestBWritable();
  r = MoveD1("");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_FALSE(Exists(incoming)) << "the failed move's incoming directory is still at B";
  EXPECT_FALSE(Exists(Leftover()));
  WaitFor("d1 running at B", 30000, [&] { return b_->State("d1") == "running"; });
  EXPECT_TRUE(Exists(DestB() + "/d1.img"));
  EXPECT_NE(b_->Log().find("clean-up done"), std::string::npos) << b_->Log();
}

TEST_F(LiveMoveCleanUpTest, AFerrydRestartedWhileTheCleanUpIsPendingRemovesTheLeftovers) {
  const std::string incoming = FailAMoveWhoseCleanUpFails();
  ASSERT_FALSE(HasFailure());
  b_->Kill();
  MakeDestBWritable();
  b_->Start();  // returns once B answers: its start-up recovery ran before
  EXPECT_FALSE(Exists(incoming)) << "the pending clean-up was not continued at start";
  EXPECT_FALSE(Exists(Leftover()));
  EXPECT_NE(b_->Log().find("continuing its clean-up"), std::string::npos) << b_->Log();
  EXPECT_EQ(State("d1"), "running");
}

}  // namespace
}  // namespace ferry_it
