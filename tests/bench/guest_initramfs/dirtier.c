/* dirtier: the QEMU reference guest's workload (tests/bench/live_move_bench).
 * Runs as a static Linux program under a busybox /init and keeps a working
 * set of RAM changing at a set rate, in a way that lets it prove afterwards
 * that no write was lost — the same idea as ferry's memory-guest.
 *
 * Every page of the working set holds words derived from (page index,
 * generation); the generation of each page lives in a table (also guest RAM).
 * A page that comes back stale after a move (a dirty page not re-sent) no
 * longer matches its table entry, and neither does a stale table page.
 *
 * Environment (the kernel passes unknown key=value boot arguments to init):
 *   dirty_mb    working set in MiB (default 64)
 *   dirty_rate  pages rewritten per second; 0 = never (idle guest)
 * Output on stdout (the serial console):
 *   DIRTIER READY pages=<n>                    after every page got generation 1
 *   DIRTY t=<ms> dirtied=<pages>               once a second
 *   VERIFY OK pages=<n> dirtied=<pages>        answer to a "verify" line on stdin
 *   VERIFY FAIL bad=<n> first=<page> pages=<n>
 * Reading stdin is polled between batches, so verification runs on the
 * guest's own CPU with dirtying stopped (no race with its own writes). */
#define _GNU_SOURCE
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / 8)

static uint64_t* pages;
static uint32_t* gens;
static uint64_t npages;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Word j of page p at generation g: a per-(page, generation) base plus j, so
 * writing is cheap under TCG and every word still depends on both. */
static void write_page(uint64_t p, uint32_t g) {
  uint64_t base = mix((p << 32) ^ g);
  uint64_t* w = pages + p * WORDS;
  for (uint32_t j = 0; j < WORDS; ++j) w[j] = base + j;
  gens[p] = g;
}

static int page_ok(uint64_t p) {
  uint64_t base = mix((p << 32) ^ gens[p]);
  const volatile uint64_t* w = pages + p * WORDS;
  for (uint32_t j = 0; j < WORDS; ++j)
    if (w[j] != base + j) return 0;
  return 1;
}

static void verify(uint64_t dirtied) {
  uint64_t bad = 0, first = 0;
  for (uint64_t p = 0; p < npages; ++p)
    if (!page_ok(p) && bad++ == 0) first = p;
  if (bad == 0)
    printf("VERIFY OK pages=%llu dirtied=%llu\n", (unsigned long long)npages, (unsigned long long)dirtied);
  else
    printf("VERIFY FAIL bad=%llu first=%llu pages=%llu\n", (unsigned long long)bad,
           (unsigned long long)first, (unsigned long long)npages);
  fflush(stdout);
}

/* True if a "verify" line arrived (other input is ignored). */
static int verify_requested(int timeout_ms) {
  struct pollfd pfd = {.fd = 0, .events = POLLIN};
  if (poll(&pfd, 1, timeout_ms) <= 0) return 0;
  char buf[256];
  ssize_t n = read(0, buf, sizeof buf - 1);
  if (n <= 0) return 0;
  buf[n] = 0;
  return strstr(buf, "verify") != NULL;
}

static uint64_t env_u64(const char* name, uint64_t def) {
  const char* v = getenv(name);
  return v && *v ? strtoull(v, NULL, 10) : def;
}

int main(void) {
  uint64_t mb = env_u64("dirty_mb", 64), rate = env_u64("dirty_rate", 0);
  npages = mb * 256;
  pages = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  gens = mmap(NULL, npages * 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (pages == MAP_FAILED || gens == MAP_FAILED) {
    printf("DIRTIER error: cannot map %llu MiB\n", (unsigned long long)mb);
    return 1;
  }
  for (uint64_t p = 0; p < npages; ++p) write_page(p, 1);
  printf("DIRTIER READY pages=%llu rate=%llu\n", (unsigned long long)npages, (unsigned long long)rate);
  fflush(stdout);

  /* Token bucket at most 10 ms deep; pages are rewritten in a scrambled
   * order (odd stride modulo npages visits every page once per pass). */
  uint64_t stride = (npages * 5 / 8) | 1;
  for (;;) { /* coprime with npages */
    uint64_t a = stride, b = npages;
    while (b) { uint64_t t = a % b; a = b; b = t; }
    if (a == 1) break;
    stride += 2;
  }
  uint64_t t0 = now_ns(), last_hb = t0, dirtied = 0, cursor = 0, credited = 0;
  for (;;) {
    uint64_t now = now_ns();
    if (now - last_hb >= 1000000000ull) {
      last_hb = now;
      printf("DIRTY t=%llu dirtied=%llu\n", (unsigned long long)((now - t0) / 1000000),
             (unsigned long long)dirtied);
      fflush(stdout);
    }
    if (rate == 0) {
      if (verify_requested(100)) verify(dirtied);
      continue;
    }
    uint64_t due = (now - t0) / 1000 * rate / 1000000;  /* pages owed since t0 */
    if (due > credited + rate / 100 + 1) credited = due - rate / 100 - 1;  /* cap the burst */
    if (due <= credited) {
      if (verify_requested(1)) verify(dirtied);
      continue;
    }
    uint64_t n = due - credited;
    if (n > 4096) n = 4096;
    for (uint64_t i = 0; i < n; ++i) {
      cursor = (cursor + stride) % npages;
      write_page(cursor, gens[cursor] + 1);
    }
    credited += n;
    dirtied += n;
    if (verify_requested(0)) verify(dirtied);
  }
}
