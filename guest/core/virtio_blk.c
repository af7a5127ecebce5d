/* guest/core/virtio_blk.c — guest core: polled virtio-mmio block driver. The
 * host completes a request during the QueueNotify exit, so every request is
 * synchronous and the queue needs only one chain of three descriptors. */
#include <errno.h>
#include <stdbool.h>

#include "abi.h"
#include "lib.h"
#include "virtio_blk.h"
#include "virtio_mmio.h"

/* virtio-mmio registers (virtio 1.x, 4.2.2) */

#define QSIZE 8u /* one request in flight needs three descriptors */
#define SECTOR 512u
#define POLL_LIMIT 100000000u

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[QSIZE];
	uint16_t used_event;
};

struct vq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vq_used {
	uint16_t flags;
	uint16_t idx;
	struct vq_used_elem ring[QSIZE];
	uint16_t avail_event;
};

struct blk_req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct blk_zero_seg {
	uint64_t sector;
	uint32_t num;
	uint32_t flags;
};

/* One device: its rings and request buffers (spec alignment: descriptors
 * 16, driver area 2, device area 4) and its state. Device 0 is the image;
 * 1.. are the read-only backing devices, set up on first use. */
struct gblk {
	struct vq_desc vq_desc[QSIZE] __attribute__((aligned(16)));
	struct vq_avail vq_avail __attribute__((aligned(2)));
	struct vq_used vq_used __attribute__((aligned(4)));
	struct blk_req_hdr req_hdr __attribute__((aligned(16)));
	struct blk_zero_seg req_seg __attribute__((aligned(16)));
	volatile uint8_t req_status;
	volatile uint8_t *mmio;
	bool ready, tried;
	uint32_t qsize;
	uint16_t avail_idx, used_idx;
	uint64_t features;
	uint64_t capacity;
	uint32_t max_discard, max_wz;
};

static struct gblk gblk[INSTAR_BLK_MAX_DEVS] __attribute__((aligned(64)));
static uint32_t gblk_count = 1;

#define barrier() __asm__ volatile("" ::: "memory")

static uint32_t mmio_rd(struct gblk *b, uint32_t off)
{
	return *(volatile uint32_t *)(b->mmio + off);
}

static void mmio_wr(struct gblk *b, uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)(b->mmio + off) = v;
}

static void set_addr(struct gblk *b, uint32_t lo_reg, const volatile void *p)
{
	uint64_t a = (uint64_t)(uintptr_t)p; /* identity-mapped: pointer == gpa */

	mmio_wr(b, lo_reg, (uint32_t)a);
	mmio_wr(b, lo_reg + 4, (uint32_t)(a >> 32));
}

_Static_assert(VIRTIO_C_MAX_DISCARD_SEG == VIRTIO_C_MAX_DISCARD_SECTORS + 4 &&
		   VIRTIO_C_MAX_WZ_SEG == VIRTIO_C_MAX_WZ_SECTORS + 4,
	       "config pairs read as one 8-byte access");

static uint64_t config_rd64(struct gblk *b, uint32_t off)
{
	return *(volatile uint64_t *)(b->mmio + VIRTIO_R_CONFIG + off);
}

/* The device is the host's own (same ABI version), so the probing a general
 * driver does (magic, version, device id, offered features, queue size,
 * read-backs after each step, config generation) is skipped: every MMIO read
 * is a VM exit (~20 us on hosts that emulate them), while the host queues
 * these register writes without one. A single status read at the end tells
 * whether all of it was accepted: a refused feature set leaves FEATURES_OK
 * and DRIVER_OK clear, a bad queue sets NEEDS_RESET. */
