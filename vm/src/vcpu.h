// One vCPU thread ("vcpu0", ...) and its exit loop. The loop runs KVM_RUN and
// dispatches each exit to a named handler; the run/pause/stop decisions belong
// to the VcpuCoordinator (VcpuSet), which the thread calls back.
//
// Kicking: Kick() sets kvm_run.immediate_exit and sends kKickSignal to the
// thread. A thread inside KVM_RUN returns with EINTR; a thread handling an
// exit sees immediate_exit on its next KVM_RUN, which first completes the
// pending I/O (so the instruction retires and is never replayed after a
// restore) and then returns EINTR. Either way the thread reaches
// VcpuCoordinator::OnInterrupted at an instruction boundary.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "io_bus.h"
#include "kvm.h"
#include "vm/machine.h"

namespace vm {

class VcpuThread;

class VcpuCoordinator {
 public:
  virtual ~VcpuCoordinator() = default;
  // KVM_RUN returned EINTR. Blocks while a pause is requested; returns false
  // when the thread must leave its loop (the machine is stopping).
  virtual bool OnInterrupted(VcpuThread& vcpu) = 0;
  // The guest powered off (kPoweredOff) or failed (kFailed, with reason);
  // the first report wins and every vCPU is asked to stop.
  virtual void OnGuestStop(RunState state, std::string reason) = 0;
  virtual void OnThreadExit(VcpuThread& vcpu) = 0;
};

class VcpuThread {
 public:
  // Borrows everything; all must outlive the thread (Join before destroying).
  VcpuThread(KvmVcpu& vcpu, IoBus& bus, VcpuCoordinator& coordinator,
             std::atomic<uint64_t>& exit_counter);
  ~VcpuThread();
  VcpuThread(const VcpuThread&) = delete;
  VcpuThread& operator=(const VcpuThread&) = delete;

  void Start();
  // Safe from any thread while the thread runs; see the file comment.
  void Kick();
  void Join();
  // Lets the next KVM_RUN enter the guest again (called while unpausing).
  void ClearImmediateExit();
  uint32_t index() const { return vcpu_.index(); }

 private:
  enum class Next { kContinue, kStop };
  void Loop();
  Next HandleExit();
  Next HandleIo();
  Next HandleMmio();
  Next HandlePowerOff(uint8_t code);
  Next Fail(const std::string& what);

  KvmVcpu& vcpu_;
  IoBus& bus_;
  VcpuCoordinator& coordinator_;
  std::atomic<uint64_t>& exits_;
  std::thread thread_;
  std::atomic<bool> started_{false};
};

}  // namespace vm
