/* Guest time from the TSC, in milliseconds since clock_init(), using the
 * frequency the VMM publishes in params->tsc_khz. */
#ifndef FERRY_GUEST_CLOCK_H_
#define FERRY_GUEST_CLOCK_H_

#include <stdint.h>

void clock_init(uint64_t tsc_khz);
uint64_t clock_ms(void);
uint64_t clock_tsc_khz(void);

#endif /* FERRY_GUEST_CLOCK_H_ */
