// Checkpoints end to end, with the disk guest writing: create three while it
// runs, delete a middle one and the top's parent while it runs (its own
// read-back checks prove its view never changed), apply one on a stopped VM
// and on a running one (--force), and check every file of the chain with
// qemu-img: no errors or leaks, and each applied checkpoint equal to a copy
// taken when it was made.
#include <sys/stat.h>

#include <fstream>
#include <iostream>
#include <set>

#include "support/ferryd_harness.h"

namespace ferry_it {
namespace {

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

ProcessResult QemuImg(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/qemu-img"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, {}, 120000);
}

bool HaveQemuImg() { return QemuImg({"--version"}).exit_code == 0; }

class CheckpointTest : public FerryTest {
 protected:
  std::string VmDir(const std::string& vm) { return storage() + "/vms/" + vm; }
  std::string Abs(const std::string& vm, const std::string& p) {
    return p[0] == '/' ? p : VmDir(vm) + "/" + p;
  }

  // The disk's top file and format from the definition.
  std::pair<std::string, std::string> Top(const std::string& vm) {
    nlohmann::json j = FerryJson({"vm", "show", vm});
    const auto& d = j["definition"]["disks"][0];
    return {Abs(vm, d["path"].get<std::string>()), d["format"].get<std::string>()};
  }

  // Every file of the VM's chain: the top and each checkpoint's layer.
  std::set<std::string> ChainFiles(const std::string& vm) {
    std::set<std::string> files = {Top(vm).first};
    for (const auto& c : FerryJson({"vm", "checkpoint", "list", vm})["checkpoints"])
      files.insert(Abs(vm, c["layers"][0].get<std::string>()));
    return files;
  }

  // A raw copy of what the disk shows now (the VM must be paused or stopped).
  std::string CopyOfDisk(const std::string& vm, const std::string& name) {
    auto [top, format] = Top(vm);
    std::string copy = dir() + "/" + name + ".raw";
    ProcessResult r = QemuImg({"convert", "-U", "-f", format, "-O", "raw", top, copy});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return copy;
  }

  void ExpectChainClean(const std::string& vm) {
    for (const std::string& f : ChainFiles(vm)) {
      ProcessResult info = QemuImg({"info", "-U", "--output=json", f});
      if (info.out.find("\"format\": \"qcow2\"") == std::string::npos) continue;
      ProcessResult r = QemuImg({"check", "-U", "-f", "qcow2", f});
      EXPECT_EQ(r.exit_code, 0) << "qemu-img check " << f << ":\n" << r.out << r.err;
      EXPECT_NE(r.out.find("No errors were found"), std::string::npos) << f << ":\n" << r.out;
    }
  }

  void ExpectGuestHealthy(const std::string& vm) {
    std::string console = Console(vm);
    EXPECT_EQ(Count(console, "DISK-MISMATCH"), 0u) << console;
    EXPECT_EQ(Count(console, "DISK-IOERR"), 0u) << console;
    auto beats = ParseHeartbeats(console, "DISK");
    ASSERT_FALSE(beats.empty());
    EXPECT_EQ(beats.back().errors, 0u) << console;
  }

