/* tests/fuzz/fuzz_plan.c — libFuzzer target for every planner: arbitrary
 * metadata behind the I/O callback; asserts the plan stream's invariants.
 * Input: u8 format selector, u8 flags, u64le new size, then a sparse image
 * (sparse_image.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "sparse_image.h"

#define FUZZ_SCRATCH (24u << 20)
#define FUZZ_MAX_OPS (1u << 16)
#define FUZZ_MAX_READS (1u << 20)
#define FUZZ_MAX_WRITE (64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_ctx {
	struct sparse_image img;
	uint64_t reads;
	uint64_t max_end; /* highest end of a WRITE or ZERO */
	uint32_t nops;
	uint64_t file_size;   /* before the plan */
	int header_commit;    /* qcow2/vmdk/vdi: the commit write lies in sector 0 */
	int unflushed_append; /* an append (prepare) not yet behind a FLUSH */
};

static struct fuzz_ctx ctx;
static uint8_t *scratch;

static int counting_read(void *c, uint64_t off, void *buf, uint32_t len)
{
	struct fuzz_ctx *f = c;

	/* A planner must not loop forever on hostile metadata. */
	if (++f->reads > FUZZ_MAX_READS)
		abort();
	return sparse_image_read(&f->img, off, buf, len);
}

static int checking_sink(void *c, const struct plan_op *op)
{
	struct fuzz_ctx *f = c;
	uint64_t end;

	f->nops++;
	if (__builtin_add_overflow(op->off, op->len, &end))
		abort();
	switch (op->kind) {
	case PLAN_OP_WRITE:
		if (!op->data || op->len == 0 || op->len > FUZZ_MAX_WRITE)
			abort();
		/* Crash-safe order: whatever a plan appends (new tables) is
		 * flushed before the header write that makes it live. */
		if (f->header_commit && op->off < 512 && f->file_size >= 512 && f->unflushed_append)
			abort();
		if (end > f->file_size)
			f->unflushed_append = 1;
		/* Touch every byte so ASan sees a bad pointer. */
		{
			volatile uint8_t sum = 0;
			const uint8_t *d = op->data;
			for (uint64_t i = 0; i < op->len; i++)
				sum ^= d[i];
			(void)sum;
		}
		if (end > f->max_end)
			f->max_end = end;
		break;
	case PLAN_OP_ZERO:
		if (end > f->file_size)
			f->unflushed_append = 1;
		if (end > f->max_end)
			f->max_end = end;
		break;
	case PLAN_OP_FLUSH:
		f->unflushed_append = 0;
		break;
	case PLAN_OP_DISCARD:
		break;
	default:
		abort();
	}
	return 0;
}

/* data[0] & 7 picks the planner; 5..7 as & 3 (the seeds older than vdi). */
static const uint32_t formats[8] = {INSTAR_FMT_QCOW2, INSTAR_FMT_VMDK, INSTAR_FMT_VHD,
				    INSTAR_FMT_VHDX,  INSTAR_FMT_VDI,  INSTAR_FMT_VMDK,
				    INSTAR_FMT_VHD,   INSTAR_FMT_VHDX};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct instar_resize_result res;
	struct plan_opts o = {0};
	struct plan_scratch s;
	struct plan_io io = {0};
	struct plan p;
	uint64_t nsz = 0;
	uint32_t fmt;
	int rc;

	if (size < 10)
		return 0;
	if (!scratch) {
		scratch = malloc(FUZZ_SCRATCH);
		if (!scratch)
			abort();
	}
	memset(&ctx.img, 0, sizeof(ctx.img.file_size) + sizeof(ctx.img.nrec));
	if (sparse_image_decode(&ctx.img, data + 10, size - 10) != 0)
		return 0;
	for (int i = 0; i < 8; i++)
		nsz |= (uint64_t)data[2 + i] << (8 * i);
	o.new_size = nsz;
	o.expected_old_size = UINT64_MAX;
	o.flags = (data[1] & 1) ? INSTAR_RESIZE_SHRINK_ALLOWED : 0;
	o.prealloc = (data[1] >> 1) & 3;
	ctx.reads = 0;
	ctx.max_end = 0;
	ctx.nops = 0;
	ctx.file_size = ctx.img.file_size;
	fmt = formats[data[0] & 7];
	ctx.header_commit =
	    fmt == INSTAR_FMT_QCOW2 || fmt == INSTAR_FMT_VMDK || fmt == INSTAR_FMT_VDI;
	ctx.unflushed_append = 0;
	io.read = counting_read;
	io.ctx = &ctx;
	io.file_size = ctx.img.file_size;
	plan_scratch_init(&s, scratch, FUZZ_SCRATCH);
	plan_init(&p, checking_sink, &ctx, FUZZ_MAX_OPS);
	memset(&res, 0, sizeof(res));
	rc = plan_resize(fmt, &o, &io, &s, &p, &res);
	if (rc != (int)res.error)
		abort();
	if (ctx.nops > FUZZ_MAX_OPS || p.nops != ctx.nops)
		abort();
	if (memchr(res.detail, '\0', sizeof(res.detail)) == NULL)
		abort();
	if (rc == INSTAR_OK) {
		/* Nothing is written past the file's final end, except in the
		 * part of the old file the final truncate cuts: until then a
		 * crash leaves the longer file, which must read as the old or
		 * the new disk (a VHD shrink commits with the new footer at
		 * the old EOF-512, then moves it down). Bytes past both ends
		 * would be written only to be cut: always a planner bug. */
		if (ctx.max_end > p.file_size_after && ctx.max_end > ctx.file_size)
			abort();
		if (res.new_virtual_size != o.new_size && fmt == INSTAR_FMT_QCOW2)
			abort();
	}
	return 0;
}
