#include "vcpu.h"

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "base/log.h"
#include "vm/guest_abi.h"

namespace vm {
namespace {

// The signal that kicks a vCPU thread out of KVM_RUN. Its handler does
// nothing: the point is only that the ioctl returns EINTR. The appliance must
// not use SIGUSR1 for anything else.
constexpr int kKickSignal = SIGUSR1;

void KickHandler(int) {}

void InstallKickHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = KickHandler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
    sigaction(kKickSignal, &sa, nullptr);
  });
}

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

const char* ExitName(uint32_t reason) {
  switch (reason) {
    case KVM_EXIT_UNKNOWN: return "KVM_EXIT_UNKNOWN";
    case KVM_EXIT_EXCEPTION: return "KVM_EXIT_EXCEPTION";
    case KVM_EXIT_HLT: return "KVM_EXIT_HLT";
    case KVM_EXIT_SHUTDOWN: return "KVM_EXIT_SHUTDOWN";
    case KVM_EXIT_FAIL_ENTRY: return "KVM_EXIT_FAIL_ENTRY";
    case KVM_EXIT_INTERNAL_ERROR: return "KVM_EXIT_INTERNAL_ERROR";
    case KVM_EXIT_SYSTEM_EVENT: return "KVM_EXIT_SYSTEM_EVENT";
    default: return "exit";
  }
}

}  // namespace

VcpuThread::VcpuThread(KvmVcpu& vcpu, IoBus& bus, VcpuCoordinator& coordinator,
                       std::atomic<uint64_t>& exit_counter)
    : vcpu_(vcpu), bus_(bus), coordinator_(coordinator), exits_(exit_counter) {}

VcpuThread::~VcpuThread() { Join(); }

void VcpuThread::Start() {
  InstallKickHandler();
  thread_ = std::thread([this] { Loop(); });
  started_.store(true, std::memory_order_release);
}

void VcpuThread::Kick() {
  // The store must be visible before the signal lands; KVM reads the flag
  // on entry to KVM_RUN.
  __atomic_store_n(&vcpu_.run()->immediate_exit, 1, __ATOMIC_SEQ_CST);
  if (started_.load(std::memory_order_acquire)) pthread_kill(thread_.native_handle(), kKickSignal);
}

void VcpuThread::ClearImmediateExit() {
  __atomic_store_n(&vcpu_.run()->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

void VcpuThread::Join() {
  if (thread_.joinable()) thread_.join();
}

void VcpuThread::Loop() {
  std::string name = "vcpu" + std::to_string(vcpu_.index());
  base::SetThreadName(name.c_str());
  // Threads inherit the creator's mask; the kick must get through.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kKickSignal);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);

  for (;;) {
    base::Status st = vcpu_.Run();
    if (!st) {
      int e = st.error().sys_errno();
      if (e == EINTR || e == EAGAIN) {
        if (!coordinator_.OnInterrupted(*this)) break;
        continue;
      }
      Fail(st.error().message());
      break;
    }
    exits_.fetch_add(1, std::memory_order_relaxed);
    if (HandleExit() == Next::kStop) break;
  }
  coordinator_.OnThreadExit(*this);
}

// The exit dispatch table.
VcpuThread::Next VcpuThread::HandleExit() {
  kvm_run* run = vcpu_.run();
  switch (run->exit_reason) {
    case KVM_EXIT_IO: return HandleIo();
    case KVM_EXIT_MMIO: return HandleMmio();
    case KVM_EXIT_INTR: return Next::kContinue;  // a kick; the next KVM_RUN reports EINTR
    case KVM_EXIT_SHUTDOWN:
      return Fail("guest triple fault (KVM_EXIT_SHUTDOWN): an exception it could not handle");
    case KVM_EXIT_HLT: return Fail("guest executed HLT with no interrupt source (KVM_EXIT_HLT)");
    case KVM_EXIT_FAIL_ENTRY:
      return Fail("VM entry failed (KVM_EXIT_FAIL_ENTRY), hardware reason " +
                  Hex(run->fail_entry.hardware_entry_failure_reason));
    case KVM_EXIT_INTERNAL_ERROR: {
      std::string what = "KVM internal error (KVM_EXIT_INTERNAL_ERROR), suberror " +
                         std::to_string(run->internal.suberror);
      for (uint32_t i = 0; i < run->internal.ndata && i < 16; ++i)
        what += (i == 0 ? ", data " : " ") + Hex(run->internal.data[i]);
      return Fail(what);
    }
    case KVM_EXIT_SYSTEM_EVENT:
      return Fail("guest system event (KVM_EXIT_SYSTEM_EVENT) type " +
                  std::to_string(run->system_event.type));
    default:
      return Fail(std::string("unexpected ") + ExitName(run->exit_reason) + " (reason " +
                  std::to_string(run->exit_reason) + ")");
  }
}

VcpuThread::Next VcpuThread::HandleIo() {
  kvm_run* run = vcpu_.run();
  auto* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
  uint32_t size = run->io.size;
  // String I/O (REP OUTS/INS) arrives as `count` consecutive items.
  for (uint32_t i = 0; i < run->io.count; ++i, data += size) {
    if (run->io.port == FERRY_POWEROFF_PORT && run->io.direction == KVM_EXIT_IO_OUT)
      return HandlePowerOff(data[0]);
    if (run->io.direction == KVM_EXIT_IO_OUT) {
      bus_.PortOut(run->io.port, data, size);
    } else {
      bus_.PortIn(run->io.port, data, size);
    }
  }
  return Next::kContinue;
}

VcpuThread::Next VcpuThread::HandleMmio() {
  kvm_run* run = vcpu_.run();
  uint32_t len = std::min<uint32_t>(run->mmio.len, sizeof run->mmio.data);
  if (run->mmio.is_write) {
    bus_.MmioWrite(run->mmio.phys_addr, run->mmio.data, len);
  } else {
    bus_.MmioRead(run->mmio.phys_addr, run->mmio.data, len);
  }
  return Next::kContinue;
}

VcpuThread::Next VcpuThread::HandlePowerOff(uint8_t code) {
  if (code == 0) {
    coordinator_.OnGuestStop(RunState::kPoweredOff, "");
  } else {
    coordinator_.OnGuestStop(RunState::kFailed,
                             "guest reported failure code " + std::to_string(code));
  }
  return Next::kStop;
}

VcpuThread::Next VcpuThread::Fail(const std::string& what) {
  // Registers for the report; if even that fails, say so instead.
  std::string where;
  kvm_regs regs{};
  if (vcpu_.Ioctl(KVM_GET_REGS, &regs, "KVM_GET_REGS")) {
    where = " at rip " + Hex(regs.rip) + " rsp " + Hex(regs.rsp);
  } else {
    where = " (registers unreadable)";
  }
  coordinator_.OnGuestStop(RunState::kFailed,
                           "vcpu" + std::to_string(vcpu_.index()) + ": " + what + where);
  return Next::kStop;
}

}  // namespace vm
