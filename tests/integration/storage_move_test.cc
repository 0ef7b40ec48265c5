// Storage-only moves through ferryd (`ferry move-storage`, `ferry jobs`),
// each with the disk guest running: it must keep writing without a single
// mismatch, and its verify mode must pass on whichever files the VM ends up
// on. Failure cases: a full destination, an unwritable one, ferryd killed
// mid-move, the worker killed mid-move.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "support/ferryd_harness.h"

namespace ferry_it {
namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

// A tmpfs mounted for one test (a full or read-only destination), unmounted
// before the harness removes the test directory.
class TmpfsMount {
 public:
  TmpfsMount(const std::string& path, const std::string& options) : path_(path) {
    std::filesystem::create_directories(path);
    mounted_ = ::mount("tmpfs", path.c_str(), "tmpfs", 0, options.c_str()) == 0;
  }
  ~TmpfsMount() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }

 private:
  std::string path_;
  bool mounted_ = false;
};

class StorageMoveTest : public FerryTest {
 protected:
  // A VM running the disk guest on a raw disk of `mib` MiB in dir()/src.
  std::string CreateDiskVm(const std::string& name, uint64_t mib,
                           const std::string& cmdline = "hb_ms=50") {
    std::filesystem::create_directories(dir() + "/src");
    std::string disk = dir() + "/src/" + name + ".img";
    MakeSparseFile(disk, mib << 20);
    ProcessResult r = Ferry({"vm", "create", name, "--guest", "disk", "--memory", "64M",
                             "--cmdline", cmdline, "--disk", disk});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return disk;
  }

  uint64_t LastWrites(const std::string& vm) {
    std::string console = Console(vm);
    size_t pos = console.rfind(" writes=");
    return pos == std::string::npos ? 0 : std::stoull(console.substr(pos + 8));
  }

  // Boots a throw-away VM with the disk guest in verify mode on `disk` and
  // expects every block to check out.
  void ExpectVerifies(const std::string& disk, const std::string& format = "raw") {
    static int n = 0;
    std::string name = "verify" + std::to_string(++n);
    ASSERT_TRUE(CreateAndStart(name, {"--guest", "disk", "--memory", "64M", "--cmdline",
                                      "mode=verify", "--disk", disk + ",format=" + format}));
    ASSERT_EQ(WaitForPowerOff(name, 120000), "powered-off");
    std::string console = Console(name);
    EXPECT_NE(console.find("DISK-VERIFY"), std::string::npos) << console;
    EXPECT_NE(console.find(" bad=0"), std::string::npos) << console;
    EXPECT_EQ(Count(console, "DISK-BAD"), 0u) << console;
    std::string written = console.substr(console.find("written=") + 8);
    EXPECT_GT(std::stoull(written), 0u) << "the verified disk holds no written block: " << console;
  }

  nlohmann::json Job(const std::string& id) { return FerryJson({"jobs", id}); }
  nlohmann::json WaitJobPhase(const std::string& id,
                              const std::function<bool(const nlohmann::json&)>& pred,
                              const std::string& what) {
    nlohmann::json job;
    WaitFor(what, 120000, [&] {
      job = Job(id);
      return pred(job);
    });
    return job;
  }
  std::string DiskPath(const std::string& vm) {
    return FerryJson({"vm", "show", vm})["definition"]["disks"][0]["path"].get<std::string>();
  }
};

