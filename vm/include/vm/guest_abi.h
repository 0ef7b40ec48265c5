/* The contract between ferry's VMM and the guest programs it runs. C, so the
 * freestanding guests (vm/guests/) include the same file as the VMM.
 *
 * The VMM starts every vCPU directly in 64-bit mode at CPL3 (ring 3) with
 * IOPL=3, because on these hosts ring-0 guest code is emulated and slow while
 * ring-3 code runs natively (docs/architecture.md, ../shared/PLATFORM.md).
 * No guest kernel: the VMM builds page tables, GDT and TSS itself.
 *
 * Guest physical layout:
 *   0x0000_1000  GDT + TSS                      (VMM-owned, read-only to the guest by convention)
 *   0x0000_2000  PML4, 0x3000 PDPT, 0x4000..0x7fff four page directories:
 *                identity map of 0..4 GiB with 2 MiB pages, user-accessible, writable
 *   0x0000_8000  struct ferry_guest_params (one page)
 *   0x0001_0000  vCPU stacks: vCPU i starts with rsp = FERRY_STACK_TOP(i)
 *   0x0010_0000  the guest program (flat binary), entry point = first byte
 *   ...          free memory up to params->memory_bytes
 *   0xd000_0000  virtio-mmio block devices, FERRY_VIRTIO_MMIO_STRIDE apart (disk i)
 *
 * Entry registers: rdi = FERRY_PARAMS_GPA, rsi = vCPU index, rsp as above,
 * rflags = 0x3002 (IOPL 3, interrupts off). No interrupts are delivered: the
 * guest polls (serial is write-only, virtqueues are polled).
 */
#ifndef FERRY_VM_GUEST_ABI_H_
#define FERRY_VM_GUEST_ABI_H_

#include <stdint.h>

#define FERRY_GDT_GPA 0x1000ull
#define FERRY_PML4_GPA 0x2000ull
#define FERRY_PARAMS_GPA 0x8000ull
#define FERRY_PROGRAM_GPA 0x100000ull
#define FERRY_MAX_VCPUS 8
#define FERRY_STACK_SIZE 0x8000ull
#define FERRY_STACK_TOP(i) (0x90000ull - (uint64_t)(i) * FERRY_STACK_SIZE)
#define FERRY_MAX_PROGRAM_BYTES (8ull << 20)

#define FERRY_SERIAL_PORT 0x3f8 /* 16550-compatible transmit at +0, LSR at +5 */
/* Writing a byte here stops the VM: 0 = clean power-off, else failure code. */
#define FERRY_POWEROFF_PORT 0x501

#define FERRY_VIRTIO_MMIO_GPA 0xd0000000ull
#define FERRY_VIRTIO_MMIO_STRIDE 0x1000ull
#define FERRY_MAX_DISKS 4

#define FERRY_PARAMS_MAGIC 0x53524d5059525246ull /* "FRRYPMRS" */
#define FERRY_CMDLINE_MAX 2048

struct ferry_guest_params {
  uint64_t magic;         /* FERRY_PARAMS_MAGIC */
  uint64_t memory_bytes;  /* guest RAM size; RAM is [0, memory_bytes) */
  uint64_t tsc_khz;       /* TSC frequency, for timing with rdtsc */
  uint32_t vcpu_count;
  uint32_t disk_count;    /* virtio-blk devices at FERRY_VIRTIO_MMIO_GPA + i*STRIDE */
  uint64_t program_end;   /* first free byte after the loaded program (2 MiB aligned) */
  char cmdline[FERRY_CMDLINE_MAX]; /* NUL-terminated, "key=value key=value" */
};

#endif /* FERRY_VM_GUEST_ABI_H_ */
