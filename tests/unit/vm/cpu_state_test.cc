// The vCPU record codec: exact round trip, and every malformed record is a
// kDataLoss error (no out-of-bounds read, no giant allocation).
#include "cpu_state.h"

#include <gtest/gtest.h>

namespace vm {
namespace {

VcpuState Sample() {
  VcpuState s;
  uint64_t k = 1;
  for (auto* v : {&s.regs.rax, &s.regs.rbx, &s.regs.rip, &s.regs.rflags, &s.regs.r15})
    *v = k++ * 0x1111;
  s.sregs.cs.selector = 0x0b;
  s.sregs.cs.dpl = 3;
  s.sregs.cs.l = 1;
  s.sregs.tr.base = 0x1080;
  s.sregs.gdt.limit = 39;
  s.sregs.cr0 = 0x80050033;
  s.sregs.efer = 0x500;
  s.sregs.pdptrs[3] = 77;
  s.fpu.fcw = 0x37f;
  s.fpu.xmm[15][15] = 0xaa;
  s.fpu.mxcsr = 0x1f80;
  s.xsave.assign(4096, 0);
  s.xsave[4095] = 9;
  s.xcrs.nr_xcrs = 1;
  s.xcrs.xcrs[0].value = 3;
  s.msrs = {{0xc0000080, 0x500}, {0x174, 8}};
  s.events.exception.nr = 13;
  s.events.flags = 4;
  s.events.exception_payload = 0xdead;
  s.mp_state.mp_state = KVM_MP_STATE_RUNNABLE;
  s.debugregs.dr7 = 0x400;
  s.tsc = 123456789;
  return s;
}

TEST(CpuStateTest, RoundTrip) {
  VcpuState s = Sample();
  std::string blob = EncodeVcpuState(s);
  auto back = DecodeVcpuState(blob);
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_TRUE(*back == s);
  EXPECT_EQ(back->regs.rip, s.regs.rip);
  EXPECT_EQ(back->sregs.pdptrs[3], 77u);
  EXPECT_EQ(back->fpu.xmm[15][15], 0xaa);
  EXPECT_EQ(back->xsave, s.xsave);
  EXPECT_EQ(back->msrs, s.msrs);
  EXPECT_EQ(back->events.exception_payload, 0xdeadu);
  EXPECT_EQ(back->tsc, 123456789u);
  VcpuState other = s;
  other.debugregs.dr6 = 1;
  EXPECT_FALSE(other == s);
}

TEST(CpuStateTest, EveryTruncationIsDataLoss) {
  std::string blob = EncodeVcpuState(Sample());
  for (size_t len = 0; len < blob.size(); ++len) {
    auto r = DecodeVcpuState(std::string_view(blob).substr(0, len));
    ASSERT_FALSE(r) << "accepted a record cut to " << len << " bytes";
    EXPECT_EQ(r.error().code(), base::Code::kDataLoss);
  }
  auto longer = DecodeVcpuState(blob + "x");
  ASSERT_FALSE(longer);
  EXPECT_EQ(longer.error().code(), base::Code::kDataLoss);
}

TEST(CpuStateTest, ImplausibleCountsAreRejected) {
  VcpuState s = Sample();
  s.xcrs.nr_xcrs = 17;  // more than KVM_MAX_XCRS: encoded count without entries
  std::string blob = EncodeVcpuState(s);
  auto r = DecodeVcpuState(blob);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), base::Code::kDataLoss);
  EXPECT_NE(r.error().message().find("XCR count"), std::string::npos) << r.error().message();

  std::string bad_version = EncodeVcpuState(Sample());
  bad_version[0] = 9;
  r = DecodeVcpuState(bad_version);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("version"), std::string::npos);
}

}  // namespace
}  // namespace vm
