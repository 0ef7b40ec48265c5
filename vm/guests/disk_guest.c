/* disk-guest: a self-checking disk workload for storage mirroring and moves.
 * See README.md for the arguments, block format and output lines.
 *
 * Every 4 KiB block it writes is self-describing: header (magic, block
 * number, sequence number, checksum) plus contents derived from (block,
 * sequence). write mode keeps the expected sequence of every block in guest
 * RAM and checks each block it reads against it; verify mode checks only
 * self-consistency, so it can run after a fresh boot on a disk written by an
 * earlier run. Runs on vCPU 0 only. */
#include <stdint.h>

#include "clock.h"
#include "cmdline.h"
#include "entry.h"
#include "io.h"
#include "mix.h"
#include "power.h"
#include "serial.h"
#include "vblk.h"

#define BLOCK VBLK_BLOCK
#define BLOCK_WORDS (BLOCK / 8)
#define SECTORS_PER_BLOCK (BLOCK / 512)
#define BLOCK_MAGIC 0x4b4c425959525246ull /* "FRRYYBLK" as little-endian bytes */
#define HEADER_WORDS 4                    /* magic, block, seq, checksum */
#define DEFAULT_SPAN (16ull << 20)        /* default: the first 16 MiB */
#define REVERIFY_EVERY 4                  /* writes between re-reads of an older block */
#define MAX_REPORT_LINES 64

enum check { BLOCK_OK, BLOCK_ZERO, BAD_MAGIC, BAD_NUMBER, BAD_CHECKSUM, BAD_CONTENT };
static const char* const check_names[] = {"ok",           "zero",     "magic",
                                          "block-number", "checksum", "content"};

struct config {
  uint64_t blocks, hb_ms, flush_every, rate, seconds;
  int verify;
};

static struct config cfg;
static struct vblk dev;
static uint64_t wbuf[BLOCK_WORDS] __attribute__((aligned(4096)));
static uint64_t rbuf[BLOCK_WORDS] __attribute__((aligned(4096)));
static uint64_t* expected_seq; /* per block; 0 = not written in this run */
static uint64_t writes, reads, flushes, errors, report_lines;

static inline uint64_t content_word(uint64_t block, uint64_t seq, uint32_t j) {
  return mix64(mix64(block) ^ seq) ^ (j * 0x9e3779b97f4a7c15ull);
}

/* Covers block number, sequence and contents: everything but the magic and
 * the checksum word itself. */
static uint64_t block_checksum(const uint64_t* b) {
  uint64_t h = mix64(b[1] ^ mix64(b[2]));
  for (uint32_t j = HEADER_WORDS; j < BLOCK_WORDS; ++j) h = (h ^ b[j]) * 0x100000001b3ull;
  return mix64(h);
}

static void fill_block(uint64_t* b, uint64_t block, uint64_t seq) {
  b[0] = BLOCK_MAGIC;
  b[1] = block;
  b[2] = seq;
  for (uint32_t j = HEADER_WORDS; j < BLOCK_WORDS; ++j) b[j] = content_word(block, seq, j);
  b[3] = block_checksum(b);
}

static enum check check_block(const uint64_t* b, uint64_t block) {
  if (b[0] != BLOCK_MAGIC) {
    for (uint32_t j = 0; j < BLOCK_WORDS; ++j)
      if (b[j]) return BAD_MAGIC;
    return BLOCK_ZERO;
  }
  if (b[1] != block) return BAD_NUMBER;
  if (b[3] != block_checksum(b)) return BAD_CHECKSUM;
  for (uint32_t j = HEADER_WORDS; j < BLOCK_WORDS; ++j)
    if (b[j] != content_word(block, b[2], j)) return BAD_CONTENT;
  return BLOCK_OK;
}

static int report_allowed(void) { return report_lines++ < MAX_REPORT_LINES; }

static void io_error(const char* op, uint64_t block, int status) {
  ++errors;
  if (report_allowed()) {
    put_str("DISK-IOERR op=");
    put_str(op);
    put_kv(" block=", block);
    put_str(" status=");
    if (status < 0) put_char('-');
    put_u64((uint64_t)(status < 0 ? -status : status));
    put_char('\n');
  }
  /* The device has stopped the queue; nothing more can be checked. */
  if (status == VBLK_E_NEEDS_RESET || status == VBLK_E_TIMEOUT) power_off(GUEST_EXIT_ERRORS);
}