  // Boots a verifier on the top file (read-only) and expects bad=0.
  void Verify(const std::string& name) {
    auto [top, format] = Top("d1");
    ASSERT_TRUE(
        CreateAndStart(name, {"--guest", "disk", "--memory", "32M", "--disk",
                              top + ",format=" + format + ",ro", "--cmdline", "mode=verify"}));
    WaitForPowerOff(name);
    std::string out = Console(name);
    EXPECT_EQ(State(name), "powered-off") << out;
    auto pos = out.find("DISK-VERIFY blocks=2048 written=");
    ASSERT_NE(pos, std::string::npos) << out;
    EXPECT_NE(out.find(" bad=0", pos), std::string::npos) << out;
    EXPECT_EQ(Ferry({"vm", "delete", name}).exit_code, 0);
  }
};

TEST_F(CheckpointTest, CreateDeleteWhileRunningApplyStoppedAndForced) {
  if (!HaveQemuImg()) GTEST_SKIP() << "qemu-img not installed (Debian: qemu-utils)";
  StartFerryd();
  std::string disk = dir() + "/data.img";
  MakeSparseFile(disk, 8 << 20);
  ASSERT_TRUE(CreateAndStart("d1", {"--guest", "disk", "--memory", "32M", "--disk", disk,
                                    "--cmdline", "hb_ms=50 rate=1000 flush_every=16"}));

  // Three checkpoints while the guest writes; a copy of each taken at the
  // checkpoint (the VM paused around create, so the copy is that instant).
  std::map<std::string, std::string> copies;
  for (const std::string name : {"c1", "c2", "c3"}) {
    size_t seen = ParseHeartbeats(Console("d1"), "DISK").size();
    WaitForHeartbeats("d1", "DISK", seen + 4);
    ASSERT_EQ(Ferry({"vm", "pause", "d1"}).exit_code, 0);
    copies[name] = CopyOfDisk("d1", name);
    ProcessResult r = Ferry({"vm", "checkpoint", "create", "d1", name});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "vm d1: checkpoint " + name + " created\n");
    ASSERT_EQ(Ferry({"vm", "resume", "d1"}).exit_code, 0);
  }
  // One more on the running (not paused) VM, after the guest wrote on c3.
  WaitForHeartbeats("d1", "DISK", ParseHeartbeats(Console("d1"), "DISK").size() + 4);
  ProcessResult r = Ferry({"vm", "checkpoint", "create", "d1", "c4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(State("d1"), "running");

  nlohmann::json list = FerryJson({"vm", "checkpoint", "list", "d1"});
  ASSERT_EQ(list["checkpoints"].size(), 4u) << list.dump();
  EXPECT_EQ(list["current_checkpoint"], "c4");
  EXPECT_EQ(list["checkpoints"][0]["layers"][0], disk) << "the original disk is c1's layer";
  EXPECT_EQ(list["checkpoints"][2]["parent"], "c2");
  r = Ferry({"vm", "checkpoint", "list", "d1"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("c3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("* the disks build on c4"), std::string::npos) << r.out;

  // Errors.
  r = Ferry({"vm", "checkpoint", "create", "d1", "c2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("already has a checkpoint named c2"), std::string::npos) << r.err;
  r = Ferry({"vm", "checkpoint", "apply", "d1", "nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("has no checkpoint named nope"), std::string::npos) << r.err;
  r = Ferry({"vm", "checkpoint", "delete", "d1", "nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("has no checkpoint named nope"), std::string::npos) << r.err;
  r = Ferry({"vm", "checkpoint", "apply", "d1", "c1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  EXPECT_EQ(State("d1"), "running") << "a refused apply changes nothing";

  // Delete a middle checkpoint (c2: its layer is under c3's, deep in the
  // running chain), then the top's parent (c4), while the guest writes.
  size_t seen = ParseHeartbeats(Console("d1"), "DISK").size();
  r = Ferry({"vm", "checkpoint", "delete", "d1", "c2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "vm d1: checkpoint c2 deleted\n");
  r = Ferry({"vm", "checkpoint", "delete", "d1", "c4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  WaitForHeartbeats("d1", "DISK", seen + 10);
  ExpectGuestHealthy("d1");
  // Both merges ran in the worker, under paused guest I/O.
  std::ifstream log(VmDir("d1") + "/worker.log");
  std::string worker_log((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_EQ(Count(worker_log, "checkpoint: streamed"), 2u) << worker_log;
  if (std::getenv("FERRY_IT_SHOW_LOGS") != nullptr) std::cerr << worker_log;
  list = FerryJson({"vm", "checkpoint", "list", "d1"});
  ASSERT_EQ(list["checkpoints"].size(), 2u) << list.dump();
  EXPECT_EQ(list["checkpoints"][1]["name"], "c3");
  EXPECT_EQ(list["checkpoints"][1]["parent"], "c1");
  EXPECT_EQ(list["current_checkpoint"], "c3");
  // c3 still holds exactly what it held.
  std::string c3_layer = Abs("d1", list["checkpoints"][1]["layers"][0].get<std::string>());
  r = QemuImg({"compare", "-U", "-f", "qcow2", "-F", "raw", c3_layer, copies["c3"]});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;

  // Apply c3 on the stopped VM.
  ASSERT_EQ(Ferry({"vm", "stop", "d1"}).exit_code, 0);
  ExpectChainClean("d1");
  r = Ferry({"vm", "checkpoint", "apply", "d1", "c3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "vm d1: checkpoint c3 applied; the vm is stopped\n");
  auto [top, format] = Top("d1");
  EXPECT_EQ(format, "qcow2");
  r = QemuImg({"compare", "-f", "qcow2", "-F", "raw", top, copies["c3"]});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  ExpectChainClean("d1");
  Verify("check1");

  // Running again, then apply c1 with --force: the VM is stopped first.
  ASSERT_EQ(Ferry({"vm", "start", "d1"}).exit_code, 0);
  WaitForHeartbeats("d1", "DISK", ParseHeartbeats(Console("d1"), "DISK").size() + 5);
  r = Ferry({"--json", "vm", "checkpoint", "apply", "d1", "c1", "--force"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json applied = nlohmann::json::parse(r.out);
  EXPECT_EQ(applied["vm"]["state"], "stopped");
  EXPECT_EQ(applied["checkpoint"]["name"], "c1");
  std::tie(top, format) = Top("d1");
  r = QemuImg({"compare", "-f", "qcow2", "-F", "raw", top, copies["c1"]});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  ExpectChainClean("d1");
  Verify("check2");

  // Delete everything on the stopped VM: the disk stands alone and still
  // shows c1; the original image is kept.
  ASSERT_EQ(Ferry({"vm", "checkpoint", "delete", "d1", "c3"}).exit_code, 0);
  r = Ferry({"vm", "checkpoint", "delete", "d1", "c1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("kept " + disk), std::string::npos) << r.out;
  EXPECT_TRUE(FerryJson({"vm", "checkpoint", "list", "d1"})["checkpoints"].empty());
  std::tie(top, format) = Top("d1");
  r = QemuImg({"info", top});
  EXPECT_EQ(r.out.find("backing file"), std::string::npos) << r.out;
  r = QemuImg({"compare", "-f", "qcow2", "-F", "raw", top, copies["c1"]});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  ExpectChainClean("d1");
  // A checkpoint of the stopped VM, which then runs on its overlay.
  r = Ferry({"vm", "checkpoint", "create", "d1", "s1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::tie(top, format) = Top("d1");
  r = QemuImg({"compare", "-f", "qcow2", "-F", "raw", top, copies["c1"]});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_EQ(Ferry({"vm", "start", "d1"}).exit_code, 0);
  WaitForHeartbeats("d1", "DISK", ParseHeartbeats(Console("d1"), "DISK").size() + 5);
  ExpectGuestHealthy("d1");
  ASSERT_EQ(Ferry({"vm", "stop", "d1"}).exit_code, 0);
  ExpectChainClean("d1");
}

}  // namespace
}  // namespace ferry_it
