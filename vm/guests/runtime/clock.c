#include "clock.h"

#include "io.h"

/* Written once by vCPU 0 before it releases the other vCPUs. */
static uint64_t start_tsc;
static uint64_t khz = 1000000; /* fallback 1 GHz if the VMM gave 0 */

void clock_init(uint64_t tsc_khz) {
  if (tsc_khz) khz = tsc_khz;
  start_tsc = rdtsc();
}

uint64_t clock_ms(void) { return (rdtsc() - start_tsc) / khz; }

uint64_t clock_tsc_khz(void) { return khz; }
