/* tests/unit/test_luks_plan.c — the LUKS planner on in-memory LUKS1 headers:
 * the new length is payload offset + the size asked for (sizes reported
 * rounded up to 512, as qemu reports them); falloc/full
 * allocate the grown range; every header check qemu makes on open refuses
 * with qemu's words and emits nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plan.h"
#include "plan_testlib.h"

#define PAYLOAD_SECT 4040u /* what qemu-img create writes for aes-256 */
#define PAYLOAD (PAYLOAD_SECT * 512ull)
#define M (1ull << 20)
#define HDR 4096u /* bytes of the header the tests hold */

/* A LUKS1 header as qemu-img create writes it: 8 slots of 256 sectors
 * (32-byte key x 4000 stripes = 250 sectors, rounded to 8) from sector 8. */
static void build(uint8_t *h)
{
	memset(h, 0, HDR);
	ptl_luks_header(h, PAYLOAD_SECT, 64, 504);
}

struct rec {
	int nops, nzero;
	uint64_t zoff, zlen;
};

static int rec_sink(void *ctx, const struct plan_op *op)
{
	struct rec *r = ctx;

	r->nops++;
	assert_true(op->kind == PLAN_OP_ZERO || op->kind == PLAN_OP_FLUSH);
	if (op->kind == PLAN_OP_ZERO) {
		r->nzero++;
		r->zoff = op->off;
		r->zlen = op->len;
	}
	return 0;
}

/* The header in a file of file_len bytes (the rest reads as zeros). */
static int run(uint8_t *h, uint64_t file_len, uint64_t new_size, uint32_t flags, uint32_t prealloc,
	       struct instar_resize_result *res, struct rec *rec, uint64_t *after)
{
	static uint8_t scratch[4096];
	struct ptl_img m = {.b = h, .len = HDR};
	struct plan_io io = {.read = ptl_img_read, .ctx = &m, .file_size = file_len};
	struct plan_opts o = {.new_size = new_size,
			      .expected_old_size = UINT64_MAX,
			      .flags = flags,
			      .prealloc = prealloc};
	struct plan_scratch s;
	struct plan p;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(rec, 0, sizeof(*rec));
	plan_scratch_init(&s, scratch, sizeof(scratch));
	plan_init(&p, rec_sink, rec, 0);
	rc = plan_resize_luks(&o, &io, &s, &p, res);
	*after = p.file_size_after;
	return rc;
}

static void refused(uint8_t *h, uint64_t file_len, uint64_t new_size, uint32_t flags,
		    uint32_t prealloc, uint32_t err, const char *detail);

