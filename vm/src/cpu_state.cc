#include "cpu_state.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

#include "base/le.h"
#include "base/log.h"

namespace vm {
namespace {

constexpr uint32_t kVcpuRecordVersion = 1;
constexpr uint32_t kMaxXsaveBytes = 1u << 20;
constexpr uint32_t kMaxMsrs = 4096;

// One field list serves both directions: Visit(Encoder&, state) writes the
// fields and Visit(Decoder&, state) reads them back in the same order, so the
// two can never disagree about the layout.
class Encoder {
 public:
  void U8(uint8_t v) { w_.U8(v); }
  void U16(uint16_t v) { w_.U16(v); }
  void U32(uint32_t v) { w_.U32(v); }
  void U64(uint64_t v) { w_.U64(v); }
  void Raw(const void* p, size_t n) { w_.Bytes(p, n); }
  std::string Take() { return w_.Take(); }

 private:
  base::LeWriter w_;
};

class Decoder {
 public:
  explicit Decoder(std::string_view s) : r_(s) {}
  // Templates because the kernel's __u64 is unsigned long long, not uint64_t.
  template <typename T>
  void U8(T& v) {
    static_assert(sizeof(T) == 1);
    Read(r_.U8(), v);
  }
  template <typename T>
  void U16(T& v) {
    static_assert(sizeof(T) == 2);
    Read(r_.U16(), v);
  }
  template <typename T>
  void U32(T& v) {
    static_assert(sizeof(T) == 4);
    Read(r_.U32(), v);
  }
  template <typename T>
  void U64(T& v) {
    static_assert(sizeof(T) == 8);
    Read(r_.U64(), v);
  }
  void Raw(void* p, size_t n) {
    if (!status_) return;
    if (auto st = r_.Bytes(p, n); !st) status_ = st;
  }
  void Fail(std::string what) {
    if (status_) status_ = base::Error(base::Code::kDataLoss, std::move(what));
  }
  const base::Status& status() const { return status_; }
  size_t remaining() const { return r_.remaining(); }

