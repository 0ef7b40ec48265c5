/* memory-guest: keeps a working set of guest RAM changing and checks that no
 * page is ever lost or corrupted — the pattern a live move must preserve.
 * See README.md for the arguments and output lines.
 *
 * Every page's contents are a function of (page index, generation). The
 * generation of each page and a checksum of its contents live in tables in
 * guest RAM too, so a page that comes back stale (an older generation: a
 * dirty page that was not re-sent) or corrupted is caught the next time the
 * page is verified: before each rewrite, and by a sweep over the whole
 * working set every SWEEP_MS. */
#include <stdint.h>

#include "clock.h"
#include "cmdline.h"
#include "entry.h"
#include "io.h"
#include "mix.h"
#include "power.h"
#include "serial.h"

#define PAGE 4096u
#define WORDS (PAGE / 8)
#define SWEEP_MS 1000
#define SWEEP_STEP 32         /* pages verified per loop iteration while sweeping */
#define MAX_MISMATCH_LINES 64 /* after this only the error count grows */

struct config {
  uint64_t ws_mib, rate, hb_ms, seconds;
};

/* Per-vCPU counters, one cache line each; vCPU 0 sums them. */
struct counters {
  volatile uint64_t dirtied;
  volatile uint64_t errors;
  volatile uint32_t stopped;
} __attribute__((aligned(64)));

/* Set up by vCPU 0 before it sets `go`; read-only afterwards. */
static struct config cfg;
static uint64_t* pages;     /* npages * PAGE bytes */
static uint32_t* gen_table; /* generation of each page; 0 = never written */
static uint32_t* sum_table; /* checksum of each page's current contents */
static uint64_t npages;
static uint32_t nvcpus;
static volatile uint32_t go;
static volatile uint32_t stop;
static uint32_t mismatch_lines;
static struct counters counters[FERRY_MAX_VCPUS];

static inline uint64_t expected_word(uint64_t page, uint32_t gen, uint32_t j) {
  if (gen == 0) return 0;
  return mix64((page << 32) ^ gen) ^ (j * 0x9e3779b97f4a7c15ull);
}

static inline uint32_t fold(uint64_t s) { return (uint32_t)(s ^ (s >> 32)); }

static void report(uint64_t page, uint32_t gen, uint32_t vcpu, const char* what, uint64_t got,
                   uint64_t want, uint32_t word) {
  counters[vcpu].errors++;
  if (__atomic_fetch_add(&mismatch_lines, 1, __ATOMIC_RELAXED) >= MAX_MISMATCH_LINES) return;
  volatile uint64_t* p = pages + page * WORDS;
  /* Which generation does the page actually hold? A recent one means the
   * page's latest write was lost (stale), none means garbage. */
  int64_t found = -1;
  for (uint32_t back = 1; back <= 16 && back < gen && found < 0; ++back)
    if (p[0] == expected_word(page, gen - back, 0)) found = gen - back;
  serial_lock();
  put_kv("MISMATCH page=", page);
  put_kv(" gen=", gen);
  put_str(" kind=");
  put_str(what);
  put_kv(" word=", word);
  put_str(" got=");
  put_hex(got);
  put_str(" want=");
  put_hex(want);
  put_str(" found_gen=");
  if (found >= 0)
    put_u64((uint64_t)found);
  else
    put_str("none");
  put_kv(" vcpu=", vcpu);
  put_char('\n');
  serial_unlock();
}

/* True if the page holds exactly what its table entries say. */
static int verify_page(uint64_t page, uint32_t vcpu) {
  const volatile uint64_t* p = pages + page * WORDS;
  uint32_t gen = gen_table[page];
  uint64_t s = 0;
  for (uint32_t j = 0; j < WORDS; ++j) {
    uint64_t got = p[j], want = expected_word(page, gen, j);
    if (got != want) {
      report(page, gen, vcpu, "content", got, want, j);
      return 0;
    }
    s = (s ^ got) * 0x100000001b3ull;
  }
  if (gen != 0 && fold(s) != sum_table[page]) {
    report(page, gen, vcpu, "checksum", sum_table[page], fold(s), 0);
    return 0;
  }
  return 1;
}

/* Moves the page to its next generation (which also repairs a bad page, so
 * each corruption is counted once). */
static void rewrite_page(uint64_t page, uint32_t vcpu) {
  volatile uint64_t* p = pages + page * WORDS;
  uint32_t gen = gen_table[page] + 1;
  if (gen == 0) gen = 1; /* 0 means "never written" */
  uint64_t s = 0;
  for (uint32_t j = 0; j < WORDS; ++j) {
    uint64_t w = expected_word(page, gen, j);
    p[j] = w;
    s = (s ^ w) * 0x100000001b3ull;
  }
  gen_table[page] = gen;
  sum_table[page] = fold(s);
  counters[vcpu].dirtied++;
}

static void heartbeat(uint64_t n, uint64_t now) {
  uint64_t dirtied = 0, errors = 0;
  for (uint32_t v = 0; v < nvcpus; ++v) {
    dirtied += counters[v].dirtied;
    errors += counters[v].errors;
  }
  serial_lock();
  put_kv("HB ", n);
  put_kv(" t=", now);
  put_kv(" dirtied=", dirtied);
  put_kv(" errors=", errors);
  put_char('\n');
  serial_unlock();
}

