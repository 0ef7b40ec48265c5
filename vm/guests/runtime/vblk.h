/* Polling virtio-mmio (version 2) block driver: one split virtqueue, one
 * request at a time, synchronous. No interrupts exist, so completion is
 * found by polling the used ring after QueueNotify. */
#ifndef FERRY_GUEST_VBLK_H_
#define FERRY_GUEST_VBLK_H_

#include <stdint.h>

#define VBLK_QSIZE 16
#define VBLK_BLOCK 4096u

/* Results of a request: the device's status byte (>= 0) or a driver error. */
#define VBLK_S_OK 0
#define VBLK_S_IOERR 1
#define VBLK_S_UNSUPP 2
#define VBLK_E_NEEDS_RESET (-1) /* the device gave up on the queue */
#define VBLK_E_TIMEOUT (-2)     /* no completion appeared */
#define VBLK_E_PROTOCOL (-3)    /* completion for an unknown request */

struct vblk_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};

struct vblk_avail {
  uint16_t flags;
  uint16_t idx;
  uint16_t ring[VBLK_QSIZE];
  uint16_t used_event;
};

struct vblk_used_elem {
  uint32_t id;
  uint32_t len;
};

struct vblk_used {
  uint16_t flags;
  uint16_t idx;
  struct vblk_used_elem ring[VBLK_QSIZE];
  uint16_t avail_event;
};

/* Lives in guest RAM (the device reads and writes the rings directly). */
struct vblk {
  volatile struct vblk_desc desc[VBLK_QSIZE] __attribute__((aligned(4096)));
  volatile struct vblk_avail avail __attribute__((aligned(64)));
  volatile struct vblk_used used __attribute__((aligned(64)));
  struct {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
  } req;
  volatile uint8_t status;
  volatile uint32_t* regs;
  uint64_t capacity_sectors;
  uint16_t qsize;
  uint16_t next_avail; /* our copy of avail.idx */
  uint16_t last_used;  /* used.idx we have consumed up to */
  int read_only;
  int has_flush;
};

/* Initializes disk `index` (FERRY_VIRTIO_MMIO_GPA + index * stride). Returns
 * 0, or -1 after printing "VBLK-ERROR <what>". */
int vblk_init(struct vblk* d, uint32_t index);
/* len is a multiple of 512; buf must be guest RAM (identity-mapped). */
int vblk_read(struct vblk* d, uint64_t sector, void* buf, uint32_t len);
int vblk_write(struct vblk* d, uint64_t sector, const void* buf, uint32_t len);
int vblk_flush(struct vblk* d);

#endif /* FERRY_GUEST_VBLK_H_ */
