/* tests/unit/test_qcow2_plan.c — the qcow2 planner on hand-built in-memory
 * images: hostile headers and tables must give proper errors, never a crash;
 * a small grow and shrink must produce the expected crash-safe stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "abi_names.h"
#include "crc32.h"
#include "plan.h"
#include "plan_testlib.h"

#define CB 12
#define CS (1u << CB)
#define NCL 8
#define MIB (1ull << 20)

struct rec {
	struct ptl_img *apply; /* NULL: only record */
	uint32_t n;
	int fail_at;
	struct plan_op ops[512];
};

static int rec_sink(void *ctx, const struct plan_op *op)
{
	struct rec *r = ctx;

	if (r->fail_at >= 0 && (int)r->n == r->fail_at)
		return -5;
	if (r->n < 512) {
		r->ops[r->n] = *op;
		r->ops[r->n].data = NULL;
	}
	r->n++;
	if (r->apply && op->kind == PLAN_OP_WRITE) {
		struct ptl_img *im = r->apply;
		if (op->off + op->len > im->len) {
			im->b = realloc(im->b, op->off + op->len);
			assert_non_null(im->b);
			memset(im->b + im->len, 0, op->off + op->len - im->len);
			im->len = op->off + op->len;
		}
		memcpy(im->b + op->off, op->data, op->len);
	}
	if (r->apply && op->kind == PLAN_OP_ZERO && op->off + op->len <= r->apply->len)
		memset(r->apply->b + op->off, 0, op->len);
	return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
	put_be32(p, v);
}

static void put64(uint8_t *p, uint64_t v)
{
	put_be64(p, v);
}

/* A valid v3 image, 4 KiB clusters, 16-bit refcounts, 1 MiB virtual:
 * 0 header, 1 reftable, 2 refblock, 3 L1, 4 L2, 5 data (guest cluster 200),
 * 6 data (guest cluster 10). */
static struct ptl_img mkimg(void)
{
	struct ptl_img im = {.len = NCL * CS};
	uint8_t *h;

	im.b = calloc(1, im.len);
	assert_non_null(im.b);
	h = im.b;
	put32(h, 0x514649fb);
	put32(h + 4, 3);
	put32(h + 20, CB);
	put64(h + 24, MIB);
	put32(h + 36, 1);
	put64(h + 40, 3 * CS);
	put64(h + 48, 1 * CS);
	put32(h + 56, 1);
	put32(h + 96, 4);
	put32(h + 100, 112);
	put64(im.b + 1 * CS, 2 * CS);
	for (int c = 0; c < 7; c++)
		put_be16(im.b + 2 * CS + c * 2, 1);
	put64(im.b + 3 * CS, (4ull * CS) | (1ull << 63));
	put64(im.b + 4 * CS + 200 * 8, (5ull * CS) | (1ull << 63));
	put64(im.b + 4 * CS + 10 * 8, (6ull * CS) | (1ull << 63));
	memset(im.b + 5 * CS, 0xab, CS);
	memset(im.b + 6 * CS, 0xcd, CS);
	return im;
}

struct run {
	struct instar_resize_result res;
	struct rec rec;
	int rc;
	uint64_t after;
};

/* What the host tells the planner besides the request (see host_view). */
static struct {
	int set;	      /* 1: use these instead of the header's names */
	uint32_t flags;	      /* INSTAR_RESIZE_BACKING* / _DATA_FILE */
	uint64_t backing_len; /* with INSTAR_RESIZE_BACKING_LEN */
	uint32_t bcrc, dcrc;
} host;

/* The host's view of the header: the backing name's CRC when there is one. */
static void host_view(const struct ptl_img *im, struct plan_opts *o)
{
	uint64_t boff = get_be64(im->b + 8);
	uint32_t bsz = get_be32(im->b + 16);

	if (host.set) {
		o->flags |= host.flags;
		o->backing_len = host.backing_len;
		o->backing_name_crc = host.bcrc;
		o->data_file_name_crc = host.dcrc;
		return;
	}
	if (boff && bsz && boff < im->len && bsz <= im->len - boff) {
		o->flags |= INSTAR_RESIZE_BACKING;
		o->backing_name_crc = instar_crc32(0, im->b + boff, bsz);
	}
}

/* The backing file's content the planner may read (NULL: not offered). */
static struct ptl_img backing;