/* Reads block and checks it holds exactly sequence `want`. */
static void read_and_check(uint64_t block, uint64_t want) {
  int st = vblk_read(&dev, block * SECTORS_PER_BLOCK, rbuf, BLOCK);
  ++reads;
  if (st != VBLK_S_OK) return io_error("read", block, st);
  enum check c = check_block(rbuf, block);
  if (c == BLOCK_OK && rbuf[2] == want) return;
  ++errors;
  if (report_allowed()) {
    put_kv("DISK-MISMATCH block=", block);
    put_kv(" expected_seq=", want);
    put_kv(" got_seq=", rbuf[0] == BLOCK_MAGIC ? rbuf[2] : 0);
    put_str(" check=");
    put_str(check_names[c]);
    put_char('\n');
  }
}

static void heartbeat(uint64_t n, uint64_t now) {
  put_kv("DISK ", n);
  put_kv(" t=", now);
  put_kv(" writes=", writes);
  put_kv(" reads=", reads);
  put_kv(" flushes=", flushes);
  put_kv(" errors=", errors);
  put_char('\n');
}

static void flush(void) {
  int st = vblk_flush(&dev);
  ++flushes;
  if (st != VBLK_S_OK) io_error("flush", 0, st);
}

__attribute__((noreturn)) static void run_verify(void) {
  uint64_t written = 0, bad = 0;
  for (uint64_t b = 0; b < cfg.blocks; ++b) {
    int st = vblk_read(&dev, b * SECTORS_PER_BLOCK, rbuf, BLOCK);
    ++reads;
    if (st != VBLK_S_OK) {
      io_error("read", b, st);
      ++bad;
      continue;
    }
    enum check c = check_block(rbuf, b);
    if (c == BLOCK_OK) ++written;
    if (c == BLOCK_OK || c == BLOCK_ZERO) continue;
    ++bad;
    if (report_allowed()) {
      put_kv("DISK-BAD block=", b);
      put_str(" check=");
      put_str(check_names[c]);
      put_kv(" got_seq=", rbuf[0] == BLOCK_MAGIC ? rbuf[2] : 0);
      put_char('\n');
    }
  }
  put_kv("DISK-VERIFY blocks=", cfg.blocks);
  put_kv(" written=", written);
  put_kv(" bad=", bad);
  put_char('\n');
  power_off(bad ? GUEST_EXIT_ERRORS : GUEST_EXIT_OK);
}

__attribute__((noreturn)) static void run_write(void) {
  /* A full-period LCG modulo a power of two >= blocks (a = 1 mod 4, c odd),
   * skipping values past the end: every block once per pass, in a scrambled
   * order. */
  uint64_t m = 1;
  while (m < cfg.blocks) m <<= 1;
  uint64_t x = 0, seq = 0, since_flush = 0, hb_n = 1;
  uint64_t rng = 0x6469736b67756573ull;
  uint64_t last = clock_ms(), tokens = 0, next_hb = last + cfg.hb_ms;
  const uint64_t end_ms = cfg.seconds * 1000;
  for (;;) {
    uint64_t now = clock_ms();
    if (now >= next_hb) {
      heartbeat(hb_n++, now);
      next_hb += cfg.hb_ms;
      if (next_hb <= now) next_hb = now + cfg.hb_ms;
    }
    if (end_ms && now >= end_ms) {
      flush();
      put_kv("DISKGUEST done writes=", writes);
      put_kv(" errors=", errors);
      put_char('\n');
      power_off(errors ? GUEST_EXIT_ERRORS : GUEST_EXIT_OK);
    }
    if (cfg.rate) { /* token bucket in write-milliseconds, at most 1 s deep */
      tokens += (now - last) * cfg.rate;
      last = now;
      if (tokens > cfg.rate * 1000) tokens = cfg.rate * 1000;
      if (tokens < 1000) {
        cpu_relax();
        continue;
      }
      tokens -= 1000;
    }
    do x = (x * 6364136223846793005ull + 1442695040888963407ull) & (m - 1);
    while (x >= cfg.blocks);
    fill_block(wbuf, x, ++seq);
    int st = vblk_write(&dev, x * SECTORS_PER_BLOCK, wbuf, BLOCK);
    ++writes;
    if (st != VBLK_S_OK) {
      io_error("write", x, st);
      continue;
    }
    expected_seq[x] = seq;
    read_and_check(x, seq);
    if (++since_flush >= cfg.flush_every) {
      flush();
      since_flush = 0;
    }
    if (writes % REVERIFY_EVERY == 0) {
      /* An earlier block, at most a few tries to find one already written. */
      for (int tries = 0; tries < 8; ++tries) {
        uint64_t b = rng_below(&rng, cfg.blocks);
        if (expected_seq[b]) {
          read_and_check(b, expected_seq[b]);
          break;
        }
      }
    }
  }
}

