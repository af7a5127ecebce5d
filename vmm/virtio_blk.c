/* vmm/virtio_blk.c — host side: virtio-mmio v2 block device (one split queue)
 * over the image fd, every guest-controlled value checked here, writes staged
 * in the overlay. Written from the virtio 1.x specification. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byteorder.h"
#include "overlay.h"
#include "test_hooks.h"
#include "virtio_blk.h"
#include "virtio_mmio.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "virtio is little-endian, so is the host");

/* Register offsets and bits: shared/virtio_mmio.h. */
#define VENDOR_ID 0x54534e49u /* "INST" */

#define DEVICE_FEATURES                                                                            \
	(VIRTIO_F_VERSION_1 | VIRTIO_F_BLK_SEG_MAX | VIRTIO_F_BLK_FLUSH | VIRTIO_F_BLK_DISCARD |   \
	 VIRTIO_F_BLK_WRITE_ZEROES)
/* A read-only device (a backing file): no discard, no write-zeroes. */
#define DEVICE_FEATURES_RO                                                                         \
	(VIRTIO_F_VERSION_1 | VIRTIO_F_BLK_SEG_MAX | VIRTIO_F_BLK_FLUSH | VIRTIO_F_BLK_RO)

#define SECTOR 512u /* virtio-blk's unit (spec 5.2.6) */

/* virtio_blk_config offsets (spec 5.2.4) */
#define C_SEG_MAX 12
#define C_DISCARD_ALIGN 44
#define C_WZ_MAY_UNMAP 56
#define CONFIG_SIZE 60

/* One guest buffer, already checked against guest RAM. */
struct seg {
	uint8_t *p;
	uint64_t len;
};

struct chain {
	struct seg out[VMM_BLK_QUEUE_MAX]; /* device-readable, in order */
	struct seg in[VMM_BLK_QUEUE_MAX];  /* device-writable, without the status byte */
	unsigned nout, nin;
	uint64_t out_len, in_len;
	uint8_t *status;
};

struct blk_queue {
	uint32_t num;
	bool ready;
	uint64_t desc, driver, device; /* as written; checked when made ready */
	uint8_t *desc_h, *avail_h, *used_h;
	uint16_t last_avail, used_idx;
};

struct vmm_blk {
	struct vmm_guestmem mem;
	int fd;
	uint64_t file_size;
	uint64_t capacity; /* bytes, a multiple of SECTOR */
	uint32_t status, isr;
	uint32_t dev_feat_sel, drv_feat_sel, queue_sel;
	uint64_t driver_features;
	struct blk_queue q;
	struct vmm_overlay ovl;
	struct chain chain; /* scratch of the request being handled */
	bool unsynced;	    /* the commit left applied ops without an fdatasync */
	bool read_only;	    /* VIRTIO_BLK_F_RO: every write is refused */
	bool write_refused; /* a write, write-zeroes or discard came anyway */
	uint64_t features;  /* DEVICE_FEATURES or DEVICE_FEATURES_RO */
	int read_err;	    /* first failed pread: -errno, at read_err_off */
	uint64_t read_err_off;
	uint8_t config[CONFIG_SIZE];
};

static void set_needs_reset(struct vmm_blk *b)
{
	b->status |= VIRTIO_ST_NEEDS_RESET;
	b->isr |= VIRTIO_INT_CONFIG_CHANGE;
}

static void device_reset(struct vmm_blk *b)
{
	/* The overlay survives: requests already completed stay completed. */
	b->status = 0;
	b->isr = 0;
	b->dev_feat_sel = b->drv_feat_sel = b->queue_sel = 0;
	b->driver_features = 0;
	memset(&b->q, 0, sizeof(b->q));
}

