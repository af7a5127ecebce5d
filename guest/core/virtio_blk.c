/* guest/core/virtio_blk.c — guest core: polled virtio-mmio block driver. The
 * host completes a request during the QueueNotify exit, so every request is
 * synchronous and the queue needs only one chain of three descriptors. */
#include <errno.h>
#include <stdbool.h>

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

/* Spec alignment: descriptors 16, driver area 2, device area 4. */
static struct vq_desc vq_desc[QSIZE] __attribute__((aligned(16)));
static struct vq_avail vq_avail __attribute__((aligned(2)));
static struct vq_used vq_used __attribute__((aligned(4)));
static struct blk_req_hdr req_hdr __attribute__((aligned(16)));
static struct blk_zero_seg req_seg __attribute__((aligned(16)));
static volatile uint8_t req_status;

static struct {
	volatile uint8_t *mmio;
	bool ready;
	uint32_t qsize;
	uint16_t avail_idx, used_idx;
	uint64_t features;
	uint64_t capacity;
	uint32_t max_discard, max_wz;
} blk;

#define barrier() __asm__ volatile("" ::: "memory")

static uint32_t mmio_rd(uint32_t off)
{
	return *(volatile uint32_t *)(blk.mmio + off);
}

static void mmio_wr(uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)(blk.mmio + off) = v;
}

static void set_addr(uint32_t lo_reg, const volatile void *p)
{
	uint64_t a = (uint64_t)(uintptr_t)p; /* identity-mapped: pointer == gpa */

	mmio_wr(lo_reg, (uint32_t)a);
	mmio_wr(lo_reg + 4, (uint32_t)(a >> 32));
}

_Static_assert(VIRTIO_C_MAX_DISCARD_SEG == VIRTIO_C_MAX_DISCARD_SECTORS + 4 &&
		   VIRTIO_C_MAX_WZ_SEG == VIRTIO_C_MAX_WZ_SECTORS + 4,
	       "config pairs read as one 8-byte access");

static uint64_t config_rd64(uint32_t off)
{
	return *(volatile uint64_t *)(blk.mmio + VIRTIO_R_CONFIG + off);
}

/* The device is the host's own (same ABI version), so the probing a general
 * driver does (magic, version, device id, offered features, queue size,
 * read-backs after each step, config generation) is skipped: every MMIO read
 * is a VM exit (~20 us on hosts that emulate them), while the host queues
 * these register writes without one. A single status read at the end tells
 * whether all of it was accepted: a refused feature set leaves FEATURES_OK
 * and DRIVER_OK clear, a bad queue sets NEEDS_RESET. */
int guest_blk_init(uint64_t mmio_base)
{
	const uint64_t want = VIRTIO_F_VERSION_1 | VIRTIO_F_BLK_FLUSH | VIRTIO_F_BLK_DISCARD |
			      VIRTIO_F_BLK_WRITE_ZEROES;
	uint32_t status, st;

	blk.ready = false;
	blk.mmio = (volatile uint8_t *)(uintptr_t)mmio_base;

	mmio_wr(VIRTIO_R_STATUS, 0);
	mmio_wr(VIRTIO_R_STATUS, VIRTIO_ST_ACKNOWLEDGE);
	mmio_wr(VIRTIO_R_STATUS, VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER);
	blk.features = want;
	mmio_wr(VIRTIO_R_DRIVER_FEATURES_SEL, 0);
	mmio_wr(VIRTIO_R_DRIVER_FEATURES, (uint32_t)blk.features);
	mmio_wr(VIRTIO_R_DRIVER_FEATURES_SEL, 1);
	mmio_wr(VIRTIO_R_DRIVER_FEATURES, (uint32_t)(blk.features >> 32));
	status = VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK;
	mmio_wr(VIRTIO_R_STATUS, status);

	blk.qsize = QSIZE; /* the host's QueueNumMax is far larger */
	memset(vq_desc, 0, sizeof(vq_desc));
	memset(&vq_avail, 0, sizeof(vq_avail));
	memset(&vq_used, 0, sizeof(vq_used));
	blk.avail_idx = blk.used_idx = 0;
	mmio_wr(VIRTIO_R_QUEUE_SEL, 0);
	mmio_wr(VIRTIO_R_QUEUE_NUM, blk.qsize);
	set_addr(VIRTIO_R_QUEUE_DESC_LOW, vq_desc);
	set_addr(VIRTIO_R_QUEUE_DRIVER_LOW, &vq_avail);
	set_addr(VIRTIO_R_QUEUE_DEVICE_LOW, &vq_used);
	barrier();
	mmio_wr(VIRTIO_R_QUEUE_READY, 1);
	mmio_wr(VIRTIO_R_STATUS, status | VIRTIO_ST_DRIVER_OK);

	st = mmio_rd(VIRTIO_R_STATUS);
	if ((st & (VIRTIO_ST_DRIVER_OK | VIRTIO_ST_NEEDS_RESET)) != VIRTIO_ST_DRIVER_OK)
		goto fail;
	/* The config never changes (generation 0): 8-byte reads, the discard
	 * and write-zeroes limits only on first use (blk_limit()). */
	blk.capacity = config_rd64(VIRTIO_C_CAPACITY);
	blk.max_discard = blk.max_wz = 0;
	blk.ready = true;
	return 0;
fail:
	mmio_wr(VIRTIO_R_STATUS, st | VIRTIO_ST_FAILED);
	return -EIO;
}

