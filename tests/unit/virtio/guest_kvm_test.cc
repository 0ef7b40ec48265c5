// KVM tests (CTest label "kvm"): boot the guest programs of vm/guests under
// vm::Machine and read their serial console. They check that the guests run
// their workloads cleanly (heartbeats in order, errors=0), that disk-guest's
// verify mode passes on the disk its write mode produced, and — so a silent
// checker cannot pass — that both guests report corruption planted by the
// test. Skipped with a message when /dev/kvm is not usable.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <thread>

#include "base/fd.h"
#include "base/le.h"
#include "config/vm_definition.h"
#include "support/kvm.h"
#include "support/temp_dir.h"
#include "support/text.h"
#include "vm/guest_abi.h"
#include "vm/machine.h"

namespace vm::test {
namespace {

using ferry_test::TempDir;

constexpr int kTimeoutMs = 60000;  // a guest that has not stopped by then is hung

using ferry_test::LinesStartingWith;

class GuestKvmTest : public ::testing::Test {
 protected:
  MachineOptions Options(const std::string& program, const std::string& cmdline, uint32_t vcpus) {
    MachineOptions o;
    o.definition.name = "guest-test";
    o.definition.id = config::NewUuid();
    o.definition.vcpus = vcpus;
    o.definition.memory_bytes = 64ull << 20;
    o.definition.program = std::string(FERRY_GUEST_DIR) + "/" + program;
    o.definition.cmdline = cmdline;
    o.vm_dir = dir_.path();
    o.console_path = dir_.File("console-" + std::to_string(++runs_) + ".log");
    return o;
  }
  // Boots, waits for the guest to power off (or kTimeoutMs), returns the console.
  std::string Run(const MachineOptions& o, RunState* final_state, std::string* failure = nullptr) {
    auto m = Machine::Create(o);
    if (!m.has_value()) {
      ADD_FAILURE() << "create: " << m.error().ToString();
      return "";
    }
    base::Status st = (*m)->Start();
    EXPECT_TRUE(st.has_value()) << st.error().ToString();
    *final_state = (*m)->WaitWhileRunning(kTimeoutMs);
    if (failure) *failure = (*m)->failure();
    (*m)->Shutdown();
    auto console = base::ReadFileToString(o.console_path);
    EXPECT_TRUE(console.has_value());
    return console.has_value() ? *console : "";
  }
  void CreateDisk(const std::string& name, uint64_t bytes) {
    auto fd = base::Fd::Open(dir_.File(name), O_RDWR | O_CREAT, 0644);
    ASSERT_TRUE(fd.has_value()) << fd.error().ToString();
    ASSERT_EQ(::ftruncate(fd->get(), off_t(bytes)), 0);
  }
  MachineOptions DiskOptions(const std::string& cmdline) {
    MachineOptions o = Options("disk-guest.bin", cmdline, 1);
    o.definition.disks.push_back({"disk.img", config::DiskFormat::kRaw, false});
    return o;
  }

