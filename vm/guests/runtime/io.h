/* x86 port I/O, TSC and spin primitives. The guest runs at CPL3 with IOPL=3,
 * so in/out are allowed without a kernel. */
#ifndef FERRY_GUEST_IO_H_
#define FERRY_GUEST_IO_H_

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v) {
  __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

/* The raw TSC. Not guest time: after a restore on a host that cannot set the
 * guest's TSC it has jumped. Time comes from clock.h (rdtsc + tsc_offset). */
static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

/* Orders this vCPU's memory accesses against another vCPU's or the device's. */
static inline void full_barrier(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

#endif /* FERRY_GUEST_IO_H_ */
