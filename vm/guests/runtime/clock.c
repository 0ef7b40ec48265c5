#include "clock.h"

#include "io.h"

/* Written once by vCPU 0 before it releases the other vCPUs. */
static const volatile int64_t* tsc_offset;
static uint64_t start_ticks;
static uint64_t khz = 1000000; /* fallback 1 GHz if the VMM gave 0 */

/* Keeps the compiler from moving memory accesses across rdtsc (a volatile asm
 * without a memory clobber may be reordered against volatile loads). */
static inline void compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }

uint64_t clock_ticks(void) {
  /* The VMM changes tsc_offset only while this vCPU is stopped, but that stop
   * can fall between the load and the rdtsc: a pair from both sides of it is
   * off by the whole jump. So load, read the TSC, load again, and retry if the
   * offset changed (a VM exit lands on an instruction boundary, so a pair
   * read with no change in between comes from one side). */
  for (;;) {
    int64_t off = *tsc_offset;
    compiler_barrier();
    uint64_t t = rdtsc();
    compiler_barrier();
    if (*tsc_offset == off) return t + (uint64_t)off;
  }
}

void clock_init(const struct ferry_guest_params* params) {
  tsc_offset = &params->tsc_offset;
  if (params->tsc_khz) khz = params->tsc_khz;
  start_ticks = clock_ticks();
}

uint64_t clock_ms(void) { return (clock_ticks() - start_ticks) / khz; }

uint64_t clock_tsc_khz(void) { return khz; }
