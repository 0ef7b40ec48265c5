/* Deterministic mixing and pseudo-random numbers. The guests derive page and
 * block contents from these, so the same (index, generation) always gives
 * the same bytes — in this run, after a restore, or in a later boot. */
#ifndef FERRY_GUEST_MIX_H_
#define FERRY_GUEST_MIX_H_

#include <stdint.h>

/* splitmix64's finalizer: a bijection with good avalanche. */
static inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

/* xorshift64*; state must not be 0. */
static inline uint64_t rng_next(uint64_t* state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545f4914f6cdd1dull;
}

/* Uniform enough in [0, n) for n far below 2^32. */
static inline uint64_t rng_below(uint64_t* state, uint64_t n) {
  return (rng_next(state) >> 32) % n;
}

#endif /* FERRY_GUEST_MIX_H_ */