 private:
  template <typename T, typename R>
  void Read(R&& result, T& out) {
    if (!status_) return;
    if (!result) {
      status_ = result.error();
      return;
    }
    out = *result;
  }
  base::LeReader r_;
  base::Status status_;
};

// Encoder takes const fields, Decoder mutable ones; the templates below are
// instantiated with State = const VcpuState or VcpuState accordingly.
template <typename Io, typename Seg>
void VisitSegment(Io& io, Seg& s) {
  io.U64(s.base);
  io.U32(s.limit);
  io.U16(s.selector);
  io.U8(s.type);
  io.U8(s.present);
  io.U8(s.dpl);
  io.U8(s.db);
  io.U8(s.s);
  io.U8(s.l);
  io.U8(s.g);
  io.U8(s.avl);
  io.U8(s.unusable);
}

template <typename Io, typename Dt>
void VisitDtable(Io& io, Dt& d) {
  io.U64(d.base);
  io.U16(d.limit);
}

template <typename Io, typename Regs>
void VisitRegs(Io& io, Regs& r) {
  for (auto* v : {&r.rax, &r.rbx, &r.rcx, &r.rdx, &r.rsi, &r.rdi, &r.rsp, &r.rbp, &r.r8, &r.r9,
                  &r.r10, &r.r11, &r.r12, &r.r13, &r.r14, &r.r15, &r.rip, &r.rflags})
    io.U64(*v);
}

template <typename Io, typename Sregs>
void VisitSregs(Io& io, Sregs& s) {
  for (auto* seg : {&s.cs, &s.ds, &s.es, &s.fs, &s.gs, &s.ss, &s.tr, &s.ldt})
    VisitSegment(io, *seg);
  VisitDtable(io, s.gdt);
  VisitDtable(io, s.idt);
  for (auto* v : {&s.cr0, &s.cr2, &s.cr3, &s.cr4, &s.cr8, &s.efer, &s.apic_base, &s.flags})
    io.U64(*v);
  for (auto& p : s.pdptrs) io.U64(p);
}

template <typename Io, typename Fpu>
void VisitFpu(Io& io, Fpu& f) {
  io.Raw(f.fpr, sizeof f.fpr);
  io.U16(f.fcw);
  io.U16(f.fsw);
  io.U8(f.ftwx);
  io.U16(f.last_opcode);
  io.U64(f.last_ip);
  io.U64(f.last_dp);
  io.Raw(f.xmm, sizeof f.xmm);
  io.U32(f.mxcsr);
}

template <typename Io, typename Events>
void VisitEvents(Io& io, Events& e) {
  io.U8(e.exception.injected);
  io.U8(e.exception.nr);
  io.U8(e.exception.has_error_code);
  io.U8(e.exception.pending);
  io.U32(e.exception.error_code);
  io.U8(e.interrupt.injected);
  io.U8(e.interrupt.nr);
  io.U8(e.interrupt.soft);
  io.U8(e.interrupt.shadow);
  io.U8(e.nmi.injected);
  io.U8(e.nmi.pending);
  io.U8(e.nmi.masked);
  io.U32(e.sipi_vector);
  io.U32(e.flags);
  io.U8(e.smi.smm);
  io.U8(e.smi.pending);
  io.U8(e.smi.smm_inside_nmi);
  io.U8(e.smi.latched_init);
  io.U8(e.triple_fault.pending);
  io.U8(e.exception_has_payload);
  io.U64(e.exception_payload);
}

template <typename Io, typename Debug>
void VisitDebugregs(Io& io, Debug& d) {
  for (auto& v : d.db) io.U64(v);
  io.U64(d.dr6);
  io.U64(d.dr7);
  io.U64(d.flags);
}

base::Error VcpuError(const KvmVcpu& vcpu, const std::string& what) {
  return base::Error(base::Code::kInternal, what + " on vcpu" + std::to_string(vcpu.index()));
}

// kvm_msrs with room for n entries.
struct MsrBuffer {
  explicit MsrBuffer(size_t n)
      : storage(
            std::make_unique<uint64_t[]>((sizeof(kvm_msrs) + n * sizeof(kvm_msr_entry)) / 8 + 1)) {
    msrs()->nmsrs = static_cast<uint32_t>(n);
    msrs()->pad = 0;
  }
  kvm_msrs* msrs() { return reinterpret_cast<kvm_msrs*>(storage.get()); }
  kvm_msr_entry& entry(size_t i) { return msrs()->entries[i]; }
  std::unique_ptr<uint64_t[]> storage;
};

// A kvm_xsave with room for `bytes` (never less than the struct itself).
struct XsaveBuffer {
  explicit XsaveBuffer(size_t bytes)
      : size(std::max(bytes, sizeof(kvm_xsave))),
        storage(std::make_unique<uint64_t[]>(size / 8 + 1)) {
    std::memset(storage.get(), 0, size);
  }
  kvm_xsave* xsave() { return reinterpret_cast<kvm_xsave*>(storage.get()); }
  size_t size;
  std::unique_ptr<uint64_t[]> storage;
};

}  // namespace

base::Result<VcpuStateLayout> ProbeVcpuStateLayout(const KvmSystem& kvm, const KvmVm& vm,
                                                   const KvmVcpu& vcpu) {
  VcpuStateLayout layout;
  int xsave2 = vm.CheckExtension(KVM_CAP_XSAVE2);
  if (xsave2 > 0) {
    layout.use_xsave2 = true;
    layout.xsave_bytes = static_cast<uint32_t>(std::max<int>(xsave2, sizeof(kvm_xsave)));
  }
  ASSIGN_OR_RETURN(std::vector<uint32_t> indices, kvm.MsrIndexList());
  for (uint32_t index : indices) {
    if (index == kMsrIa32Tsc) continue;
    MsrBuffer buf(1);
    buf.entry(0) = kvm_msr_entry{index, 0, 0};
    ASSIGN_OR_RETURN(
        int n,
        vcpu.IoctlValue(KVM_GET_MSRS, reinterpret_cast<unsigned long>(buf.msrs()), "KVM_GET_MSRS"));
    if (n != 1) continue;
    // Only MSRs that can also be written back are state we can restore.
    // Measured here: MSR_KVM_POLL_CONTROL (0x4b564d06) reads but refuses its
    // own value on write.
    ASSIGN_OR_RETURN(n, vcpu.IoctlValue(KVM_SET_MSRS, reinterpret_cast<unsigned long>(buf.msrs()),
                                        "KVM_SET_MSRS"));
    if (n == 1) {
      layout.msrs.push_back(index);
    } else {
      char hex[16];
      std::snprintf(hex, sizeof hex, "0x%x", index);
      base::LogDebug(std::string("MSR ") + hex + " reads but cannot be restored; not saved");
    }
  }
  return layout;
}

base::Result<uint64_t> ReadTsc(const KvmVcpu& vcpu) {
  MsrBuffer buf(1);
  buf.entry(0) = kvm_msr_entry{kMsrIa32Tsc, 0, 0};
  ASSIGN_OR_RETURN(int n, vcpu.IoctlValue(KVM_GET_MSRS, reinterpret_cast<unsigned long>(buf.msrs()),
                                          "KVM_GET_MSRS"));
  if (n != 1) return VcpuError(vcpu, "KVM_GET_MSRS could not read IA32_TSC");
  return buf.entry(0).data;
}

base::Status WriteTsc(const KvmVcpu& vcpu, uint64_t tsc) {
  return SetMsrs(vcpu, {{kMsrIa32Tsc, tsc}});
}

base::Status SetMsrs(const KvmVcpu& vcpu, const std::vector<std::pair<uint32_t, uint64_t>>& msrs) {
  if (msrs.empty()) return base::Ok();
  MsrBuffer buf(msrs.size());
  for (size_t i = 0; i < msrs.size(); ++i)
    buf.entry(i) = kvm_msr_entry{msrs[i].first, 0, msrs[i].second};
  ASSIGN_OR_RETURN(int n, vcpu.IoctlValue(KVM_SET_MSRS, reinterpret_cast<unsigned long>(buf.msrs()),
                                          "KVM_SET_MSRS"));
  // KVM_SET_MSRS stops at the first MSR it refuses and returns how many it set.
  if (static_cast<size_t>(n) != msrs.size()) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%x", msrs[static_cast<size_t>(n)].first);
    return VcpuError(vcpu, std::string("KVM_SET_MSRS refused MSR ") + hex);
  }
  return base::Ok();
}

