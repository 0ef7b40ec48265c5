// The destination side of a live move without a running guest: what an
// incoming Machine refuses, how FinishIncoming checks the device-state blob
// (every corruption and truncation is kDataLoss; a VM of another shape is
// kFailedPrecondition), and that a failed FinishIncoming leaves the machine
// incoming and retryable.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>

#include "base/fd.h"
#include "test_guests.h"
#include "vm/guest_abi.h"
#include "vm_fixture.h"

namespace vm {
namespace {

using testing::VmTest;
using testing::VolatileLoad64;

constexpr uint64_t kRec = test_guests::kCounterBase;

class IncomingTest : public VmTest {
 protected:
  MachineOptions CounterOptions() {
    WriteFile("disk.img", std::vector<uint8_t>(1 << 20, 0));
    MachineOptions o = Options(test_guests::kCounter, 2);
    o.definition.disks.push_back({"disk.img", config::DiskFormat::kRaw, false});
    return o;
  }
  // Runs the counter guest on two vCPUs, pauses it and returns it.
  std::unique_ptr<Machine> RunAndPause(const MachineOptions& o) {
    auto m = Machine::Create(o);
    EXPECT_TRUE(m) << m.error().ToString();
    if (!m) return nullptr;
    EXPECT_TRUE((*m)->Start());
    WaitFor("the counters", [&] {
      return VolatileLoad64(**m, kRec) > 10000 && VolatileLoad64(**m, kRec + 64) > 10000;
    });
    EXPECT_TRUE((*m)->Pause());
    return std::move(*m);
  }
};

void ExpectCode(const base::Status& st, base::Code code, const std::string& what) {
  ASSERT_FALSE(st) << what << ": expected " << base::CodeName(code);
  EXPECT_EQ(st.error().code(), code) << what << ": " << st.error().ToString();
}

TEST_F(IncomingTest, IncomingMachineRefusesToRunOrSave) {
  FERRY_SKIP_WITHOUT_KVM();
  MachineOptions o = Options(test_guests::kCounter, 2, 16ull << 20);
  // Disks need not exist yet.
  o.definition.disks.push_back({"not-yet.img", config::DiskFormat::kRaw, false});
  auto m = Machine::CreateIncoming(o);
  ASSERT_TRUE(m) << m.error().ToString();
  Machine& vm = **m;
  EXPECT_EQ(vm.state(), RunState::kIncoming);
  EXPECT_EQ(ToString(RunState::kIncoming), "incoming");
  EXPECT_EQ(vm.memory_size(), 16ull << 20);
  ASSERT_NE(vm.memory_base(), nullptr);
  EXPECT_EQ(VolatileLoad64(vm, FERRY_PROGRAM_GPA), 0u) << "RAM starts zeroed: nothing is loaded";
  vm.memory_base()[vm.memory_size() - 1] = 1;  // writable at once

  ExpectCode(vm.Start(), base::Code::kFailedPrecondition, "Start");
  ExpectCode(vm.Pause(), base::Code::kFailedPrecondition, "Pause");
  ExpectCode(vm.Resume(), base::Code::kFailedPrecondition, "Resume");
  ExpectCode(vm.SaveState(Path("vm.state")), base::Code::kFailedPrecondition, "SaveState");
  EXPECT_FALSE(std::filesystem::exists(Path("vm.state")));
  auto blob = vm.SaveDeviceState();
  ASSERT_FALSE(blob);
  EXPECT_EQ(blob.error().code(), base::Code::kFailedPrecondition);
  ExpectCode(
      vm.TransformDisk(
          0,
          [](std::unique_ptr<storage::Disk>&) -> base::Result<std::unique_ptr<storage::Disk>> {
            return base::Error(base::Code::kInternal, "must not be called");
          }),
      base::Code::kFailedPrecondition, "TransformDisk");
  ExpectCode(vm.EnableDirtyLog(), base::Code::kFailedPrecondition, "EnableDirtyLog");
  EXPECT_EQ(vm.WaitWhileRunning(0), RunState::kIncoming);
  EXPECT_EQ(vm.state(), RunState::kIncoming);
  // Throttle may be set in any state and is kept for later.
  ASSERT_TRUE(vm.SetThrottle(30));
  EXPECT_EQ(vm.throttle(), 30);

  vm.Shutdown();
  EXPECT_EQ(vm.state(), RunState::kPoweredOff);
  ExpectCode(vm.FinishIncoming("anything"), base::Code::kFailedPrecondition,
             "FinishIncoming after Shutdown");
}

TEST_F(IncomingTest, OnlyAnIncomingMachineCanBeFinishedAndOnlyAPausedOneSaved) {
  FERRY_SKIP_WITHOUT_KVM();
  MachineOptions o = Options(test_guests::kCounter);
  auto m = Machine::Create(o);
  ASSERT_TRUE(m) << m.error().ToString();
  ASSERT_TRUE((*m)->Start());
  auto blob = (*m)->SaveDeviceState();
  ASSERT_FALSE(blob) << "running: no device state";
  EXPECT_EQ(blob.error().code(), base::Code::kFailedPrecondition);
  ASSERT_TRUE((*m)->Pause());
  blob = (*m)->SaveDeviceState();
  ASSERT_TRUE(blob) << blob.error().ToString();
  ExpectCode((*m)->FinishIncoming(*blob), base::Code::kFailedPrecondition,
             "FinishIncoming on a built machine");
  EXPECT_EQ((*m)->state(), RunState::kPaused);
  auto bad = Machine::CreateIncoming([&] {
    MachineOptions b = o;
    b.kvm_device = Path("no-kvm");
    return b;
  }());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("no-kvm"), std::string::npos) << bad.error().ToString();
}

TEST_F(IncomingTest, CorruptOrTruncatedBlobIsDataLossAndRetryable) {
  FERRY_SKIP_WITHOUT_KVM();
  MachineOptions o = CounterOptions();
  auto src = RunAndPause(o);
  ASSERT_TRUE(src);
  auto blob_or = src->SaveDeviceState();
  ASSERT_TRUE(blob_or) << blob_or.error().ToString();
  const std::string blob = *blob_or;
  EXPECT_EQ(blob.substr(0, 8), "FRRYDEVS");
  EXPECT_LT(blob.size(), 256u << 10) << "a device-state blob is tens of KiB";
  std::cout << "[ note ] device-state blob of 2 vCPUs and 1 disk: " << blob.size() << " bytes\n";

  auto m = Machine::CreateIncoming(o);
  ASSERT_TRUE(m) << m.error().ToString();
  Machine& dst = **m;
  auto expect_data_loss = [&](const std::string& bad, const std::string& what) {
    auto st = dst.FinishIncoming(bad);
    ASSERT_FALSE(st) << what << " was accepted";
    EXPECT_EQ(st.error().code(), base::Code::kDataLoss) << what << ": " << st.error().ToString();
    EXPECT_NE(st.error().message().find("device-state blob"), std::string::npos)
        << st.error().ToString();
    ASSERT_EQ(dst.state(), RunState::kIncoming) << what;
  };
  std::vector<size_t> positions;
  for (size_t i = 0; i < 24; ++i) positions.push_back(i);
  for (size_t i = 24; i < blob.size(); i += 97) positions.push_back(i);
  positions.push_back(blob.size() - 1);
  for (size_t pos : positions) {
    std::string bad = blob;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x20);
    expect_data_loss(bad, "byte " + std::to_string(pos) + " flipped");
    if (HasFailure()) return;
  }
  for (size_t len : {size_t{0}, size_t{1}, size_t{23}, size_t{24}, size_t{47}, size_t{48},
                     blob.size() / 2, blob.size() - 25, blob.size() - 24, blob.size() - 1}) {
    expect_data_loss(blob.substr(0, len), "truncated to " + std::to_string(len) + " bytes");
    if (HasFailure()) return;
  }
  expect_data_loss(blob + '\0', "one byte appended");

