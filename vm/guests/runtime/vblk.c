/* Init sequence: virtio 1.1 §3.1.1; virtio-mmio registers: §4.2.2; block
 * requests: §5.2.6. Offsets mirror vm/src/virtio_defs.h on the VMM side. */
#include "vblk.h"

#include "io.h"
#include "mem.h"
#include "serial.h"
#include "vm/guest_abi.h"

enum {
  REG_MAGIC = 0x000,
  REG_VERSION = 0x004,
  REG_DEVICE_ID = 0x008,
  REG_DEVICE_FEATURES = 0x010,
  REG_DEVICE_FEATURES_SEL = 0x014,
  REG_DRIVER_FEATURES = 0x020,
  REG_DRIVER_FEATURES_SEL = 0x024,
  REG_QUEUE_SEL = 0x030,
  REG_QUEUE_NUM_MAX = 0x034,
  REG_QUEUE_NUM = 0x038,
  REG_QUEUE_READY = 0x044,
  REG_QUEUE_NOTIFY = 0x050,
  REG_INTERRUPT_ACK = 0x064,
  REG_STATUS = 0x070,
  REG_QUEUE_DESC_LOW = 0x080,
  REG_QUEUE_DESC_HIGH = 0x084,
  REG_QUEUE_DRIVER_LOW = 0x090,
  REG_QUEUE_DRIVER_HIGH = 0x094,
  REG_QUEUE_DEVICE_LOW = 0x0a0,
  REG_QUEUE_DEVICE_HIGH = 0x0a4,
  REG_CONFIG_GENERATION = 0x0fc,
  REG_CONFIG = 0x100,
};

#define STATUS_ACK 1u
#define STATUS_DRIVER 2u
#define STATUS_DRIVER_OK 4u
#define STATUS_FEATURES_OK 8u
#define STATUS_NEEDS_RESET 64u
#define STATUS_FAILED 128u

#define F_BLK_RO (1ull << 5)
#define F_BLK_FLUSH (1ull << 9)
#define F_VERSION_1 (1ull << 32)

#define DESC_NEXT 1
#define DESC_WRITE 2

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4

/* The device completes requests inside the notify exit, so a completion is
 * normally visible at once; this only bounds a broken device. */
#define POLL_SPINS (1u << 26)

static uint32_t reg_read(struct vblk* d, uint32_t off) { return d->regs[off / 4]; }
static void reg_write(struct vblk* d, uint32_t off, uint32_t v) { d->regs[off / 4] = v; }

static int fail(struct vblk* d, const char* what) {
  reg_write(d, REG_STATUS, reg_read(d, REG_STATUS) | STATUS_FAILED);
  serial_lock();
  put_str("VBLK-ERROR ");
  put_str(what);
  put_char('\n');
  serial_unlock();
  return -1;
}

static uint64_t read_capacity(struct vblk* d) {
  /* A 64-bit config field is read as two halves; retry if the device changed
   * the config in between (generation moved). */
  for (;;) {
    uint32_t gen = reg_read(d, REG_CONFIG_GENERATION);
    uint64_t lo = reg_read(d, REG_CONFIG + 0);
    uint64_t hi = reg_read(d, REG_CONFIG + 4);
    if (reg_read(d, REG_CONFIG_GENERATION) == gen) return lo | (hi << 32);
  }
}

