#include "cmdline.h"

#include "serial.h"

int str_eq(const char* a, const char* b) {
  while (*a && *a == *b) ++a, ++b;
  return *a == *b;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }

/* Finds "key=" at the start of a word; returns the value start or 0. */
static const char* find_value(const char* s, const char* key) {
  while (*s) {
    while (is_space(*s)) ++s;
    const char* word = s;
    const char* k = key;
    while (*k && *s == *k) ++s, ++k;
    if (!*k && *s == '=') return s + 1;
    s = word;
    while (*s && !is_space(*s)) ++s;
  }
  return 0;
}

int cmdline_u64(const char* cmdline, const char* key, uint64_t* out) {
  const char* v = find_value(cmdline, key);
  if (!v) return 0;
  uint64_t x = 0;
  int digits = 0;
  for (; *v >= '0' && *v <= '9'; ++v, ++digits) {
    uint64_t d = (uint64_t)(*v - '0');
    if (x > (UINT64_MAX - d) / 10) return -1; /* overflow */
    x = x * 10 + d;
  }
  if (digits == 0 || (*v && !is_space(*v))) return -1;
  *out = x;
  return 1;
}

int cmdline_str(const char* cmdline, const char* key, char* out, uint64_t cap) {
  const char* v = find_value(cmdline, key);
  if (!v) return 0;
  uint64_t n = 0;
  while (v[n] && !is_space(v[n])) ++n;
  if (n == 0 || n + 1 > cap) return -1;
  for (uint64_t i = 0; i < n; ++i) out[i] = v[i];
  out[n] = 0;
  return 1;
}

int cmdline_check_keys(const char* cmdline, const char* const* known) {
  const char* s = cmdline;
  int ok = 0;
  while (*s) {
    while (is_space(*s)) ++s;
    if (!*s) break;
    const char* word = s;
    while (*s && *s != '=' && !is_space(*s)) ++s;
    int matched = 0;
    if (*s == '=') {
      for (const char* const* k = known; *k && !matched; ++k) {
        const char* a = *k;
        const char* b = word;
        while (*a && b < s && *a == *b) ++a, ++b;
        matched = !*a && b == s;
      }
    }
    if (!matched) {
      serial_lock();
      put_str("ARG-ERROR unknown or malformed argument: ");
      for (const char* c = word; *c && !is_space(*c); ++c) put_char(*c);
      put_char('\n');
      serial_unlock();
      ok = -1;
    }
    while (*s && !is_space(*s)) ++s;
  }
  return ok;
}
