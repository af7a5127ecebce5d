/* tests/unit/test_qed_plan.c — the QED planner on in-memory images: a grow
 * writes the size (and clears autoclear bits) and nothing else; every
 * refusal carries qemu 7.2's message and emits nothing; every bad header
 * field gives an error, never a crash; a backing file the host named and
 * measured is checked against the header and grows only as qemu's block
 * layer lets it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crc32.h"
#include "plan.h"
#include "plan_testlib.h"

#define CS 4096u	    /* cluster size of the test image */
#define TS 4u		    /* table size, clusters */
#define IMG_LEN (5 * CS)    /* header cluster + L1 table */
#define MAXSZ (16ull << 30) /* (TS * CS / 8)^2 * CS */
#define G (1ull << 30)

static void build(uint8_t *img)
{
	memset(img, 0, IMG_LEN);
	memcpy(img, "QED", 4);
	put_le32(img + 4, CS);
	put_le32(img + 8, TS);
	put_le32(img + 12, 1);
	put_le64(img + 40, CS);
	put_le64(img + 48, G);
}

/* Applies each WRITE to the image; counts every op. */
struct apply {
	uint8_t *img;
	size_t len;
	int nops, nwrites;
};

static int apply_sink(void *ctx, const struct plan_op *op)
{
	struct apply *a = ctx;

	a->nops++;
	if (op->kind == PLAN_OP_WRITE) {
		assert_true(op->off + op->len <= a->len);
		memcpy(a->img + op->off, op->data, op->len);
		a->nwrites++;
	} else {
		assert_int_equal(op->kind, PLAN_OP_FLUSH);
	}
	return 0;
}

/* What the host tells the planner of the backing file (test_backing). */
static uint32_t host_name_crc;
static uint64_t host_backing_len;

static int run_full(uint8_t *img, size_t len, uint64_t new_size, uint32_t flags, uint32_t prealloc,
		    struct instar_resize_result *res, struct apply *a)
{
	static uint8_t scratch[1 << 16];
	struct ptl_img m = {.b = img, .len = len};
	struct plan_io io = {.read = ptl_img_read, .ctx = &m, .file_size = len};
	struct plan_opts o = {.new_size = new_size,
			      .expected_old_size = UINT64_MAX,
			      .flags = flags,
			      .prealloc = prealloc,
			      .backing_len = host_backing_len,
			      .backing_name_crc = host_name_crc};
	struct plan_scratch s;
	struct plan p;

	memset(res, 0, sizeof(*res));
	memset(a, 0, sizeof(*a));
	a->img = img;
	a->len = len;
	plan_scratch_init(&s, scratch, sizeof(scratch));
	plan_init(&p, apply_sink, a, 0);
	return plan_resize_qed(&o, &io, &s, &p, res);
}

static int run(uint8_t *img, uint64_t new_size, uint32_t flags, struct instar_resize_result *res,
	       struct apply *a)
{
	return run_full(img, IMG_LEN, new_size, flags, INSTAR_PREALLOC_OFF, res, a);
}

static void test_grow(void **state)
{
	uint8_t img[IMG_LEN], before[IMG_LEN];
	struct instar_resize_result r;
	struct apply a;

	(void)state;
	build(img);
	memcpy(before, img, IMG_LEN);
	assert_int_equal(run(img, 2 * G, 0, &r, &a), 0);
	assert_int_equal(r.error, INSTAR_OK);
	assert_int_equal(r.action, INSTAR_ACTION_GROW);
	assert_int_equal(r.old_virtual_size, G);
	assert_int_equal(r.new_virtual_size, 2 * G);
	assert_int_equal(r.file_size_after, IMG_LEN);
	assert_int_equal(a.nwrites, 1);
	assert_int_equal(a.nops, 2); /* the write, then a barrier */
	assert_int_equal(get_le64(img + 48), 2 * G);
	/* Nothing but the size changed. */
	memcpy(before + 48, img + 48, 8);
	assert_memory_equal(img, before, IMG_LEN);
	/* Up to the largest size the tables map. */
	build(img);
	assert_int_equal(run(img, MAXSZ, 0, &r, &a), 0);
	assert_int_equal(get_le64(img + 48), MAXSZ);
}