base::Result<VcpuState> CaptureVcpuState(const KvmVcpu& vcpu, const VcpuStateLayout& layout) {
  VcpuState s;
  RETURN_IF_ERROR(vcpu.Ioctl(KVM_GET_REGS, &s.regs, "KVM_GET_REGS"));
  RETURN_IF_ERROR(vcpu.Ioctl(KVM_GET_SREGS2, &s.sregs, "KVM_GET_SREGS2"));
  RETURN_IF_ERROR(vcpu.Ioctl(KVM_GET_FPU, &s.fpu, "KVM_GET_FPU"));
  XsaveBuffer xsave(layout.xsave_bytes);
  if (layout.use_xsave2) {
    RETURN_IF_ERROR(vcpu.Ioctl(KVM_GET_XSAVE2, xsave.xsave(), "KVM_GET_XSAVE2"));
  } else {
    RETURN_IF_ERROR(vcpu.Ioctl(KVM_GET_XSAVE, xsave.xsave(), "KVM_GET_XSAVE"));
  }
  const auto* bytes = reinterpret_cast<const uint8_t*>(xsave.xsave());
  s.xsave.assign(bytes, bytes + layout.xsave_bytes);
  RETURN_IF_ERROR(vcpu.Ioctl(KVM_GET_XCRS, &s.xcrs, "KVM_GET_XCRS"));
  MsrBuffer msrs(layout.msrs.size());
  for (size_t i = 0; i < layout.msrs.size(); ++i)
    msrs.entry(i) = kvm_msr_entry{layout.msrs[i], 0, 0};
  ASSIGN_OR_RETURN(
      int n,
      vcpu.IoctlValue(KVM_GET_MSRS, reinterpret_cast<unsigned long>(msrs.msrs()), "KVM_GET_MSRS"));
  if (static_cast<size_t>(n) != layout.msrs.size())
    return VcpuError(vcpu, "KVM_GET_MSRS read " + std::to_string(n) + " of " +
                               std::to_string(layout.msrs.size()) + " MSRs");
  for (size_t i = 0; i < layout.msrs.size(); ++i)
    s.msrs.emplace_back(layout.msrs[i], msrs.entry(i).data);
  RETURN_IF_ERROR(vcpu.Ioctl(KVM_GET_VCPU_EVENTS, &s.events, "KVM_GET_VCPU_EVENTS"));
  RETURN_IF_ERROR(vcpu.Ioctl(KVM_GET_MP_STATE, &s.mp_state, "KVM_GET_MP_STATE"));
  RETURN_IF_ERROR(vcpu.Ioctl(KVM_GET_DEBUGREGS, &s.debugregs, "KVM_GET_DEBUGREGS"));
  ASSIGN_OR_RETURN(s.tsc, ReadTsc(vcpu));
  return s;
}