int vmm_blk_create(struct vmm_blk **ret, const struct vmm_guestmem *mem,
		   const struct vmm_blk_opts *o)
{
	struct vmm_blk *b;
	uint64_t cap;

	if (!ret || !mem || !o)
		return -EINVAL;
	if (__builtin_add_overflow(o->capacity_bytes, SECTOR - 1, &cap))
		return -EOVERFLOW;
	cap -= cap % SECTOR;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->mem = *mem;
	b->fd = o->fd;
	b->file_size = o->file_size;
	b->capacity = cap;
	b->read_only = o->read_only;
	b->features = o->read_only ? DEVICE_FEATURES_RO : DEVICE_FEATURES;
	vmm_overlay_init(&b->ovl, o->overlay_limit ? o->overlay_limit : INSTAR_MAX_STAGED_DEFAULT,
			 VMM_BLK_OVERLAY_MAX_OPS);
	vmm_overlay_set_base(&b->ovl, o->file_size, o->prealloc_limit);

	put_le64(b->config + VIRTIO_C_CAPACITY, cap / SECTOR);
	put_le32(b->config + C_SEG_MAX, VMM_BLK_QUEUE_MAX - 2);
	put_le32(b->config + VIRTIO_C_MAX_DISCARD_SECTORS, VMM_BLK_MAX_ZERO_SECTORS);
	put_le32(b->config + VIRTIO_C_MAX_DISCARD_SEG, VMM_BLK_MAX_SEGS);
	put_le32(b->config + C_DISCARD_ALIGN, 1);
	put_le32(b->config + VIRTIO_C_MAX_WZ_SECTORS, VMM_BLK_MAX_ZERO_SECTORS);
	put_le32(b->config + VIRTIO_C_MAX_WZ_SEG, VMM_BLK_MAX_SEGS);
	b->config[C_WZ_MAY_UNMAP] = 0;
	device_reset(b);
	*ret = b;
	return 0;
}

void vmm_blk_destroy(struct vmm_blk *b)
{
	if (!b)
		return;
	vmm_overlay_fini(&b->ovl);
	free(b);
}

bool vmm_blk_overlay_exceeded(const struct vmm_blk *b)
{
	return b->ovl.exceeded;
}

bool vmm_blk_write_refused(const struct vmm_blk *b)
{
	return b->write_refused;
}

bool vmm_blk_needs_reset(const struct vmm_blk *b)
{
	return b->status & VIRTIO_ST_NEEDS_RESET;
}

/* ---- requests ---- */

/* Copy len bytes starting skip bytes into the gathered stream segs. */
static void gather(const struct seg *segs, unsigned n, uint64_t skip, uint8_t *dst, uint64_t len)
{
	unsigned i;

	for (i = 0; i < n && len; i++) {
		uint64_t take;

		if (skip >= segs[i].len) {
			skip -= segs[i].len;
			continue;
		}
		take = segs[i].len - skip;
		if (take > len)
			take = len;
		memcpy(dst, segs[i].p + skip, take);
		dst += take;
		len -= take;
		skip = 0;
	}
}

/* Byte range of a sector-addressed request, or -EIO if it leaves the device. */
static int sector_range(const struct vmm_blk *b, uint64_t sector, uint64_t len, uint64_t *ret_off)
{
	uint64_t off, end;

	if (__builtin_mul_overflow(sector, SECTOR, &off) ||
	    __builtin_add_overflow(off, len, &end) || end > b->capacity)
		return -EIO;
	*ret_off = off;
	return 0;
}