static int backing_read(void *ctx, uint64_t off, void *buf, uint32_t len)
{
	const struct ptl_img *b = ctx;

	for (uint32_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = off + i < b->len ? b->b[off + i] : 0;
	return 0;
}

static void run_plan(struct ptl_img *im, uint64_t new_size, uint32_t flags, uint32_t prealloc,
		     size_t scratch_len, int apply, struct run *out)
{
	struct plan_opts o = {.new_size = new_size,
			      .expected_old_size = UINT64_MAX,
			      .prealloc = prealloc,
			      .flags = flags};
	struct plan_io io = {.read = ptl_img_read,
			     .ctx = im,
			     .file_size = im->len,
			     .read_backing = backing.b ? backing_read : NULL,
			     .backing_ctx = &backing};
	struct plan_scratch s;
	struct plan p;
	void *mem = malloc(scratch_len);

	host_view(im, &o);
	assert_non_null(mem);
	memset(out, 0, sizeof(*out));
	out->rec.fail_at = -1;
	out->rec.apply = apply ? im : NULL;
	plan_scratch_init(&s, mem, scratch_len);
	plan_init(&p, rec_sink, &out->rec, 0);
	out->rc = plan_resize_qcow2(&o, &io, &s, &p, &out->res);
	out->after = p.file_size_after;
	free(mem);
}

static int plan_err(struct ptl_img *im, uint64_t new_size, uint32_t flags)
{
	struct run r;

	run_plan(im, new_size, flags, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, (int)r.res.error);
	if (r.rc)
		assert_int_equal(r.rec.n, 0); /* nothing emitted on error */
	return r.rc;
}

static uint16_t refcount(const struct ptl_img *im, uint64_t c)
{
	uint64_t rt = get_be64(im->b + 48), rb = get_be64(im->b + rt + (c / (CS / 2)) * 8);

	if (!rb)
		return 0;
	return get_be16(im->b + rb + (c % (CS / 2)) * 2);
}

static void test_valid_grow(void **state)
{
	struct ptl_img im = mkimg();
	struct run r;
	uint64_t l1;
	int size_at = -1, l1_at = -1;

	(void)state;
	/* 1 MiB -> 5 MiB needs 3 L1 entries: the L1 moves. */
	run_plan(&im, 5 * MIB, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.res.action, INSTAR_ACTION_GROW);
	assert_true(r.res.old_virtual_size == MIB);
	assert_true(r.res.new_virtual_size == 5 * MIB);
	for (uint32_t i = 0; i < r.rec.n; i++) {
		if (r.rec.ops[i].kind == PLAN_OP_WRITE && r.rec.ops[i].off == 24)
			size_at = (int)i;
		if (r.rec.ops[i].kind == PLAN_OP_WRITE && r.rec.ops[i].off == 36)
			l1_at = (int)i;
	}
	/* crash-safe order: ... FLUSH, L1 pointer, FLUSH, size, FLUSH ... */
	assert_true(l1_at > 0 && size_at > l1_at + 1);
	assert_int_equal(r.rec.ops[l1_at - 1].kind, PLAN_OP_FLUSH);
	assert_int_equal(r.rec.ops[size_at - 1].kind, PLAN_OP_FLUSH);
	assert_int_equal(r.rec.ops[size_at + 1].kind, PLAN_OP_FLUSH);
	assert_true(get_be64(im.b + 24) == 5 * MIB);
	assert_int_equal(get_be32(im.b + 36), 3);
	l1 = get_be64(im.b + 40);
	assert_true(l1 >= NCL * CS && l1 % CS == 0);
	assert_true(get_be64(im.b + l1) == ((4ull * CS) | (1ull << 63)));
	assert_int_equal(refcount(&im, l1 / CS), 1);
	assert_int_equal(refcount(&im, 3), 0); /* old L1 freed */
	assert_true(r.after == im.len);
	free(im.b);
}

static void test_valid_shrink(void **state)
{
	struct ptl_img im = mkimg();
	struct run r;

	(void)state;
	/* cut at guest cluster 100: drops cluster 200 (host 5), keeps 10 */
	run_plan(&im, 100 * CS + 512, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.res.action, INSTAR_ACTION_SHRINK);
	assert_true(get_be64(im.b + 4 * CS + 200 * 8) == 0);
	assert_true(get_be64(im.b + 4 * CS + 10 * 8) != 0);
	assert_int_equal(refcount(&im, 5), 0);
	assert_int_equal(refcount(&im, 6), 1);
	/* the free tail (clusters 5.. except 6) is trimmed to after cluster 6 */
	assert_true(r.after == 7 * CS);
	free(im.b);
}

/* Issue 15: a shrink commits its size first. The one write of the size
 * field (@24) is followed by a FLUSH, and every op before it lies in the
 * refcount structures of mkimg (reftable 1, refblock 2: the run's +1
 * counts) or at/after old_len (the new run): the header, L1 (3), L2 (4) and
 * the data clusters (5.., up to old_len) are untouched until the size is
 * durable. Then something unlinks (an L1 or L2 write) before the end. */
static void assert_commit_first(const struct run *r, uint64_t old_len)
{
	uint32_t n = r->rec.n < 512 ? r->rec.n : 512, c = n, i;
	int unlinked = 0;

	for (i = 0; i < n; i++) {
		const struct plan_op *op = &r->rec.ops[i];

		if (op->kind != PLAN_OP_FLUSH && op->off <= 24 && op->off + op->len >= 32) {
			assert_int_equal(c, n); /* exactly one commit write */
			c = i;
		}
	}
	assert_true(c < n - 1);
	assert_int_equal(r->rec.ops[c + 1].kind, PLAN_OP_FLUSH);
	for (i = 0; i < c; i++) {
		const struct plan_op *op = &r->rec.ops[i];

		if (op->kind == PLAN_OP_FLUSH)
			continue;
		if (op->off >= old_len)
			continue;
		assert_int_equal(op->kind, PLAN_OP_WRITE);
		assert_true(op->off >= 1 * CS && op->off + op->len <= 3 * CS);
	}
	for (i = c + 1; i < n; i++) {
		const struct plan_op *op = &r->rec.ops[i];

		if (op->kind != PLAN_OP_FLUSH && op->off >= 3 * CS && op->off < 5 * CS)
			unlinked = 1;
	}
	assert_true(unlinked);
}

static void test_shrink_commit_first(void **state)
{
	struct ptl_img im;
	struct run r;
	uint64_t len;

	(void)state;
	/* plain: cluster 200 dropped; cluster 10 (host 6) cut, tail zeroed in
	 * place after the commit */
	im = mkimg();
	len = im.len;
	run_plan(&im, 10 * CS + 512, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_commit_first(&r, len);
	assert_int_equal(im.b[6 * CS + 511], 0xcd);
	assert_int_equal(im.b[6 * CS + 512], 0);
	assert_true(get_be64(im.b + 4 * CS + 200 * 8) == 0);
	assert_int_equal(refcount(&im, 5), 0);
	free(im.b);

	/* snapshot-shared tail cluster: copied, relinked after the commit */
	im = mkimg();
	put_be16(im.b + 2 * CS + 5 * 2, 2);
	put_be64(im.b + 4 * CS + 200 * 8, 5ull * CS);
	len = im.len;
	run_plan(&im, 200 * CS + 512, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_commit_first(&r, len);
	assert_int_equal(refcount(&im, 5), 1);
	free(im.b);

	/* a snapshot-shared L2 table straddling the cut: copied, the L1 entry
	 * switched after the commit */
	im = mkimg();
	put_be16(im.b + 2 * CS + 4 * 2, 2);
	put_be16(im.b + 2 * CS + 5 * 2, 2);
	put_be16(im.b + 2 * CS + 6 * 2, 2);
	put64(im.b + 3 * CS, 4ull * CS);
	put64(im.b + 4 * CS + 200 * 8, 5ull * CS);
	put64(im.b + 4 * CS + 10 * 8, 6ull * CS);
	len = im.len;
	run_plan(&im, 100 * CS, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_commit_first(&r, len);
	assert_true(get_be64(im.b + 3 * CS) != 4ull * CS);
	assert_int_equal(refcount(&im, 4), 1);
	assert_int_equal(refcount(&im, 5), 1);
	free(im.b);
}

static void test_noop(void **state)
{
	struct ptl_img im = mkimg();
	struct run r;

	(void)state;
	run_plan(&im, MIB, 0, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.res.action, INSTAR_ACTION_NOOP);
	assert_int_equal(r.rec.n, 2); /* the size write, then a flush */
	assert_true(r.rec.ops[0].off == 24 && r.rec.ops[0].len == 8);
	assert_int_equal(r.rec.ops[1].kind, PLAN_OP_FLUSH);
	free(im.b);
}

static void test_request_errors(void **state)
{
	struct ptl_img im = mkimg();
	struct run r;
	struct plan_opts o = {.new_size = 2 * MIB, .expected_old_size = 3 * MIB};
	struct plan_io io = {.read = ptl_img_read, .ctx = &im, .file_size = im.len};
	struct plan_scratch s;
	struct plan p;
	struct rec rc = {.fail_at = -1};
	static uint8_t mem[4 * 1024 * 1024];

	(void)state;
	assert_int_equal(plan_err(&im, MIB + 100, 0), INSTAR_ERR_NOT_MULTIPLE_512);
	assert_int_equal(plan_err(&im, MIB / 2, 0), INSTAR_ERR_SHRINK_WITHOUT_FLAG);
	assert_int_equal(plan_err(&im, 0, INSTAR_RESIZE_SHRINK_ALLOWED),
			 INSTAR_ERR_INVALID_NEW_SIZE);
	run_plan(&im, MIB, 0, INSTAR_PREALLOC_FALLOC, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, INSTAR_ERR_PREALLOC_NOT_GROWING);
	/* 4 KiB clusters: 4M L1 entries cover 8 TiB */
	assert_int_equal(plan_err(&im, 16ull << 40, 0), INSTAR_ERR_TOO_LARGE);
	assert_string_equal(r.res.detail, "Preallocation can only be used for growing images");

	plan_scratch_init(&s, mem, sizeof(mem));
	plan_init(&p, rec_sink, &rc, 0);
	assert_int_equal(plan_resize_qcow2(&o, &io, &s, &p, &r.res), INSTAR_ERR_HEADER_MISMATCH);

	/* too little scratch: an error, not a crash */
	run_plan(&im, 5 * MIB, 0, 0, 4096, 0, &r);
	assert_int_equal(r.rc, INSTAR_ERR_SCRATCH_TOO_SMALL);

	/* a failing sink */
	o.expected_old_size = UINT64_MAX;
	rc.fail_at = 0;
	plan_scratch_init(&s, mem, sizeof(mem));
	plan_init(&p, rec_sink, &rc, 0);
	assert_int_equal(plan_resize_qcow2(&o, &io, &s, &p, &r.res), INSTAR_ERR_WRITE_FAILED);
	free(im.b);
}

/* Header field patches: offset, width (4 or 8), value, expected error. */
struct patch {
	uint32_t off, width;
	uint64_t val;
	int err;
};

/* Writes pt's big-endian value of pt->width (4 or 8) bytes into im. */
static void patch_apply(struct ptl_img *im, const struct patch *pt)
{
	if (pt->width == 4)
		put32(im->b + pt->off, (uint32_t)pt->val);
	else
		put64(im->b + pt->off, pt->val);
}

/* The open's refusals carry qemu 7.2's words (block/qcow2.c's
 * qcow2_do_open, in its order) and INSTAR_RESULT_OPEN; a refusal of the
 * resize itself does not. tests/compat/qcow2_open.sh compares with qemu-img. */
static void test_open_messages(void **state)
{
	static const struct {
		uint32_t off, width;
		uint64_t val;
		const char *detail;
	} cases[] = {
	    {0, 4, 0x514649fa, "Image is not in qcow2 format"},
	    {4, 4, 4, "Unsupported qcow2 version 4"},
	    {20, 4, 8, "Unsupported cluster size: 2^8"},
	    {100, 4, 100, "qcow2 header too short"},
	    {100, 4, 2 * CS, "qcow2 header exceeds cluster size"},
	    {8, 8, CS + 8, "Invalid backing file offset"},
	    {72, 8, 1ull << 3, "qcow2: Compression type incompatible feature bit must not be set"},
	    {72, 8, (1ull << 5) | (1ull << 63),
	     "Unsupported qcow2 feature(s): Unknown incompatible feature: 8000000000000020"},
	    {72, 8, 2, "qcow2: Image is corrupt; cannot be opened read/write"},
	    {72, 8, 1ull << 4, "Unsupported subcluster size: 128"},
	    {96, 4, 7, "Reference count entry width too large; may not exceed 64 bits"},
	    {56, 4, 0, "Image does not contain a reference count table"},
	    {56, 4, 2049, "Reference count table too large"},
	    {48, 8, CS + 8, "Reference count table offset invalid"},
	    {60, 4, 65537, "Snapshot table too large"},
	    {64, 8, 8, "Snapshot table offset invalid"},
	    {36, 4, 4194305, "Active L1 table too large"},
	    {40, 8, 3 * CS + 8, "Active L1 table offset invalid"},
	    {24, 8, 1ull << 62, "Image is too big"},
	    {24, 8, 1ull << 40, "L1 table is too small"},
	    {32, 4, 3, "Unsupported encryption method 3"},
	    {32, 4, 2, "Missing CRYPTO header for crypt method 2"},
	    {88, 8, 2, "data-file-raw requires a data file"},
	    {16, 4, 1024, NULL}, /* with a backing offset below: too long */
	};
	struct run r;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ptl_img im = mkimg();
		const char *want = cases[i].detail;

		if (cases[i].width == 4)
			put32(im.b + cases[i].off, (uint32_t)cases[i].val);
		else
			put64(im.b + cases[i].off, cases[i].val);
		if (!want) {
			put64(im.b + 8, 512);
			want = "Backing file name too long";
		}
		run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
		if (r.rc == INSTAR_OK || strcmp(r.res.detail, want) != 0 ||
		    !(r.res.flags & INSTAR_RESULT_OPEN))
			fail_msg("case %zu: got %d '%s' flags %u, want '%s'", i, r.rc, r.res.detail,
				 r.res.flags, want);
		assert_int_equal(r.rec.n, 0);
		free(im.b);
	}

	/* an extension running past cluster 0 */
	{
		struct ptl_img im = mkimg();

		put32(im.b + 112, 0x12345678);
		put32(im.b + 116, CS);
		run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
		assert_string_equal(r.res.detail, "Header extension too large");
		assert_true(r.res.flags & INSTAR_RESULT_OPEN);
		free(im.b);
	}
	/* a named unknown feature: the feature table's name, then the rest */
	{
		struct ptl_img im = mkimg();

		put32(im.b + 112, 0x6803f857);
		put32(im.b + 116, 48);
		im.b[120] = 0;
		im.b[121] = 6;
		memcpy(im.b + 122, "future", 6);
		put64(im.b + 72, (1ull << 6) | (1ull << 9));
		run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
		assert_string_equal(r.res.detail,
				    "Unsupported qcow2 feature(s): future, Unknown incompatible "
				    "feature: 200");
		free(im.b);
	}
	/* the image opens; the resize is refused: not an open failure */
	{
		struct ptl_img im = mkimg();

		run_plan(&im, MIB / 2, 0, 0, 8 * MIB, 0, &r);
		assert_int_equal(r.rc, INSTAR_ERR_SHRINK_WITHOUT_FLAG);
		assert_int_equal(r.res.flags, 0);
		run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 1, &r);
		assert_int_equal(r.rc, INSTAR_OK);
		assert_int_equal(r.res.flags, 0);
		free(im.b);
	}
}

static void test_hostile_headers(void **state)
{
	static const struct patch patches[] = {
	    {0, 4, 0x514649fa, INSTAR_ERR_PARSE_FAILED},	/* magic */
	    {4, 4, 1, INSTAR_ERR_UNSUPPORTED_FEATURE},		/* version */
	    {4, 4, 0xffffffff, INSTAR_ERR_UNSUPPORTED_FEATURE}, /* version */
	    {20, 4, 8, INSTAR_ERR_PARSE_FAILED},		/* cluster_bits */
	    {20, 4, 22, INSTAR_ERR_PARSE_FAILED},
	    {20, 4, 0xffffffff, INSTAR_ERR_PARSE_FAILED},
	    {96, 4, 7, INSTAR_ERR_PARSE_FAILED}, /* refcount_order */
	    {96, 4, 0xffffffff, INSTAR_ERR_PARSE_FAILED},
	    {100, 4, 100, INSTAR_ERR_PARSE_FAILED}, /* header_length */
	    {100, 4, 108, INSTAR_ERR_PARSE_FAILED},
	    {100, 4, 0xfffffff8, INSTAR_ERR_PARSE_FAILED},
	    {36, 4, 0xffffffff, INSTAR_ERR_PARSE_FAILED}, /* absurd l1_size */
	    {36, 4, 4194305, INSTAR_ERR_PARSE_FAILED},
	    {36, 4, 0, INSTAR_ERR_CORRUPT},		  /* L1 too small */
	    {24, 8, 1ull << 62, INSTAR_ERR_PARSE_FAILED}, /* "Image is too big" */
	    {24, 8, UINT64_MAX, INSTAR_ERR_PARSE_FAILED}, /* overflow size */
	    {40, 8, 0, INSTAR_ERR_PARSE_FAILED},	  /* L1 on the header */
	    {40, 8, 3 * CS + 8, INSTAR_ERR_PARSE_FAILED}, /* unaligned */
	    {40, 8, 1ull << 40, INSTAR_ERR_PARSE_FAILED}, /* beyond EOF */
	    {40, 8, UINT64_MAX - CS + 1, INSTAR_ERR_PARSE_FAILED},
	    {40, 8, 1 * CS, INSTAR_ERR_CORRUPT}, /* on the reftable */
	    {48, 8, 0, INSTAR_ERR_PARSE_FAILED}, /* reftable */
	    {48, 8, CS + 512, INSTAR_ERR_PARSE_FAILED},
	    {48, 8, (uint64_t)NCL * CS, INSTAR_ERR_PARSE_FAILED},
	    {48, 8, UINT64_MAX & ~(uint64_t)(CS - 1), INSTAR_ERR_PARSE_FAILED},
	    {56, 4, 0, INSTAR_ERR_PARSE_FAILED},
	    {56, 4, 0xffffffff, INSTAR_ERR_PARSE_FAILED},
	    {56, 4, NCL, INSTAR_ERR_PARSE_FAILED},		/* runs past EOF */
	    {60, 4, 0xffffffff, INSTAR_ERR_PARSE_FAILED},	/* snapshots */
	    {8, 8, 4000, INSTAR_ERR_PARSE_FAILED},		/* backing name */
	    {32, 4, 2, INSTAR_ERR_PARSE_FAILED},		/* LUKS without its header */
	    {72, 8, 1, INSTAR_ERR_REQUIRES_CHECK},		/* dirty */
	    {72, 8, 2, INSTAR_ERR_CORRUPT},			/* corrupt */
	    {72, 8, 1ull << 5, INSTAR_ERR_UNSUPPORTED_FEATURE}, /* unknown */
	    {72, 8, 1ull << 63, INSTAR_ERR_UNSUPPORTED_FEATURE},
	    {72, 8, 1ull << 4, INSTAR_ERR_PARSE_FAILED},	/* ext L2 on 4K */
	    {72, 8, 1ull << 2, INSTAR_ERR_UNSUPPORTED_FEATURE}, /* data file */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
		struct ptl_img im = mkimg();
		const struct patch *pt = &patches[i];

		patch_apply(&im, pt);
		if (plan_err(&im, 2 * MIB, INSTAR_RESIZE_SHRINK_ALLOWED) != pt->err)
			fail_msg("patch %zu (off %u): got %d want %d", i, pt->off,
				 plan_err(&im, 2 * MIB, 0), pt->err);
		free(im.b);
	}
}

static void test_corrupt_detail(void **state)
{
	struct ptl_img im = mkimg();
	struct run r;

	(void)state;
	put64(im.b + 72, 2);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, INSTAR_ERR_CORRUPT);
	assert_non_null(strstr(r.res.detail, "Image is corrupt; cannot be opened read/write"));
	free(im.b);

	im = mkimg();
	put32(im.b + 4, 2); /* v2 with a snapshot */
	put32(im.b + 60, 1);
	put64(im.b + 64, 7 * CS);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, INSTAR_ERR_UNSUPPORTED_FEATURE);
	assert_string_equal(r.res.detail, "Can't resize a v2 image which has snapshots");
	free(im.b);

	im = mkimg();
	put64(im.b + 8, 200); /* v2 with a backing file cannot zero the new range */
	put32(im.b + 16, 4);
	memcpy(im.b + 200, "base", 4);
	put32(im.b + 4, 2);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, INSTAR_ERR_UNSUPPORTED_FEATURE);
	assert_string_equal(r.res.detail,
			    "Failed to zero out new clusters: Operation not supported");
	free(im.b);
}

