/* The C library pieces the compiler may call even in freestanding mode. */
#ifndef FERRY_GUEST_MEM_H_
#define FERRY_GUEST_MEM_H_

#include <stddef.h>

void* memset(void* dst, int c, size_t n);
void* memcpy(void* dst, const void* src, size_t n);
void* memmove(void* dst, const void* src, size_t n);
int memcmp(const void* a, const void* b, size_t n);
size_t strlen(const char* s);

#endif /* FERRY_GUEST_MEM_H_ */
