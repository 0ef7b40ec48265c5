// Save and restore through ferryd: the guests must continue exactly where
// they were (no heartbeat lost or repeated, no corruption), and a damaged
// state file must be refused without starting anything.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "support/ferryd_harness.h"

namespace ferry_it {
namespace {

// Heartbeats numbered 1, 2, 3, ... with no gap or repeat, time never going
// back, and no errors: what a guest that never noticed a save/restore prints.
void ExpectContinuous(const std::vector<Heartbeat>& beats) {
  for (size_t i = 0; i < beats.size(); ++i) {
    ASSERT_EQ(beats[i].n, i + 1) << "heartbeat " << i + 1 << " is missing or repeated";
    EXPECT_EQ(beats[i].errors, 0u) << "heartbeat " << beats[i].n;
    if (i > 0) {
      EXPECT_GE(beats[i].t_ms, beats[i - 1].t_ms)
          << "guest time went back at heartbeat " << beats[i].n;
    }
  }
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

TEST_F(FerryTest, MemoryGuestContinuesAcrossSaveAndRestore) {
  StartFerryd();
  ASSERT_TRUE(CreateAndStart(
      "m1", {"--guest", "memory", "--memory", "64M", "--cmdline", "ws_mib=32 rate=4000 hb_ms=50"}));
  WaitForHeartbeats("m1", "HB", 5);

  ProcessResult r = Ferry({"vm", "save", "m1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string state_file = storage() + "/vms/m1/saved.fvs";
  EXPECT_EQ(r.out, "vm m1: saved to " + state_file + "\n");
  EXPECT_EQ(State("m1"), "saved");
  struct stat st {};
  ASSERT_EQ(::stat(state_file.c_str(), &st), 0);
  size_t before = ParseHeartbeats(Console("m1"), "HB").size();

  r = Ferry({"vm", "start", "m1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("restore it"), std::string::npos) << r.err;

  r = Ferry({"vm", "restore", "m1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "vm m1: running\n");
  auto beats = WaitForHeartbeats("m1", "HB", before + 10);
  ExpectContinuous(beats);
  std::string console = Console("m1");
  EXPECT_EQ(Count(console, "MEMGUEST start"), 1u) << "the guest must not have rebooted";
  EXPECT_EQ(Count(console, "MISMATCH"), 0u) << console;
  EXPECT_NE(::stat(state_file.c_str(), &st), 0) << "a used state file is removed";

  // Twice more, with an explicit file, to catch state that survives only one trip.
  for (int round = 0; round < 2; ++round) {
    std::string file = dir() + "/round" + std::to_string(round) + ".fvs";
    ASSERT_EQ(Ferry({"vm", "save", "m1", "--to", file}).exit_code, 0);
    size_t seen = ParseHeartbeats(Console("m1"), "HB").size();
    ASSERT_EQ(Ferry({"vm", "restore", "m1", "--from", file}).exit_code, 0);
    ExpectContinuous(WaitForHeartbeats("m1", "HB", seen + 5));
  }
}

TEST_F(FerryTest, DiskGuestContinuesAcrossSaveAndRestoreAndItsDiskVerifies) {
  StartFerryd();
  std::string disk = dir() + "/data.img";
  MakeSparseFile(disk, 8 << 20);
  ASSERT_TRUE(CreateAndStart("d1", {"--guest", "disk", "--memory", "32M", "--disk", disk,
                                    "--cmdline", "hb_ms=50 rate=2000 flush_every=16"}));
  WaitForHeartbeats("d1", "DISK", 5);
  ProcessResult r = Ferry({"vm", "save", "d1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  size_t before = ParseHeartbeats(Console("d1"), "DISK").size();
  r = Ferry({"vm", "restore", "d1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto beats = WaitForHeartbeats("d1", "DISK", before + 10);
  ExpectContinuous(beats);
  std::string console = Console("d1");
  EXPECT_EQ(Count(console, "DISKGUEST start"), 1u);
  EXPECT_EQ(Count(console, "DISK-MISMATCH"), 0u) << console;
  EXPECT_EQ(Count(console, "DISK-IOERR"), 0u) << console;
  ASSERT_EQ(Ferry({"vm", "stop", "d1"}).exit_code, 0);

  // A fresh VM checks every block the first one wrote.
  ASSERT_TRUE(CreateAndStart("check", {"--guest", "disk", "--memory", "32M", "--disk", disk + ",ro",
                                       "--cmdline", "mode=verify"}));
  WaitForPowerOff("check");
  std::string verify = Console("check");
  EXPECT_EQ(State("check"), "powered-off") << verify;
  auto pos = verify.find("DISK-VERIFY blocks=2048 written=");
  ASSERT_NE(pos, std::string::npos) << verify;
  EXPECT_NE(verify.find(" bad=0", pos), std::string::npos) << verify;
  EXPECT_EQ(verify.find("DISK-VERIFY blocks=2048 written=0 "), std::string::npos)
      << "nothing was written: " << verify;
}

TEST_F(FerryTest, CorruptStateFileIsRefusedAndNothingStarts) {
  StartFerryd();
  ASSERT_TRUE(CreateAndStart(
      "m1", {"--guest", "memory", "--memory", "32M", "--cmdline", "ws_mib=8 rate=2000 hb_ms=50"}));
  WaitForHeartbeats("m1", "HB", 3);
  ASSERT_EQ(Ferry({"vm", "save", "m1"}).exit_code, 0);
  std::string state_file = storage() + "/vms/m1/saved.fvs";
  const std::string good = ReadAll(state_file);
  ASSERT_GT(good.size(), 8192u);
  size_t before = ParseHeartbeats(Console("m1"), "HB").size();

  struct Damage {
    std::string what;
    std::string data;
  };
  std::vector<Damage> damages;
  for (size_t offset :
       {size_t(0), size_t(17), size_t(100), size_t(4096), good.size() / 2, good.size() - 1}) {
    std::string bad = good;
    bad[offset] = char(bad[offset] ^ 0x01);
    damages.push_back({"bit flip at offset " + std::to_string(offset), bad});
  }
  damages.push_back({"truncated to half", good.substr(0, good.size() / 2)});
  damages.push_back({"truncated by one byte", good.substr(0, good.size() - 1)});
  damages.push_back({"empty", ""});

  for (const Damage& d : damages) {
    SCOPED_TRACE(d.what);
    WriteAll(state_file, d.data);
    ProcessResult r = Ferry({"vm", "restore", "m1"});
    EXPECT_EQ(r.exit_code, 1) << r.out;
    EXPECT_NE(r.err.find("corrupt"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("nothing was restored"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(state_file), std::string::npos) << r.err;
    nlohmann::json vm = FerryJson({"vm", "show", "m1"});
    EXPECT_EQ(vm["state"], "saved");
    EXPECT_TRUE(vm["worker"].is_null());
  }
  EXPECT_EQ(ParseHeartbeats(Console("m1"), "HB").size(), before)
      << "no damaged restore may have run the guest";

  // The intact file still restores, and the guest goes on where it was.
  WriteAll(state_file, good);
  ProcessResult r = Ferry({"vm", "restore", "m1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectContinuous(WaitForHeartbeats("m1", "HB", before + 5));
}

}  // namespace
}  // namespace ferry_it