base::Status ApplyVcpuState(const KvmVcpu& vcpu, const VcpuState& state,
                            const VcpuStateLayout& layout) {
  if (state.xsave.size() > layout.xsave_bytes)
    return base::Error(base::Code::kFailedPrecondition,
                       "saved XSAVE area is " + std::to_string(state.xsave.size()) +
                           " bytes; this host's KVM accepts at most " +
                           std::to_string(layout.xsave_bytes));
  // The kernel takes const-less pointers; copies keep `state` untouched.
  VcpuState s = state;
  // Control registers and segments first: how MSRs and registers are
  // interpreted depends on the mode (EFER, CR0, CR4).
  RETURN_IF_ERROR(vcpu.Ioctl(KVM_SET_SREGS2, &s.sregs, "KVM_SET_SREGS2"));
  RETURN_IF_ERROR(SetMsrs(vcpu, s.msrs));
  RETURN_IF_ERROR(vcpu.Ioctl(KVM_SET_REGS, &s.regs, "KVM_SET_REGS"));
  // FPU before XSAVE: the XSAVE area is a superset and must win.
  RETURN_IF_ERROR(vcpu.Ioctl(KVM_SET_FPU, &s.fpu, "KVM_SET_FPU"));
  XsaveBuffer xsave(layout.xsave_bytes);
  std::memcpy(xsave.xsave(), s.xsave.data(), s.xsave.size());
  RETURN_IF_ERROR(vcpu.Ioctl(KVM_SET_XSAVE, xsave.xsave(), "KVM_SET_XSAVE"));
  RETURN_IF_ERROR(vcpu.Ioctl(KVM_SET_XCRS, &s.xcrs, "KVM_SET_XCRS"));
  RETURN_IF_ERROR(vcpu.Ioctl(KVM_SET_VCPU_EVENTS, &s.events, "KVM_SET_VCPU_EVENTS"));
  RETURN_IF_ERROR(vcpu.Ioctl(KVM_SET_MP_STATE, &s.mp_state, "KVM_SET_MP_STATE"));
  RETURN_IF_ERROR(vcpu.Ioctl(KVM_SET_DEBUGREGS, &s.debugregs, "KVM_SET_DEBUGREGS"));
  return base::Ok();
}