/* File contents (zeros past file_size) with the staged ops on top. */
static int blk_read(struct vmm_blk *b, uint64_t off, uint8_t *p, uint64_t len)
{
	uint64_t done = 0, base = 0;

	if (off < b->file_size)
		base = b->file_size - off < len ? b->file_size - off : len;
	while (done < base) {
		ssize_t n = pread(b->fd, p + done, base - done, (off_t)(off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (!b->read_err) {
				b->read_err = -errno;
				b->read_err_off = off + done;
			}
			return -errno;
		}
		if (n == 0)
			break; /* the file shrank under us: the rest reads as zeros */
		done += (uint64_t)n;
	}
	memset(p + done, 0, len - done);
	vmm_overlay_read(&b->ovl, off, p, len);
	return 0;
}

static uint8_t req_in(struct vmm_blk *b, const struct chain *c, uint64_t sector, uint32_t *used)
{
	uint64_t off;
	unsigned i;

	if (c->out_len != VIRTIO_REQ_HDR_SIZE || c->in_len % SECTOR ||
	    c->in_len > INSTAR_BLK_MAX_REQ_BYTES || sector_range(b, sector, c->in_len, &off) < 0)
		return VIRTIO_S_IOERR;
	for (i = 0; i < c->nin; i++) {
		if (blk_read(b, off, c->in[i].p, c->in[i].len) < 0)
			return VIRTIO_S_IOERR;
		off += c->in[i].len;
	}
	*used += (uint32_t)c->in_len;
	return VIRTIO_S_OK;
}

static uint8_t req_out(struct vmm_blk *b, const struct chain *c, uint64_t sector)
{
	uint64_t len = c->out_len - VIRTIO_REQ_HDR_SIZE, off;
	uint8_t *data;

	if (c->in_len || len % SECTOR || len > INSTAR_BLK_MAX_REQ_BYTES ||
	    sector_range(b, sector, len, &off) < 0)
		return VIRTIO_S_IOERR;
	if (len == 0)
		return VIRTIO_S_OK;
	data = malloc(len);
	if (!data)
		return VIRTIO_S_IOERR;
	gather(c->out, c->nout, VIRTIO_REQ_HDR_SIZE, data, len);
	if (vmm_overlay_write(&b->ovl, off, data, len) < 0) {
		free(data);
		return VIRTIO_S_IOERR;
	}
	return VIRTIO_S_OK;
}

static uint8_t req_zero(struct vmm_blk *b, const struct chain *c, uint32_t type)
{
	uint8_t raw[VMM_BLK_MAX_SEGS * VIRTIO_SEG_SIZE];
	uint64_t off[VMM_BLK_MAX_SEGS], len[VMM_BLK_MAX_SEGS];
	uint64_t dlen = c->out_len - VIRTIO_REQ_HDR_SIZE, nseg = dlen / VIRTIO_SEG_SIZE, i;
	uint32_t allowed = type == VIRTIO_T_WRITE_ZEROES ? VIRTIO_WZ_F_UNMAP : 0;

	if (c->in_len || dlen == 0 || dlen % VIRTIO_SEG_SIZE || nseg > VMM_BLK_MAX_SEGS)
		return VIRTIO_S_IOERR;
	gather(c->out, c->nout, VIRTIO_REQ_HDR_SIZE, raw, dlen);
	/* Check every segment before staging any. */
	for (i = 0; i < nseg; i++) {
		const uint8_t *s = raw + i * VIRTIO_SEG_SIZE;
		uint32_t num = get_le32(s + 8), flags = get_le32(s + 12);

		if (flags & ~allowed)
			return VIRTIO_S_UNSUPP;
		len[i] = (uint64_t)num * SECTOR;
		if (num > VMM_BLK_MAX_ZERO_SECTORS ||
		    sector_range(b, get_le64(s), len[i], &off[i]) < 0)
			return VIRTIO_S_IOERR;
	}
	for (i = 0; i < nseg; i++) {
		int r = type == VIRTIO_T_WRITE_ZEROES
			    ? vmm_overlay_zero(&b->ovl, off[i], len[i])
			    : vmm_overlay_discard(&b->ovl, off[i], len[i]);
		if (r < 0)
			return VIRTIO_S_IOERR;
	}
	return VIRTIO_S_OK;
}

static uint8_t req_get_id(const struct chain *c, uint32_t *used)
{
	uint8_t id[VIRTIO_ID_BYTES] = "instar";
	uint64_t left = c->in_len < VIRTIO_ID_BYTES ? c->in_len : VIRTIO_ID_BYTES;
	const uint8_t *src = id;
	unsigned i;

	if (c->out_len != VIRTIO_REQ_HDR_SIZE)
		return VIRTIO_S_IOERR;
	*used += (uint32_t)left;
	for (i = 0; i < c->nin && left; i++) {
		uint64_t take = c->in[i].len < left ? c->in[i].len : left;

		memcpy(c->in[i].p, src, take);
		src += take;
		left -= take;
	}
	return VIRTIO_S_OK;
}

/* Walk and check one descriptor chain. -EPROTO when it cannot even be
 * answered (bad index, loop or overlong chain, indirect descriptor, no usable
 * status byte): the device then needs a reset. Otherwise 0, with *ret_ok
 * false if a buffer was outside guest RAM or in the wrong direction. */
static int chain_parse(struct vmm_blk *b, uint16_t head, struct chain *c, bool *ret_ok)
{
	uint64_t addr[VMM_BLK_QUEUE_MAX];
	uint32_t len[VMM_BLK_QUEUE_MAX];
	uint16_t flags[VMM_BLK_QUEUE_MAX];
	unsigned n = 0, i;
	uint32_t idx = head;
	bool ok = true, seen_write = false;
	uint8_t *st;

	for (;;) {
		const uint8_t *d;

		/* A chain longer than the queue must revisit a slot: a loop. */
		if (idx >= b->q.num || n >= b->q.num)
			return -EPROTO;
		d = b->q.desc_h + (uint64_t)idx * VIRTIO_DESC_SIZE;
		addr[n] = get_le64(d);
		len[n] = get_le32(d + 8);
		flags[n] = get_le16(d + 12);
		if (flags[n] & VIRTIO_DESC_F_INDIRECT)
			return -EPROTO; /* not negotiated */
		n++;
		if (!(flags[n - 1] & VIRTIO_DESC_F_NEXT))
			break;
		idx = get_le16(d + 14);
	}

	/* The status byte is the last byte of the last, device-writable buffer. */
	st = vmm_gpa(&b->mem, addr[n - 1], len[n - 1]);
	if (!(flags[n - 1] & VIRTIO_DESC_F_WRITE) || len[n - 1] == 0 || !st)
		return -EPROTO;
	c->status = st + len[n - 1] - 1;

	c->nout = c->nin = 0;
	c->out_len = c->in_len = 0;
	for (i = 0; i < n; i++) {
		uint64_t l = i == n - 1 ? len[i] - 1u : len[i];
		uint8_t *p = vmm_gpa(&b->mem, addr[i], len[i]);

		if (!p) {
			ok = false;
			continue;
		}
		if (flags[i] & VIRTIO_DESC_F_WRITE) {
			seen_write = true;
			c->in[c->nin++] = (struct seg){.p = p, .len = l};
			c->in_len += l;
		} else {
			/* Readable buffers must all come first (spec 2.7.4.2). */
			if (seen_write)
				ok = false;
			c->out[c->nout++] = (struct seg){.p = p, .len = l};
			c->out_len += l;
		}
	}
	*ret_ok = ok;
	return 0;
}

/* One request; returns the byte count for the used ring or -EPROTO. */
static int handle_chain(struct vmm_blk *b, uint16_t head, uint32_t *ret_used)
{
	struct chain *c = &b->chain;
	uint8_t hdr[VIRTIO_REQ_HDR_SIZE], status = VIRTIO_S_IOERR;
	uint32_t used = 1; /* the status byte */
	bool ok;
	int r;

	r = chain_parse(b, head, c, &ok);
	if (r < 0)
		return r;
	if (!ok || c->out_len < VIRTIO_REQ_HDR_SIZE)
		goto done;
	gather(c->out, c->nout, 0, hdr, VIRTIO_REQ_HDR_SIZE);
	if (b->read_only) {
		uint32_t t = get_le32(hdr);

		if (t == VIRTIO_T_OUT || t == VIRTIO_T_DISCARD || t == VIRTIO_T_WRITE_ZEROES) {
			/* nothing is staged; the run is refused (vmm_blk_write_refused) */
			b->write_refused = true;
			status = VIRTIO_S_IOERR;
			goto done;
		}
		if (t == VIRTIO_T_FLUSH) {
			status = c->out_len == VIRTIO_REQ_HDR_SIZE && c->in_len == 0
				     ? VIRTIO_S_OK
				     : VIRTIO_S_IOERR;
			goto done;
		}
	}

	switch (get_le32(hdr)) {
	case VIRTIO_T_IN:
		status = req_in(b, c, get_le64(hdr + 8), &used);
		break;
	case VIRTIO_T_OUT:
		status = req_out(b, c, get_le64(hdr + 8));
		break;
	case VIRTIO_T_FLUSH:
		if (c->out_len == VIRTIO_REQ_HDR_SIZE && c->in_len == 0)
			status = vmm_overlay_flush(&b->ovl) < 0 ? VIRTIO_S_IOERR : VIRTIO_S_OK;
		break;
	case VIRTIO_T_GET_ID:
		status = req_get_id(c, &used);
		break;
	case VIRTIO_T_DISCARD:
	case VIRTIO_T_WRITE_ZEROES: {
		uint64_t f = get_le32(hdr) == VIRTIO_T_DISCARD ? VIRTIO_F_BLK_DISCARD
							       : VIRTIO_F_BLK_WRITE_ZEROES;

		status = b->driver_features & f ? req_zero(b, c, get_le32(hdr)) : VIRTIO_S_UNSUPP;
		break;
	}
	default:
		status = VIRTIO_S_UNSUPP;
		break;
	}
done:
	*c->status = status;
	*ret_used = used;
	return 0;
}

int vmm_blk_process_queue(struct vmm_blk *b)
{
	struct blk_queue *q = &b->q;
	uint16_t avail_idx;

	if ((b->status & (VIRTIO_ST_DRIVER_OK | VIRTIO_ST_FEATURES_OK | VIRTIO_ST_NEEDS_RESET)) !=
		(VIRTIO_ST_DRIVER_OK | VIRTIO_ST_FEATURES_OK) ||
	    !q->ready)
		return 0;
	avail_idx = get_le16(q->avail_h + 2);
	/* The driver can be at most a queue's worth ahead of us. */
	if ((uint16_t)(avail_idx - q->last_avail) > q->num) {
		set_needs_reset(b);
		return -EPROTO;
	}
	while (q->last_avail != avail_idx) {
		uint16_t head = get_le16(q->avail_h + 4 + 2u * (q->last_avail % q->num));
		uint8_t *u;
		uint32_t used = 0;
		int r;

		r = handle_chain(b, head, &used);
		if (r < 0) {
			set_needs_reset(b);
			return -EPROTO;
		}
		u = q->used_h + 4 + 8u * (q->used_idx % q->num);
		put_le32(u, head);
		put_le32(u + 4, used);
		q->used_idx++;
		put_le16(q->used_h + 2, q->used_idx);
		q->last_avail++;
		b->isr |= VIRTIO_INT_USED_BUFFER;
	}
	return 0;
}

/* ---- registers ---- */

/* Ring addresses are checked once, when the driver makes the queue ready;
 * the host pointers stay valid since guest RAM never moves. */
static bool queue_enable(struct vmm_blk *b)
{
	struct blk_queue *q = &b->q;
	uint64_t n = q->num;

	if (!(b->status & VIRTIO_ST_FEATURES_OK) || n == 0 || n > VMM_BLK_QUEUE_MAX ||
	    (n & (n - 1)) || q->desc % 16 || q->driver % 2 || q->device % 4)
		return false;
	q->desc_h = vmm_gpa(&b->mem, q->desc, n * VIRTIO_DESC_SIZE);
	q->avail_h = vmm_gpa(&b->mem, q->driver, 6 + 2 * n);
	q->used_h = vmm_gpa(&b->mem, q->device, 6 + 8 * n);
	if (!q->desc_h || !q->avail_h || !q->used_h)
		return false;
	q->last_avail = get_le16(q->avail_h + 2);
	q->used_idx = get_le16(q->used_h + 2);
	q->ready = true;
	return true;
}

static void status_write(struct vmm_blk *b, uint32_t v)
{
	uint32_t keep = b->status & VIRTIO_ST_NEEDS_RESET;

	if (v == 0) {
		device_reset(b);
		return;
	}
	v &= VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER | VIRTIO_ST_DRIVER_OK |
	     VIRTIO_ST_FEATURES_OK | VIRTIO_ST_FAILED;
	/* Only a reset may clear bits. */
	if ((b->status & ~VIRTIO_ST_NEEDS_RESET) & ~v)
		return;
	if ((v & VIRTIO_ST_FEATURES_OK) && !(b->status & VIRTIO_ST_FEATURES_OK)) {
		if ((b->driver_features & ~b->features) ||
		    !(b->driver_features & VIRTIO_F_VERSION_1))
			v &= ~VIRTIO_ST_FEATURES_OK;
	}
	if ((v & VIRTIO_ST_DRIVER_OK) && !(v & VIRTIO_ST_FEATURES_OK))
		v &= ~VIRTIO_ST_DRIVER_OK;
	b->status = v | keep;
}

static uint32_t reg_read(struct vmm_blk *b, uint64_t off)
{
	switch (off) {
	case VIRTIO_R_MAGIC:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_R_VERSION:
		return VIRTIO_MMIO_VERSION;
	case VIRTIO_R_DEVICE_ID:
		return VIRTIO_DEVICE_ID_BLOCK;
	case VIRTIO_R_VENDOR_ID:
		return VENDOR_ID;
	case VIRTIO_R_DEVICE_FEATURES:
		if (b->dev_feat_sel > 1)
			return 0;
		return (uint32_t)(b->features >> (32 * b->dev_feat_sel));
	case VIRTIO_R_QUEUE_NUM_MAX:
		return b->queue_sel == 0 ? VMM_BLK_QUEUE_MAX : 0;
	case VIRTIO_R_QUEUE_READY:
		return b->queue_sel == 0 && b->q.ready;
	case VIRTIO_R_INTERRUPT_STATUS:
		return b->isr;
	case VIRTIO_R_STATUS:
		return b->status;
	case VIRTIO_R_CONFIG_GENERATION:
		return 0; /* the config never changes */
	default:
		return 0;
	}
}

static void set_half(uint64_t *v, bool high, uint32_t x)
{
	if (high)
		*v = (*v & 0xffffffffull) | ((uint64_t)x << 32);
	else
		*v = (*v & ~0xffffffffull) | x;
}

static void reg_write(struct vmm_blk *b, uint64_t off, uint32_t v)
{
	struct blk_queue *q = &b->q;
	bool qcfg = b->queue_sel == 0 && !q->ready;

	switch (off) {
	case VIRTIO_R_DEVICE_FEATURES_SEL:
		b->dev_feat_sel = v;
		break;
	case VIRTIO_R_DRIVER_FEATURES:
		/* Features are fixed once FEATURES_OK was accepted. */
		if (b->drv_feat_sel <= 1 && !(b->status & VIRTIO_ST_FEATURES_OK))
			set_half(&b->driver_features, b->drv_feat_sel == 1, v);
		break;
	case VIRTIO_R_DRIVER_FEATURES_SEL:
		b->drv_feat_sel = v;
		break;
	case VIRTIO_R_QUEUE_SEL:
		b->queue_sel = v;
		break;
	case VIRTIO_R_QUEUE_NUM:
		if (qcfg)
			q->num = v;
		break;
	case VIRTIO_R_QUEUE_DESC_LOW:
	case VIRTIO_R_QUEUE_DESC_HIGH:
		if (qcfg)
			set_half(&q->desc, off == VIRTIO_R_QUEUE_DESC_HIGH, v);
		break;
	case VIRTIO_R_QUEUE_DRIVER_LOW:
	case VIRTIO_R_QUEUE_DRIVER_HIGH:
		if (qcfg)
			set_half(&q->driver, off == VIRTIO_R_QUEUE_DRIVER_HIGH, v);
		break;
	case VIRTIO_R_QUEUE_DEVICE_LOW:
	case VIRTIO_R_QUEUE_DEVICE_HIGH:
		if (qcfg)
			set_half(&q->device, off == VIRTIO_R_QUEUE_DEVICE_HIGH, v);
		break;
	case VIRTIO_R_QUEUE_READY:
		if (b->queue_sel != 0)
			break;
		if (v == 0) {
			q->ready = false;
		} else if (!q->ready && !queue_enable(b)) {
			set_needs_reset(b);
		}
		break;
	case VIRTIO_R_QUEUE_NOTIFY:
		if (v == 0)
			vmm_blk_process_queue(b);
		break;
	case VIRTIO_R_INTERRUPT_ACK:
		b->isr &= ~v;
		break;
	case VIRTIO_R_STATUS:
		status_write(b, v);
		break;
	default:
		break;
	}
}

void vmm_blk_mmio_read(struct vmm_blk *b, uint64_t off, void *data, uint32_t len)
{
	if (!data || len == 0)
		return;
	memset(data, 0, len);
	if (len > 8)
		return;
	if (off < VIRTIO_R_CONFIG) {
		uint32_t v;

		if (len != 4 || off % 4)
			return;
		v = reg_read(b, off);
		memcpy(data, &v, 4);
		return;
	}
	if (off - VIRTIO_R_CONFIG >= CONFIG_SIZE || len > CONFIG_SIZE - (off - VIRTIO_R_CONFIG))
		return;
	memcpy(data, b->config + (off - VIRTIO_R_CONFIG), len);
}

size_t vmm_blk_coalescable(const struct vmm_blk_mmio_range **ret)
{
	static const struct vmm_blk_mmio_range ranges[] = {
	    {0, VIRTIO_R_QUEUE_NOTIFY},
	    {VIRTIO_R_QUEUE_NOTIFY + 4, VIRTIO_R_CONFIG - VIRTIO_R_QUEUE_NOTIFY - 4},
	};

	*ret = ranges;
	return sizeof(ranges) / sizeof(ranges[0]);
}

void vmm_blk_mmio_write(struct vmm_blk *b, uint64_t off, const void *data, uint32_t len)
{
	uint32_t v;

	/* The config space is read-only (no writeback toggle offered). */
	if (!data || len != 4 || off % 4 || off >= VIRTIO_R_CONFIG)
		return;
	memcpy(&v, data, 4);
	reg_write(b, off, v);
}

int vmm_blk_commit(struct vmm_blk *b, struct vmm_ovl_where *ret_where)
{
	b->unsynced = false;
	*ret_where = (struct vmm_ovl_where){.what = "staging", .off = 0, .len = 0};
	if (b->ovl.exceeded)
		return -ENOSPC;
	return vmm_overlay_commit(&b->ovl, b->fd, vmm_hook_commit_stop_after(), &b->unsynced,
				  ret_where);
}

int vmm_blk_rollback(struct vmm_blk *b)
{
	return vmm_overlay_rollback(&b->ovl, b->fd);
}

int vmm_blk_reserve(struct vmm_blk *b, uint64_t final_size, struct vmm_ovl_where *ret_where)
{
	return vmm_overlay_reserve(&b->ovl, b->fd, final_size, ret_where);
}

int vmm_blk_view_read(struct vmm_blk *b, uint64_t off, void *buf, uint64_t len)
{
	uint64_t end;

	if (__builtin_add_overflow(off, len, &end))
		return -EINVAL;
	return blk_read(b, off, buf, len);
}

void vmm_blk_staged(const struct vmm_blk *b, struct vmm_blk_staged *ret)
{
	*ret = (struct vmm_blk_staged){
	    .write_end = b->ovl.write_end,
	    .eof = b->ovl.eof,
	    .data_bytes = b->ovl.data_bytes,
	    .prealloc_bytes = b->ovl.prealloc_bytes,
	    .nops = b->ovl.nops,
	    .nflush = b->ovl.nflush,
	};
}

int vmm_blk_read_error(const struct vmm_blk *b, uint64_t *ret_off)
{
	*ret_off = b->read_err_off;
	return b->read_err;
}

bool vmm_blk_commit_unsynced(const struct vmm_blk *b)
{
	return b->unsynced;
}
