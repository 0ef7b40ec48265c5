/* Guest time, the paravirtual way (vm/guest_abi.h): rdtsc() + the VMM's
 * params->tsc_offset, so it continues across a save/restore or a move even on
 * hosts where the VMM cannot set the TSC. Every time read in the guests goes
 * through here; nothing else should use rdtsc() for time.
 *
 * clock_init() must run once (vCPU 0, before releasing the others); after
 * that every function may be called from any vCPU. */
#ifndef FERRY_GUEST_CLOCK_H_
#define FERRY_GUEST_CLOCK_H_

#include <stdint.h>

#include "vm/guest_abi.h"

/* Starts the millisecond clock at zero; keeps a pointer to the params page
 * (which lives as long as the VM) to read tsc_offset on every call. */
void clock_init(const struct ferry_guest_params* params);
/* Guest time in TSC ticks: rdtsc() + params->tsc_offset, read consistently. */
uint64_t clock_ticks(void);
/* Milliseconds since clock_init(), from clock_ticks() and params->tsc_khz. */
uint64_t clock_ms(void);
uint64_t clock_tsc_khz(void);

#endif /* FERRY_GUEST_CLOCK_H_ */
