// The fixture of the live-move fault tests (live_move_failure_test.cc,
// live_move_ownership_test.cc): two ferryds on this machine, host A on
// 127.0.0.1 (this test's own) and host B on 127.0.0.2, guests to move, the
// move run in the background, faults, and the checks every such test ends
// with: where the VM runs, what B kept, and the guest's own verdict.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <thread>
#include "support/ferryd_harness.h"

namespace ferry_it {
namespace live_move_fixture {

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// The console up to its last complete line: ParseHeartbeats (harness.cc)
// throws std::invalid_argument on a line cut after "t=", which a console
// read while the guest prints can end with.
inline std::string Complete(const std::string& console) {
  return console.substr(0, console.rfind('\n') + 1);
}

inline size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

// Live ferry-vmm processes whose --vm-dir starts with prefix (a zombie's
// cmdline reads empty, so exited workers never match).
inline std::vector<pid_t> Workers(const std::string& vm_dir_prefix, bool incoming_only = false) {
  const std::string marker = std::string("--vm-dir") + '\0' + vm_dir_prefix;
  std::vector<pid_t> pids;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ReadAll("/proc/" + name + "/cmdline");
    if (cmdline.find("ferry-vmm") == std::string::npos || cmdline.find(marker) == std::string::npos)
      continue;
    if (incoming_only && cmdline.find(std::string("--incoming") + '\0') == std::string::npos)
      continue;
    pids.push_back(pid_t(std::atoi(name.c_str())));
  }
  return pids;
}

// Regular files (any depth) under dir; symlinks and directories do not count.
inline std::vector<std::string> FilesUnder(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) files.push_back(it->path().string());
  }
  return files;
}

inline std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    names.push_back(e.path().filename().string());
  return names;
}

inline std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Sets an environment variable for the processes started while it lives
// (ferryd copies the test's environment and its workers inherit ferryd's).
class ScopedEnv {
 public:
  ScopedEnv(const char* key, const std::string& value) : key_(key) {
    ::setenv(key, value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(key_); }

 private:
  const char* key_;
};

// The commit-point window the incoming worker keeps open when
// FERRY_TEST_COMMIT_DELAY_MS is set: long enough to see the source's
// "resolving" phase (polled every 250 ms) and act in it even when a loaded
// host makes each `ferry` call slow. (The source waits 60 s for the verdict.)
inline constexpr int kCommitDelayMs = 15000;

class LiveMoveFailureTest : public FerryTest {
 protected:
  void SetUp() override {
    start_ = std::chrono::steady_clock::now();
    FerryTest::SetUp();
    port_a_ = FreePort("127.0.0.1");
    port_b_ = FreePort("127.0.0.2");
    std::ofstream(config(), std::ios::trunc)
        << "storage_root = \"" << storage() << "\"\n"
        << "api_socket = \"" << socket() << "\"\n"
        << "guest_dir = \"" << FERRY_GUEST_DIR << "\"\n"
        << LiveMoveHostToml("127.0.0.1:" + std::to_string(port_a_))
        // Plain streams, so --bandwidth-limit holds a move in its
        // phase: the guests' data compresses several times over,
        // and a compressed move outruns the limit's 1 MiB burst.
        << "performance = \"tcp\"\n";
    b_ = std::make_unique<ExtraFerryd>(dir(), "b");
    b_->WriteConfig(LiveMoveHostToml(HostB()));
  }

  void TearDown() override {
    if (move_.valid()) {
      // A move still running (the test failed early): without A's ferryd the
      // CLI's next poll fails and it exits.
      KillFerryd();
      move_.wait();
    }
    b_.reset();  // its workers and ferryd, before the directory goes
    for (const std::string& m : mounts_) RunProcess({"/bin/umount", "-l", m}, {}, 30000);
    FerryTest::TearDown();
  }

  // Progress on stdout with the time since SetUp: where a slow or stuck
  // test spends its time.
  void Note(const std::string& what) {
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    char at[32];
    std::snprintf(at, sizeof at, "[%6.1f s] ", s);
    std::cout << at << what << std::endl;
  }

