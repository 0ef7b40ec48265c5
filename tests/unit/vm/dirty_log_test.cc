// DirtyLog on a bare KVM VM: VMM writes through GuestMemory are merged into
// the harvest, intervals do not leak into each other, and the slot flags
// follow Enable/Disable.
#include "dirty_log.h"

#include <gtest/gtest.h>

#include "vm_fixture.h"

namespace vm {
namespace {

std::vector<uint64_t> Pages(const std::vector<uint64_t>& bitmap) {
  std::vector<uint64_t> out;
  for (size_t w = 0; w < bitmap.size(); ++w)
    for (int b = 0; b < 64; ++b)
      if (bitmap[w] >> b & 1) out.push_back(w * 64 + static_cast<uint64_t>(b));
  return out;
}

TEST(DirtyLogTest, VmmWritesAreMergedPerInterval) {
  FERRY_SKIP_WITHOUT_KVM();
  auto kvm = KvmSystem::Open("/dev/kvm");
  ASSERT_TRUE(kvm) << kvm.error().ToString();
  auto vm = kvm->CreateVm();
  ASSERT_TRUE(vm) << vm.error().ToString();
  auto memory = GuestMemory::Create(4ull << 20);
  ASSERT_TRUE(memory);
  GuestMemory& mem = **memory;
  bool manual = vm->CheckExtension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) != 0;
  if (manual) {
    ASSERT_TRUE(
        vm->EnableCap(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE));
  }
  ASSERT_TRUE(vm->SetMemorySlot(0, 0, mem.size(), mem.base(), 0));
  DirtyLog log(*vm, mem, 0, manual);

  EXPECT_FALSE(log.Harvest()) << "harvest before enable must fail";
  ASSERT_TRUE(mem.Write(0x1000, "x", 1));  // before the interval: not reported
  ASSERT_TRUE(log.Enable());
  ASSERT_TRUE(mem.Write(0x5000, "abc", 3));
  ASSERT_TRUE(mem.Write(0x7fff, "ab", 2));  // straddles pages 7 and 8
  auto first = log.Harvest();
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_EQ(Pages(*first), (std::vector<uint64_t>{5, 7, 8}));
  auto second = log.Harvest();
  ASSERT_TRUE(second);
  EXPECT_TRUE(Pages(*second).empty());
  ASSERT_TRUE(mem.Write(0x3ff000, "z", 1));
  auto third = log.Harvest();
  ASSERT_TRUE(third);
  EXPECT_EQ(Pages(*third), (std::vector<uint64_t>{0x3ff}));
  ASSERT_TRUE(log.Disable());
  EXPECT_FALSE(log.enabled());
  EXPECT_FALSE(log.Harvest());
}

}  // namespace
}  // namespace vm