static int setup(const struct ferry_guest_params* params) {
  static const char* const known[] = {"blocks",  "hb_ms", "flush_every", "rate", "mode",
                                      "seconds", 0};
  const char* cmd = params->cmdline;
  char mode[16] = "write";
  cfg.blocks = 0;
  cfg.hb_ms = 100;
  cfg.flush_every = 64;
  cfg.rate = 0;
  cfg.seconds = 0;
  int bad = cmdline_check_keys(cmd, known) < 0;
  bad |= cmdline_u64(cmd, "blocks", &cfg.blocks) < 0;
  bad |= cmdline_u64(cmd, "hb_ms", &cfg.hb_ms) < 0;
  bad |= cmdline_u64(cmd, "flush_every", &cfg.flush_every) < 0;
  bad |= cmdline_u64(cmd, "rate", &cfg.rate) < 0;
  bad |= cmdline_u64(cmd, "seconds", &cfg.seconds) < 0;
  bad |= cmdline_str(cmd, "mode", mode, sizeof(mode)) < 0;
  cfg.verify = str_eq(mode, "verify");
  if (bad || (!cfg.verify && !str_eq(mode, "write")) || cfg.hb_ms == 0 || cfg.flush_every == 0) {
    put_str(
        "DISKGUEST error: bad arguments (integers; mode=write|verify; hb_ms, flush_every > 0)\n");
    return -1;
  }
  if (params->disk_count < 1) {
    put_str("DISKGUEST error: no disk attached\n");
    return -1;
  }
  if (vblk_init(&dev, 0) < 0) return -1;
  uint64_t disk_blocks = dev.capacity_sectors / SECTORS_PER_BLOCK;
  if (cfg.blocks == 0) {
    uint64_t span = dev.capacity_sectors * 512;
    cfg.blocks = (span < DEFAULT_SPAN ? span : DEFAULT_SPAN) / BLOCK;
  }
  if (cfg.blocks == 0 || cfg.blocks > disk_blocks) {
    put_kv("DISKGUEST error: blocks=", cfg.blocks);
    put_kv(" but the disk has ", disk_blocks);
    put_str(" 4 KiB blocks\n");
    return -1;
  }
  if (!cfg.verify && dev.read_only) {
    put_str("DISKGUEST error: mode=write on a read-only disk\n");
    return -1;
  }
  uint64_t table_end = params->program_end + cfg.blocks * sizeof(uint64_t);
  if (table_end > params->memory_bytes) {
    put_str("DISKGUEST error: sequence table does not fit in RAM\n");
    return -1;
  }
  expected_seq = (uint64_t*)(uintptr_t)params->program_end;
  put_str("DISKGUEST start mode=");
  put_str(cfg.verify ? "verify" : "write");
  put_kv(" blocks=", cfg.blocks);
  put_kv(" disk_blocks=", disk_blocks);
  put_kv(" flush_every=", cfg.flush_every);
  put_kv(" rate=", cfg.rate);
  put_kv(" hb_ms=", cfg.hb_ms);
  put_kv(" seconds=", cfg.seconds);
  put_char('\n');
  return 0;
}

void guest_main(const struct ferry_guest_params* params, uint32_t vcpu) {
  /* One vCPU drives the one queue; any others idle (no halt at CPL3). */
  if (vcpu != 0)
    for (;;) cpu_relax();
  clock_init(params);
  if (setup(params) < 0) power_off(GUEST_EXIT_SETUP);
  if (cfg.verify) run_verify();
  run_write();
}
