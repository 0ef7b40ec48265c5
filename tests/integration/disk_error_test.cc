// Damaged disk images, seen by the admin through `ferry` only:
// - a running disk guest that hits a damaged region of its qcow2 gets its
//   I/O errors and keeps running, while `ferry vm show` reports the cause in
//   last_error and the error counts, and worker.log has the first error;
// - `ferry vm create` refuses a damaged image or chain (truncated, a loop,
//   the compression-type bit with zlib), naming the disk and the problem;
// - an offline `ferry move-storage` of a damaged image fails without copying
//   it and leaves the VM and its files as they were.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "support/ferryd_harness.h"

namespace ferry_it {
namespace {

bool HaveQemuImg() {
  return RunProcess({"/usr/bin/qemu-img", "--version"}, {}, 30000).exit_code == 0;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

uint64_t FileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
}

class DiskErrorTest : public FerryTest {
 protected:
  void SetUp() override {
    FerryTest::SetUp();
    if (!HaveQemuImg()) GTEST_SKIP() << "qemu-img not installed (Debian: qemu-utils)";
    std::filesystem::create_directories(dir() + "/disks");
  }
  std::string Disk(const std::string& name) const { return dir() + "/disks/" + name; }
  void QemuImg(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/usr/bin/qemu-img"};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessResult r = RunProcess(argv, {}, 60000);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  // 16 MiB, 64 KiB clusters, every cluster allocated (sparse) with metadata
  // at the front: L2 table at 0x40000, cluster N's data at 0x50000 + N*64K.
  // Cut to 1 MiB, clusters 11.. map past the end of the file.
  void MakePreallocated(const std::string& path) {
    QemuImg({"create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", path, "16M"});
  }
  static void Truncate(const std::string& path) {
    ASSERT_EQ(::truncate(path.c_str(), 1 << 20), 0) << path;
  }
  std::string VmDir(const std::string& vm) const { return storage() + "/vms/" + vm; }
};

TEST_F(DiskErrorTest, RunningGuestHitsADamagedRegionAndShowSaysWhy) {
  StartFerryd();
  const std::string disk = Disk("d1.qcow2");
  MakePreallocated(disk);
  ASSERT_EQ(Ferry({"vm", "create", "d1", "--guest", "disk", "--memory", "64M", "--cmdline",
                   "blocks=4096 hb_ms=50", "--disk", disk + ",format=qcow2"})
                .exit_code,
            0);
  // The damage happens after create (which would refuse it): the L2 table
  // survives, most clusters it maps are gone.
  Truncate(disk);
  ProcessResult started = Ferry({"vm", "start", "d1"});
  ASSERT_EQ(started.exit_code, 0) << started.err;

  nlohmann::json vm;
  WaitFor("ferry vm show to report disk errors", 60000, [&] {
    vm = FerryJson({"vm", "show", "d1"});
    return vm.contains("stats") && vm["stats"].value("disk_errors", 0) >= 5;
  });
  EXPECT_EQ(vm["state"], "running")
      << "an I/O error is the guest's to handle; the vm keeps running";
  const std::string last_error = vm["last_error"];
  EXPECT_EQ(last_error.rfind("disk 0 (" + disk + "): ", 0), 0u) << last_error;
  EXPECT_NE(last_error.find(" at offset "), std::string::npos) << last_error;
  EXPECT_NE(last_error.find(disk + ": L2 entry "), std::string::npos) << last_error;
  EXPECT_NE(last_error.find("points past end of file (data-loss)"), std::string::npos)
      << last_error;
  const nlohmann::json& d0 = vm["stats"]["disks"][0];
  EXPECT_EQ(d0["path"], disk);
  EXPECT_GE(d0["errors"].get<uint64_t>(), 5u);
  EXPECT_EQ(d0["errors"].get<uint64_t>(), d0["read_errors"].get<uint64_t>() +
                                              d0["write_errors"].get<uint64_t>() +
                                              d0["flush_errors"].get<uint64_t>());
  EXPECT_EQ(last_error.find(d0["first_error"].get<std::string>()),
            std::string("disk 0 (" + disk + "): ").size());

  // The guest saw I/O errors (not corruption) and is still alive.
  size_t beats = WaitForHeartbeats("d1", "DISK", 5).size();
  WaitForHeartbeats("d1", "DISK", beats + 3);
  std::string console = Console("d1");
  EXPECT_NE(console.find("DISK-IOERR"), std::string::npos) << console;
  EXPECT_EQ(Count(console, "DISK-MISMATCH"), 0u) << console;

  // The human view: the error counts per disk and last error.
  ProcessResult show = Ferry({"vm", "show", "d1"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("disk 0 errors:"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("last error:"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("points past end of file"), std::string::npos) << show.out;

  // worker.log: the first error once, however many followed.
  std::string log = ReadText(VmDir("d1") + "/worker.log");
  EXPECT_EQ(Count(log, "points past end of file"), 1u) << log;
  EXPECT_NE(log.find("disk 0 (" + disk + "): "), std::string::npos) << log;

  // Errors live with the worker: a stopped vm has none to show.
  ASSERT_EQ(Ferry({"vm", "stop", "d1"}).exit_code, 0);
  EXPECT_EQ(FerryJson({"vm", "show", "d1"})["last_error"], "");
}

TEST_F(DiskErrorTest, CreateRefusesDamagedImagesNamingTheDiskAndTheProblem) {
  StartFerryd();
  auto create = [&](const std::string& name, const std::string& disk) {
    return Ferry({"vm", "create", name, "--guest", "disk", "--memory", "64M", "--disk",
                  disk + ",format=qcow2"});
  };

  const std::string truncated = Disk("truncated.qcow2");
  MakePreallocated(truncated);
  Truncate(truncated);
  ProcessResult r = create("t", truncated);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("cannot create vm t: disk 0 (" + truncated + "): " + truncated +
                       ": L2 entry 11 of table at "),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("points past end of file"), std::string::npos) << r.err;

  // a -> b -> a: refused as a loop at once, naming the files.
  const std::string a = Disk("a.qcow2"), b = Disk("b.qcow2");
  QemuImg({"create", "-q", "-f", "qcow2", b, "16M"});
  QemuImg({"create", "-q", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", a});
  QemuImg({"rebase", "-u", "-b", "a.qcow2", "-F", "qcow2", b});
  auto start = std::chrono::steady_clock::now();
  r = create("loop", a);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("the backing chain loops"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(a + " -> " + b + " -> " + a), std::string::npos) << r.err;
  EXPECT_EQ(Count(r.err, "backing file of"), 1u) << r.err;
  EXPECT_LT(seconds, 10.0);

  // The compression-type bit with compression type zlib.
  const std::string zlib_bit = Disk("zlib-bit.qcow2");
  QemuImg({"create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", zlib_bit, "16M"});
  {
    std::fstream f(zlib_bit, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(104);
    f.put(0);  // compression_type = zlib, the feature bit stays set
  }
  r = create("zb", zlib_bit);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find(zlib_bit + ": the compression-type incompatible feature bit is set"),
            std::string::npos)
      << r.err;

  // None of them was created; a sound image is.
  nlohmann::json list = FerryJson({"vm", "list"});
  EXPECT_TRUE(list["vms"].empty()) << list.dump();
  const std::string good = Disk("good.qcow2");
  MakePreallocated(good);
  r = create("good", good);
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(DiskErrorTest, OfflineMoveOfADamagedImageFailsAndLeavesTheVmAsItWas) {
  StartFerryd();
  const std::string disk = Disk("m1.qcow2");
  MakePreallocated(disk);
  ASSERT_EQ(Ferry({"vm", "create", "m1", "--guest", "disk", "--memory", "64M", "--disk",
                   disk + ",format=qcow2"})
                .exit_code,
            0);
  Truncate(disk);
  const uint64_t size_before = FileSize(disk);
  const std::string dest = dir() + "/dest";
  ProcessResult r = Ferry({"move-storage", "m1", "--destination-storage-path", dest});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(r.out.find("completed"), std::string::npos) << r.out;
  const std::string all = r.out + r.err;
  EXPECT_NE(all.find("disk 0 (" + disk + ") cannot be moved, nothing was copied"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("points past end of file"), std::string::npos) << all;

  nlohmann::json jobs = FerryJson({"jobs"});
  ASSERT_EQ(jobs["jobs"].size(), 1u);
  EXPECT_EQ(jobs["jobs"][0]["phase"], "failed");
  EXPECT_EQ(jobs["jobs"][0]["error"]["code"], "data-loss");
  EXPECT_EQ(jobs["jobs"][0]["bytes_done"], 0);

  // The vm and its file are where they were; nothing is left at the destination.
  nlohmann::json vm = FerryJson({"vm", "show", "m1"});
  EXPECT_EQ(vm["definition"]["disks"][0]["path"], disk);
  EXPECT_EQ(vm["state"], "stopped");
  EXPECT_EQ(FileSize(disk), size_before);
  EXPECT_FALSE(std::filesystem::exists(dest + "/m1.qcow2"));
  EXPECT_FALSE(std::filesystem::exists(dest + "/.ferry-move-m1.json"));
}

}  // namespace
}  // namespace ferry_it
