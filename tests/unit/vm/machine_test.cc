// Machine end to end on real KVM: CPL3 boot, serial, power-off codes, guest
// crashes, unknown accesses, pause/resume, dirty logging, and set-up errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "storage/qcow2.h"
#include "test_guests.h"
#include "vm/guest_abi.h"
#include "vm_fixture.h"

namespace vm {
namespace {

using testing::VmTest;
using testing::VolatileLoad64;

class MachineTest : public VmTest {};

TEST_F(MachineTest, BootsAtCpl3AndWritesSerial) {
  FERRY_SKIP_WITHOUT_KVM();
  auto m = Machine::Create(Options(test_guests::kHello));
  ASSERT_TRUE(m) << m.error().ToString();
  EXPECT_EQ((*m)->state(), RunState::kCreated);
  ASSERT_TRUE((*m)->Start());
  EXPECT_EQ((*m)->WaitWhileRunning(10000), RunState::kPoweredOff) << (*m)->failure();
  EXPECT_EQ(ReadConsole(), "hi\n");
  EXPECT_EQ((*m)->failure(), "");
  EXPECT_GE((*m)->stats().exits, 4u);
}

TEST_F(MachineTest, ParamsPageFollowsTheAbi) {
  FERRY_SKIP_WITHOUT_KVM();
  auto m = Machine::Create(Options(test_guests::kHello, 2, 16ull << 20));
  ASSERT_TRUE(m) << m.error().ToString();
  const uint8_t* p = (*m)->memory_base() + FERRY_PARAMS_GPA;
  ferry_guest_params params;
  std::memcpy(&params, p, sizeof params);
  EXPECT_EQ(params.magic, FERRY_PARAMS_MAGIC);
  EXPECT_EQ(params.memory_bytes, 16ull << 20);
  EXPECT_EQ(params.vcpu_count, 2u);
  EXPECT_EQ(params.disk_count, 0u);
  EXPECT_GT(params.tsc_khz, 100000u);
  EXPECT_EQ(params.program_end, 2ull << 20);
  EXPECT_STREQ(params.cmdline, "mode=test");
  EXPECT_EQ(params.tsc_offset, 0) << "fresh boot: guest time is the TSC";
  EXPECT_EQ(std::memcmp((*m)->memory_base() + FERRY_PROGRAM_GPA, test_guests::kHello.data(),
                        test_guests::kHello.size()),
            0);
}

TEST_F(MachineTest, PowerOffCodeIsReportedAsFailure) {
  FERRY_SKIP_WITHOUT_KVM();
  for (uint8_t code : {1, 42, 255}) {
    auto m = Machine::Create(Options(test_guests::PowerOff(code)));
    ASSERT_TRUE(m) << m.error().ToString();
    ASSERT_TRUE((*m)->Start());
    EXPECT_EQ((*m)->WaitWhileRunning(10000), RunState::kFailed);
    EXPECT_EQ((*m)->failure(), "guest reported failure code " + std::to_string(code));
  }
}

TEST_F(MachineTest, GuestCrashFailsTheMachineNotTheVmm) {
  FERRY_SKIP_WITHOUT_KVM();
  auto m = Machine::Create(Options(test_guests::kCrash, 2));
  ASSERT_TRUE(m) << m.error().ToString();
  ASSERT_TRUE((*m)->Start());
  EXPECT_EQ((*m)->WaitWhileRunning(10000), RunState::kFailed);
  std::string why = (*m)->failure();
  EXPECT_NE(why.find("KVM_EXIT_SHUTDOWN"), std::string::npos) << why;
  EXPECT_NE(why.find("rip 0x100000"), std::string::npos) << why;
  // Pausing or resuming a failed machine is refused, not a hang.
  auto st = (*m)->Pause();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), base::Code::kFailedPrecondition);
  EXPECT_FALSE((*m)->Resume());
}

TEST_F(MachineTest, UnknownPortAndMmioReadAllOnesAndWritesAreIgnored) {
  FERRY_SKIP_WITHOUT_KVM();
  auto m = Machine::Create(Options(test_guests::kUnknownAccess));
  ASSERT_TRUE(m) << m.error().ToString();
  ASSERT_TRUE((*m)->Start());
  ASSERT_EQ((*m)->WaitWhileRunning(10000), RunState::kPoweredOff) << (*m)->failure();
  const uint8_t* mem = (*m)->memory_base();
  EXPECT_EQ(mem[0x200000], 0xff);
  uint32_t mmio;
  std::memcpy(&mmio, mem + 0x200004, 4);
  EXPECT_EQ(mmio, 0xffffffffu);
  EXPECT_EQ((*m)->stats().unknown_accesses, 3u);
}

