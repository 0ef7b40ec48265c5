#include "power.h"

#include "io.h"
#include "vm/guest_abi.h"

void power_off(uint8_t code) {
  outb(FERRY_POWEROFF_PORT, code);
  /* The VMM stops this vCPU at the port write; if another vCPU is still
   * finishing its instruction, stay put rather than run on. */
  for (;;) cpu_relax();
}