static void test_autoclear_cleared(void **state)
{
	uint8_t img[IMG_LEN];
	struct instar_resize_result r;
	struct apply a;

	(void)state;
	build(img);
	put_le64(img + 32, 0x5);
	assert_int_equal(run(img, 3 * G, 0, &r, &a), 0);
	assert_int_equal(get_le64(img + 32), 0);
	assert_int_equal(get_le64(img + 48), 3 * G);
	/* Same size: nothing to write unless an autoclear bit is set. */
	build(img);
	assert_int_equal(run(img, G, 0, &r, &a), 0);
	assert_int_equal(r.action, INSTAR_ACTION_NOOP);
	assert_int_equal(a.nops, 0);
	put_le64(img + 32, 0x80);
	assert_int_equal(run(img, G, 0, &r, &a), 0);
	assert_int_equal(r.action, INSTAR_ACTION_NOOP);
	assert_int_equal(a.nwrites, 1);
	assert_int_equal(get_le64(img + 32), 0);
}

static uint32_t last_flags; /* the result flags of the last refused() */

/* Refusals: error, qemu's detail ("" = the CLI's generic text), no op. */
static void refused(uint8_t *img, size_t len, uint64_t new_size, uint32_t flags, uint32_t prealloc,
		    uint32_t err, const char *detail)
{
	uint8_t copy[IMG_LEN];
	struct instar_resize_result r;
	struct apply a;

	memcpy(copy, img, len);
	assert_int_equal(run_full(img, len, new_size, flags, prealloc, &r, &a), (int)err);
	assert_int_equal(r.error, err);
	assert_string_equal(r.detail, detail);
	assert_int_equal(a.nops, 0);
	assert_memory_equal(img, copy, len);
	last_flags = r.flags;
}

static void test_size_rules(void **state)
{
	uint8_t img[IMG_LEN];

	(void)state;
	build(img);
	refused(img, IMG_LEN, 2 * G + 1, 0, 0, INSTAR_ERR_INVALID_NEW_SIZE,
		"Invalid image size specified");
	refused(img, IMG_LEN, MAXSZ + 512, 0, 0, INSTAR_ERR_INVALID_NEW_SIZE,
		"Invalid image size specified");
	refused(img, IMG_LEN, G / 2, INSTAR_RESIZE_SHRINK_ALLOWED, 0, INSTAR_ERR_UNSUPPORTED_SHRINK,
		"Shrinking images is currently not supported");
	refused(img, IMG_LEN, G / 2, 0, 0, INSTAR_ERR_SHRINK_WITHOUT_FLAG, "");
	refused(img, IMG_LEN, 2 * G, 0, INSTAR_PREALLOC_FALLOC,
		INSTAR_ERR_PREALLOCATION_UNSUPPORTED, "");
	refused(img, IMG_LEN, 2 * G, 0, INSTAR_PREALLOC_METADATA,
		INSTAR_ERR_PREALLOCATION_UNSUPPORTED, "");
	/* qemu's order: preallocation before the size's validity. */
	refused(img, IMG_LEN, 2 * G + 1, 0, INSTAR_PREALLOC_FULL,
		INSTAR_ERR_PREALLOCATION_UNSUPPORTED, "");
}

struct bad {
	const char *what;
	size_t off; /* field offset */
	int width;  /* 4 or 8 */
	uint64_t v;
	uint32_t err;
	const char *detail;
};

