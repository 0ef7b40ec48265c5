/* Entry: the VMM starts each vCPU at the image's first byte with
 * rdi = params, rsi = vCPU index and rsp = that vCPU's stack top. The stub
 * aligns the stack the way a call would (rsp+8 16-byte aligned in the callee)
 * and calls the program's guest_main; a vCPU that returns spins (there is no
 * halt at CPL3), and vCPU 0 returning powers the VM off cleanly. */
#include "entry.h"

#include "io.h"
#include "power.h"

__asm__(
    ".section .text.ferry_entry,\"ax\",@progbits\n"
    ".globl _start\n"
    "_start:\n"
    "  andq $-16, %rsp\n"
    "  call guest_entry\n"
    "1: pause\n"
    "  jmp 1b\n"
    ".previous\n");

void guest_entry(const struct ferry_guest_params* params, uint64_t vcpu);

void guest_entry(const struct ferry_guest_params* params, uint64_t vcpu) {
  /* Without valid params there is no RAM size or cmdline to trust. */
  if (params->magic != FERRY_PARAMS_MAGIC) power_off(GUEST_EXIT_SETUP);
  guest_main(params, (uint32_t)vcpu);
  if (vcpu == 0) power_off(GUEST_EXIT_OK);
  for (;;) cpu_relax();
}
