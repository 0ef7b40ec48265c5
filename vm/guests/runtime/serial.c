#include "serial.h"

#include "io.h"
#include "vm/guest_abi.h"

static volatile int serial_lock_word;

void serial_lock(void) {
  while (__atomic_exchange_n(&serial_lock_word, 1, __ATOMIC_ACQUIRE)) cpu_relax();
}

void serial_unlock(void) { __atomic_store_n(&serial_lock_word, 0, __ATOMIC_RELEASE); }

/* The LSR is not polled: the VMM's UART is always ready to transmit, and
 * every port access is a VM exit, so polling would double the cost. */
void put_char(char c) { outb(FERRY_SERIAL_PORT, (uint8_t)c); }

void put_str(const char* s) {
  while (*s) put_char(*s++);
}

void put_u64(uint64_t v) {
  char buf[20];
  int n = 0;
  do {
    buf[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) put_char(buf[--n]);
}

void put_hex(uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  put_str("0x");
  int shift = 60;
  while (shift > 0 && ((v >> shift) & 0xf) == 0) shift -= 4;
  for (; shift >= 0; shift -= 4) put_char(digits[(v >> shift) & 0xf]);
}

void put_kv(const char* key, uint64_t v) {
  put_str(key);
  put_u64(v);
}