static int dev_init(struct gblk *b, uint64_t mmio_base, uint64_t want)
{
	uint32_t status, st;

	b->ready = false;
	b->tried = true;
	b->mmio = (volatile uint8_t *)(uintptr_t)mmio_base;

	mmio_wr(b, VIRTIO_R_STATUS, 0);
	mmio_wr(b, VIRTIO_R_STATUS, VIRTIO_ST_ACKNOWLEDGE);
	mmio_wr(b, VIRTIO_R_STATUS, VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER);
	b->features = want;
	mmio_wr(b, VIRTIO_R_DRIVER_FEATURES_SEL, 0);
	mmio_wr(b, VIRTIO_R_DRIVER_FEATURES, (uint32_t)b->features);
	mmio_wr(b, VIRTIO_R_DRIVER_FEATURES_SEL, 1);
	mmio_wr(b, VIRTIO_R_DRIVER_FEATURES, (uint32_t)(b->features >> 32));
	status = VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK;
	mmio_wr(b, VIRTIO_R_STATUS, status);

	b->qsize = QSIZE; /* the host's QueueNumMax is far larger */
	memset(b->vq_desc, 0, sizeof(b->vq_desc));
	memset(&b->vq_avail, 0, sizeof(b->vq_avail));
	memset(&b->vq_used, 0, sizeof(b->vq_used));
	b->avail_idx = b->used_idx = 0;
	mmio_wr(b, VIRTIO_R_QUEUE_SEL, 0);
	mmio_wr(b, VIRTIO_R_QUEUE_NUM, b->qsize);
	set_addr(b, VIRTIO_R_QUEUE_DESC_LOW, b->vq_desc);
	set_addr(b, VIRTIO_R_QUEUE_DRIVER_LOW, &b->vq_avail);
	set_addr(b, VIRTIO_R_QUEUE_DEVICE_LOW, &b->vq_used);
	barrier();
	mmio_wr(b, VIRTIO_R_QUEUE_READY, 1);
	mmio_wr(b, VIRTIO_R_STATUS, status | VIRTIO_ST_DRIVER_OK);

	st = mmio_rd(b, VIRTIO_R_STATUS);
	if ((st & (VIRTIO_ST_DRIVER_OK | VIRTIO_ST_NEEDS_RESET)) != VIRTIO_ST_DRIVER_OK)
		goto fail;
	/* The config never changes (generation 0): 8-byte reads, the discard
	 * and write-zeroes limits only on first use (blk_limit()). */
	b->capacity = config_rd64(b, VIRTIO_C_CAPACITY);
	b->max_discard = b->max_wz = 0;
	b->ready = true;
	return 0;
fail:
	mmio_wr(b, VIRTIO_R_STATUS, st | VIRTIO_ST_FAILED);
	return -EIO;
}

int guest_blk_init(uint64_t mmio_base)
{
	return dev_init(&gblk[0], mmio_base,
			VIRTIO_F_VERSION_1 | VIRTIO_F_BLK_FLUSH | VIRTIO_F_BLK_DISCARD |
			    VIRTIO_F_BLK_WRITE_ZEROES);
}

void guest_blk_set_count(uint32_t n)
{
	gblk_count = n >= 1 && n <= INSTAR_BLK_MAX_DEVS ? n : 1;
}

uint64_t guest_blk_capacity(void)
{
	return gblk[0].ready ? gblk[0].capacity : 0;
}

/* A backing device, set up the first time it is used: only its read path.
 * It must offer VIRTIO_BLK_F_RO (device 0 does not). */
static struct gblk *backing_dev(uint32_t dev)
{
	struct gblk *b;

	if (dev == 0 || dev >= gblk_count)
		return 0;
	b = &gblk[dev];
	if (!b->tried)
		dev_init(b, INSTAR_VIRTIO_MMIO_DEV_BASE(dev), VIRTIO_F_VERSION_1 | VIRTIO_F_BLK_RO);
	return b->ready ? b : 0;
}

/* Sends the chain hdr -> [data] -> status and waits for its completion. */
static int submit(struct gblk *b, uint32_t type, uint64_t sector, const volatile void *data,
		  uint32_t len, bool device_writes)
{
	volatile struct vq_desc *d = b->vq_desc;
	volatile struct vq_avail *av = &b->vq_avail;
	volatile struct vq_used *us = &b->vq_used;
	uint32_t n = 0, spins;
	uint8_t st;

	if (!b->ready)
		return -ENODEV;
	b->req_hdr.type = type;
	b->req_hdr.reserved = 0;
	b->req_hdr.sector = sector;
	b->req_status = 0xff; /* a device that never answers is not "OK" */

	d[n].addr = (uint64_t)(uintptr_t)&b->req_hdr;
	d[n].len = sizeof(b->req_hdr);
	d[n].flags = VIRTIO_DESC_F_NEXT;
	d[n].next = (uint16_t)(n + 1);
	n++;
	if (len) {
		d[n].addr = (uint64_t)(uintptr_t)data;
		d[n].len = len;
		d[n].flags = VIRTIO_DESC_F_NEXT | (device_writes ? VIRTIO_DESC_F_WRITE : 0);
		d[n].next = (uint16_t)(n + 1);
		n++;
	}
	d[n].addr = (uint64_t)(uintptr_t)&b->req_status;
	d[n].len = 1;
	d[n].flags = VIRTIO_DESC_F_WRITE;
	d[n].next = 0;

	av->ring[b->avail_idx % b->qsize] = 0;
	barrier(); /* descriptors and ring entry before the index */
	b->avail_idx++;
	av->idx = b->avail_idx;
	barrier();
	mmio_wr(b, VIRTIO_R_QUEUE_NOTIFY, 0);

	for (spins = 0; us->idx == b->used_idx; spins++) {
		if (spins >= POLL_LIMIT || (mmio_rd(b, VIRTIO_R_STATUS) & VIRTIO_ST_NEEDS_RESET)) {
			b->ready = false;
			return -EIO;
		}
		__asm__ volatile("pause" ::: "memory");
	}
	barrier(); /* the used entry after seeing the index */
	if (us->idx != (uint16_t)(b->used_idx + 1) || us->ring[b->used_idx % b->qsize].id != 0) {
		b->ready = false; /* more completions than requests: give up */
		return -EIO;
	}
	b->used_idx++;
	/* No interrupt is ever injected (we poll), so InterruptStatus is left
	 * alone: acknowledging it would cost two exits per request. */
	st = b->req_status;
	if (st == VIRTIO_S_OK)
		return 0;
	return st == VIRTIO_S_UNSUPP ? -EOPNOTSUPP : -EIO;
}