  TempDir dir_;
  int runs_ = 0;
};

// Heartbeat lines: numbered 1, 2, 3, ... in order, time non-decreasing, no
// errors. Returns the last line's counter values (empty if none).
std::vector<uint64_t> CheckHeartbeats(const std::vector<std::string>& lines, const char* format,
                                      size_t fields, size_t min_lines) {
  EXPECT_GE(lines.size(), min_lines) << "too few heartbeats";
  std::vector<uint64_t> prev;
  for (size_t i = 0; i < lines.size(); ++i) {
    uint64_t v[6] = {};
    int got = std::sscanf(lines[i].c_str(), format, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]);
    EXPECT_EQ(size_t(got), fields) << "malformed: " << lines[i];
    EXPECT_EQ(v[0], i + 1) << "heartbeats must count 1, 2, 3...: " << lines[i];
    EXPECT_EQ(v[fields - 1], 0u) << "errors: " << lines[i];
    if (!prev.empty()) {
      EXPECT_GE(v[1], prev[1]) << "time went backwards: " << lines[i];
    }
    prev.assign(v, v + fields);
  }
  return prev;
}

TEST_F(GuestKvmTest, MemoryGuestRunsCleanOnOneVcpu) {
  FERRY_SKIP_WITHOUT_KVM();
  RunState state;
  std::string failure;
  std::string console =
      Run(Options("memory-guest.bin", "ws_mib=16 hb_ms=50 seconds=2", 1), &state, &failure);
  ASSERT_EQ(state, RunState::kPoweredOff) << failure << "\n" << console;
  EXPECT_EQ(LinesStartingWith(console, "MEMGUEST start ws_mib=16 rate=0 vcpus=1").size(), 1u)
      << console;
  auto last =
      CheckHeartbeats(LinesStartingWith(console, "HB "),
                      "HB %" SCNu64 " t=%" SCNu64 " dirtied=%" SCNu64 " errors=%" SCNu64, 4, 20);
  ASSERT_FALSE(last.empty());
  EXPECT_GT(last[2], 4096u) << "more than the initial pass was dirtied";
  EXPECT_TRUE(LinesStartingWith(console, "MISMATCH").empty()) << console;
  auto done = LinesStartingWith(console, "MEMGUEST done ");
  ASSERT_EQ(done.size(), 1u) << console;
  EXPECT_NE(done[0].find("errors=0"), std::string::npos) << done[0];
}

TEST_F(GuestKvmTest, MemoryGuestRateLimitedOnTwoVcpus) {
  FERRY_SKIP_WITHOUT_KVM();
  RunState state;
  std::string failure;
  std::string console = Run(
      Options("memory-guest.bin", "ws_mib=8 rate=5000 hb_ms=100 seconds=2", 2), &state, &failure);
  ASSERT_EQ(state, RunState::kPoweredOff) << failure << "\n" << console;
  EXPECT_EQ(LinesStartingWith(console, "MEMGUEST start ws_mib=8 rate=5000 vcpus=2").size(), 1u)
      << console;
  auto last =
      CheckHeartbeats(LinesStartingWith(console, "HB "),
                      "HB %" SCNu64 " t=%" SCNu64 " dirtied=%" SCNu64 " errors=%" SCNu64, 4, 10);
  ASSERT_FALSE(last.empty());
  // Initial pass (2048 pages) plus about 5000/s; generous bounds for a busy host.
  EXPECT_GT(last[2], 2048u + 2000u);
  EXPECT_LT(last[2], 2048u + 5000u * last[1] / 1000 + 5000u);
}

TEST_F(GuestKvmTest, MemoryGuestReportsAPageCorruptedBehindItsBack) {
  FERRY_SKIP_WITHOUT_KVM();
  MachineOptions o = Options("memory-guest.bin", "ws_mib=16 rate=1000 hb_ms=50 seconds=3", 1);
  auto m = Machine::Create(o);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  ASSERT_TRUE((*m)->Start().has_value());
  ASSERT_EQ((*m)->WaitWhileRunning(500), RunState::kRunning);
  ASSERT_TRUE((*m)->Pause().has_value());
  // Working set = program_end + the two u32 tables (4096 pages -> 32 KiB).
  const uint8_t* params = (*m)->memory_base() + FERRY_PARAMS_GPA;
  uint64_t program_end = base::GetLe64(params + offsetof(ferry_guest_params, program_end));
  uint8_t* page = (*m)->memory_base() + program_end + 32768 + 1234 * 4096ull;
  page[40] ^= 0x01;
  ASSERT_TRUE((*m)->Resume().has_value());
  RunState state = (*m)->WaitWhileRunning(kTimeoutMs);
  (*m)->Shutdown();
  auto console = base::ReadFileToString(o.console_path);
  ASSERT_TRUE(console.has_value());
  EXPECT_EQ(state, RunState::kFailed) << "exit code 1 after errors\n" << *console;
  auto mismatches = LinesStartingWith(*console, "MISMATCH page=1234 ");
  ASSERT_EQ(mismatches.size(), 1u) << *console;
  EXPECT_NE(mismatches[0].find("word=5 "), std::string::npos) << mismatches[0];
  EXPECT_NE(LinesStartingWith(*console, "MEMGUEST done ").at(0).find("errors=1"),
            std::string::npos);
}

// The guest's clock (runtime/clock.c: rdtsc + params->tsc_offset) does not
// jump across a save/restore even on a host where the VMM cannot set the TSC:
// the heartbeat after the restore is one interval after the last one before
// it, not the second the VM spent as a file. The heartbeats keep counting and
// the working set verifies clean, so the restored guest lost nothing either.
TEST_F(GuestKvmTest, MemoryGuestTimeDoesNotJumpAcrossSaveRestore) {
  FERRY_SKIP_WITHOUT_KVM();
  constexpr uint64_t kHbMs = 50;
  constexpr auto kSaved = std::chrono::milliseconds(1000);
  MachineOptions o = Options("memory-guest.bin", "ws_mib=8 rate=2000 hb_ms=50 seconds=2", 1);
  const std::string state = dir_.File("vm.state");
  size_t hb_before = 0;
  {
    auto m = Machine::Create(o);
    ASSERT_TRUE(m.has_value()) << m.error().ToString();
    ASSERT_TRUE((*m)->Start().has_value());
    ASSERT_EQ((*m)->WaitWhileRunning(600), RunState::kRunning) << (*m)->failure();
    ASSERT_TRUE((*m)->Pause().has_value());
    base::Status st = (*m)->SaveState(state);
    ASSERT_TRUE(st.has_value()) << st.error().ToString();
    (*m)->Shutdown();
    auto console = base::ReadFileToString(o.console_path);
    ASSERT_TRUE(console.has_value());
    hb_before = LinesStartingWith(*console, "HB ").size();
    ASSERT_GE(hb_before, 3u) << *console;
  }
  // The VM exists only as a file for a second: invisible to its clock.
  auto saved_at = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - saved_at < kSaved) std::this_thread::yield();