static int setup(const struct ferry_guest_params* params) {
  static const char* const known[] = {"ws_mib", "rate", "hb_ms", "seconds", 0};
  const char* cmd = params->cmdline;
  cfg.ws_mib = 64;
  cfg.rate = 0;
  cfg.hb_ms = 100;
  cfg.seconds = 0;
  int bad = cmdline_check_keys(cmd, known) < 0;
  bad |= cmdline_u64(cmd, "ws_mib", &cfg.ws_mib) < 0;
  bad |= cmdline_u64(cmd, "rate", &cfg.rate) < 0;
  bad |= cmdline_u64(cmd, "hb_ms", &cfg.hb_ms) < 0;
  bad |= cmdline_u64(cmd, "seconds", &cfg.seconds) < 0;
  if (bad || cfg.ws_mib == 0 || cfg.hb_ms == 0) {
    put_str("MEMGUEST error: bad arguments (need integers, ws_mib>0, hb_ms>0)\n");
    return -1;
  }
  nvcpus = params->vcpu_count;
  if (nvcpus == 0 || nvcpus > FERRY_MAX_VCPUS) nvcpus = 1;
  npages = cfg.ws_mib * (1024 * 1024 / PAGE);
  /* Tables first, then the page-aligned working set, all above the image. */
  uint64_t tables = (npages * 2 * sizeof(uint32_t) + PAGE - 1) / PAGE * PAGE;
  uint64_t start = params->program_end;
  if (start + tables + npages * PAGE > params->memory_bytes) {
    put_kv("MEMGUEST error: ws_mib=", cfg.ws_mib);
    put_kv(" does not fit in RAM: need ", (start + tables + npages * PAGE) >> 20);
    put_kv(" MiB, have ", params->memory_bytes >> 20);
    put_str(" MiB\n");
    return -1;
  }
  gen_table = (uint32_t*)(uintptr_t)start;
  sum_table = gen_table + npages;
  pages = (uint64_t*)(uintptr_t)(start + tables);
  put_kv("MEMGUEST start ws_mib=", cfg.ws_mib);
  put_kv(" rate=", cfg.rate);
  put_kv(" vcpus=", nvcpus);
  put_kv(" hb_ms=", cfg.hb_ms);
  put_kv(" seconds=", cfg.seconds);
  put_kv(" pages=", npages);
  put_char('\n');
  return 0;
}

/* vCPU 0 at the end of a timed run: all others stopped, one last full sweep. */
static void finish(void) {
  stop = 1;
  for (uint32_t v = 1; v < nvcpus; ++v)
    while (!counters[v].stopped) cpu_relax();
  for (uint64_t i = 0; i < npages; ++i) verify_page(i, 0);
  uint64_t dirtied = 0, errors = 0;
  for (uint32_t v = 0; v < nvcpus; ++v) {
    dirtied += counters[v].dirtied;
    errors += counters[v].errors;
  }
  serial_lock();
  put_kv("MEMGUEST done dirtied=", dirtied);
  put_kv(" errors=", errors);
  put_char('\n');
  serial_unlock();
  power_off(errors ? GUEST_EXIT_ERRORS : GUEST_EXIT_OK);
}

void guest_main(const struct ferry_guest_params* params, uint32_t vcpu) {
  if (vcpu == 0) {
    clock_init(params);
    if (setup(params) < 0) power_off(GUEST_EXIT_SETUP);
    __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
  } else {
    while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE)) cpu_relax();
    if (vcpu >= nvcpus)
      for (;;) cpu_relax();
  }
  const uint64_t lo = npages * vcpu / nvcpus, hi = npages * (vcpu + 1) / nvcpus;
  for (uint64_t i = lo; i < hi; ++i) rewrite_page(i, vcpu);

  /* Rate limit: a token bucket in page-milliseconds, capped at one second's
   * worth so a long pause is not followed by a burst. */
  const uint64_t my_rate = cfg.rate * (vcpu + 1) / nvcpus - cfg.rate * vcpu / nvcpus;
  uint64_t tokens = 0, last = clock_ms();
  uint64_t rng = mix64(0x6d656d6775657374ull + vcpu) | 1;
  uint64_t sweep_cursor = hi, next_sweep = last + SWEEP_MS;
  uint64_t hb_n = 1, next_hb = last + cfg.hb_ms;
  const uint64_t end_ms = cfg.seconds * 1000;

  while (!stop) {
    uint64_t now = clock_ms();
    if (vcpu == 0) {
      if (now >= next_hb) {
        heartbeat(hb_n++, now);
        next_hb += cfg.hb_ms;
        if (next_hb <= now) next_hb = now + cfg.hb_ms;
      }
      if (end_ms && now >= end_ms) finish();
    }
    if (sweep_cursor < hi) {
      for (uint32_t k = 0; k < SWEEP_STEP && sweep_cursor < hi; ++k, ++sweep_cursor)
        if (!verify_page(sweep_cursor, vcpu)) rewrite_page(sweep_cursor, vcpu);
    } else if (now >= next_sweep) {
      sweep_cursor = lo;
      next_sweep = now + SWEEP_MS;
    }
    if (hi == lo) continue;
    if (cfg.rate) {
      tokens += (now - last) * my_rate;
      last = now;
      if (tokens > my_rate * 1000) tokens = my_rate * 1000;
      if (tokens < 1000) {
        cpu_relax();
        continue;
      }
      tokens -= 1000;
    }
    uint64_t page = lo + rng_below(&rng, hi - lo);
    verify_page(page, vcpu);
    rewrite_page(page, vcpu);
  }
  counters[vcpu].stopped = 1;
  for (;;) cpu_relax();
}
