/* Stops the VM through FERRY_POWEROFF_PORT: 0 is a clean power-off, any
 * other code a failure the VMM reports. */
#ifndef FERRY_GUEST_POWER_H_
#define FERRY_GUEST_POWER_H_

#include <stdint.h>

__attribute__((noreturn)) void power_off(uint8_t code);

/* Exit codes shared by the guests. */
#define GUEST_EXIT_OK 0
#define GUEST_EXIT_ERRORS 1 /* the workload detected corruption */
#define GUEST_EXIT_SETUP 2  /* bad arguments, too little RAM, no disk */

#endif /* FERRY_GUEST_POWER_H_ */