static void test_hostile_headers(void **state)
{
	static const struct bad bads[] = {
	    {"magic", 0, 4, 0x00444552, INSTAR_ERR_PARSE_FAILED, "Image not in QED format"},
	    {"feature bit 3", 16, 8, 0x8, INSTAR_ERR_UNSUPPORTED_FEATURE,
	     "Unsupported QED features: 8"},
	    {"high feature bits", 16, 8, 0xab00000000000001ull, INSTAR_ERR_UNSUPPORTED_FEATURE,
	     "Unsupported QED features: ab00000000000000"},
	    {"cluster 2K", 4, 4, 2048, INSTAR_ERR_PARSE_FAILED, "QED cluster size is invalid"},
	    {"cluster 128M", 4, 4, 128u << 20, INSTAR_ERR_PARSE_FAILED,
	     "QED cluster size is invalid"},
	    {"cluster not pow2", 4, 4, 12288, INSTAR_ERR_PARSE_FAILED,
	     "QED cluster size is invalid"},
	    {"table 0", 8, 4, 0, INSTAR_ERR_PARSE_FAILED, "QED table size is invalid"},
	    {"table 3", 8, 4, 3, INSTAR_ERR_PARSE_FAILED, "QED table size is invalid"},
	    {"table 32", 8, 4, 32, INSTAR_ERR_PARSE_FAILED, "QED table size is invalid"},
	    {"size not 512", 48, 8, G + 1, INSTAR_ERR_PARSE_FAILED, "QED image size is invalid"},
	    {"size past max", 48, 8, MAXSZ + 512, INSTAR_ERR_PARSE_FAILED,
	     "QED image size is invalid"},
	    {"l1 unaligned", 40, 8, CS + 8, INSTAR_ERR_PARSE_FAILED, "QED table offset is invalid"},
	    {"l1 in header", 40, 8, 0, INSTAR_ERR_PARSE_FAILED, "QED table offset is invalid"},
	    {"l1 past eof", 40, 8, 2 * CS, INSTAR_ERR_PARSE_FAILED, "QED table offset is invalid"},
	    {"l1 wraps", 40, 8, UINT64_MAX - CS + 1, INSTAR_ERR_PARSE_FAILED,
	     "QED table offset is invalid"},
	    {"table 1 (qemu cannot open it)", 8, 4, 1, INSTAR_ERR_PARSE_FAILED,
	     "QED table offset is invalid"},
	    {"need check", 16, 8, 0x2, INSTAR_ERR_REQUIRES_CHECK,
	     "qed: image needs repair; run 'qemu-img check -r all'"},
	    {"backing file the host did not name", 16, 8, 0x1, INSTAR_ERR_HEADER_MISMATCH,
	     "qed: backing file name differs from the host's probe"},
	};
	uint8_t img[IMG_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];

		build(img);
		ptl_put_field(img, b->off, b->width, false, b->v);
		if (b->off == 16 && (b->v & 1)) { /* a backing name inside the header */
			put_le32(img + 56, 64);
			put_le32(img + 60, 8);
			memcpy(img + 64, "base.raw", 8);
		}
		print_message("%s\n", b->what);
		refused(img, IMG_LEN, 2 * G, 0, 0, b->err, b->detail);
		/* qemu's open refuses all but these two (it opens the backing
		 * file the host did not name here; it repairs an image that
		 * needs a check) */
		assert_int_equal((last_flags & INSTAR_RESULT_OPEN) != 0,
				 b->err != INSTAR_ERR_REQUIRES_CHECK &&
				     !(b->off == 16 && b->v == 0x1));
	}
	/* A header size so large that header bytes overflow 32 bits: the L1
	 * table then lies inside the "header" first (qemu's order). */
	build(img);
	put_le32(img + 12, 0x100000);
	refused(img, IMG_LEN, 2 * G, 0, 0, INSTAR_ERR_PARSE_FAILED, "QED table offset is invalid");
	/* A backing name that ends past the header clusters. */
	build(img);
	put_le64(img + 16, 0x1);
	put_le32(img + 56, CS - 4);
	put_le32(img + 60, 8);
	refused(img, IMG_LEN, 2 * G, 0, 0, INSTAR_ERR_PARSE_FAILED,
		"QED backing filename offset is invalid");
	/* Shorter than a header: zeros past the end, as qemu reads it (here
	 * the L1 table lies past the end). */
	build(img);
	refused(img, 63, 2 * G, 0, 0, INSTAR_ERR_PARSE_FAILED, "QED table offset is invalid");
	assert_true(last_flags & INSTAR_RESULT_OPEN);
	refused(img, 3, 2 * G, 0, 0, INSTAR_ERR_PARSE_FAILED, "QED cluster size is invalid");
	assert_true(last_flags & INSTAR_RESULT_OPEN); /* "QED" and a zero: the magic */
	refused(img, 2, 2 * G, 0, 0, INSTAR_ERR_PARSE_FAILED, "Image not in QED format");
	assert_true(last_flags & INSTAR_RESULT_OPEN);
}