static void test_sizes(void **state)
{
	uint8_t h[HDR];
	struct instar_resize_result r;
	struct rec rec;
	uint64_t after;

	(void)state;
	build(h);
	/* grow 64M -> 128M: the length only */
	assert_int_equal(run(h, PAYLOAD + 64 * M, 128 * M, 0, 0, &r, &rec, &after), 0);
	assert_int_equal(r.action, INSTAR_ACTION_GROW);
	assert_int_equal(r.old_virtual_size, 64 * M);
	assert_int_equal(r.new_virtual_size, 128 * M);
	assert_int_equal(after, PAYLOAD + 128 * M);
	assert_int_equal(r.file_size_after, after);
	assert_int_equal(rec.nops, 0);
	/* +1 byte: the length exactly, the size reported in whole sectors */
	assert_int_equal(run(h, PAYLOAD + 64 * M, 64 * M + 1, 0, 0, &r, &rec, &after), 0);
	assert_int_equal(r.new_virtual_size, 64 * M + 512);
	assert_int_equal(after, PAYLOAD + 64 * M + 1);
	/* ... and read back as 64M + 512: asking for that only sets the length,
	 * the size stays (the host derives the action from the sizes) */
	assert_int_equal(run(h, PAYLOAD + 64 * M + 1, 64 * M + 512, 0, 0, &r, &rec, &after), 0);
	assert_int_equal(r.old_virtual_size, 64 * M + 512);
	assert_int_equal(r.new_virtual_size, 64 * M + 512);
	assert_int_equal(r.action, INSTAR_ACTION_NOOP);
	assert_int_equal(after, PAYLOAD + 64 * M + 512);
	assert_int_equal(rec.nops, 0);
	/* --shrink within that sector shortens the file, the size stays */
	assert_int_equal(run(h, PAYLOAD + 64 * M + 1, 64 * M + 300, INSTAR_RESIZE_SHRINK_ALLOWED, 0,
			     &r, &rec, &after),
			 0);
	assert_int_equal(r.action, INSTAR_ACTION_NOOP);
	assert_int_equal(r.new_virtual_size, 64 * M + 512);
	assert_int_equal(after, PAYLOAD + 64 * M + 300);
	/* ... which without the flag is qemu's shrink refusal (below 64M + 512) */
	refused(h, PAYLOAD + 64 * M + 1, 64 * M + 300, 0, 0, INSTAR_ERR_SHRINK_WITHOUT_FLAG, "");
	/* falloc: the grown range is allocated zeros */
	assert_int_equal(
	    run(h, PAYLOAD + 64 * M, 256 * M, 0, INSTAR_PREALLOC_FALLOC, &r, &rec, &after), 0);
	assert_int_equal(rec.nzero, 1);
	assert_int_equal(rec.zoff, PAYLOAD + 64 * M);
	assert_int_equal(rec.zlen, 192 * M);
	/* shrink, with the flag */
	assert_int_equal(
	    run(h, PAYLOAD + 64 * M, 32 * M, INSTAR_RESIZE_SHRINK_ALLOWED, 0, &r, &rec, &after), 0);
	assert_int_equal(r.action, INSTAR_ACTION_SHRINK);
	assert_int_equal(after, PAYLOAD + 32 * M);
	assert_int_equal(rec.nops, 0);
	/* shrink to an empty payload */
	assert_int_equal(
	    run(h, PAYLOAD + 64 * M, 0, INSTAR_RESIZE_SHRINK_ALLOWED, 0, &r, &rec, &after), 0);
	assert_int_equal(after, PAYLOAD);
	/* same size: nothing */
	assert_int_equal(run(h, PAYLOAD + 64 * M, 64 * M, 0, 0, &r, &rec, &after), 0);
	assert_int_equal(r.action, INSTAR_ACTION_NOOP);
	assert_int_equal(after, PAYLOAD + 64 * M);
}

static void refused(uint8_t *h, uint64_t file_len, uint64_t new_size, uint32_t flags,
		    uint32_t prealloc, uint32_t err, const char *detail)
{
	struct instar_resize_result r;
	struct rec rec;
	uint64_t after;

	assert_int_equal(run(h, file_len, new_size, flags, prealloc, &r, &rec, &after), (int)err);
	assert_int_equal(r.error, err);
	assert_string_equal(r.detail, detail);
	assert_int_equal(rec.nops, 0);
}

static void test_size_refusals(void **state)
{
	uint8_t h[HDR];

	(void)state;
	build(h);
	refused(h, PAYLOAD + 64 * M, 32 * M, 0, 0, INSTAR_ERR_SHRINK_WITHOUT_FLAG, "");
	refused(h, PAYLOAD + 64 * M, 128 * M, 0, INSTAR_PREALLOC_METADATA,
		INSTAR_ERR_PREALLOCATION_UNSUPPORTED, "Unsupported preallocation mode: metadata");
	refused(h, PAYLOAD + 64 * M, (uint64_t)INT64_MAX, 0, 0, INSTAR_ERR_TOO_LARGE,
		"The requested file size is too large");
	refused(h, PAYLOAD + 64 * M, (uint64_t)INT64_MAX - PAYLOAD, 0, 0, INSTAR_ERR_TOO_LARGE,
		"The requested file size is too large");
}

