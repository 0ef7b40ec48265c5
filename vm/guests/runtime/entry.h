/* The program's entry point, called on every vCPU once params are checked. */
#ifndef FERRY_GUEST_ENTRY_H_
#define FERRY_GUEST_ENTRY_H_

#include <stdint.h>

#include "vm/guest_abi.h"

void guest_main(const struct ferry_guest_params* params, uint32_t vcpu);

#endif /* FERRY_GUEST_ENTRY_H_ */