std::string EncodeVcpuState(const VcpuState& s) {
  Encoder io;
  io.U32(kVcpuRecordVersion);
  VisitRegs(io, s.regs);
  VisitSregs(io, s.sregs);
  VisitFpu(io, s.fpu);
  io.U32(static_cast<uint32_t>(s.xsave.size()));
  io.Raw(s.xsave.data(), s.xsave.size());
  io.U32(s.xcrs.nr_xcrs);
  io.U32(s.xcrs.flags);
  for (uint32_t i = 0; i < s.xcrs.nr_xcrs && i < KVM_MAX_XCRS; ++i) {
    io.U32(s.xcrs.xcrs[i].xcr);
    io.U64(s.xcrs.xcrs[i].value);
  }
  io.U32(static_cast<uint32_t>(s.msrs.size()));
  for (const auto& [index, value] : s.msrs) {
    io.U32(index);
    io.U64(value);
  }
  VisitEvents(io, s.events);
  io.U32(s.mp_state.mp_state);
  VisitDebugregs(io, s.debugregs);
  io.U64(s.tsc);
  return io.Take();
}

base::Result<VcpuState> DecodeVcpuState(std::string_view blob) {
  Decoder io(blob);
  VcpuState s;
  uint32_t version = 0;
  io.U32(version);
  if (io.status() && version != kVcpuRecordVersion)
    io.Fail("vCPU record version " + std::to_string(version) + " is not " +
            std::to_string(kVcpuRecordVersion));
  VisitRegs(io, s.regs);
  VisitSregs(io, s.sregs);
  VisitFpu(io, s.fpu);
  uint32_t xsave_bytes = 0;
  io.U32(xsave_bytes);
  if (io.status() && (xsave_bytes > kMaxXsaveBytes || xsave_bytes > io.remaining()))
    io.Fail("XSAVE area length " + std::to_string(xsave_bytes) + " is out of range");
  if (io.status()) {
    s.xsave.resize(xsave_bytes);
    io.Raw(s.xsave.data(), xsave_bytes);
  }
  io.U32(s.xcrs.nr_xcrs);
  io.U32(s.xcrs.flags);
  if (io.status() && s.xcrs.nr_xcrs > KVM_MAX_XCRS)
    io.Fail("XCR count " + std::to_string(s.xcrs.nr_xcrs) + " exceeds " +
            std::to_string(KVM_MAX_XCRS));
  for (uint32_t i = 0; io.status() && i < s.xcrs.nr_xcrs; ++i) {
    io.U32(s.xcrs.xcrs[i].xcr);
    io.U64(s.xcrs.xcrs[i].value);
  }
  uint32_t msr_count = 0;
  io.U32(msr_count);
  if (io.status() && msr_count > kMaxMsrs)
    io.Fail("MSR count " + std::to_string(msr_count) + " exceeds " + std::to_string(kMaxMsrs));
  for (uint32_t i = 0; io.status() && i < msr_count; ++i) {
    uint32_t index = 0;
    uint64_t value = 0;
    io.U32(index);
    io.U64(value);
    s.msrs.emplace_back(index, value);
  }
  VisitEvents(io, s.events);
  io.U32(s.mp_state.mp_state);
  VisitDebugregs(io, s.debugregs);
  io.U64(s.tsc);
  if (io.status() && io.remaining() != 0)
    io.Fail(std::to_string(io.remaining()) + " unexpected bytes after the vCPU record");
  if (!io.status()) return io.status().error().Wrap("vCPU record");
  return s;
}

bool operator==(const VcpuState& a, const VcpuState& b) {
  // Compare through the encoding: it holds exactly the saved fields and skips
  // the kernel structs' padding, whose bytes carry no meaning.
  return EncodeVcpuState(a) == EncodeVcpuState(b);
}

}  // namespace vm