/* Hostile tables reached while planning: L1/L2/reftable entries. */
static void test_hostile_tables(void **state)
{
	struct ptl_img im;

	(void)state;
	im = mkimg(); /* L1 entry unaligned */
	put64(im.b + 3 * CS, 4ull * CS + 512);
	assert_int_equal(plan_err(&im, 8 * CS, INSTAR_RESIZE_SHRINK_ALLOWED), INSTAR_ERR_CORRUPT);
	free(im.b);

	im = mkimg(); /* L1 entry beyond EOF */
	put64(im.b + 3 * CS, 1ull << 50);
	assert_int_equal(plan_err(&im, 8 * CS, INSTAR_RESIZE_SHRINK_ALLOWED), INSTAR_ERR_CORRUPT);
	free(im.b);

	im = mkimg(); /* offset 0 with flags: no table (as qemu reads it) */
	put64(im.b + 3 * CS, 1ull << 63);
	assert_int_equal(plan_err(&im, 8 * CS, INSTAR_RESIZE_SHRINK_ALLOWED), 0);
	free(im.b);

	im = mkimg(); /* data cluster with refcount 0 */
	put_be16(im.b + 2 * CS + 5 * 2, 0);
	assert_int_equal(plan_err(&im, 8 * CS, INSTAR_RESIZE_SHRINK_ALLOWED), INSTAR_ERR_CORRUPT);
	free(im.b);

	im = mkimg(); /* L2 entry unaligned */
	put64(im.b + 4 * CS + 200 * 8, 5ull * CS + 512);
	assert_int_equal(plan_err(&im, 8 * CS, INSTAR_RESIZE_SHRINK_ALLOWED), INSTAR_ERR_CORRUPT);
	free(im.b);

	im = mkimg(); /* compressed entry pointing into the header */
	put64(im.b + 4 * CS + 200 * 8, (1ull << 62) | 100);
	assert_int_equal(plan_err(&im, 8 * CS, INSTAR_RESIZE_SHRINK_ALLOWED), INSTAR_ERR_CORRUPT);
	free(im.b);

	im = mkimg(); /* refblock beyond EOF */
	put64(im.b + 1 * CS, 1ull << 45);
	assert_int_equal(plan_err(&im, 5 * MIB, 0), INSTAR_ERR_CORRUPT);
	free(im.b);

	im = mkimg(); /* refblock unaligned */
	put64(im.b + 1 * CS, 2 * CS + 4096 / 2);
	assert_int_equal(plan_err(&im, 5 * MIB, 0), INSTAR_ERR_CORRUPT);
	free(im.b);

	im = mkimg(); /* every refcount claimed beyond EOF: the run skips them */
	for (uint32_t c = 7; c < CS / 2; c++)
		put_be16(im.b + 2 * CS + c * 2, 1);
	assert_int_equal(plan_err(&im, 5 * MIB, 0), 0);
	free(im.b);
}

/* mkimg() grown to n clusters, the new ones (7 .. n-1) counted in use. */
static struct ptl_img mkimg_ext(int n)
{
	struct ptl_img im = mkimg();

	im.b = realloc(im.b, (size_t)n * CS);
	assert_non_null(im.b);
	memset(im.b + im.len, 0, (size_t)n * CS - im.len);
	im.len = (size_t)n * CS;
	for (int c = 7; c < n; c++)
		put_be16(im.b + 2 * CS + c * 2, 1);
	return im;
}

