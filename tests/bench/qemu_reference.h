// The live-move benchmark's reference: one QEMU live migration over loopback
// of a guest of the same memory size and dirty rate as ferry's run.
//
// qemu-system-x86_64 (Debian's, TCG: KVM cannot boot a stock kernel on this
// host, see ../shared/PLATFORM.md) boots the Debian kernel with the busybox
// initramfs of guest_initramfs/ whose dirtier rewrites `ws_mib` of RAM at
// `dirty_pages_per_s`. A destination QEMU waits with -incoming defer; both
// are driven over QMP (unix sockets): the bandwidth cap raised (QEMU's
// default is 128 MiB/s), the same downtime limit as ferry's, then `migrate`
// and query-migrate polled until it ends. The figures are QEMU's own
// (total-time, downtime, ram transferred, dirty-sync-count).
//
// QEMU 7.2 under TCG loses dirty pages when a migration needs four or more
// dirty-sync rounds, so after every run the destination guest is asked to
// verify its whole working set ("verify" on its serial console); the answer
// — or its crash, or its silence — is part of the result, never hidden.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"

namespace bench {

struct QemuReferenceOptions {
  std::string qemu = "qemu-system-x86_64";
  std::string kernel;     // a vmlinuz usable with -kernel
  std::string initramfs;  // BuildReferenceInitramfs's output
  std::string work_dir;   // QMP sockets go here (must exist)
  uint64_t memory_mib = 1024;
  uint64_t ws_mib = 256;
  uint64_t dirty_pages_per_s = 0;  // 0: the dirtier only waits (idle guest)
  uint32_t downtime_ms = 300;
  uint64_t max_bandwidth = 100ull << 30;  // bytes/s
  bool auto_converge = true;              // QEMU's vCPU throttling, as ferry throttles
  uint32_t multifd_channels = 0;          // 0: one migration stream (QEMU's default)
  double settle_s = 2;                    // dirtying before the migration starts
  double boot_timeout_s = 90;
  double migrate_timeout_s = 60;  // then migrate_cancel: "did not complete"
  double verify_timeout_s = 30;
};

enum class GuestVerdict {
  kNotChecked = 0,  // the migration did not complete
  kOk = 1,          // "VERIFY OK"
  kFail = 2,        // "VERIFY FAIL bad=..."
  kCrashed = 3,     // kernel panic/oops, or QEMU stopped the guest
  kNoAnswer = 4,    // no reply within verify_timeout_s
};
const char* ToString(GuestVerdict v);

struct QemuReferenceResult {
  std::string status;  // query-migrate's final status, or "timeout"
  double total_ms = -1, downtime_ms = -1, setup_ms = -1;
  uint64_t ram_transferred = 0;
  uint64_t dirty_sync_count = 0;
  double mbps = 0;                     // QEMU's own throughput figure (megabits/s)
  double guest_dirty_pages_per_s = 0;  // measured in the guest before the move
  uint64_t throttle_percent = 0;       // last cpu-throttle-percentage seen
  GuestVerdict verdict = GuestVerdict::kNotChecked;
  std::string verdict_detail;  // the guest's line, or why none
  bool completed() const { return status == "completed"; }
};

// Runs one reference migration. An error means the reference could not run
// at all (QEMU missing, guest did not boot, QMP refused); a migration that
// fails or a destination that does not verify is a result, not an error.
base::Result<QemuReferenceResult> RunQemuReference(const QemuReferenceOptions& options);

}  // namespace bench