/* The header names NAME (len bytes at 64) as its backing file. */
static void with_backing(uint8_t *img, const char *name, uint32_t len, uint64_t features)
{
	build(img);
	put_le64(img + 16, features);
	put_le32(img + 56, 64);
	put_le32(img + 60, len);
	memcpy(img + 64, name, len);
}

#define HOST_B (INSTAR_RESIZE_BACKING | INSTAR_RESIZE_BACKING_LEN)

static void test_backing(void **state)
{
	static uint8_t img[IMG_LEN], big_img[IMG_LEN + 2 * CS];
	static char big[4096];
	struct instar_resize_result r;
	struct apply a;

	(void)state;
	host_name_crc = instar_crc32(0, "base.raw", 8);
	/* The backing file no longer than the image: the one header write;
	 * the grown range reads zeros past the backing file's end. */
	for (uint64_t f = 1; f <= 5; f += 4) { /* also "backing is raw" */
		host_backing_len = G;
		with_backing(img, "base.raw", 8, f);
		assert_int_equal(run(img, 2 * G, HOST_B, &r, &a), 0);
		assert_int_equal(r.action, INSTAR_ACTION_GROW);
		assert_int_equal(a.nwrites, 1);
		assert_int_equal(get_le64(img + 48), 2 * G);
		assert_int_equal(get_le64(img + 16), f);
		assert_memory_equal(img + 64, "base.raw", 8);
	}
	host_backing_len = G / 2;
	with_backing(img, "base.raw", 8, 1);
	assert_int_equal(run(img, 2 * G, HOST_B, &r, &a), 0);
	/* Longer: qemu's block layer would zero the new range, which the QED
	 * driver cannot ("requested flags"); before its own checks. */
	host_backing_len = G + 512;
	with_backing(img, "base.raw", 8, 1);
	refused(img, IMG_LEN, 2 * G, HOST_B, 0, INSTAR_ERR_UNSUPPORTED_FEATURE,
		"Block driver does not support requested flags");
	refused(img, IMG_LEN, 2 * G, HOST_B, INSTAR_PREALLOC_FULL, INSTAR_ERR_UNSUPPORTED_FEATURE,
		"Block driver does not support requested flags");
	refused(img, IMG_LEN, 2 * G + 1, HOST_B, 0, INSTAR_ERR_UNSUPPORTED_FEATURE,
		"Block driver does not support requested flags");
	/* ... but only for a grow: no new bytes, no zero writes */
	refused(img, IMG_LEN, G / 2, HOST_B | INSTAR_RESIZE_SHRINK_ALLOWED, 0,
		INSTAR_ERR_UNSUPPORTED_SHRINK, "Shrinking images is currently not supported");
	refused(img, IMG_LEN, G / 2, HOST_B, 0, INSTAR_ERR_SHRINK_WITHOUT_FLAG, "");
	assert_int_equal(run(img, G, HOST_B, &r, &a), 0);
	assert_int_equal(r.action, INSTAR_ACTION_NOOP);
	assert_int_equal(a.nops, 0);
	/* A length the host could not tell: no grow. */
	refused(img, IMG_LEN, 2 * G, INSTAR_RESIZE_BACKING, 0, INSTAR_ERR_UNSUPPORTED_FEATURE,
		"instar cannot tell the length of this QED image's backing file (a format it "
		"does not read)");
	/* The host's name must be the header's. */
	host_backing_len = G;
	refused(img, IMG_LEN, 2 * G, 0, 0, INSTAR_ERR_HEADER_MISMATCH,
		"qed: backing file name differs from the host's probe");
	host_name_crc = instar_crc32(0, "base.raX", 8);
	refused(img, IMG_LEN, 2 * G, HOST_B, 0, INSTAR_ERR_HEADER_MISMATCH,
		"qed: backing file name differs from the host's probe");
	/* qemu takes the text before the first NUL: "base" */
	host_name_crc = instar_crc32(0, "base", 4);
	with_backing(img, "base\0raw", 8, 1);
	assert_int_equal(run(img, 2 * G, HOST_B, &r, &a), 0);
	/* An empty name is no backing file (qemu-img resizes the image
	 * alone): the host names none. */
	for (int k = 0; k < 2; k++) {
		with_backing(img, "\0base", k ? 5 : 0, 1);
		refused(img, IMG_LEN, 2 * G, HOST_B, 0, INSTAR_ERR_HEADER_MISMATCH,
			"qed: backing file name differs from the host's probe");
		assert_int_equal(run(img, 2 * G, 0, &r, &a), 0);
		assert_int_equal(get_le64(img + 48), 2 * G);
	}
	/* qemu's open reads names shorter than PATH_MAX (4 KiB): here in a
	 * header of two clusters, the L1 table after it */
	memset(big, 'a', sizeof(big));
	host_name_crc = instar_crc32(0, big, 4095);
	for (uint32_t len = 4095; len <= 4096; len++) {
		build(big_img);
		put_le32(big_img + 12, 2);
		put_le64(big_img + 40, 2 * CS);
		put_le64(big_img + 16, 1);
		put_le32(big_img + 56, 64);
		put_le32(big_img + 60, len);
		memcpy(big_img + 64, big, len);
		assert_int_equal(run_full(big_img, sizeof(big_img), 2 * G, HOST_B, 0, &r, &a),
				 len == 4095 ? 0 : INSTAR_ERR_PARSE_FAILED);
		if (len == 4096) {
			assert_string_equal(r.detail, "Failed to read backing filename");
			assert_true(r.flags & INSTAR_RESULT_OPEN);
			assert_int_equal(a.nops, 0);
		}
	}
	host_name_crc = 0;
	host_backing_len = 0;
}