TEST_F(MachineTest, PauseParksEveryVcpuAndResumeContinues) {
  FERRY_SKIP_WITHOUT_KVM();
  auto m = Machine::Create(Options(test_guests::kCounter, 2));
  ASSERT_TRUE(m) << m.error().ToString();
  Machine& vm = **m;
  ASSERT_TRUE(vm.Start());
  auto counter = [&](int cpu) { return VolatileLoad64(vm, test_guests::kCounterBase + 64 * cpu); };
  ASSERT_TRUE(
      WaitFor("both vCPUs to count", [&] { return counter(0) > 1000 && counter(1) > 1000; }));
  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE(vm.Pause());
    EXPECT_EQ(vm.state(), RunState::kPaused);
    uint64_t c0 = counter(0), c1 = counter(1);
    // Parked means parked: nothing moves while paused. The vCPUs do a
    // million iterations in well under a millisecond when running.
    for (int i = 0; i < 100000; ++i) std::this_thread::yield();
    EXPECT_EQ(counter(0), c0);
    EXPECT_EQ(counter(1), c1);
    ASSERT_TRUE(vm.Pause());  // idempotent
    ASSERT_TRUE(vm.Resume());
    ASSERT_TRUE(WaitFor("counters to move after resume",
                        [&] { return counter(0) > c0 + 1000 && counter(1) > c1 + 1000; }));
  }
  vm.Shutdown();
}

TEST_F(MachineTest, PauseRacesWithExitHandling) {
  FERRY_SKIP_WITHOUT_KVM();
  // The hello guest exits to the VMM on every instruction that matters; many
  // short runs pause it at random points of exit handling.
  std::vector<uint8_t> chatty = {0x66, 0xba, 0xf8, 0x03, 0xb0,
                                 0x2e, 0xee, 0xeb, 0xfd};  // 1: out '.'; jmp 1b
  auto m = Machine::Create(Options(chatty, 2));
  ASSERT_TRUE(m) << m.error().ToString();
  ASSERT_TRUE((*m)->Start());
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE((*m)->Pause());
    size_t before = ReadConsole().size();
    for (int k = 0; k < 2000; ++k) std::this_thread::yield();
    EXPECT_EQ(ReadConsole().size(), before) << "a vCPU ran while paused";
    ASSERT_TRUE((*m)->Resume());
    // Let the guest make progress so the next pause lands mid-stream.
    ASSERT_TRUE(
        WaitFor("console output after resume", [&] { return ReadConsole().size() > before; }));
  }
  (*m)->Shutdown();
  std::string out = ReadConsole();
  EXPECT_GT(out.size(), 0u);
  EXPECT_EQ(out.find_first_not_of('.'), std::string::npos);
}

TEST_F(MachineTest, DirtyLogSeesExactlyTheWrittenPages) {
  FERRY_SKIP_WITHOUT_KVM();
  auto m = Machine::Create(Options(test_guests::kPages));
  ASSERT_TRUE(m) << m.error().ToString();
  Machine& vm = **m;
  ASSERT_TRUE(vm.Start());
  ASSERT_TRUE(WaitFor("the guest to be ready",
                      [&] { return VolatileLoad64(vm, test_guests::kPagesReady) == 1; }));
  ASSERT_TRUE(vm.EnableDirtyLog());
  __atomic_store_n(reinterpret_cast<uint64_t*>(vm.memory_base() + test_guests::kPagesGo), 1,
                   __ATOMIC_RELAXED);
  ASSERT_EQ(vm.WaitWhileRunning(10000), RunState::kPoweredOff) << vm.failure();
  auto bitmap = vm.HarvestDirtyPages();
  ASSERT_TRUE(bitmap) << bitmap.error().ToString();
  ASSERT_EQ(bitmap->size(), (vm.memory_size() / 4096 + 63) / 64);
  std::vector<uint64_t> dirty;
  for (uint64_t page = 0; page < vm.memory_size() / 4096; ++page)
    if ((*bitmap)[page / 64] >> (page % 64) & 1) dirty.push_back(page);
  EXPECT_EQ(dirty, test_guests::kPagesWritten);

  // The next interval starts empty.
  auto again = vm.HarvestDirtyPages();
  ASSERT_TRUE(again);
  EXPECT_TRUE(std::all_of(again->begin(), again->end(), [](uint64_t w) { return w == 0; }));
  ASSERT_TRUE(vm.DisableDirtyLog());
  EXPECT_FALSE(vm.HarvestDirtyPages());
}

TEST_F(MachineTest, DirtyLogWhileRunningMergesVmmWrites) {
  FERRY_SKIP_WITHOUT_KVM();
  auto m = Machine::Create(Options(test_guests::kCounter));
  ASSERT_TRUE(m) << m.error().ToString();
  Machine& vm = **m;
  ASSERT_TRUE(vm.Start());
  ASSERT_TRUE(
      WaitFor("the counter", [&] { return VolatileLoad64(vm, test_guests::kCounterBase) > 0; }));
  ASSERT_TRUE(vm.EnableDirtyLog());
  for (int round = 0; round < 5; ++round) {
    uint64_t c = VolatileLoad64(vm, test_guests::kCounterBase);
    ASSERT_TRUE(WaitFor("the counter to move",
                        [&] { return VolatileLoad64(vm, test_guests::kCounterBase) > c + 100; }));
    ASSERT_TRUE(vm.Pause());
    auto bitmap = vm.HarvestDirtyPages();
    ASSERT_TRUE(bitmap) << bitmap.error().ToString();
    std::set<uint64_t> dirty;
    for (uint64_t page = 0; page < vm.memory_size() / 4096; ++page)
      if ((*bitmap)[page / 64] >> (page % 64) & 1) dirty.insert(page);
    EXPECT_EQ(dirty, std::set<uint64_t>{test_guests::kCounterBase / 4096}) << "round " << round;
    ASSERT_TRUE(vm.Resume());
  }
  vm.Shutdown();
}

