/* The contract between ferry's VMM and the guest programs it runs. C, so the
 * freestanding guests (vm/guests/) include the same file as the VMM.
 *
 * The VMM starts every vCPU directly in 64-bit mode at CPL3 (ring 3) with
 * IOPL=3, because on these hosts ring-0 guest code is emulated and slow while
 * ring-3 code runs natively (docs/architecture.md, ../shared/PLATFORM.md).
 * No guest kernel: the VMM builds page tables, GDT and TSS itself.
 *
 * Guest physical layout:
 *   0x0000_1000  GDT (5 entries: null, code, data, 16-byte TSS descriptor)
 *   0x0000_1080  TSS (FERRY_TSS_GPA) with its I/O permission bitmap, below
 *                (both VMM-owned, read-only to the guest by convention)
 *   0x0000_2000  PML4, 0x3000 PDPT, 0x4000..0x7fff four page directories:
 *                identity map of 0..4 GiB with 2 MiB pages, user-accessible, writable
 *   0x0000_8000  struct ferry_guest_params (one page)
 *   0x0001_0000  vCPU stacks: vCPU i starts with rsp = FERRY_STACK_TOP(i)
 *   0x0010_0000  the guest program (flat binary), entry point = first byte
 *   ...          free memory up to params->memory_bytes
 *   0xd000_0000  virtio-mmio block devices, FERRY_VIRTIO_MMIO_STRIDE apart (disk i)
 * RAM is one block at 0 and must end at or below FERRY_VIRTIO_MMIO_GPA, so a
 * VM has at most 3328 MiB (config::kMaxVmMemoryBytes checks vm.toml against
 * this; nothing is mapped above the window).
 *
 * Entry registers: rdi = FERRY_PARAMS_GPA, rsi = vCPU index, rsp as above,
 * rflags = 0x3002 (IOPL 3, interrupts off). No interrupts are delivered: the
 * guest polls (serial is write-only, virtqueues are polled).
 *
 * Port I/O: rflags asks for IOPL 3, which lets CPL3 code use in/out on a
 * VMX/SVM host. A PVM host (PLATFORM.md) silently clears IOPL for ring-3
 * guest code, so the CPU consults the TSS I/O permission bitmap instead: the
 * VMM's TSS at FERRY_TSS_GPA (TR selector 0x18, busy 64-bit TSS) carries a
 * bitmap that grants ports [0, FERRY_IO_PORTS_GRANTED) — every port a ferry
 * device uses (serial 0x3f8, power-off 0x501) — to CPL3 code. A port at or
 * above FERRY_IO_PORTS_GRANTED raises #GP on a PVM host (and with no IDT that
 * is a triple fault: the VM fails); on VMX/SVM it works through IOPL. Devices
 * must therefore stay below 0x1000.
 *
 * Time: guest time, in TSC ticks, is rdtsc() + params->tsc_offset, at
 * params->tsc_khz ticks per millisecond; see struct ferry_guest_params.
 */
#ifndef FERRY_VM_GUEST_ABI_H_
#define FERRY_VM_GUEST_ABI_H_

#include <stdint.h>

#define FERRY_GDT_GPA 0x1000ull
#define FERRY_TSS_GPA (FERRY_GDT_GPA + 0x80)
#define FERRY_IO_PORTS_GRANTED 0x1000 /* TSS I/O bitmap grants ports [0, this) */
#define FERRY_PML4_GPA 0x2000ull
#define FERRY_PARAMS_GPA 0x8000ull
#define FERRY_PROGRAM_GPA 0x100000ull
#define FERRY_MAX_VCPUS 8
#define FERRY_STACK_SIZE 0x8000ull
#define FERRY_STACK_TOP(i) (0x90000ull - (uint64_t)(i)*FERRY_STACK_SIZE)
#define FERRY_MAX_PROGRAM_BYTES (8ull << 20)

#define FERRY_SERIAL_PORT 0x3f8 /* 16550-compatible transmit at +0, LSR at +5 */
/* Writing a byte here stops the VM: 0 = clean power-off, else failure code. */
#define FERRY_POWEROFF_PORT 0x501

#define FERRY_VIRTIO_MMIO_GPA 0xd0000000ull
#define FERRY_VIRTIO_MMIO_STRIDE 0x1000ull
#define FERRY_MAX_DISKS 4

#define FERRY_PARAMS_MAGIC 0x53524d5059525246ull /* "FRRYPMRS" */
#define FERRY_CMDLINE_MAX 2048

/* Written by the VMM at boot. The guest treats the whole page as read-only;
 * the VMM changes only tsc_offset, and only while every vCPU is paused. */
struct ferry_guest_params {
  uint64_t magic;        /* FERRY_PARAMS_MAGIC */
  uint64_t memory_bytes; /* guest RAM size; RAM is [0, memory_bytes) */
  uint64_t tsc_khz;      /* guest time ticks per millisecond (see tsc_offset) */
  uint32_t vcpu_count;
  uint32_t disk_count;             /* virtio-blk devices at FERRY_VIRTIO_MMIO_GPA + i*STRIDE */
  uint64_t program_end;            /* first free byte after the loaded program (2 MiB aligned) */
  char cmdline[FERRY_CMDLINE_MAX]; /* NUL-terminated, "key=value key=value" */
  /* Paravirtual clock (the purpose of KVM's kvmclock, in one field):
   *
   *   guest time = rdtsc() + tsc_offset     (64-bit two's-complement wrap)
   *
   * in TSC ticks, tsc_khz per millisecond. Guest time never jumps and never
   * runs backwards across a save/restore or a move: the time a VM spends
   * saved or in flight is invisible, as if the VM had not existed. (A plain
   * pause and resume in one process does not touch the offset: the TSC runs
   * on, so that pause is visible, as it is for a stopped VM.) The raw
   * rdtsc() has no such promise — on a PVM host the VMM cannot set the
   * guest's TSC (ring-3 rdtsc reads the host's), so after a restore it jumps
   * by the time spent saved, and between hosts it may even go backwards.
   *
   * 0 at a fresh boot. The VMM changes it only while every vCPU is paused,
   * before the first run after a restore (or on a move's destination):
   * it first writes each vCPU's saved IA32_TSC (which works on VMX/SVM),
   * reads vCPU 0's TSC back as R, and sets
   *   tsc_offset = saved TSC + saved tsc_offset - R.
   * One rule for every host: where the TSC write took, R is the saved TSC
   * plus the microseconds between write and read, so the offset changes by
   * only that much (the jump is never counted twice); where the write was
   * ignored, the offset absorbs the whole jump. A restore whose host TSC rate
   * differs from the saved tsc_khz by more than 250 ppm is refused (ferry
   * does not scale guest time), so tsc_khz never changes under the guest.
   *
   * Reading: a vCPU can be paused, and the offset changed, between its
   * rdtsc and its load of tsc_offset. Read it with volatile loads around
   * rdtsc and retry if it changed (as vm/guests/runtime/clock.c does):
   *   do { off = *(volatile int64_t*)&p->tsc_offset; t = rdtsc(); }
   *   while (*(volatile int64_t*)&p->tsc_offset != off);
   *   now = t + (uint64_t)off;
   * Placed last so the fields above keep their offsets; 8-byte aligned. */
  int64_t tsc_offset;
};

#endif /* FERRY_VM_GUEST_ABI_H_ */
