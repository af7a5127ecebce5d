/* guest/ops/resize/resize.c — the resize operation: reads its config, runs the
 * format's planner over the block device and applies each planned op at once
 * through the call table; the host stages them and commits only on success. */
#include <errno.h>

#include "abi.h"
#include "backing.h"
#include "lib.h"
#include "plan.h"

#define SECTOR 512u
#define BOUNCE_BYTES (64u << 10) /* sector-aligned staging for unaligned I/O */
#define CHUNK_SECTORS (BOUNCE_BYTES / SECTOR)

struct guest_resize {
	const struct instar_calltab *ct;
	uint32_t dev;		/* 0: the image; 1..: a read-only backing device */
	uint8_t *bounce;	/* BOUNCE_BYTES */
	uint8_t sector[SECTOR]; /* edge sector for read-modify-write */
};

int _start(const struct instar_calltab *ct) __attribute__((section(".text.entry")));

static struct guest_resize guest_rs;
static struct guest_resize guest_bdev[INSTAR_BACKING_MAX_DEVS];
static struct plan_backing guest_backing;
static uint8_t guest_bounce[BOUNCE_BYTES] __attribute__((aligned(4096)));

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* plan_io.read: any offset and length, through whole-sector reads. */
static int guest_resize_read(void *ctx, uint64_t off, void *buf, uint32_t len)
{
	struct guest_resize *g = ctx;
	uint8_t *dst = buf;

	while (len) {
		uint64_t sector = off / SECTOR;
		uint32_t skip = (uint32_t)(off % SECTOR);
		uint32_t n = (uint32_t)min_u64(len, BOUNCE_BYTES - skip);
		uint32_t nsect = (skip + n + SECTOR - 1) / SECTOR;
		int r;

		if (skip == 0 && n % SECTOR == 0) {
			r = g->dev ? g->ct->read_dev_sectors(g->dev, sector, dst, nsect)
				   : g->ct->read_sectors(sector, dst, nsect);
			if (r)
				return r;
		} else {
			r = g->dev ? g->ct->read_dev_sectors(g->dev, sector, g->bounce, nsect)
				   : g->ct->read_sectors(sector, g->bounce, nsect);
			if (r)
				return r;
			memcpy(dst, g->bounce + skip, n);
		}
		dst += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* Replaces [skip, skip+n) of one sector with data (or zeros when data is NULL). */
static int guest_resize_rmw(struct guest_resize *g, uint64_t sector, uint32_t skip, uint32_t n,
			    const uint8_t *data)
{
	int r = g->ct->read_sectors(sector, g->sector, 1);

	if (r)
		return r;
	if (data)
		memcpy(g->sector + skip, data, n);
	else
		memset(g->sector + skip, 0, n);
	return g->ct->write_sectors(sector, g->sector, 1);
}

/* Writes (data) or zeroes (data NULL) [off, off+len): partial edge sectors
 * by read-modify-write, whole sectors directly. */
static int guest_resize_span(struct guest_resize *g, uint64_t off, uint64_t len,
			     const uint8_t *data)
{
	int r;

	while (len) {
		uint64_t sector = off / SECTOR;
		uint32_t skip = (uint32_t)(off % SECTOR);
		uint64_t n;

		if (skip || len < SECTOR) {
			n = min_u64(len, SECTOR - skip);
			r = guest_resize_rmw(g, sector, skip, (uint32_t)n, data);
		} else if (data) {
			uint64_t nsect = min_u64(len / SECTOR, CHUNK_SECTORS);

			n = nsect * SECTOR;
			r = g->ct->write_sectors(sector, data, (uint32_t)nsect);
		} else {
			uint64_t nsect = len / SECTOR;

			n = nsect * SECTOR;
			r = g->ct->write_zeroes(sector, nsect);
		}
		if (r)
			return r;
		off += n;
		len -= n;
		if (data)
			data += n;
	}
	return 0;
}

static int guest_resize_sink(void *ctx, const struct plan_op *op)
{
	struct guest_resize *g = ctx;
	uint64_t first, end;

	switch (op->kind) {
	case PLAN_OP_WRITE:
		return guest_resize_span(g, op->off, op->len, op->data);
	case PLAN_OP_ZERO:
		return guest_resize_span(g, op->off, op->len, NULL);
	case PLAN_OP_DISCARD:
		/* Only whole sectors inside the range may be dropped. */
		first = (op->off + SECTOR - 1) / SECTOR;
		end = (op->off + op->len) / SECTOR;
		return end > first ? g->ct->discard(first, end - first) : 0;
	case PLAN_OP_FLUSH:
		return g->ct->flush();
	default:
		return -EINVAL;
	}
}

static int guest_resize_fail(const struct instar_calltab *ct, struct instar_resize_result *res,
			     uint32_t err, const char *msg)
{
	res->error = err;
	plan_set_detail(res, msg);
	return ct->send_result(res, sizeof(*res));
}

int _start(const struct instar_calltab *ct)
{
	struct instar_resize_result res;
	const struct instar_resize_config *cfg;
	struct plan_scratch scratch;
	struct plan_opts opts;
	struct plan_io io;
	struct plan plan;
	uint32_t cfg_len = 0;
	int r;

	memset(&res, 0, sizeof(res));
	if (ct->magic != INSTAR_CALLTAB_MAGIC || ct->version < INSTAR_CALLTAB_VERSION ||
	    ct->size < sizeof(*ct))
		return -EINVAL; /* no way to report: the host sees no result */
	cfg = ct->get_config(&cfg_len);
	if (cfg_len != sizeof(*cfg) || cfg->magic != INSTAR_RESIZE_MAGIC ||
	    cfg->abi_version != INSTAR_ABI_VERSION || cfg->reserved != 0 || cfg->reserved2 != 0)
		return guest_resize_fail(ct, &res, INSTAR_ERR_INTERNAL, "bad resize config");
	if (ct->heap_end <= ct->heap_start)
		return guest_resize_fail(ct, &res, INSTAR_ERR_SCRATCH_TOO_SMALL, "no heap");

	guest_rs.ct = ct;
	guest_rs.bounce = guest_bounce;
	io = (struct plan_io){
	    .read = guest_resize_read,
	    .ctx = &guest_rs,
	    .file_size = cfg->file_size,
	};
	plan_scratch_init(&scratch, (void *)(uintptr_t)ct->heap_start,
			  (size_t)(ct->heap_end - ct->heap_start));
	/* The backing chain, read-only devices 1..: what an unallocated
	 * cluster of the image reads as (qcow2's partial cluster at the old
	 * end). Read only if the plan needs it. */
	plan_backing_init(&guest_backing, &scratch);
	for (uint32_t i = 0; i < cfg->backing_devs && i < INSTAR_BACKING_MAX_DEVS; i++) {
		guest_bdev[i] =
		    (struct guest_resize){.ct = ct, .dev = i + 1, .bounce = guest_bounce};
		if (plan_backing_add(&guest_backing, cfg->backing_fmt[i], cfg->backing_dev_len[i],
				     guest_resize_read, &guest_bdev[i]))
			break;
	}
	if (guest_backing.ndev) {
		io.read_backing = plan_backing_read;
		io.backing_ctx = &guest_backing;
	}
	plan_init(&plan, guest_resize_sink, &guest_rs, 0);
	opts = (struct plan_opts){
	    .new_size = cfg->new_virtual_size,
	    .expected_old_size = cfg->expected_old_virtual_size,
	    .prealloc = cfg->prealloc,
	    .flags = cfg->flags,
	    .backing_len = cfg->backing_len,
	    .backing_name_crc = cfg->backing_name_crc,
	    .data_file_name_crc = cfg->data_file_name_crc,
	};
	res.file_size_before = cfg->file_size;
	r = plan_resize(cfg->format, &opts, &io, &scratch, &plan, &res);
	if (r == 0) {
		res.error = INSTAR_OK;
		res.file_size_after = plan.file_size_after;
	} else if (res.error == INSTAR_OK) {
		res.error = (uint32_t)r;
	}
	return ct->send_result(&res, sizeof(res));
}