/* mkimg() plus a persistent bitmap "b0" (granularity 512): its table at
 * cluster 8 (one entry: data cluster 7, bit 0 set), the directory at 9. */
static struct ptl_img mkbm(void)
{
	struct ptl_img im = mkimg_ext(10);
	uint8_t *d;

	put64(im.b + 88, 1); /* autoclear: bitmaps consistent */
	put32(im.b + 112, 0x23852875);
	put32(im.b + 116, 24);
	put32(im.b + 120, 1);
	put64(im.b + 128, 32);
	put64(im.b + 136, 9ull * CS);
	im.b[7 * CS] = 1;
	put64(im.b + 8 * CS, 7ull * CS);
	d = im.b + 9 * CS;
	put64(d, 8ull * CS);
	put32(d + 8, 1);
	put32(d + 12, 2); /* auto */
	d[16] = 1;
	d[17] = 9;
	put_be16(d + 18, 2);
	memcpy(d + 24, "b0", 2);
	return im;
}

/* Hostile bitmap extension and directory: proper errors, never a crash. */
static void test_hostile_bitmaps(void **state)
{
	static const struct patch patches[] = {
	    {120, 4, 0xffffffff, INSTAR_ERR_PARSE_FAILED},	   /* nb_bitmaps */
	    {120, 4, 2, INSTAR_ERR_PARSE_FAILED},		   /* dir too small */
	    {128, 8, 1ull << 40, INSTAR_ERR_PARSE_FAILED},	   /* directory_size */
	    {128, 8, 8, INSTAR_ERR_PARSE_FAILED},		   /* < one entry */
	    {136, 8, 9ull * CS + 8, INSTAR_ERR_PARSE_FAILED},	   /* unaligned */
	    {136, 8, 1ull << 50, INSTAR_ERR_PARSE_FAILED},	   /* beyond EOF */
	    {136, 8, 0, INSTAR_ERR_PARSE_FAILED},		   /* on the header */
	    {116, 4, 8, INSTAR_ERR_PARSE_FAILED},		   /* ext too short */
	    {9 * CS, 8, 1ull << 50, INSTAR_ERR_PARSE_FAILED},	   /* table offset */
	    {9 * CS, 8, 8ull * CS + 512, INSTAR_ERR_PARSE_FAILED}, /* unaligned */
	    {9 * CS + 8, 4, 0x7fffffff, INSTAR_ERR_PARSE_FAILED},  /* table size */
	    {9 * CS + 8, 4, 0, INSTAR_ERR_CORRUPT},		   /* too small */
	    {9 * CS + 16, 4, 0x01080002, INSTAR_ERR_PARSE_FAILED}, /* gran 8 */
	    {9 * CS + 16, 4, 0x02090002, INSTAR_ERR_PARSE_FAILED}, /* type */
	    {9 * CS + 16, 4, 0x01090000, INSTAR_ERR_PARSE_FAILED}, /* no name */
	    {9 * CS + 16, 4, 0x0109ffff, INSTAR_ERR_PARSE_FAILED}, /* long name */
	    {9 * CS + 20, 4, 0xffffffff, INSTAR_ERR_PARSE_FAILED}, /* extra data */
	    {9 * CS + 12, 4, 0x10, INSTAR_ERR_PARSE_FAILED},	   /* flags */
	    {9 * CS + 12, 4, 3, INSTAR_ERR_UNSUPPORTED_FEATURE},   /* in use */
	    {8 * CS, 8, 7ull * CS + 3, INSTAR_ERR_CORRUPT},	   /* entry bits */
	    {8 * CS, 8, 1ull << 50, INSTAR_ERR_CORRUPT},	   /* entry EOF */
	    {8 * CS, 8, 1, 0},					   /* all ones */
	};
	struct ptl_img im = mkbm();
	struct run r;

	(void)state;
	run_plan(&im, 64 * MIB, 0, 0, 8 * MIB, 1, &r); /* the valid one grows */
	assert_int_equal(r.rc, 0);
	assert_int_equal(get_be64(im.b + 24), 64 * MIB);
	assert_int_not_equal(get_be64(im.b + 136), 9ull * CS); /* a new directory */
	free(im.b);
	im = mkbm();
	run_plan(&im, 512 * 1024, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, 0);
	free(im.b);
	for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
		const struct patch *pt = &patches[i];

		im = mkbm();
		patch_apply(&im, pt);
		if (plan_err(&im, 64 * MIB, 0) != pt->err)
			fail_msg("bitmap patch %zu (off %u): got %d want %d", i, pt->off,
				 plan_err(&im, 64 * MIB, 0), pt->err);
		free(im.b);
	}
	im = mkbm();
	put32(im.b + 9 * CS + 12, 3);
	run_plan(&im, 64 * MIB, 0, 0, 8 * MIB, 0, &r);
	assert_string_equal(r.res.detail, "Bitmap 'b0' is inconsistent and cannot be used");
	free(im.b);
	im = mkbm(); /* too little scratch for the directory: an error, no crash */
	run_plan(&im, 64 * MIB, 0, 0, 8 * 1024, 0, &r);
	assert_int_equal(r.rc, INSTAR_ERR_SCRATCH_TOO_SMALL);
	free(im.b);
	for (uint32_t it = 0; it < 2000; it++) { /* random flips in the bitmap parts */
		uint32_t off =
		    (it % 3 == 0) ? 112 + it % 32 : (it % 3 == 1 ? 9 * CS : 8 * CS) + it % 40;

		im = mkbm();
		im.b[off] ^= (uint8_t)(1u << (it % 8));
		run_plan(&im, (it & 1) ? 64 * MIB : 512 * 1024, INSTAR_RESIZE_SHRINK_ALLOWED, 0,
			 8 * MIB, 0, &r);
		assert_int_equal(r.rc, (int)r.res.error);
		free(im.b);
	}
}

/* Random corruption of the metadata clusters: any outcome but a crash. */
static void test_fuzz(void **state)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	(void)state;
	for (int it = 0; it < 3000; it++) {
		struct ptl_img im = mkimg();
		struct run r;
		int flips = 1 + it % 8;

		for (int f = 0; f < flips; f++) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			/* mostly the header, the reftable, refblock, L1, L2 starts */
			uint32_t region = (uint32_t)(seed >> 40) % 5;
			uint32_t off = region * CS + (uint32_t)(seed >> 8) % (region ? 256 : 112);
			im.b[off] ^= (uint8_t)(1u << ((seed >> 3) % 8));
		}
		run_plan(&im, (it % 3 == 0) ? 64 * CS : (it % 3 == 1 ? 5 * MIB : 3 * MIB),
			 INSTAR_RESIZE_SHRINK_ALLOWED, (uint32_t)(it % 7 == 0 ? 1 : 0), 4 * MIB, 0,
			 &r);
		assert_int_equal(r.rc, (int)r.res.error);
		assert_true(r.res.error < INSTAR_ERR_COUNT);
		free(im.b);
	}
}

/* The kept part of a cut cluster that is not ours alone to zero in place:
 * shared with a snapshot (refcount 2), or compressed (a stored deflate block
 * in host cluster 7). Either way guest cluster 200 moves to a new plain
 * cluster holding the kept 512 bytes and zeros, and the old one loses our
 * reference. */
static void check_tail_copy(struct ptl_img *im)
{
	uint64_t e = get_be64(im->b + 4 * CS + 200 * 8), h = e & 0x00fffffffffffe00ull;
	uint8_t want[CS];

	assert_int_equal(e >> 62, 2); /* COPIED, not compressed */
	assert_true(h >= 7 * CS && h + CS <= im->len);
	assert_int_equal(refcount(im, h / CS), 1);
	memset(want, 0, sizeof(want));
	memset(want, 0xab, 512);
	assert_memory_equal(im->b + h, want, CS);
}