  auto m = Machine::Restore(o, state);  // same console file: output appends
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  ASSERT_TRUE((*m)->Resume().has_value());
  RunState final_state = (*m)->WaitWhileRunning(kTimeoutMs);
  MachineStats stats = (*m)->stats();
  std::string failure = (*m)->failure();
  (*m)->Shutdown();
  auto console = base::ReadFileToString(o.console_path);
  ASSERT_TRUE(console.has_value());
  ASSERT_EQ(final_state, RunState::kPoweredOff) << failure << "\n" << *console;

  std::vector<std::string> hb = LinesStartingWith(*console, "HB ");
  CheckHeartbeats(hb, "HB %" SCNu64 " t=%" SCNu64 " dirtied=%" SCNu64 " errors=%" SCNu64, 4,
                  hb_before + 5);
  ASSERT_GT(hb.size(), hb_before) << *console;
  uint64_t n = 0, t_last_before = 0, t_first_after = 0;
  ASSERT_EQ(std::sscanf(hb[hb_before - 1].c_str(), "HB %" SCNu64 " t=%" SCNu64, &n, &t_last_before),
            2);
  ASSERT_EQ(std::sscanf(hb[hb_before].c_str(), "HB %" SCNu64 " t=%" SCNu64, &n, &t_first_after), 2);
  // A jump would be at least the second spent saved; allow scheduling noise
  // on a busy host on top of the interval.
  EXPECT_LT(t_first_after - t_last_before, kHbMs + 400)
      << "guest time jumped across the restore (" << ToString(stats.guest_clock) << "):\n"
      << hb[hb_before - 1] << "\n"
      << hb[hb_before];
  EXPECT_NE(stats.guest_clock, GuestClockSync::kNotRestored);
  auto done = LinesStartingWith(*console, "MEMGUEST done ");
  ASSERT_EQ(done.size(), 1u) << *console;
  EXPECT_NE(done[0].find("errors=0"), std::string::npos) << done[0];
  std::cout << "[ note ] heartbeat step across the restore " << (t_first_after - t_last_before)
            << " ms (hb_ms=" << kHbMs << "), clock kept by " << ToString(stats.guest_clock) << "\n";
}