/* One run with a given read failure mode and expected old size; the ops
 * are counted. */
static int run_io(bool fail_read, uint64_t expected_old, int *nops)
{
	static uint8_t scratch[4096];
	static uint8_t img[IMG_LEN];
	struct ptl_img m = {.b = img, .len = IMG_LEN, .fail_read = fail_read};
	struct plan_io io = {.read = ptl_img_read, .ctx = &m, .file_size = IMG_LEN};
	struct plan_opts o = {.new_size = 2 * G, .expected_old_size = expected_old};
	struct instar_resize_result r;
	struct plan_scratch s;
	struct plan p;

	*nops = 0;
	build(img);
	plan_scratch_init(&s, scratch, sizeof(scratch));
	plan_init(&p, ptl_count_sink, nops, 0);
	return plan_resize_qed(&o, &io, &s, &p, &r);
}

static void test_read_failure(void **state)
{
	int n;

	(void)state;
	assert_int_equal(run_io(true, UINT64_MAX, &n), INSTAR_ERR_READ_FAILED);
	assert_int_equal(n, 0);
}

static void test_expected_size(void **state)
{
	int n;

	(void)state;
	assert_int_equal(run_io(false, G / 2, &n), INSTAR_ERR_HEADER_MISMATCH);
	assert_int_equal(n, 0);
	assert_int_equal(run_io(false, G, &n), 0);
	assert_int_equal(n, 2);
}

/* Random header fields: an error or a valid grow, never a crash or a write
 * outside the header. */
static void test_random_headers(void **state)
{
	uint8_t img[IMG_LEN];
	struct instar_resize_result r;
	struct apply a;
	uint64_t x = 0x9e3779b97f4a7c15ull;

	(void)state;
	for (int i = 0; i < 20000; i++) {
		build(img);
		for (int k = 0; k < 3; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			img[4 + x % 60] = (uint8_t)(x >> 32);
		}
		int rc = run(img, 2 * G + ((x >> 20) & 1) * 512, (uint32_t)(x >> 40) & 1, &r, &a);
		if (rc == 0)
			assert_true(a.nwrites <= 1);
		else
			assert_int_equal(a.nops, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_grow),	   cmocka_unit_test(test_autoclear_cleared),
	    cmocka_unit_test(test_size_rules),	   cmocka_unit_test(test_hostile_headers),
	    cmocka_unit_test(test_read_failure),   cmocka_unit_test(test_expected_size),
	    cmocka_unit_test(test_random_headers), cmocka_unit_test(test_backing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