struct bad {
	size_t off;
	int width; /* 1, 2 or 4 (BE) */
	uint32_t v;
	uint32_t err;
	const char *detail;
};

static void test_hostile_headers(void **state)
{
	static const struct bad bads[] = {
	    {0, 1, 'l', INSTAR_ERR_PARSE_FAILED, "Volume is not in LUKS format"},
	    {6, 2, 2, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "LUKS version 2 is not supported"},
	    {104, 4, 7, INSTAR_ERR_CORRUPT, "LUKS payload is overlapping with the header"},
	    {164, 4, 0, INSTAR_ERR_CORRUPT, "LUKS key iteration count is zero"},
	    {208 + 48 * 3 + 44, 4, 3999, INSTAR_ERR_CORRUPT,
	     "Keyslot 3 is corrupted (stripes 3999 != 4000)"},
	    {208 + 48 * 1, 4, 1, INSTAR_ERR_CORRUPT,
	     "Keyslot 1 state (active/disable) is corrupted"},
	    {208 + 4, 4, 0, INSTAR_ERR_CORRUPT, "Keyslot 0 iteration count is zero"},
	    {208 + 40, 4, 7, INSTAR_ERR_CORRUPT, "Keyslot 0 is overlapping with the LUKS header"},
	    {208 + 48 * 7 + 40, 4, 4000, INSTAR_ERR_CORRUPT,
	     "Keyslot 7 is overlapping with the encrypted payload"},
	    {208 + 48 * 5 + 40, 4, 8 + 504 * 4 + 8, INSTAR_ERR_CORRUPT,
	     "Keyslots 4 and 5 are overlapping in the header"},
	};
	uint8_t h[HDR];

	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];

		build(h);
		ptl_put_field(h, b->off, b->width, true, b->v);
		print_message("%s\n", b->detail);
		refused(h, PAYLOAD + 64 * M, 128 * M, 0, 0, b->err, b->detail);
	}
	build(h);
	memset(h + 8, 'a', 32);
	refused(h, PAYLOAD + M, 2 * M, 0, 0, INSTAR_ERR_CORRUPT,
		"LUKS header cipher name is not NUL terminated");
	build(h);
	memset(h + 40, 'a', 32);
	refused(h, PAYLOAD + M, 2 * M, 0, 0, INSTAR_ERR_CORRUPT,
		"LUKS header cipher mode is not NUL terminated");
	build(h);
	memset(h + 72, 'a', 32);
	refused(h, PAYLOAD + M, 2 * M, 0, 0, INSTAR_ERR_CORRUPT,
		"LUKS header hash spec is not NUL terminated");
	/* The payload offset past the end of the file. */
	build(h);
	refused(h, PAYLOAD - 512, 2 * M, 0, 0, INSTAR_ERR_CORRUPT,
		"The LUKS payload starts past the end of the file");
	/* Shorter than a header. */
	build(h);
	refused(h, 591, 2 * M, 0, 0, INSTAR_ERR_PARSE_FAILED, "Volume is not in LUKS format");
}

/* Random bytes in the header: an error or a plan, never a crash; a plan
 * never writes (only a preallocating grow zeros past the old end). */
static void test_random_headers(void **state)
{
	uint8_t h[HDR];
	struct instar_resize_result r;
	struct rec rec;
	uint64_t after, x = 0x2545f4914f6cdd1dull;

	(void)state;
	for (int i = 0; i < 20000; i++) {
		build(h);
		for (int k = 0; k < 2; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			h[x % 592] = (uint8_t)(x >> 32);
		}
		if (run(h, PAYLOAD + 64 * M, 128 * M, 0, (uint32_t)(x >> 50) & 3, &r, &rec,
			&after) == 0)
			assert_int_equal(after, get_be32(h + 104) * 512ull + 128 * M);
		else
			assert_int_equal(rec.nops, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_size_refusals),
	    cmocka_unit_test(test_hostile_headers),
	    cmocka_unit_test(test_random_headers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