TEST_F(GuestKvmTest, DiskGuestWritesThenVerifyPasses) {
  FERRY_SKIP_WITHOUT_KVM();
  CreateDisk("disk.img", 32ull << 20);
  RunState state;
  std::string failure;
  std::string console = Run(DiskOptions("hb_ms=50 flush_every=16 seconds=2"), &state, &failure);
  ASSERT_EQ(state, RunState::kPoweredOff) << failure << "\n" << console;
  EXPECT_EQ(
      LinesStartingWith(console, "DISKGUEST start mode=write blocks=4096 disk_blocks=8192").size(),
      1u)
      << console;
  auto last = CheckHeartbeats(LinesStartingWith(console, "DISK "),
                              "DISK %" SCNu64 " t=%" SCNu64 " writes=%" SCNu64 " reads=%" SCNu64
                              " flushes=%" SCNu64 " errors=%" SCNu64,
                              6, 20);
  ASSERT_FALSE(last.empty());
  EXPECT_GT(last[2], 100u) << "writes";
  EXPECT_GE(last[3], last[2]) << "every write is read back";
  EXPECT_GE(last[4], last[2] / 16 - 1) << "flushes";
  EXPECT_TRUE(LinesStartingWith(console, "DISK-MISMATCH").empty()) << console;
  EXPECT_TRUE(LinesStartingWith(console, "DISK-IOERR").empty()) << console;
  auto done = LinesStartingWith(console, "DISKGUEST done ");
  ASSERT_EQ(done.size(), 1u) << console;
  uint64_t total_writes = 0, total_errors = 1;
  ASSERT_EQ(std::sscanf(done[0].c_str(), "DISKGUEST done writes=%" SCNu64 " errors=%" SCNu64,
                        &total_writes, &total_errors),
            2);
  EXPECT_EQ(total_errors, 0u);
  EXPECT_GE(total_writes, last[2]);

  console = Run(DiskOptions("mode=verify"), &state, &failure);
  ASSERT_EQ(state, RunState::kPoweredOff) << failure << "\n" << console;
  auto summary = LinesStartingWith(console, "DISK-VERIFY ");
  ASSERT_EQ(summary.size(), 1u) << console;
  uint64_t blocks = 0, written = 0, bad = 0;
  ASSERT_EQ(std::sscanf(summary[0].c_str(),
                        "DISK-VERIFY blocks=%" SCNu64 " written=%" SCNu64 " bad=%" SCNu64, &blocks,
                        &written, &bad),
            3);
  EXPECT_EQ(blocks, 4096u);
  EXPECT_EQ(written, std::min<uint64_t>(4096, total_writes)) << "the write order is a permutation";
  EXPECT_EQ(bad, 0u);
}

TEST_F(GuestKvmTest, DiskGuestVerifyReportsACorruptBlock) {
  FERRY_SKIP_WITHOUT_KVM();
  CreateDisk("disk.img", 16ull << 20);
  RunState state;
  std::string failure;
  Run(DiskOptions("blocks=64 seconds=1"), &state, &failure);
  ASSERT_EQ(state, RunState::kPoweredOff) << failure;
  {
    auto fd = base::Fd::Open(dir_.File("disk.img"), O_RDWR);
    ASSERT_TRUE(fd.has_value());
    uint8_t byte = 0;
    const off_t where = 17 * 4096 + 1000;  // contents of block 17
    ASSERT_EQ(::pread(fd->get(), &byte, 1, where), 1);
    byte ^= 0x80;
    ASSERT_EQ(::pwrite(fd->get(), &byte, 1, where), 1);
  }
  std::string console = Run(DiskOptions("mode=verify blocks=64"), &state, &failure);
  EXPECT_EQ(state, RunState::kFailed) << "exit code 1 when bad > 0\n" << console;
  auto bad = LinesStartingWith(console, "DISK-BAD ");
  ASSERT_EQ(bad.size(), 1u) << console;
  EXPECT_EQ(bad[0].rfind("DISK-BAD block=17 check=checksum", 0), 0u) << bad[0];
  EXPECT_EQ(LinesStartingWith(console, "DISK-VERIFY blocks=64 written=63 bad=1").size(), 1u)
      << console;
}

}  // namespace
}  // namespace vm::test