static int check_range(struct gblk *b, uint64_t sector, uint64_t nsect)
{
	if (!b->ready)
		return -ENODEV;
	if (sector > b->capacity || nsect > b->capacity - sector)
		return -ERANGE;
	return 0;
}

static int rw(struct gblk *b, uint32_t type, uint64_t sector, const volatile uint8_t *buf,
	      uint32_t nsect)
{
	const uint32_t max = INSTAR_BLK_MAX_REQ_BYTES / SECTOR;
	int r = check_range(b, sector, nsect);

	while (r == 0 && nsect) {
		uint32_t n = nsect < max ? nsect : max;

		r = submit(b, type, sector, buf, n * SECTOR, type == VIRTIO_T_IN);
		sector += n;
		buf += (uint64_t)n * SECTOR;
		nsect -= n;
	}
	return r;
}

int guest_blk_read(uint64_t sector, void *buf, uint32_t nsect)
{
	return rw(&gblk[0], VIRTIO_T_IN, sector, buf, nsect);
}

int guest_blk_write(uint64_t sector, const void *buf, uint32_t nsect)
{
	return rw(&gblk[0], VIRTIO_T_OUT, sector, buf, nsect);
}

/* A limit pair from the config (sectors, then segments), read the first
 * time it is needed: each read is an exit, and most runs neither discard nor
 * zero. A device that gives no room loses the feature. */
static uint32_t blk_limit(struct gblk *b, uint64_t feature, uint32_t cfg_off, uint32_t *cache)
{
	uint64_t v;

	if (*cache || !(b->features & feature))
		return *cache;
	v = config_rd64(b, cfg_off);
	*cache = (uint32_t)v;
	if (!*cache || !(uint32_t)(v >> 32))
		b->features &= ~feature;
	return *cache;
}

static int zero_like(struct gblk *b, uint32_t type, uint64_t feature, uint32_t cfg_off,
		     uint32_t *limit, uint64_t sector, uint64_t nsect)
{
	int r = check_range(b, sector, nsect);
	uint32_t max = r == 0 ? blk_limit(b, feature, cfg_off, limit) : 0;

	if (r == 0 && !(b->features & feature))
		return -EOPNOTSUPP;
	while (r == 0 && nsect) {
		uint32_t n = nsect < max ? (uint32_t)nsect : max;

		b->req_seg.sector = sector;
		b->req_seg.num = n;
		b->req_seg.flags = 0;
		r = submit(b, type, 0, &b->req_seg, sizeof(b->req_seg), false);
		sector += n;
		nsect -= n;
	}
	return r;
}

int guest_blk_write_zeroes(uint64_t sector, uint64_t nsect)
{
	struct gblk *b = &gblk[0];

	return zero_like(b, VIRTIO_T_WRITE_ZEROES, VIRTIO_F_BLK_WRITE_ZEROES,
			 VIRTIO_C_MAX_WZ_SECTORS, &b->max_wz, sector, nsect);
}

int guest_blk_discard(uint64_t sector, uint64_t nsect)
{
	struct gblk *b = &gblk[0];

	return zero_like(b, VIRTIO_T_DISCARD, VIRTIO_F_BLK_DISCARD, VIRTIO_C_MAX_DISCARD_SECTORS,
			 &b->max_discard, sector, nsect);
}

int guest_blk_flush(void)
{
	return submit(&gblk[0], VIRTIO_T_FLUSH, 0, 0, 0, false);
}

int guest_blk_dev_read(uint32_t dev, uint64_t sector, void *buf, uint32_t nsect)
{
	struct gblk *b = dev == 0 ? &gblk[0] : backing_dev(dev);

	return b ? rw(b, VIRTIO_T_IN, sector, buf, nsect) : -ENODEV;
}

uint64_t guest_blk_dev_capacity(uint32_t dev)
{
	struct gblk *b = dev == 0 ? &gblk[0] : backing_dev(dev);

	return b && b->ready ? b->capacity : 0;
}