TEST_F(MachineTest, MissingKvmDeviceIsAClearError) {
  MachineOptions o = Options(test_guests::kHello);
  o.kvm_device = Path("no-such-kvm");
  auto m = Machine::Create(o);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), base::Code::kNotFound);
  EXPECT_NE(m.error().message().find("cannot open " + o.kvm_device), std::string::npos)
      << m.error().message();
  EXPECT_NE(m.error().message().find("is KVM available on this host?"), std::string::npos);
}

TEST_F(MachineTest, NonKvmDeviceIsRejected) {
  MachineOptions o = Options(test_guests::kHello);
  o.kvm_device = "/dev/null";
  auto m = Machine::Create(o);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), base::Code::kFailedPrecondition);
  EXPECT_NE(m.error().message().find("KVM_GET_API_VERSION"), std::string::npos)
      << m.error().message();
}

TEST_F(MachineTest, ProgramErrorsNameThePath) {
  FERRY_SKIP_WITHOUT_KVM();
  MachineOptions o = Options(test_guests::kHello);
  o.definition.program = "missing.bin";
  auto m = Machine::Create(o);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), base::Code::kNotFound);
  EXPECT_NE(m.error().message().find(Path("missing.bin")), std::string::npos)
      << m.error().message();

  WriteFile("big.bin", std::vector<uint8_t>(FERRY_MAX_PROGRAM_BYTES + 1, 0x90));
  o = Options(test_guests::kHello, 1, 64ull << 20);
  o.definition.program = "big.bin";
  m = Machine::Create(o);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), base::Code::kInvalidArgument);
  EXPECT_NE(m.error().message().find(Path("big.bin")), std::string::npos) << m.error().message();
}

TEST_F(MachineTest, UnsupportedShapesAreRefused) {
  FERRY_SKIP_WITHOUT_KVM();
  MachineOptions o = Options(test_guests::kHello, FERRY_MAX_VCPUS + 1);
  EXPECT_EQ(Machine::Create(o).error().code(), base::Code::kInvalidArgument);
  o = Options(test_guests::kHello, 1, 4ull << 30);
  auto m = Machine::Create(o);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("MMIO window"), std::string::npos) << m.error().message();
  // The VMM builds exactly the sizes config accepts: up to the window, not past it.
  o = Options(test_guests::kHello, 1, config::kMaxVmMemoryBytes + (2ull << 20));
  EXPECT_EQ(Machine::Create(o).error().code(), base::Code::kInvalidArgument);
  o = Options(test_guests::kHello, 1, config::kMinVmMemoryBytes - (2ull << 20));
  EXPECT_EQ(Machine::Create(o).error().code(), base::Code::kInvalidArgument);
  o = Options(test_guests::kHello, 1, config::kMaxVmMemoryBytes);
  m = Machine::Create(o);
  ASSERT_TRUE(m) << "the largest size config accepts must boot: " << m.error().ToString();
  ASSERT_TRUE((*m)->Start());
  EXPECT_EQ((*m)->WaitWhileRunning(10000), RunState::kPoweredOff) << (*m)->failure();
  EXPECT_EQ(ReadConsole(), "hi\n");
}

TEST_F(MachineTest, DisksOpenByFormatAndMissingOnesAreNamed) {
  FERRY_SKIP_WITHOUT_KVM();
  MachineOptions o = Options(test_guests::kHello);
  o.definition.disks.push_back({"missing.qcow2", config::DiskFormat::kQcow2, false});
  auto m = Machine::Create(o);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("disk 0"), std::string::npos) << m.error().message();
  EXPECT_NE(m.error().message().find(Path("missing.qcow2")), std::string::npos)
      << m.error().message();

  storage::Qcow2CreateOptions q;
  q.size = 1 << 20;
  ASSERT_TRUE(storage::CreateQcow2(Path("disk.qcow2"), q));
  WriteFile("disk.raw", std::vector<uint8_t>(1 << 20, 0));
  o = Options(test_guests::kHello);
  o.definition.disks.push_back({"disk.qcow2", config::DiskFormat::kQcow2, false});
  o.definition.disks.push_back({Path("disk.raw"), config::DiskFormat::kRaw, true});
  m = Machine::Create(o);
  ASSERT_TRUE(m) << m.error().ToString();
  ferry_guest_params params;
  std::memcpy(&params, (*m)->memory_base() + FERRY_PARAMS_GPA, sizeof params);
  EXPECT_EQ(params.disk_count, 2u);
  ASSERT_TRUE((*m)->Start());
  EXPECT_EQ((*m)->WaitWhileRunning(10000), RunState::kPoweredOff) << (*m)->failure();
}

}  // namespace
}  // namespace vm