uint64_t guest_blk_capacity(void)
{
	return blk.ready ? blk.capacity : 0;
}

/* Sends the chain hdr -> [data] -> status and waits for its completion. */
static int submit(uint32_t type, uint64_t sector, const volatile void *data, uint32_t len,
		  bool device_writes)
{
	volatile struct vq_desc *d = vq_desc;
	volatile struct vq_avail *av = &vq_avail;
	volatile struct vq_used *us = &vq_used;
	uint32_t n = 0, spins;
	uint8_t st;

	if (!blk.ready)
		return -ENODEV;
	req_hdr.type = type;
	req_hdr.reserved = 0;
	req_hdr.sector = sector;
	req_status = 0xff; /* a device that never answers is not "OK" */

	d[n].addr = (uint64_t)(uintptr_t)&req_hdr;
	d[n].len = sizeof(req_hdr);
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
	d[n].addr = (uint64_t)(uintptr_t)&req_status;
	d[n].len = 1;
	d[n].flags = VIRTIO_DESC_F_WRITE;
	d[n].next = 0;

	av->ring[blk.avail_idx % blk.qsize] = 0;
	barrier(); /* descriptors and ring entry before the index */
	blk.avail_idx++;
	av->idx = blk.avail_idx;
	barrier();
	mmio_wr(VIRTIO_R_QUEUE_NOTIFY, 0);

	for (spins = 0; us->idx == blk.used_idx; spins++) {
		if (spins >= POLL_LIMIT || (mmio_rd(VIRTIO_R_STATUS) & VIRTIO_ST_NEEDS_RESET)) {
			blk.ready = false;
			return -EIO;
		}
		__asm__ volatile("pause" ::: "memory");
	}
	barrier(); /* the used entry after seeing the index */
	if (us->idx != (uint16_t)(blk.used_idx + 1) || us->ring[blk.used_idx % blk.qsize].id != 0) {
		blk.ready = false; /* more completions than requests: give up */
		return -EIO;
	}
	blk.used_idx++;
	/* No interrupt is ever injected (we poll), so InterruptStatus is left
	 * alone: acknowledging it would cost two exits per request. */
	st = req_status;
	if (st == VIRTIO_S_OK)
		return 0;
	return st == VIRTIO_S_UNSUPP ? -EOPNOTSUPP : -EIO;
}

static int check_range(uint64_t sector, uint64_t nsect)
{
	if (!blk.ready)
		return -ENODEV;
	if (sector > blk.capacity || nsect > blk.capacity - sector)
		return -ERANGE;
	return 0;
}

static int rw(uint32_t type, uint64_t sector, const volatile uint8_t *buf, uint32_t nsect)
{
	const uint32_t max = INSTAR_BLK_MAX_REQ_BYTES / SECTOR;
	int r = check_range(sector, nsect);

	while (r == 0 && nsect) {
		uint32_t n = nsect < max ? nsect : max;

		r = submit(type, sector, buf, n * SECTOR, type == VIRTIO_T_IN);
		sector += n;
		buf += (uint64_t)n * SECTOR;
		nsect -= n;
	}
	return r;
}

int guest_blk_read(uint64_t sector, void *buf, uint32_t nsect)
{
	return rw(VIRTIO_T_IN, sector, buf, nsect);
}

int guest_blk_write(uint64_t sector, const void *buf, uint32_t nsect)
{
	return rw(VIRTIO_T_OUT, sector, buf, nsect);
}

/* A limit pair from the config (sectors, then segments), read the first
 * time it is needed: each read is an exit, and most runs neither discard nor
 * zero. A device that gives no room loses the feature. */
static uint32_t blk_limit(uint64_t feature, uint32_t cfg_off, uint32_t *cache)
{
	uint64_t v;

	if (*cache || !(blk.features & feature))
		return *cache;
	v = config_rd64(cfg_off);
	*cache = (uint32_t)v;
	if (!*cache || !(uint32_t)(v >> 32))
		blk.features &= ~feature;
	return *cache;
}

static int zero_like(uint32_t type, uint64_t feature, uint32_t cfg_off, uint32_t *limit,
		     uint64_t sector, uint64_t nsect)
{
	int r = check_range(sector, nsect);
	uint32_t max = r == 0 ? blk_limit(feature, cfg_off, limit) : 0;

	if (r == 0 && !(blk.features & feature))
		return -EOPNOTSUPP;
	while (r == 0 && nsect) {
		uint32_t n = nsect < max ? (uint32_t)nsect : max;

		req_seg.sector = sector;
		req_seg.num = n;
		req_seg.flags = 0;
		r = submit(type, 0, &req_seg, sizeof(req_seg), false);
		sector += n;
		nsect -= n;
	}
	return r;
}

int guest_blk_write_zeroes(uint64_t sector, uint64_t nsect)
{
	return zero_like(VIRTIO_T_WRITE_ZEROES, VIRTIO_F_BLK_WRITE_ZEROES, VIRTIO_C_MAX_WZ_SECTORS,
			 &blk.max_wz, sector, nsect);
}

int guest_blk_discard(uint64_t sector, uint64_t nsect)
{
	return zero_like(VIRTIO_T_DISCARD, VIRTIO_F_BLK_DISCARD, VIRTIO_C_MAX_DISCARD_SECTORS,
			 &blk.max_discard, sector, nsect);
}

int guest_blk_flush(void)
{
	return submit(VIRTIO_T_FLUSH, 0, 0, 0, false);
}