int vblk_init(struct vblk* d, uint32_t index) {
  memset((void*)d, 0, sizeof(*d));
  d->regs =
      (volatile uint32_t*)(uintptr_t)(FERRY_VIRTIO_MMIO_GPA + index * FERRY_VIRTIO_MMIO_STRIDE);
  if (reg_read(d, REG_MAGIC) != 0x74726976 || reg_read(d, REG_VERSION) != 2 ||
      reg_read(d, REG_DEVICE_ID) != 2) {
    serial_lock();
    put_str("VBLK-ERROR no virtio-mmio v2 block device at disk ");
    put_u64(index);
    put_char('\n');
    serial_unlock();
    return -1;
  }
  reg_write(d, REG_STATUS, 0); /* reset */
  uint32_t status = STATUS_ACK;
  reg_write(d, REG_STATUS, status);
  status |= STATUS_DRIVER;
  reg_write(d, REG_STATUS, status);

  reg_write(d, REG_DEVICE_FEATURES_SEL, 0);
  uint64_t offered = reg_read(d, REG_DEVICE_FEATURES);
  reg_write(d, REG_DEVICE_FEATURES_SEL, 1);
  offered |= (uint64_t)reg_read(d, REG_DEVICE_FEATURES) << 32;
  if (!(offered & F_VERSION_1)) return fail(d, "device does not offer VIRTIO_F_VERSION_1");
  uint64_t wanted = offered & (F_VERSION_1 | F_BLK_FLUSH | F_BLK_RO);
  reg_write(d, REG_DRIVER_FEATURES_SEL, 0);
  reg_write(d, REG_DRIVER_FEATURES, (uint32_t)wanted);
  reg_write(d, REG_DRIVER_FEATURES_SEL, 1);
  reg_write(d, REG_DRIVER_FEATURES, (uint32_t)(wanted >> 32));
  status |= STATUS_FEATURES_OK;
  reg_write(d, REG_STATUS, status);
  if (!(reg_read(d, REG_STATUS) & STATUS_FEATURES_OK))
    return fail(d, "device refused our features");
  d->read_only = (wanted & F_BLK_RO) != 0;
  d->has_flush = (wanted & F_BLK_FLUSH) != 0;

  reg_write(d, REG_QUEUE_SEL, 0);
  if (reg_read(d, REG_QUEUE_READY) != 0) return fail(d, "queue 0 already live after reset");
  uint32_t max = reg_read(d, REG_QUEUE_NUM_MAX);
  if (max == 0) return fail(d, "queue 0 not available");
  uint16_t qsize = VBLK_QSIZE;
  while (qsize > max) qsize /= 2; /* split queues are powers of two */
  d->qsize = qsize;
  uint64_t desc = (uintptr_t)d->desc, avail = (uintptr_t)&d->avail, used = (uintptr_t)&d->used;
  reg_write(d, REG_QUEUE_NUM, qsize);
  reg_write(d, REG_QUEUE_DESC_LOW, (uint32_t)desc);
  reg_write(d, REG_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
  reg_write(d, REG_QUEUE_DRIVER_LOW, (uint32_t)avail);
  reg_write(d, REG_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
  reg_write(d, REG_QUEUE_DEVICE_LOW, (uint32_t)used);
  reg_write(d, REG_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
  reg_write(d, REG_QUEUE_READY, 1);
  status |= STATUS_DRIVER_OK;
  reg_write(d, REG_STATUS, status);
  if (reg_read(d, REG_STATUS) & STATUS_NEEDS_RESET) return fail(d, "device rejected the queue");
  d->capacity_sectors = read_capacity(d);
  return 0;
}

/* Publishes the chain starting at descriptor 0 and waits for it. */
static int submit(struct vblk* d) {
  d->status = 0xff; /* not a valid status: shows whether the device wrote it */
  d->avail.ring[d->next_avail % d->qsize] = 0;
  full_barrier(); /* descriptors and ring slot before the index */
  d->avail.idx = ++d->next_avail;
  full_barrier(); /* index before the notify */
  reg_write(d, REG_QUEUE_NOTIFY, 0);
  uint32_t spins = 0;
  while (d->used.idx == d->last_used) {
    if ((++spins & 0xfff) == 0 && (reg_read(d, REG_STATUS) & STATUS_NEEDS_RESET))
      return VBLK_E_NEEDS_RESET;
    if (spins >= POLL_SPINS) return VBLK_E_TIMEOUT;
    cpu_relax();
  }
  full_barrier(); /* used entry and data after seeing the index */
  uint32_t id = d->used.ring[d->last_used % d->qsize].id;
  ++d->last_used;
  reg_write(d, REG_INTERRUPT_ACK, 1);
  if (id != 0) return VBLK_E_PROTOCOL;
  return d->status;
}

static void set_desc(struct vblk* d, int i, const volatile void* addr, uint32_t len,
                     uint16_t flags) {
  d->desc[i].addr = (uintptr_t)addr;
  d->desc[i].len = len;
  d->desc[i].flags = flags;
  d->desc[i].next = (uint16_t)(i + 1);
}

static int transfer(struct vblk* d, uint32_t type, uint64_t sector, const void* buf, uint32_t len) {
  d->req.type = type;
  d->req.reserved = 0;
  d->req.sector = sector;
  set_desc(d, 0, &d->req, sizeof(d->req), DESC_NEXT);
  set_desc(d, 1, buf, len, DESC_NEXT | (type == T_IN ? DESC_WRITE : 0));
  set_desc(d, 2, &d->status, 1, DESC_WRITE);
  return submit(d);
}

int vblk_read(struct vblk* d, uint64_t sector, void* buf, uint32_t len) {
  return transfer(d, T_IN, sector, buf, len);
}

int vblk_write(struct vblk* d, uint64_t sector, const void* buf, uint32_t len) {
  return transfer(d, T_OUT, sector, buf, len);
}

int vblk_flush(struct vblk* d) {
  d->req.type = T_FLUSH;
  d->req.reserved = 0;
  d->req.sector = 0;
  set_desc(d, 0, &d->req, sizeof(d->req), DESC_NEXT);
  set_desc(d, 1, &d->status, 1, DESC_WRITE);
  return submit(d);
}