  // A state file is not a blob, and a blob is not a state file.
  ASSERT_TRUE(src->SaveState(Path("vm.state")));
  auto file = base::ReadFileToString(Path("vm.state"));
  ASSERT_TRUE(file);
  auto st = dst.FinishIncoming(*file);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), base::Code::kDataLoss);
  EXPECT_NE(st.error().message().find("this is a state file"), std::string::npos)
      << st.error().ToString();
  {
    std::vector<uint8_t> bytes(blob.begin(), blob.end());
    WriteFile("blob.state", bytes);
    auto r = Machine::Restore(o, Path("blob.state"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), base::Code::kDataLoss);
    EXPECT_NE(r.error().message().find("device-state blob"), std::string::npos)
        << r.error().ToString();
  }

  // After all that, the machine takes the good blob (with the memory copied
  // from the paused source) and the guest counts on.
  ASSERT_EQ(dst.state(), RunState::kIncoming);
  std::memcpy(dst.memory_base(), src->memory_base(), dst.memory_size());
  uint64_t c0 = VolatileLoad64(*src, kRec), c1 = VolatileLoad64(*src, kRec + 64);
  src->Shutdown();
  st = dst.FinishIncoming(blob);
  ASSERT_TRUE(st) << st.error().ToString();
  EXPECT_EQ(dst.state(), RunState::kPaused);
  EXPECT_EQ(dst.disk_count(), 1u);
  ASSERT_TRUE(dst.Resume());
  ASSERT_TRUE(WaitFor("the counters to continue on the destination", [&] {
    return VolatileLoad64(dst, kRec) > c0 + 10000 && VolatileLoad64(dst, kRec + 64) > c1 + 10000;
  }));
  ExpectCode(dst.FinishIncoming(blob), base::Code::kFailedPrecondition, "a second FinishIncoming");
  dst.Shutdown();
}

TEST_F(IncomingTest, BlobOfAnotherShapeIsRefused) {
  FERRY_SKIP_WITHOUT_KVM();
  MachineOptions o = CounterOptions();
  auto src = RunAndPause(o);
  ASSERT_TRUE(src);
  auto blob = src->SaveDeviceState();
  ASSERT_TRUE(blob) << blob.error().ToString();
  src->Shutdown();

  struct Case {
    const char* name;
    void (*change)(config::VmDefinition&);
    const char* mentions;
  };
  const Case cases[] = {
      {"one vCPU", [](config::VmDefinition& d) { d.vcpus = 1; }, "vCPUs"},
      {"more memory", [](config::VmDefinition& d) { d.memory_bytes = 16ull << 20; }, "memory"},
      {"no disk", [](config::VmDefinition& d) { d.disks.clear(); }, "disks"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    MachineOptions other = o;
    c.change(other.definition);
    auto m = Machine::CreateIncoming(other);
    ASSERT_TRUE(m) << m.error().ToString();
    auto st = (*m)->FinishIncoming(*blob);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().code(), base::Code::kFailedPrecondition) << st.error().ToString();
    EXPECT_NE(st.error().message().find(c.mentions), std::string::npos) << st.error().ToString();
    EXPECT_EQ((*m)->state(), RunState::kIncoming);
  }
}

}  // namespace
}  // namespace vm