  std::string HostB() const { return "127.0.0.2:" + std::to_string(port_b_); }
  std::string DestB() const { return dir() + "/b-disks"; }
  std::string VmDirA(const std::string& vm) const { return storage() + "/vms/" + vm; }

  // ---- VMs ----------------------------------------------------------------

  // The memory guest: 128 MiB of RAM, a working set of ws_mib dirtied at
  // `rate` pages/s (5000: 20 MB/s, more than the limited link carries, so
  // pre-copy never converges; 200: converges in a few rounds).
  void StartMemoryGuest(const std::string& vm, int ws_mib, int rate) {
    ProcessResult r =
        Ferry({"vm", "create", vm, "--guest", "memory", "--memory", "128M", "--cmdline",
               "ws_mib=" + std::to_string(ws_mib) + " rate=" + std::to_string(rate) + " hb_ms=50"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = Ferry({"vm", "start", vm});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    WaitFor("heartbeats of " + vm, 60000,
            [&] { return ParseHeartbeats(Complete(Console(vm)), "HB").size() >= 5; });
    Note("memory guest " + vm + " runs at A");
  }

  // The disk guest on a 16 MiB raw disk under <test dir>/a-disks, writing
  // `rate` blocks/s over its first 2048 blocks (8 MiB); returns the disk.
  // The second 8 MiB hold incompressible data the guest never touches: the
  // bulk copy of it keeps a move limited to a few MiB/s in pre-copy for
  // seconds (the guest's own blocks are too few to, early on).
  std::string StartDiskGuest(const std::string& vm, int rate) {
    std::filesystem::create_directories(dir() + "/a-disks");
    std::string disk = dir() + "/a-disks/" + vm + ".img";
    MakeSparseFile(disk, 16 << 20);
    {
      std::vector<uint64_t> noise((8 << 20) / 8);
      uint64_t x = 0x9e3779b97f4a7c15ull;
      for (uint64_t& w : noise) {  // xorshift64: no pattern zstd could use
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w = x;
      }
      std::fstream f(disk, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(8 << 20);
      f.write(reinterpret_cast<const char*>(noise.data()), std::streamsize(noise.size() * 8));
      EXPECT_TRUE(f.good()) << "write the noise half of " << disk;
    }
    ProcessResult r = Ferry(
        {"vm", "create", vm, "--guest", "disk", "--memory", "32M", "--disk", disk + ",format=raw",
         "--cmdline", "hb_ms=50 rate=" + std::to_string(rate) + " flush_every=16 blocks=2048"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    r = Ferry({"vm", "start", vm});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    WaitFor("disk heartbeats of " + vm, 60000,
            [&] { return ParseHeartbeats(Complete(Console(vm)), "DISK").size() >= 5; });
    Note("disk guest " + vm + " runs at A");
    return disk;
  }

  // ---- The move -------------------------------------------------------------

  // Runs `ferry move-vm` in the background (it blocks until the job ends).
  void StartMove(const std::string& vm, const std::string& bandwidth,
                 const std::string& dest = "") {
    std::vector<std::string> args = {"move-vm",
                                     vm,
                                     HostB(),
                                     "--include-storage",
                                     "--destination-storage-path",
                                     dest.empty() ? DestB() : dest,
                                     "--streams",
                                     "2",
                                     "--bandwidth-limit",
                                     bandwidth};
    Note("ferry move-vm " + vm + " --bandwidth-limit " + bandwidth);
    move_ = std::async(std::launch::async, [this, args] { return Ferry(args, 120000); });
  }

  ProcessResult WaitMove() {
    if (!move_.valid()) return {};
    if (move_.wait_for(std::chrono::seconds(150)) != std::future_status::ready) {
      ADD_FAILURE() << "ferry move-vm did not return";
      KillFerryd();
    }
    ProcessResult r = move_.get();
    Note("ferry move-vm returned " + std::to_string(r.exit_code));
    return r;
  }

  // A's newest live-move job, or null (no job yet, or A's ferryd is down).
  nlohmann::json LiveJob() {
    ProcessResult r = Ferry({"--json", "jobs"}, 10000);
    if (r.exit_code != 0) return nullptr;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded() || !j.contains("jobs") || !j["jobs"].is_array()) return nullptr;
    nlohmann::json last = nullptr;
    for (const auto& job : j["jobs"])
      if (job.value("kind", "") == "live-vm") last = job;
    return last;
  }

  // Waits until A's live-move job is in `phase` and returns the job; fails
  // the test (and returns null) if the job ended or the CLI returned first.
  nlohmann::json WaitPhase(const std::string& phase, const std::string& why,
                           int timeout_ms = 60000) {
    nlohmann::json job = nullptr;
    std::string seen;
    bool ended = false;
    auto cli_done = [&] {
      return move_.valid() && move_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    };
    WaitFor("the live move to reach phase " + phase + " (" + why + ")", timeout_ms, [&] {
      job = LiveJob();
      if (job.is_null()) return cli_done();
      seen = job.value("phase", "");
      ended = seen == "completed" || seen == "failed" || seen == "in-doubt";
      return seen == phase || ended;
    });
    if (seen != phase) {
      std::string cli;
      if (cli_done()) {
        ProcessResult r = move_.get();
        cli = "; ferry move-vm exited " + std::to_string(r.exit_code) + ": " + r.out + r.err;
      }
      ADD_FAILURE() << "the move never was in phase " << phase << " (" << why << "); last phase \""
                    << seen << "\"" << (ended ? ", job: " + job.dump() : "") << cli;
      return nullptr;
    }
    // The streams are up once pre-copy begins; let data flow a moment. A
    // pause, not a wait: nothing shows the bytes flowing (the progress
    // counters move only at the end of the first pass).
    if (seen == "precopy") std::this_thread::sleep_for(std::chrono::milliseconds(300));
    Note("in phase " + seen + ": " + why);
    return job;
  }

  // ---- Where the VM is ------------------------------------------------------

  bool ListedOn(ProcessResult r, const std::string& vm) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded() || !j.contains("vms")) return false;
    for (const auto& v : j["vms"])
      if (v.value("name", "") == vm) return true;
    return false;
  }
  bool ListedOnA(const std::string& vm) { return ListedOn(Ferry({"--json", "vm", "list"}), vm); }
  bool ListedOnB(const std::string& vm) {
    return ListedOn(b_->Ferry({"--json", "vm", "list"}), vm);
  }

  // The VM runs at A only: listed and running there, its worker alive; B
  // neither lists it nor runs any worker (an incoming one may take a moment
  // to be killed and reaped).
  void ExpectOnlyOnA(const std::string& vm) {
    Note("checking that " + vm + " runs at A only");
    EXPECT_TRUE(ListedOnA(vm)) << vm << " is not listed at A";
    EXPECT_EQ(State(vm), "running");
    EXPECT_EQ(Workers(VmDirA(vm) + '\0').size(), 1u) << "workers of " << vm << " at A";
    EXPECT_FALSE(ListedOnB(vm)) << vm << " is listed at B too";
    WaitFor("no worker at B", 30000, [&] { return Workers(b_->storage() + "/").empty(); });
  }

  // The VM runs at B only: listed there and running, a worker alive under
  // B's root; A forgot it and runs no worker for it.
  void ExpectOnlyOnB(const std::string& vm) {
    Note("checking that " + vm + " runs at B only");
    WaitFor(vm + " adopted and running at B", 30000, [&] { return b_->State(vm) == "running"; });
    EXPECT_TRUE(ListedOnB(vm)) << vm << " is not listed at B";
    EXPECT_EQ(Workers(b_->storage() + "/").size(), 1u) << "workers at B";
    EXPECT_FALSE(ListedOnA(vm)) << vm << " is still listed at A";
    WaitFor("no worker of " + vm + " at A", 30000,
            [&] { return Workers(VmDirA(vm) + '\0').empty(); });
  }

  // Nothing of the failed move is left at B: incoming/ is empty and no file
  // lies under the destination path (but `except`, the test's own filler).
  void ExpectBClean(const std::string& dest, const std::string& except = "") {
    Note("checking that B kept nothing of the move");
    const std::string incoming = b_->storage() + "/incoming";
    WaitFor("B's incoming/ to be empty", 30000, [&] { return Entries(incoming).empty(); });
    EXPECT_TRUE(Entries(incoming).empty()) << Join(Entries(incoming));
    std::vector<std::string> left;
    for (const auto& f : FilesUnder(dest))
      if (f != except) left.push_back(f);
    EXPECT_TRUE(left.empty()) << "files of the move left at the destination: " << Join(left);
  }

  // A failed move: exit 1, the message names the cause, the job failed.
  void ExpectFailed(const ProcessResult& r, const std::vector<std::string>& any_of) {
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    bool named = any_of.empty();
    for (const auto& w : any_of) named |= r.err.find(w) != std::string::npos;
    EXPECT_TRUE(named) << "want one of [" << Join(any_of) << "] in: " << r.err;
    Note("ferry move-vm said: " + r.err.substr(0, r.err.find_last_not_of('\n') + 1));
  }

  // ---- Guest checks ----------------------------------------------------------

  // The memory guest goes on: 10 more heartbeats, one unbroken sequence, no
  // error, no mismatch.
  void ExpectMemoryGuestFine(const std::function<std::string()>& read_console) {
    auto console = [&] { return Complete(read_console()); };
    Note("checking the memory guest");
    const size_t have = ParseHeartbeats(console(), "HB").size();
    std::vector<Heartbeat> beats;
    WaitFor("10 more heartbeats", 60000, [&] {
      beats = ParseHeartbeats(console(), "HB");
      return beats.size() >= have + 10;
    });
    ASSERT_FALSE(beats.empty());
    for (size_t i = 0; i < beats.size(); ++i) {
      EXPECT_EQ(beats[i].errors, 0u) << "heartbeat " << beats[i].n;
      if (i > 0) {
        EXPECT_EQ(beats[i].n, beats[i - 1].n + 1) << "heartbeat sequence broken";
      }
    }
    std::string text = console();
    EXPECT_EQ(Count(text, "MISMATCH"), 0u)
        << text.substr(text.size() > 3000 ? text.size() - 3000 : 0);
  }
  void ExpectMemoryGuestFineOnA(const std::string& vm) {
    ExpectMemoryGuestFine([&] { return Ferry({"console", vm}).out; });
  }
  void ExpectMemoryGuestFineOnB(const std::string& vm) {
    ExpectMemoryGuestFine([&] { return b_->Ferry({"console", vm}).out; });
  }
  // The move of the memory guest vm succeeded: the CLI says so, the VM runs
  // at B only, A removed its directory, and the guest goes on unharmed.
  void ExpectMovedToB(const std::string& vm) {
    ProcessResult r = WaitMove();
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("moved vm " + vm + " to " + HostB()), std::string::npos) << r.out;
    ExpectOnlyOnB(vm);
    EXPECT_FALSE(Exists(VmDirA(vm))) << "A kept the moved vm's directory";
    ExpectMemoryGuestFineOnB(vm);
  }

  // The disk guest goes on at A without a mismatch or I/O error; then it is
  // stopped and a verifier checks every block of its disk.
  void ExpectDiskGuestFineOnA(const std::string& vm, const std::string& disk) {
    Note("checking the disk guest and verifying its disk");
    const size_t have = ParseHeartbeats(Complete(Console(vm)), "DISK").size();
    std::vector<Heartbeat> beats;
    WaitFor("10 more disk heartbeats", 60000, [&] {
      beats = ParseHeartbeats(Complete(Console(vm)), "DISK");
      return beats.size() >= have + 10;
    });
    ASSERT_FALSE(beats.empty());
    EXPECT_EQ(beats.back().errors, 0u);
    std::string text = Console(vm);
    EXPECT_EQ(Count(text, "DISK-MISMATCH"), 0u) << text;
    EXPECT_EQ(Count(text, "DISK-IOERR"), 0u) << text;

    ProcessResult r = Ferry({"vm", "stop", vm});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string verifier = "verify-" + vm;
    r = Ferry({"vm", "create", verifier, "--guest", "disk", "--memory", "32M", "--disk",
               disk + ",format=raw,ro", "--cmdline", "mode=verify blocks=2048"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = Ferry({"vm", "start", verifier});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    WaitForPowerOff(verifier);
    std::string out = Console(verifier);
    EXPECT_EQ(State(verifier), "powered-off") << out;
    auto pos = out.find("DISK-VERIFY blocks=2048 written=");
    ASSERT_NE(pos, std::string::npos) << out;
    EXPECT_NE(out.find(" bad=0", pos), std::string::npos) << out;
    EXPECT_GT(std::stoull(out.substr(pos + 32)), 0u) << "the disk holds no written block: " << out;
  }

  // ---- Faults ---------------------------------------------------------------

  // Starts A's ferryd, and B's with FERRY_TEST_COMMIT_DELAY_MS set (its
  // incoming workers inherit it).
  void StartHostsWithCommitDelay() {
    StartFerryd();
    ScopedEnv delay("FERRY_TEST_COMMIT_DELAY_MS", std::to_string(kCommitDelayMs));
    b_->Start();
  }
  void KillB() {
    Note("SIGKILL to B's ferryd");
    b_->Kill();
  }
  void RestartB() {
    b_->Start();
    Note("B's ferryd restarted");
  }

  // Waits until B's incoming worker of the job's move sits in its commit
  // window: the machine is built, the commit marker not yet written (its
  // log says it waits FERRY_TEST_COMMIT_DELAY_MS). Returns the marker path.
  std::string WaitCommitWindow(const nlohmann::json& job) {
    const std::string dir = b_->storage() + "/incoming/" + job["migration_id"].get<std::string>();
    WaitFor("the incoming worker to wait before its commit point", kCommitDelayMs, [&] {
      return ReadAll(dir + "/worker.log").find("waiting FERRY_TEST_COMMIT_DELAY_MS") !=
             std::string::npos;
    });
    const std::string marker = dir + "/committed";
    EXPECT_FALSE(Exists(marker)) << "the destination committed before the fault: " << marker;
    Note("the incoming worker waits before its commit point");
    return marker;
  }

  // The incoming ferry-vmm on B (exactly one); 0 if there is none.
  pid_t IncomingWorkerB() {
    auto pids = Workers(b_->storage() + "/incoming/", /*incoming_only=*/true);
    EXPECT_EQ(pids.size(), 1u) << "incoming workers at B";
    return pids.empty() ? 0 : pids.front();
  }
  void KillAndReapWait(pid_t pid) {
    ASSERT_GT(pid, 0);
    Note("SIGKILL to the incoming worker, pid " + std::to_string(pid));
    ASSERT_EQ(::kill(pid, SIGKILL), 0) << std::strerror(errno);
    WaitFor("the killed worker to exit", 30000,
            [&] { return ReadAll("/proc/" + std::to_string(pid) + "/cmdline").empty(); });
  }

  // Mounts a tmpfs of size_mib at <test dir>/<name> (unmounted in TearDown).
  std::string MountTmpfs(const std::string& name, int size_mib) {
    std::string path = dir() + "/" + name;
    std::filesystem::create_directories(path);
    ProcessResult r = RunProcess({"/bin/mount", "-t", "tmpfs", "-o",
                                  "size=" + std::to_string(size_mib) + "m", "tmpfs", path},
                                 {}, 30000);
    EXPECT_EQ(r.exit_code, 0) << "mount tmpfs at " << path << ": " << r.err;
    if (r.exit_code == 0) mounts_.push_back(path);
    return path;
  }

  uint16_t port_a_ = 0, port_b_ = 0;
  std::unique_ptr<ExtraFerryd> b_;
  std::future<ProcessResult> move_;
  std::vector<std::string> mounts_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace live_move_fixture
}  // namespace ferry_it