static void test_shrink_tail_copy(void **state)
{
	struct ptl_img im;
	struct run r;

	(void)state;
	im = mkimg();
	put_be16(im.b + 2 * CS + 5 * 2, 2);	      /* cluster 5 shared with a snapshot */
	put_be64(im.b + 4 * CS + 200 * 8, 5ull * CS); /* no COPIED bit */
	run_plan(&im, 200 * CS + 512, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	check_tail_copy(&im);
	assert_int_equal(refcount(&im, 5), 1);	     /* the snapshot's reference */
	assert_int_equal(im.b[5 * CS + 4000], 0xab); /* its bytes untouched */
	free(im.b);

	im = mkimg();
	im.b = realloc(im.b, 9 * CS);
	assert_non_null(im.b);
	im.len = 9 * CS;
	memset(im.b + 7 * CS, 0, 2 * CS);
	im.b[7 * CS] = 0x01; /* final stored block of CS bytes */
	im.b[7 * CS + 1] = CS & 0xff;
	im.b[7 * CS + 2] = CS >> 8;
	im.b[7 * CS + 3] = (uint8_t) ~(CS & 0xff);
	im.b[7 * CS + 4] = (uint8_t) ~(CS >> 8);
	memset(im.b + 7 * CS + 5, 0xab, CS);
	/* compressed entry: offset 7*CS, 8 more sectors (5 + CS bytes) */
	put_be64(im.b + 4 * CS + 200 * 8, (1ull << 62) | (8ull << (70 - CB)) | (7ull * CS));
	put_be16(im.b + 2 * CS + 5 * 2, 0);
	put_be16(im.b + 2 * CS + 7 * 2, 1);
	put_be16(im.b + 2 * CS + 8 * 2, 1);
	run_plan(&im, 200 * CS + 512, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	check_tail_copy(&im);
	assert_int_equal(refcount(&im, 7), 0); /* both host clusters it spanned */
	assert_int_equal(refcount(&im, 8), 0);
	free(im.b);

	/* a compressed cluster that does not decompress stays as it is */
	im = mkimg();
	put_be64(im.b + 4 * CS + 200 * 8, (1ull << 62) | (7ull * CS));
	put_be16(im.b + 2 * CS + 5 * 2, 0);
	put_be16(im.b + 2 * CS + 7 * 2, 1);
	run_plan(&im, 200 * CS + 512, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(get_be64(im.b + 4 * CS + 200 * 8), (1ull << 62) | (7ull * CS));
	free(im.b);
}

/* A backing name at 200 ("base"): the host's length decides the zeroing. */
static struct ptl_img mkbacked(uint32_t version)
{
	struct ptl_img im = mkimg();

	put64(im.b + 8, 200);
	put32(im.b + 16, 4);
	memcpy(im.b + 200, "base", 4);
	put32(im.b + 4, version);
	return im;
}

static uint32_t count_writes_past(const struct run *r, uint64_t off)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < r->rec.n && i < 512; i++)
		if (r->rec.ops[i].kind == PLAN_OP_WRITE && r->rec.ops[i].off >= off)
			n++;
	return n;
}

static void test_backing_length(void **state)
{
	struct ptl_img im;
	struct run r;

	(void)state;
	memset(&host, 0, sizeof(host));
	host.set = 1;
	host.bcrc = instar_crc32(0, "base", 4);

	/* v2, backing file no longer than the image: nothing to zero, so the
	 * grow is header-only (qemu sets no ZERO_WRITE flag either) */
	im = mkbacked(2);
	host.flags = INSTAR_RESIZE_BACKING | INSTAR_RESIZE_BACKING_LEN;
	host.backing_len = MIB;
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, INSTAR_OK);
	assert_int_equal(count_writes_past(&r, CS), 0);
	free(im.b);

	/* ...longer: v2 cannot zero (qemu's error), v3 writes zero-flag L2 entries */
	im = mkbacked(2);
	host.backing_len = MIB + 512;
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, INSTAR_ERR_UNSUPPORTED_FEATURE);
	free(im.b);
	im = mkbacked(3);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, INSTAR_OK);
	assert_true(count_writes_past(&r, CS) > 0);
	/* guest cluster 256 (the first new one) reads as zeros */
	assert_int_equal(get_be64(im.b + 4 * CS + 256 * 8) & 1, 1);
	free(im.b);

	/* unknown length: zeroed, to be safe */
	im = mkbacked(3);
	host.flags = INSTAR_RESIZE_BACKING;
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, INSTAR_OK);
	assert_int_equal(get_be64(im.b + 4 * CS + 256 * 8) & 1, 1);
	free(im.b);

	/* the host saw another name, or none, or one where there is none */
	im = mkbacked(3);
	host.bcrc = instar_crc32(0, "bas3", 4);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, INSTAR_ERR_HEADER_MISMATCH);
	host.flags = 0;
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, INSTAR_ERR_HEADER_MISMATCH);
	free(im.b);
	im = mkimg();
	host.flags = INSTAR_RESIZE_BACKING;
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, INSTAR_ERR_HEADER_MISMATCH);
	free(im.b);
	memset(&host, 0, sizeof(host));
}

/* An external data file ("d.raw" in extension 0x44415441). */
static struct ptl_img mkdatafile(int raw)
{
	struct ptl_img im = mkimg();

	put64(im.b + 72, 4); /* incompatible: external data file */
	if (raw)
		put64(im.b + 88, 2); /* autoclear: data-file-raw */
	put32(im.b + 112, 0x44415441);
	put32(im.b + 116, 5);
	memcpy(im.b + 120, "d.raw", 5);
	return im;
}

static void test_data_file(void **state)
{
	struct ptl_img im;
	struct run r;

	(void)state;
	memset(&host, 0, sizeof(host));
	host.set = 1;

	/* the host must have opened it, under that very name */
	im = mkdatafile(0);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, INSTAR_ERR_HEADER_MISMATCH);
	host.flags = INSTAR_RESIZE_DATA_FILE;
	host.dcrc = instar_crc32(0, "d.raX", 5);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, INSTAR_ERR_HEADER_MISMATCH);
	free(im.b);

	/* shrink: data clusters (here in the data file) lose no refcount; the
	 * L2 entries past the end are cleared */
	host.dcrc = instar_crc32(0, "d.raw", 5);
	im = mkdatafile(0);
	run_plan(&im, 512 * 1024, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, INSTAR_OK);
	assert_int_equal(get_be64(im.b + 4 * CS + 200 * 8), 0);
	assert_int_equal(get_be16(im.b + 2 * CS + 5 * 2), 1); /* image cluster 5 untouched */
	assert_int_equal(get_be16(im.b + 2 * CS + 4 * 2), 1); /* the L2 table is still used */
	free(im.b);

	/* data-file-raw grow: the new range is mapped onto the same offsets of
	 * the data file (qemu's forced metadata preallocation), no data
	 * clusters in the image */
	im = mkdatafile(1);
	run_plan(&im, MIB + 64 * CS, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, INSTAR_OK);
	assert_int_equal(get_be64(im.b + 4 * CS + 256 * 8), (256ull * CS) | (1ull << 63));
	assert_int_equal(get_be64(im.b + 4 * CS + 319 * 8), (319ull * CS) | (1ull << 63));
	assert_int_equal(get_be64(im.b + 4 * CS + 320 * 8), 0);
	assert_true(im.len <= 8 * CS);
	free(im.b);

	/* not raw, no preallocation: header only */
	im = mkdatafile(0);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, INSTAR_OK);
	assert_int_equal(get_be64(im.b + 4 * CS + 256 * 8), 0);
	assert_int_equal(get_be64(im.b + 24), 2 * MIB);
	free(im.b);

	/* data-file-raw without a data file is malformed */
	im = mkimg();
	put64(im.b + 88, 2);
	host.flags = 0;
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, INSTAR_ERR_PARSE_FAILED);
	free(im.b);
	memset(&host, 0, sizeof(host));
}

/* ---- issue 19.1 (iotest 060): corrupt structures the plan relies on are
 * refused before anything is written, with qemu's corruption texts ---- */

static void expect_corrupt(struct ptl_img *im, uint64_t size, const char *detail)
{
	struct run r;

	run_plan(im, size, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 0, &r);
	if (r.rc != INSTAR_ERR_CORRUPT || strcmp(r.res.detail, detail) != 0)
		fail_msg("size %llu: got %d '%s', want CORRUPT '%s'", (unsigned long long)size,
			 r.rc, r.res.detail, detail);
	assert_int_equal(r.rec.n, 0);
	/* qemu's hint behind the detail, for the snapshot entry's extra data */
	if (strncmp(detail, "Too much extra metadata", 23) == 0) {
		assert_true(r.res.flags & INSTAR_RESULT_HINT);
		assert_string_equal(r.res.detail + strlen(detail) + 1,
				    "You can force-remove this extra metadata with qemu-img check "
				    "-r all");
	} else {
		assert_false(r.res.flags & INSTAR_RESULT_HINT);
	}
}

