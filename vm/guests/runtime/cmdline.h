/* "key=value key=value" command lines from params->cmdline. Values are
 * decimal integers or words; keys the program does not know are an error so
 * a typo never silently runs the default workload. */
#ifndef FERRY_GUEST_CMDLINE_H_
#define FERRY_GUEST_CMDLINE_H_

#include <stdint.h>

/* Each returns 1 if key is present and well formed (value stored), 0 if
 * absent (out untouched), -1 if present but malformed. */
int cmdline_u64(const char* cmdline, const char* key, uint64_t* out);
/* Copies the value, NUL-terminated; -1 also if it does not fit in cap. */
int cmdline_str(const char* cmdline, const char* key, char* out, uint64_t cap);
/* Returns 0 if every key is in known (NULL-terminated), else prints
 * "ARG-ERROR unknown key ..." and returns -1. Also rejects a word with no '='. */
int cmdline_check_keys(const char* cmdline, const char* const* known);
int str_eq(const char* a, const char* b);

#endif /* FERRY_GUEST_CMDLINE_H_ */