TEST_F(StorageMoveTest, LiveMoveOfRawDiskKeepsGuestWritingAndVerifies) {
  StartFerryd();
  std::string src = CreateDiskVm("d1", 64, "blocks=16384 hb_ms=50");
  ASSERT_EQ(Ferry({"vm", "start", "d1"}).exit_code, 0);
  size_t before = WaitForHeartbeats("d1", "DISK", 10).size();

  std::string dest = dir() + "/dest";
  ProcessResult r = Ferry({"move-storage", "d1", "--destination-storage-path", dest});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("completed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("guest I/O paused"), std::string::npos) << r.out;
  EXPECT_EQ(DiskPath("d1"), dest + "/d1.img");
  EXPECT_FALSE(Exists(src)) << "the source is removed after the switch";
  EXPECT_TRUE(Exists(dest + "/d1.img"));
  EXPECT_FALSE(Exists(dest + "/d1.img.part"));
  EXPECT_FALSE(Exists(dest + "/.ferry-move-d1.json"));
  EXPECT_TRUE(Exists(dest + "/d1.vm.toml"));
  EXPECT_EQ(State("d1"), "running");

  // The guest keeps going on the new file, with no mismatch.
  auto beats = WaitForHeartbeats("d1", "DISK", before + 20);
  for (const auto& b : beats) EXPECT_EQ(b.errors, 0u) << "heartbeat " << b.n;
  std::string console = Console("d1");
  EXPECT_EQ(Count(console, "DISK-MISMATCH"), 0u) << console;
  EXPECT_EQ(Count(console, "DISKGUEST start"), 1u);

  auto jobs = FerryJson({"jobs"});
  ASSERT_EQ(jobs["jobs"].size(), 1u);
  EXPECT_EQ(jobs["jobs"][0]["phase"], "completed");
  EXPECT_EQ(jobs["jobs"][0]["kind"], "live");
  r = Ferry({"jobs"});
  EXPECT_NE(r.out.find("completed"), std::string::npos) << r.out;

  ASSERT_EQ(Ferry({"vm", "stop", "d1"}).exit_code, 0);
  ExpectVerifies(dest + "/d1.img");
}

TEST_F(StorageMoveTest, LiveMoveOfQcow2ChainKeepsRelativeBackingNames) {
  if (::system("qemu-img --version >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "qemu-img (qemu-utils) not installed";
  StartFerryd();
  std::string src = dir() + "/src";
  std::filesystem::create_directories(src);
  ASSERT_EQ(::system(("cd " + src +
                      " && qemu-img create -q -f qcow2 base.qcow2 64M && "
                      "qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2 && "
                      "qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2")
                         .c_str()),
            0);
  ASSERT_TRUE(
      CreateAndStart("q1", {"--guest", "disk", "--memory", "64M", "--cmdline",
                            "blocks=8192 hb_ms=50", "--disk", src + "/top.qcow2,format=qcow2"}));
  size_t before = WaitForHeartbeats("q1", "DISK", 10).size();
  std::string dest = dir() + "/dest";
  ProcessResult r = Ferry({"move-storage", "q1", "--destination-storage-path", dest});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(DiskPath("q1"), dest + "/top.qcow2");
  for (const char* f : {"base.qcow2", "mid.qcow2", "top.qcow2"}) {
    EXPECT_TRUE(Exists(dest + "/" + f)) << f;
    EXPECT_FALSE(Exists(src + "/" + f)) << f << " must be removed from the source";
  }
  auto beats = WaitForHeartbeats("q1", "DISK", before + 20);
  for (const auto& b : beats) EXPECT_EQ(b.errors, 0u) << "heartbeat " << b.n;
  ASSERT_EQ(Ferry({"vm", "stop", "q1"}).exit_code, 0);
  // The stored backing names are still the relative ones, and the images are clean.
  ProcessResult info =
      RunProcess({"/usr/bin/qemu-img", "info", "--backing-chain", dest + "/top.qcow2"}, {}, 30000);
  EXPECT_NE(info.out.find("backing file: mid.qcow2"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("backing file: base.qcow2"), std::string::npos) << info.out;
  ProcessResult check = RunProcess({"/usr/bin/qemu-img", "check", dest + "/top.qcow2"}, {}, 30000);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  ExpectVerifies(dest + "/top.qcow2", "qcow2");
}

// Two VMs' qcow2 overlays over one raw base image. Moving the first keeps
// the base (the job lists it as kept) and the second still boots and
// verifies on it; once the first runs on its copy, moving the second
// (offline) removes the base, which nothing uses any more.
TEST_F(StorageMoveTest, SharedBaseImageIsKeptWhileAnotherVmUsesIt) {
  if (::system("qemu-img --version >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "qemu-img (qemu-utils) not installed";
  StartFerryd();
  // The base holds blocks the disk guest wrote, so a verifier has something to check.
  std::string base = CreateDiskVm("fill", 16, "blocks=2048 seconds=2 hb_ms=50");
  ASSERT_EQ(Ferry({"vm", "start", "fill"}).exit_code, 0);
  ASSERT_EQ(WaitForPowerOff("fill"), "powered-off");
  ASSERT_EQ(Ferry({"vm", "delete", "fill"}).exit_code, 0);
  std::string src = dir() + "/src";
  ASSERT_EQ(::system(("cd " + src +
                      " && qemu-img create -q -f qcow2 -b fill.img -F raw a.qcow2 && "
                      "qemu-img create -q -f qcow2 -b fill.img -F raw b.qcow2")
                         .c_str()),
            0);
  ASSERT_EQ(Ferry({"vm", "create", "b", "--guest", "disk", "--memory", "64M", "--cmdline",
                   "mode=verify", "--disk", src + "/b.qcow2,format=qcow2"})
                .exit_code,
            0);
  ASSERT_TRUE(
      CreateAndStart("a", {"--guest", "disk", "--memory", "64M", "--cmdline",
                           "blocks=2048 hb_ms=50", "--disk", src + "/a.qcow2,format=qcow2"}));
  size_t before = WaitForHeartbeats("a", "DISK", 5).size();

  std::string dest_a = dir() + "/dest-a";
  ProcessResult r = Ferry({"move-storage", "a", "--destination-storage-path", dest_a});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("kept:        " + base + " (used by vm b)"), std::string::npos) << r.out;
  auto job = FerryJson({"jobs"})["jobs"][0];
  ASSERT_EQ(job["kept_sources"].size(), 1u) << job.dump();
  EXPECT_EQ(job["kept_sources"][0]["path"], base);
  EXPECT_EQ(job["kept_sources"][0]["used_by"], "b");
  EXPECT_TRUE(Exists(base)) << "vm b's base image must stay";
  EXPECT_FALSE(Exists(src + "/a.qcow2")) << "the moved overlay is removed";
  EXPECT_TRUE(Exists(dest_a + "/fill.img"));
  auto beats = WaitForHeartbeats("a", "DISK", before + 10);
  for (const auto& b : beats) EXPECT_EQ(b.errors, 0u) << "heartbeat " << b.n;

  // b starts on its overlay over the kept base, and every block checks out.
  ASSERT_EQ(Ferry({"vm", "start", "b"}).exit_code, 0);
  ASSERT_EQ(WaitForPowerOff("b", 120000), "powered-off");
  std::string console = Console("b");
  EXPECT_NE(console.find("DISK-VERIFY"), std::string::npos) << console;
  EXPECT_NE(console.find(" bad=0"), std::string::npos) << console;
  EXPECT_EQ(Count(console, "DISK-BAD"), 0u) << console;

  // a runs on its copy now: b's offline move leaves nothing behind.
  r = Ferry({"move-storage", "b", "--destination-storage-path", dir() + "/dest-b"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("kept:"), std::string::npos) << r.out;
  EXPECT_FALSE(Exists(base)) << "no vm uses the base any more";
  EXPECT_FALSE(Exists(src + "/b.qcow2"));

  ASSERT_EQ(Ferry({"vm", "stop", "a"}).exit_code, 0);
  ExpectVerifies(dest_a + "/a.qcow2", "qcow2");
  ExpectVerifies(dir() + "/dest-b/b.qcow2", "qcow2");
}

TEST_F(StorageMoveTest, StoppedVmIsCopiedAndItsDefinitionUpdated) {
  StartFerryd();
  std::string src = CreateDiskVm("s1", 16, "blocks=2048 seconds=2 hb_ms=50");
  ASSERT_EQ(Ferry({"vm", "start", "s1"}).exit_code, 0);
  ASSERT_EQ(WaitForPowerOff("s1"), "powered-off");
  std::string dest = dir() + "/offline";
  ProcessResult r = Ferry({"move-storage", "s1", "--destination-storage-path", dest});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("offline"), std::string::npos) << r.out;
  EXPECT_EQ(DiskPath("s1"), dest + "/s1.img");
  EXPECT_FALSE(Exists(src));
  ExpectVerifies(dest + "/s1.img");
}

TEST_F(StorageMoveTest, MovesBeyondTheHostLimitAreRefused) {
  std::ofstream(config(), std::ios::app) << "[migration]\nmax_storage_moves = 1\n";
  StartFerryd();
  CreateDiskVm("a", 64, "blocks=16384 hb_ms=50");
  CreateDiskVm("b", 16);
  ASSERT_EQ(Ferry({"vm", "start", "a"}).exit_code, 0);
  ASSERT_EQ(Ferry({"vm", "start", "b"}).exit_code, 0);
  WaitForHeartbeats("a", "DISK", 5);
  ProcessResult r = Ferry({"move-storage", "a", "--destination-storage-path", dir() + "/da",
                           "--max-rate", "4M", "--no-wait"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Ferry({"move-storage", "b", "--destination-storage-path", dir() + "/db"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("max_storage_moves"), std::string::npos) << r.err;
  EXPECT_EQ(DiskPath("b"), dir() + "/src/b.img");
  // A second move of the same VM is refused too.
  r = Ferry({"move-storage", "a", "--destination-storage-path", dir() + "/da2"});
  EXPECT_EQ(r.exit_code, 1);
}

TEST_F(StorageMoveTest, FullDestinationFailsCleanlyAndGuestIsUnaffected) {
  StartFerryd();
  std::string src = CreateDiskVm("f1", 64, "blocks=16384 hb_ms=50");
  ASSERT_EQ(Ferry({"vm", "start", "f1"}).exit_code, 0);
  WaitFor("the guest to write 16 MiB", 60000, [&] { return LastWrites("f1") > 4096; });
  std::string dest = dir() + "/full";
  TmpfsMount mount(dest, "size=4m");
  if (!mount.mounted()) GTEST_SKIP() << "cannot mount a tmpfs (needs root)";
  ProcessResult r = Ferry({"move-storage", "f1", "--destination-storage-path", dest});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.err.find(dest), std::string::npos) << "the error names the destination: " << r.err;
  EXPECT_NE(r.err.find("No space left"), std::string::npos) << r.err;
  EXPECT_EQ(DiskPath("f1"), src);
  EXPECT_TRUE(Exists(src));
  EXPECT_FALSE(Exists(dest + "/f1.img")) << "no unmarked file at the destination";
  EXPECT_EQ(State("f1"), "running");
  size_t seen = ParseHeartbeats(Console("f1"), "DISK").size();
  auto beats = WaitForHeartbeats("f1", "DISK", seen + 10);
  for (const auto& b : beats) EXPECT_EQ(b.errors, 0u) << "heartbeat " << b.n;
  ASSERT_EQ(Ferry({"vm", "stop", "f1"}).exit_code, 0);
  ExpectVerifies(src);
}

TEST_F(StorageMoveTest, UnwritableDestinationIsRefused) {
  StartFerryd();
  std::string src = CreateDiskVm("u1", 16);
  ASSERT_EQ(Ferry({"vm", "start", "u1"}).exit_code, 0);
  WaitForHeartbeats("u1", "DISK", 5);
  std::string dest = dir() + "/ro";
  TmpfsMount mount(dest, "size=4m");
  if (!mount.mounted()) GTEST_SKIP() << "cannot mount a tmpfs (needs root)";
  ASSERT_EQ(::mount(nullptr, dest.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr), 0);
  ProcessResult r = Ferry({"move-storage", "u1", "--destination-storage-path", dest});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("destination " + dest), std::string::npos) << r.err;
  r = Ferry({"move-storage", "u1", "--destination-storage-path", src});  // a file, not a directory
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(DiskPath("u1"), src);
  EXPECT_EQ(State("u1"), "running");
}

TEST_F(StorageMoveTest, KilledWorkerLeavesIntactSourceAndNoDestinationFiles) {
  StartFerryd();
  std::string src = CreateDiskVm("k1", 64, "blocks=16384 hb_ms=50");
  ASSERT_EQ(Ferry({"vm", "start", "k1"}).exit_code, 0);
  WaitForHeartbeats("k1", "DISK", 5);
  std::string dest = dir() + "/dest";
  ProcessResult r = Ferry({"move-storage", "k1", "--destination-storage-path", dest, "--max-rate",
                           "4M", "--no-wait", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = nlohmann::json::parse(r.out)["id"];
  WaitJobPhase(
      id, [](const nlohmann::json& j) { return j["bytes_done"].get<uint64_t>() > (4u << 20); },
      "the move to copy 4 MiB");
  int64_t pid = FerryJson({"vm", "show", "k1"})["worker"]["pid"];
  ASSERT_EQ(::kill(pid_t(pid), SIGKILL), 0);
  auto job = WaitJobPhase(
      id, [](const nlohmann::json& j) { return j["phase"] == "failed"; }, "the job to fail");
  EXPECT_NE(job["error"]["message"].get<std::string>().find("worker exited"), std::string::npos)
      << job.dump();
  EXPECT_EQ(State("k1"), "crashed");
  EXPECT_EQ(DiskPath("k1"), src);
  EXPECT_FALSE(Exists(dest + "/k1.img.part")) << "half-written files are removed";
  EXPECT_FALSE(Exists(dest + "/k1.img"));
  ExpectVerifies(src);
  // The VM starts again from its source files.
  ASSERT_EQ(Ferry({"vm", "start", "k1"}).exit_code, 0);
  EXPECT_EQ(State("k1"), "running");
}

TEST_F(StorageMoveTest, KilledFerrydLeavesVmOnSourceAndTheMoveResumes) {
  // Short lease: the worker gives the move up 5 s after ferryd stops polling
  // (not shorter: a loaded host may delay a poll of a live ferryd by seconds).
  std::vector<std::string> env = {"FERRY_MOVE_LEASE_MS=5000"};
  StartFerryd(env);
  // Fill the whole disk first (a fast writer that powers off), so the copy
  // has 64 MiB of data; then a slow writer that dirties little during the
  // resume.
  std::string src = CreateDiskVm("fill", 64, "blocks=16384 seconds=15 hb_ms=50");
  ASSERT_EQ(Ferry({"vm", "start", "fill"}).exit_code, 0);
  ASSERT_EQ(WaitForPowerOff("fill"), "powered-off");
  ASSERT_GT(LastWrites("fill"), 16384u) << "the filler must write every block once";
  ASSERT_EQ(Ferry({"vm", "delete", "fill"}).exit_code, 0);
  ASSERT_TRUE(CreateAndStart("r1", {"--guest", "disk", "--memory", "64M", "--cmdline",
                                    "blocks=16384 hb_ms=50 rate=100", "--disk", src}));
  WaitForHeartbeats("r1", "DISK", 5);
  std::string dest = dir() + "/dest";
  ProcessResult r = Ferry({"move-storage", "r1", "--destination-storage-path", dest, "--max-rate",
                           "4M", "--no-wait", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = nlohmann::json::parse(r.out)["id"];
  WaitJobPhase(
      id, [](const nlohmann::json& j) { return j["bytes_done"].get<uint64_t>() > (24u << 20); },
      "the move to copy 24 MiB");
  KillFerryd();
  std::string marker = dest + "/.ferry-move-r1.json";
  WaitFor("the worker to give the move up", 30000, [&] {
    std::ifstream in(marker);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return text.find("cancelled") != std::string::npos || text.find("failed") != std::string::npos;
  });
  StartFerryd(env);
  EXPECT_EQ(State("r1"), "running");
  EXPECT_EQ(DiskPath("r1"), src);
  auto old_job = Job(id);
  EXPECT_EQ(old_job["phase"], "failed") << old_job.dump();
  EXPECT_TRUE(Exists(dest + "/fill.img.part")) << "partial file kept (marked) for the resume";

  r = Ferry({"--json", "move-storage", "r1", "--destination-storage-path", dest});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto job = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(job["phase"], "completed");
  EXPECT_TRUE(job["resumed"].get<bool>()) << job.dump();
  EXPECT_GT(job["bytes_skipped"].get<uint64_t>(), 16u << 20) << job.dump();
  EXPECT_EQ(DiskPath("r1"), dest + "/fill.img");
  EXPECT_FALSE(Exists(src));
  size_t seen = ParseHeartbeats(Console("r1"), "DISK").size();
  auto beats = WaitForHeartbeats("r1", "DISK", seen + 10);
  for (const auto& b : beats) EXPECT_EQ(b.errors, 0u) << "heartbeat " << b.n;
  ASSERT_EQ(Ferry({"vm", "stop", "r1"}).exit_code, 0);
  ExpectVerifies(dest + "/fill.img");
}

}  // namespace
}  // namespace ferry_it