static void test_corrupt_refcount_table(void **state)
{
	static const struct {
		uint32_t idx;
		uint64_t val;
		const char *detail;
	} cases[] = {
	    /* 060 "Discarding an out-of-bounds refblock" */
	    {1, 0x00ffffff00000000ull,
	     "Refblock at 0xffffff00000000 is not covered by the refcount structures"},
	    /* 060 "non-covered in-bounds refblock": past the file's end */
	    {1, 0x1000000000ull,
	     "Refblock at 0x1000000000 is not covered by the refcount structures"},
	    {2, 0x200, "Refblock offset 0x200 unaligned (reftable index: 0x2)"},
	    {1, 3 * CS, "Refblock at 0x3000 overlaps with active L1 table"},
	    {1, 1 * CS, "Refblock at 0x1000 overlaps with refcount table"},
	    {1, 2 * CS, "Refblock at 0x2000 is listed twice in the refcount table"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ptl_img im = mkimg();

		put64(im.b + CS + cases[i].idx * 8, cases[i].val);
		expect_corrupt(&im, 512 * 1024, cases[i].detail); /* shrink */
		expect_corrupt(&im, 4 * MIB, cases[i].detail);	  /* grow */
		free(im.b);
	}
}

/* Issue 19 (iotest 163): a shrink drops refblocks left counting only
 * themselves from the reftable, as qemu does, and the file ends after the
 * last cluster still counted. mkimg() grown to 4 MiB of virtual size with a
 * refblock at cluster 2048, the first cluster it describes, which counts
 * itself, the second L2 table (2049) and a data cluster (2050) of guest
 * cluster 600 (past a 1 MiB cut). */
static struct ptl_img mkfar(void)
{
	struct ptl_img im = mkimg();
	const uint64_t far = 2048;

	im.b = realloc(im.b, (far + 3) * CS);
	assert_non_null(im.b);
	memset(im.b + im.len, 0, (far + 3) * CS - im.len);
	im.len = (far + 3) * CS;
	put64(im.b + 24, 4 * MIB);
	put32(im.b + 36, 2);
	put64(im.b + CS + 8, far * CS);
	for (int c = 0; c < 3; c++)
		put_be16(im.b + far * CS + c * 2, 1);
	put64(im.b + 3 * CS + 8, ((far + 1) * CS) | (1ull << 63));
	put64(im.b + (far + 1) * CS + (600 - 512) * 8, ((far + 2) * CS) | (1ull << 63));
	memset(im.b + (far + 2) * CS, 0x5a, CS);
	return im;
}

static void test_shrink_drops_refblock(void **state)
{
	struct ptl_img im = mkfar();
	struct run r;
	int last_rb = -1, flush = -1, rt_at = -1;

	(void)state;
	run_plan(&im, MIB, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	/* guest data ends at cluster 6: the refblock's cluster goes too */
	assert_int_equal(r.after, 7 * CS);
	assert_int_equal(get_be64(im.b + CS + 8), 0);
	assert_int_equal(refcount(&im, 3), 1);
	for (uint32_t i = 0; i < r.rec.n && i < 512; i++) {
		const struct plan_op *op = &r.rec.ops[i];

		if (op->kind == PLAN_OP_WRITE && op->off == 2048ull * CS)
			last_rb = (int)i;
		if (op->kind == PLAN_OP_FLUSH && last_rb >= 0 && flush < 0)
			flush = (int)i;
		if (op->kind == PLAN_OP_WRITE && op->off == CS + 8 && op->len == 8)
			rt_at = (int)i;
	}
	/* the decrements are durable before the refblock leaves the reftable */
	assert_true(last_rb >= 0 && flush > last_rb && rt_at > flush);
	free(im.b);

	/* still counting a cluster below the cut: it stays */
	im = mkfar();
	put_be16(im.b + 2048 * CS + 2 * 2, 2);
	run_plan(&im, MIB, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.after, 2051ull * CS);
	assert_int_equal(get_be64(im.b + CS + 8), 2048ull * CS);
	free(im.b);
}

/* An L2 entry whose cluster a plan would release must not lie on metadata:
 * its refcount is the metadata's, and freeing it would free the table. */
static void test_corrupt_data_cluster(void **state)
{
	static const struct {
		uint64_t w0;
		const char *detail;
	} cases[] = {
	    {(3ull * CS) | (1ull << 63), "Data cluster at 0x3000 overlaps with active L1 table"},
	    {(2ull * CS) | (1ull << 63), "Data cluster at 0x2000 overlaps with refcount block"},
	    {(4ull * CS) | (1ull << 63), "Data cluster at 0x4000 overlaps with active L2 table"},
	    {1ull * CS, "Data cluster at 0x1000 overlaps with refcount table"},
	    /* compressed, 4 KiB clusters: offset in bits 0-53, one sector */
	    {(1ull << 62) | (3ull * CS + 512),
	     "Data cluster at 0x3000 overlaps with active L1 table"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ptl_img im = mkimg();

		put64(im.b + 4 * CS + 200 * 8, cases[i].w0);
		expect_corrupt(&im, 512 * 1024, cases[i].detail);
		free(im.b);
	}
	/* a bitmap's data cluster on the L2 table, whose bits past a 512 KiB
	 * cut are set (the L2 entry of guest cluster 200): the shrink would
	 * replace that cluster and free the table */
	{
		struct ptl_img im = mkbm();

		put64(im.b + 8 * CS, 4ull * CS);
		expect_corrupt(&im, 512 * 1024,
			       "Bitmap data cluster at 0x4000 overlaps with active L2 table");
		free(im.b);
	}
}

static void test_corrupt_l1(void **state)
{
	struct ptl_img im;

	(void)state;
	im = mkimg();
	put64(im.b + 3 * CS, (4ull * CS + 512) | (1ull << 63));
	expect_corrupt(&im, 512 * 1024, "L2 table offset 0x4200 unaligned (L1 index: 0)");
	put64(im.b + 3 * CS, 64ull * CS);
	expect_corrupt(&im, 4 * MIB,
		       "L2 table offset 0x40000 is beyond the end of the image file (L1 index: 0)");
	put64(im.b + 3 * CS, 1ull * CS);
	expect_corrupt(&im, 4 * MIB, "L2 table at 0x1000 overlaps with refcount table");
	put64(im.b + 3 * CS, 2ull * CS | (1ull << 63));
	expect_corrupt(&im, 4 * MIB, "L2 table at 0x2000 overlaps with refcount block");
	put64(im.b + 3 * CS, 3ull * CS);
	expect_corrupt(&im, 512 * 1024, "L2 table at 0x3000 overlaps with active L1 table");
	free(im.b);

	im = mkimg(); /* two L1 entries, one table */
	put32(im.b + 36, 2);
	put64(im.b + 3 * CS + 8, (4ull * CS) | (1ull << 63));
	expect_corrupt(&im, 512 * 1024,
		       "L2 table at 0x4000 is listed twice in the active L1 table");
	expect_corrupt(&im, 4 * MIB, "L2 table at 0x4000 is listed twice in the active L1 table");
	free(im.b);

	/* a data cluster we own that lies on a refblock: its tail is not
	 * zeroed in place (qemu's overlap check refuses that write) */
	im = mkimg();
	put64(im.b + 4 * CS + 200 * 8, (2ull * CS) | (1ull << 63));
	put_be16(im.b + 2 * CS + 5 * 2, 0);
	expect_corrupt(&im, 200 * CS + 512,
		       "Preventing invalid write on metadata (overlaps with refcount block)");
	free(im.b);
}

/* mkimg() plus one internal snapshot "s1": the snapshot table at cluster 7,
 * the snapshot's (empty) L1 table at 8. */
static struct ptl_img mksnap(void)
{
	struct ptl_img im = mkimg_ext(9);
	uint8_t *e;

	put32(im.b + 60, 1);
	put64(im.b + 64, 7ull * CS);
	e = im.b + 7 * CS;
	put64(e, 8ull * CS);
	put32(e + 8, 1);
	put_be16(e + 12, 1);
	put_be16(e + 14, 2);
	put32(e + 36, 24);
	put64(e + 48, MIB); /* disk_size */
	memcpy(e + 64, "1s1", 3);
	return im;
}

static void test_corrupt_snapshots(void **state)
{
	static const struct patch patches[] = {
	    {64, 8, 7 * CS + 8, 0}, /* table offset unaligned */
	    {64, 8, 64 * CS, 1},    /* past the file's end */
	    {7 * CS, 8, 8 * CS + 8, 2},
	    {7 * CS, 8, 1 * CS, 3},
	    {7 * CS, 8, 4 * CS, 4},
	    {7 * CS + 36, 4, 2000, 5},
	    {64, 8, 4 * CS, 6}, /* the table on the L2 table */
	    {7 * CS + 8, 4, 0x7fffffff, 7},
	};
	static const char *const want[] = {
	    "Snapshot table offset invalid",
	    "Snapshot table offset invalid",
	    "Snapshot L1 table offset invalid",
	    "Snapshot L1 table at 0x1000 overlaps with refcount table",
	    "Snapshot L1 table at 0x4000 overlaps with active L2 table",
	    "Too much extra metadata in snapshot table entry 0",
	    "Snapshot table at 0x4000 overlaps with active L2 table",
	    "Snapshot L1 table too large",
	};
	struct ptl_img im = mksnap();
	struct run r;

	(void)state;
	run_plan(&im, 4 * MIB, 0, 0, 8 * MIB, 0, &r); /* the valid one grows */
	assert_int_equal(r.rc, 0);
	run_plan(&im, 512 * 1024, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, 0);
	free(im.b);
	for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
		const struct patch *pt = &patches[i];

		im = mksnap();
		patch_apply(&im, pt);
		expect_corrupt(&im, 512 * 1024, want[pt->err]);
		expect_corrupt(&im, 4 * MIB, want[pt->err]);
		free(im.b);
	}
}

/* ---- issue 19.2 (iotests 125, 271, 274): growing over a longer backing
 * file from inside a cluster zeroes the rest of that cluster ---- */

static void backed_host(uint64_t backing_len, int offer)
{
	static uint8_t data[4 * MIB];

	memset(&host, 0, sizeof(host));
	host.set = 1;
	host.bcrc = instar_crc32(0, "base", 4);
	host.flags = INSTAR_RESIZE_BACKING | INSTAR_RESIZE_BACKING_LEN;
	host.backing_len = backing_len;
	memset(data, 0x5a, sizeof(data));
	backing.b = offer ? data : NULL;
	backing.len = sizeof(data);
}

/* Guest cluster g's entry is COPIED, plain and holds `keep` bytes of c, then
 * zeros; its cluster is counted once. Returns its host cluster. */
static uint64_t check_head(const struct ptl_img *im, uint64_t g, uint32_t keep, uint8_t c)
{
	uint64_t e = get_be64(im->b + 4 * CS + g * 8), h = e & 0x00fffffffffffe00ull;
	uint8_t want[CS];

	assert_int_equal(e >> 62, 2);
	assert_int_equal(e & 1, 0);
	assert_true(h >= 7 * CS && h + CS <= im->len);
	assert_int_equal(refcount(im, h / CS), 1);
	memset(want, 0, sizeof(want));
	memset(want, c, keep);
	assert_memory_equal(im->b + h, want, CS);
	return h / CS;
}

static void test_grow_partial_backing(void **state)
{
	struct ptl_img im;
	struct run r;

	(void)state;
	/* unallocated: the kept 1 KiB comes from the backing file */
	backed_host(4 * MIB, 0);
	im = mkbacked(3);
	put64(im.b + 24, 20 * CS + 1024);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, INSTAR_ERR_UNSUPPORTED_FEATURE); /* not offered: refused */
	assert_int_equal(r.rec.n, 0);
	assert_non_null(strstr(r.res.detail, "backing file"));
	backed_host(4 * MIB, 1);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	check_head(&im, 20, 1024, 0x5a);
	assert_int_equal(get_be64(im.b + 4 * CS + 21 * 8), 1); /* then zero clusters */
	assert_true(get_be64(im.b + 24) == 2 * MIB);
	free(im.b);

	/* a backing file no longer than the image shows nothing: left */
	backed_host(20 * CS + 1024, 0);
	im = mkbacked(3);
	put64(im.b + 24, 20 * CS + 1024);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(get_be64(im.b + 4 * CS + 20 * 8), 0);
	free(im.b);

	/* ours alone: zeroed in place */
	backed_host(4 * MIB, 0);
	im = mkbacked(3);
	put64(im.b + 24, 10 * CS + 512);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(get_be64(im.b + 4 * CS + 10 * 8), (6ull * CS) | (1ull << 63));
	assert_int_equal(im.b[6 * CS + 511], 0xcd);
	assert_int_equal(im.b[6 * CS + 512], 0);
	assert_int_equal(im.b[7 * CS - 1], 0);
	free(im.b);

	/* shared with a snapshot: copied, the snapshot keeps the old one */
	im = mkbacked(3);
	put64(im.b + 24, 10 * CS + 512);
	put_be16(im.b + 2 * CS + 6 * 2, 2);
	put64(im.b + 4 * CS + 10 * 8, 6ull * CS);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	check_head(&im, 10, 512, 0xcd);
	assert_int_equal(refcount(&im, 6), 1);
	assert_int_equal(im.b[6 * CS + 4000], 0xcd);
	free(im.b);

	/* compressed (a stored deflate block at host cluster 7): decompressed */
	im = mkbacked(3);
	im.b = realloc(im.b, 9 * CS);
	assert_non_null(im.b);
	im.len = 9 * CS;
	memset(im.b + 7 * CS, 0, 2 * CS);
	im.b[7 * CS] = 0x01;
	im.b[7 * CS + 1] = CS & 0xff;
	im.b[7 * CS + 2] = CS >> 8;
	im.b[7 * CS + 3] = (uint8_t) ~(CS & 0xff);
	im.b[7 * CS + 4] = (uint8_t) ~(CS >> 8);
	memset(im.b + 7 * CS + 5, 0xab, CS);
	put_be64(im.b + 4 * CS + 200 * 8, (1ull << 62) | (8ull << (70 - CB)) | (7ull * CS));
	put_be16(im.b + 2 * CS + 5 * 2, 0);
	put_be16(im.b + 2 * CS + 7 * 2, 1);
	put_be16(im.b + 2 * CS + 8 * 2, 1);
	put64(im.b + 24, 200 * CS + 2048);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	check_head(&im, 200, 2048, 0xab);
	assert_int_equal(refcount(&im, 7), 0);
	assert_int_equal(refcount(&im, 8), 0);
	free(im.b);

	/* preallocated: the head becomes the first new data cluster */
	backed_host(4 * MIB, 1);
	im = mkbacked(3);
	put64(im.b + 24, 20 * CS + 1024);
	run_plan(&im, 2 * MIB, 0, INSTAR_PREALLOC_FALLOC, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	check_head(&im, 20, 1024, 0x5a);
	free(im.b);
	memset(&host, 0, sizeof(host));
	backing.b = NULL;
}

/* ---- issue 19.3 (iotest 274): falloc and full over a longer backing file
 * map the new clusters as data (zeros written), metadata as zero ---- */
static void test_grow_prealloc_backing(void **state)
{
	static const uint32_t modes[] = {INSTAR_PREALLOC_METADATA, INSTAR_PREALLOC_FALLOC,
					 INSTAR_PREALLOC_FULL};

	(void)state;
	for (size_t m = 0; m < 3; m++) {
		struct ptl_img im;
		struct run r;

		backed_host(4 * MIB, 0);
		im = mkbacked(3);
		run_plan(&im, MIB + 4 * CS, 0, modes[m], 8 * MIB, 1, &r);
		assert_int_equal(r.rc, 0);
		for (uint64_t g = 256; g < 260; g++) {
			uint64_t e = get_be64(im.b + 4 * CS + g * 8);

			assert_int_equal(e >> 62, 2);
			assert_true((e & 0x00fffffffffffe00ull) >= 7 * CS);
			assert_int_equal(e & 1, modes[m] == INSTAR_PREALLOC_METADATA);
		}
		free(im.b);
	}
	memset(&host, 0, sizeof(host));
}

/* ---- crash follow-up: a shrink that crashed after its commit leaves
 * entries mapped past the new end; a later grow (header-only too) clears
 * them before its own commit, so the grown range reads as zeros ---- */
static void test_grow_clears_stale(void **state)
{
	struct ptl_img im;
	struct run r;
	int l2_at = -1, size_at = -1;

	(void)state;
	/* committed 100 clusters; guest cluster 200 (host 5) still mapped */
	im = mkimg();
	put64(im.b + 24, 100 * CS);
	run_plan(&im, MIB, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(get_be64(im.b + 4 * CS + 200 * 8), 0);
	assert_int_equal(get_be64(im.b + 4 * CS + 10 * 8), (6ull * CS) | (1ull << 63));
	assert_int_equal(refcount(&im, 5), 0);
	assert_int_equal(refcount(&im, 6), 1);
	for (uint32_t i = 0; i < r.rec.n; i++) {
		const struct plan_op *op = &r.rec.ops[i];

		if (op->kind == PLAN_OP_WRITE && op->off <= 4 * CS + 200 * 8 &&
		    op->off + op->len > 4 * CS + 200 * 8)
			l2_at = (int)i;
		if (op->kind == PLAN_OP_WRITE && op->off == 24)
			size_at = (int)i;
	}
	assert_true(l2_at >= 0 && size_at > l2_at); /* cleared before the commit */
	free(im.b);

	/* the same table shared with a snapshot: a copy without the entry */
	im = mkimg();
	put64(im.b + 24, 100 * CS);
	for (int c = 4; c <= 6; c++)
		put_be16(im.b + 2 * CS + c * 2, 2);
	put64(im.b + 3 * CS, 4ull * CS);
	put64(im.b + 4 * CS + 200 * 8, 5ull * CS);
	put64(im.b + 4 * CS + 10 * 8, 6ull * CS);
	run_plan(&im, MIB, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	{
		uint64_t t = get_be64(im.b + 3 * CS) & 0x00fffffffffffe00ull;

		assert_true(t >= 7 * CS);
		assert_int_equal(get_be64(im.b + t + 200 * 8), 0);
		assert_int_equal(get_be64(im.b + t + 10 * 8), 6ull * CS);
		assert_int_equal(get_be64(im.b + 4 * CS + 200 * 8), 5ull * CS); /* snapshot's */
	}
	assert_int_equal(refcount(&im, 4), 1);
	assert_int_equal(refcount(&im, 5), 1);
	assert_int_equal(refcount(&im, 6), 2);
	free(im.b);

	/* past the new size: left for a later grow */
	im = mkimg();
	put64(im.b + 24, 100 * CS);
	run_plan(&im, 150 * CS, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(get_be64(im.b + 4 * CS + 200 * 8), (5ull * CS) | (1ull << 63));
	free(im.b);
}

/* ---- issue 19.4: encrypted images (LUKS, AES) resized without the key ----
 * mkenc(): mkimg() with crypt method 2 and its encryption header extension
 * naming FDE_N clusters from cluster FDE_C: a LUKS1 header (1-byte key, so
 * each of the 8 key slots takes 8 sectors from sector 8), counted. */
#define FDE_C 8u
#define FDE_N 9u
#define FDE_EXT 112u /* the extension's place: right after the v3 header */

static struct ptl_img mkenc_from(struct ptl_img im)
{
	size_t len = (FDE_C + FDE_N) * CS;

	im.b = realloc(im.b, len);
	assert_non_null(im.b);
	memset(im.b + im.len, 0, len - im.len);
	im.len = len;
	put32(im.b + 32, 2);
	put32(im.b + FDE_EXT, 0x0537be77);
	put32(im.b + FDE_EXT + 4, 16);
	put64(im.b + FDE_EXT + 8, (uint64_t)FDE_C * CS);
	put64(im.b + FDE_EXT + 16, (uint64_t)FDE_N * CS);
	ptl_luks_header(im.b + FDE_C * CS, FDE_N * CS / 512, 1, 8);
	for (uint32_t c = FDE_C; c < FDE_C + FDE_N; c++)
		put_be16(im.b + 2 * CS + c * 2, 1);
	return im;
}

static struct ptl_img mkenc(void)
{
	return mkenc_from(mkimg());
}

/* Whether any op of the run touches host bytes [lo, hi). */
static int ops_touch(const struct run *r, uint64_t lo, uint64_t hi)
{
	for (uint32_t i = 0; i < r->rec.n && i < 512; i++) {
		const struct plan_op *op = &r->rec.ops[i];

		if (op->kind != PLAN_OP_FLUSH && op->off < hi && lo < op->off + op->len)
			return 1;
	}
	return 0;
}

static void expect_enc_err(struct ptl_img *im, uint64_t size, int err, const char *detail)
{
	struct run r;

	run_plan(im, size, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 0, &r);
	if (r.rc != err || strcmp(r.res.detail, detail) != 0)
		fail_msg("size %llu: got %d '%s', want %d '%s'", (unsigned long long)size, r.rc,
			 r.res.detail, err, detail);
	assert_int_equal(r.rec.n, 0);
}

static void test_encrypted_resize(void **state)
{
	const uint64_t lo = (uint64_t)FDE_C * CS, hi = (uint64_t)(FDE_C + FDE_N) * CS;
	struct ptl_img im;
	struct run r;

	(void)state;
	/* grow (the L1 moves): the run starts after the region, which no op touches */
	im = mkenc();
	run_plan(&im, 5 * MIB, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_false(ops_touch(&r, lo, hi));
	assert_int_equal(get_be64(im.b + 24), 5 * MIB);
	assert_true(get_be64(im.b + 40) >= hi);
	assert_int_equal(refcount(&im, FDE_C), 1);
	free(im.b);

	/* shrink past the data at guest cluster 200: the region stays */
	im = mkenc();
	run_plan(&im, 512 * 1024, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_false(ops_touch(&r, lo, hi));
	assert_true(r.after >= hi);
	assert_int_equal(refcount(&im, FDE_C + FDE_N - 1), 1);
	assert_int_equal(refcount(&im, 5), 0);
	free(im.b);

	/* AES (method 1, no header extension) too */
	im = mkimg();
	put32(im.b + 32, 1);
	run_plan(&im, 512 * 1024, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	free(im.b);
}

/* No guest byte is written: it would need the key. */
static void test_encrypted_no_data_writes(void **state)
{
	static const uint32_t modes[] = {INSTAR_PREALLOC_METADATA, INSTAR_PREALLOC_FALLOC,
					 INSTAR_PREALLOC_FULL};
	struct ptl_img im;
	struct run r;

	(void)state;
	for (size_t m = 0; m < 3; m++) {
		im = mkenc();
		run_plan(&im, 2 * MIB, 0, modes[m], 8 * MIB, 0, &r);
		assert_int_equal(r.rc, INSTAR_ERR_PREALLOCATION_UNSUPPORTED);
		assert_int_equal(r.rec.n, 0);
		assert_non_null(strstr(r.res.detail, "encrypted"));
		free(im.b);
	}

	/* a cut cluster's kept tail is left as qemu leaves it (unencrypted:
	 * zeroed in place) */
	im = mkenc();
	run_plan(&im, 10 * CS + 512, INSTAR_RESIZE_SHRINK_ALLOWED, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_false(ops_touch(&r, 6 * CS, 7 * CS));
	assert_int_equal(im.b[7 * CS - 1], 0xcd);
	free(im.b);

	/* a grow from inside an allocated cluster leaves its bytes past the
	 * old end (unencrypted: zeroed in place) */
	im = mkenc();
	put64(im.b + 24, 10 * CS + 512);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_false(ops_touch(&r, 6 * CS, 7 * CS));
	assert_int_equal(im.b[6 * CS + 512], 0xcd);
	free(im.b);

	/* over a longer backing file: zero flags need no key; the partial
	 * cluster's zeros would, so that grow is refused */
	backed_host(4 * MIB, 1);
	im = mkenc_from(mkbacked(3));
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 1, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(get_be64(im.b + 4 * CS + 300 * 8), 1);
	free(im.b);
	for (int alloc = 0; alloc < 2; alloc++) {
		im = mkenc_from(mkbacked(3));
		put64(im.b + 24, (alloc ? 10 : 20) * CS + 512);
		run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
		assert_int_equal(r.rc, INSTAR_ERR_UNSUPPORTED_FEATURE);
		assert_int_equal(r.rec.n, 0);
		assert_non_null(strstr(r.res.detail, "encrypted"));
		free(im.b);
	}
	memset(&host, 0, sizeof(host));
	backing.b = NULL;

	/* an external data file (its bytes would be encrypted too): refused */
	im = mkenc();
	put64(im.b + 72, 1ull << 2);
	run_plan(&im, 2 * MIB, 0, 0, 8 * MIB, 0, &r);
	assert_int_equal(r.rc, INSTAR_ERR_UNSUPPORTED_FEATURE);
	assert_int_equal(r.rec.n, 0);
	assert_string_equal(r.res.detail,
			    "qcow2: encrypted images with an external data file are not supported");
	free(im.b);
}

/* Hostile encryption headers: qemu's words where its open has them. */
static void test_encrypted_hostile(void **state)
{
	static const struct {
		uint32_t off, width;
		uint64_t val;
		int err;
		const char *detail;
	} cases[] = {
	    {32, 4, 3, INSTAR_ERR_UNSUPPORTED_FEATURE, "Unsupported encryption method 3"},
	    {32, 4, 1, INSTAR_ERR_PARSE_FAILED,
	     "CRYPTO header extension only expected with LUKS encryption method"},
	    {FDE_EXT + 4, 4, 8, INSTAR_ERR_PARSE_FAILED,
	     "CRYPTO header extension size 8, but expected size 16"},
	    {FDE_EXT, 4, 0, INSTAR_ERR_PARSE_FAILED, "Missing CRYPTO header for crypt method 2"},
	    /* unaligned */
	    {FDE_EXT + 8, 8, FDE_C * CS + 512, INSTAR_ERR_CORRUPT,
	     "Encryption header offset '33280' is not a multiple of cluster size '4096'"},
	    /* zero length, too short for the LUKS header */
	    {FDE_EXT + 16, 8, 0, INSTAR_ERR_CORRUPT,
	     "Request for data outside of extension header"},
	    {FDE_EXT + 16, 8, 591, INSTAR_ERR_CORRUPT,
	     "Request for data outside of extension header"},
	    /* outside the file, or running past its end */
	    {FDE_EXT + 8, 8, 1ull << 40, INSTAR_ERR_CORRUPT,
	     "Encryption header at 0x10000000000 runs past the end of the image file"},
	    {FDE_EXT + 8, 8, UINT64_MAX & ~(uint64_t)(CS - 1), INSTAR_ERR_CORRUPT,
	     "Encryption header at 0xfffffffffffff000 runs past the end of the image file"},
	    {FDE_EXT + 16, 8, (FDE_N + 1) * CS, INSTAR_ERR_CORRUPT,
	     "Encryption header at 0x8000 runs past the end of the image file"},
	    {FDE_EXT + 16, 8, UINT64_MAX, INSTAR_ERR_CORRUPT,
	     "Encryption header at 0x8000 runs past the end of the image file"},
	    /* on the header, the reftable, the L1 table, a refblock, an L2 table */
	    {FDE_EXT + 8, 8, 0, INSTAR_ERR_CORRUPT,
	     "Encryption header at 0 overlaps with qcow2_header"},
	    {FDE_EXT + 8, 8, 3 * CS, INSTAR_ERR_CORRUPT,
	     "Encryption header at 0x3000 overlaps with active L1 table"},
	    {FDE_EXT + 8, 8, 4 * CS, INSTAR_ERR_CORRUPT,
	     "L2 table at 0x4000 overlaps with encryption header"},
	    /* the LUKS header in it, as qemu checks it */
	    {FDE_C * CS, 4, 0, INSTAR_ERR_PARSE_FAILED, "Volume is not in LUKS format"},
	    {FDE_C * CS + 208 + 48 * 3 + 44, 4, 3999, INSTAR_ERR_CORRUPT,
	     "Keyslot 3 is corrupted (stripes 3999 != 4000)"},
	    /* key material past the region */
	    {FDE_C * CS + 104, 4, FDE_N * CS / 512 + 8, INSTAR_ERR_CORRUPT,
	     "Request for data outside of extension header"},
	    /* a cluster of it not counted: a shrink could cut the file there */
	    {2 * CS + (FDE_C + 4) * 2, 2, 0, INSTAR_ERR_CORRUPT,
	     "Encryption header cluster at 0xc000 has a refcount of 0"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ptl_img im = mkenc();

		ptl_put_field(im.b, cases[i].off, (int)cases[i].width, true, cases[i].val);
		expect_enc_err(&im, 512 * 1024, cases[i].err, cases[i].detail); /* shrink */
		expect_enc_err(&im, 4 * MIB, cases[i].err, cases[i].detail);	/* grow */
		free(im.b);
	}

	/* one cluster on the reftable, on the refblock */
	for (int k = 1; k <= 2; k++) {
		struct ptl_img im = mkenc();

		put64(im.b + FDE_EXT + 8, (uint64_t)k * CS);
		put64(im.b + FDE_EXT + 16, CS);
		expect_corrupt(&im, 512 * 1024,
			       k == 1 ? "Encryption header at 0x1000 overlaps with refcount table"
				      : "Refblock at 0x2000 overlaps with encryption header");
		free(im.b);
	}
	/* a data cluster a shrink releases, inside the region */
	{
		struct ptl_img im = mkenc();

		put64(im.b + 4 * CS + 200 * 8, (10ull * CS) | (1ull << 63));
		expect_corrupt(&im, 512 * 1024,
			       "Data cluster at 0xa000 overlaps with encryption header");
		free(im.b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_grow),
	    cmocka_unit_test(test_valid_shrink),
	    cmocka_unit_test(test_shrink_commit_first),
	    cmocka_unit_test(test_noop),
	    cmocka_unit_test(test_request_errors),
	    cmocka_unit_test(test_open_messages),
	    cmocka_unit_test(test_hostile_headers),
	    cmocka_unit_test(test_corrupt_detail),
	    cmocka_unit_test(test_hostile_tables),
	    cmocka_unit_test(test_hostile_bitmaps),
	    cmocka_unit_test(test_fuzz),
	    cmocka_unit_test(test_shrink_tail_copy),
	    cmocka_unit_test(test_backing_length),
	    cmocka_unit_test(test_data_file),
	    cmocka_unit_test(test_corrupt_refcount_table),
	    cmocka_unit_test(test_corrupt_l1),
	    cmocka_unit_test(test_corrupt_data_cluster),
	    cmocka_unit_test(test_shrink_drops_refblock),
	    cmocka_unit_test(test_corrupt_snapshots),
	    cmocka_unit_test(test_grow_partial_backing),
	    cmocka_unit_test(test_grow_prealloc_backing),
	    cmocka_unit_test(test_grow_clears_stale),
	    cmocka_unit_test(test_encrypted_resize),
	    cmocka_unit_test(test_encrypted_no_data_writes),
	    cmocka_unit_test(test_encrypted_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
