/* Serial console output (transmit register of the 16550 at
 * FERRY_SERIAL_PORT). Lines from several vCPUs are kept whole by taking
 * serial_lock() around a line. */
#ifndef FERRY_GUEST_SERIAL_H_
#define FERRY_GUEST_SERIAL_H_

#include <stdint.h>

void serial_lock(void);
void serial_unlock(void);
void put_char(char c);
void put_str(const char* s);
void put_u64(uint64_t v); /* decimal */
void put_hex(uint64_t v); /* 0x-prefixed */
/* put_str(key); put_u64(v) — for "key=value" fields. */
void put_kv(const char* key, uint64_t v);

#endif /* FERRY_GUEST_SERIAL_H_ */
