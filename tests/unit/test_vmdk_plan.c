/* tests/unit/test_vmdk_plan.c — the vmdk planner on in-memory images: a
 * qemu-like 64 MiB monolithicSparse (grow, shrink, op order, descriptor
 * rewrite), streams whose new or old end cuts a compressed grain (zlib
 * compresses the grains and reads the rewritten ones back, as qemu does),
 * and hostile headers and descriptors, which must end in an error code and
 * never in a crash (run under ASan/UBSan in CI). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "abi_names.h"
#include "crc32.h"
#include "plan.h"
#include "plan_testlib.h"

#define SEC 512u
#define DISK_MAX (8u << 20)
#define SCRATCH_LEN (4u << 20)
#define SCRATCH_BIG (24u << 20) /* two 8 MiB GDs: a 64 TiB grow */
#define MIB (1ull << 20)

struct sink {
	struct ptl_img *d;
	uint32_t n;
	uint32_t kinds[64];
	uint64_t offs[64];
	uint64_t lens[64];
	bool fail;
	bool apply;
	uint32_t nzero;	   /* zero ops */
	uint64_t past_eof; /* bytes written or zeroed past the old end of file */
	uint64_t written;  /* bytes of all write and zero ops */
	uint64_t old_len;
};

static int sink_fn(void *ctx, const struct plan_op *op)
{
	struct sink *s = ctx;

	if (s->fail)
		return -28;
	if (s->n < 64) {
		s->kinds[s->n] = op->kind;
		s->offs[s->n] = op->off;
		s->lens[s->n] = op->len;
	}
	s->n++;
	if (op->kind == PLAN_OP_ZERO)
		s->nzero++;
	if (op->kind == PLAN_OP_WRITE || op->kind == PLAN_OP_ZERO)
		s->written += op->len;
	if ((op->kind == PLAN_OP_WRITE || op->kind == PLAN_OP_ZERO) &&
	    op->off + op->len > s->old_len)
		s->past_eof += op->off + op->len - (op->off > s->old_len ? op->off : s->old_len);
	/* Every op must stay in a sane range: no wrap, sector-aligned. */
	assert_true(op->off + op->len >= op->off);
	if (op->kind != PLAN_OP_FLUSH) {
		assert_int_equal(op->off % SEC, 0);
		assert_int_equal(op->len % SEC, 0);
	}
	if (!s->apply || op->kind == PLAN_OP_FLUSH)
		return 0;
	assert_true(op->off + op->len <= DISK_MAX);
	if (op->kind == PLAN_OP_WRITE)
		memcpy(s->d->b + op->off, op->data, op->len);
	else if (op->kind == PLAN_OP_ZERO)
		memset(s->d->b + op->off, 0, op->len);
	if (op->off + op->len > s->d->len)
		s->d->len = op->off + op->len;
	return 0;
}

static const char base_desc[] = "# Disk DescriptorFile\n"
				"version=1\n"
				"CID=2e1f034f\n"
				"parentCID=ffffffff\n"
				"createType=\"monolithicSparse\"\n"
				"\n"
				"# Extent description\n"
				"RW 131072 SPARSE \"t.vmdk\"\n"
				"\n"
				"# The Disk Data Base\n"
				"#DDB\n"
				"\n"
				"ddb.virtualHWVersion = \"4\"\n"
				"ddb.geometry.cylinders = \"130\"\n"
				"ddb.geometry.heads = \"16\"\n"
				"ddb.geometry.sectors = \"63\"\n"
				"ddb.adapterType = \"ide\"\n";

static void put32(uint8_t *p, uint32_t v)
{
	put_le32(p, v);
}

static void put64(uint8_t *p, uint64_t v)
{
	put_le64(p, v);
}

/* A sparse header for 64 MiB in 64 KiB grains, 512 entries a GT, the
 * descriptor from sector 1, grains from sector 128. */
static void put_header(uint8_t *h, uint32_t version, uint32_t flags, uint64_t desc_sectors,
		       uint64_t rgd, uint64_t gd)
{
	memcpy(h, "KDMV", 4);
	put32(h + 4, version);
	put32(h + 8, flags);
	put64(h + 12, 131072);
	put64(h + 20, 128);
	put64(h + 28, 1);
	put64(h + 36, desc_sectors);
	put32(h + 44, 512);
	put64(h + 48, rgd);
	put64(h + 56, gd);
	put64(h + 64, 128);
	h[73] = 0x0a;
	h[74] = 0x20;
	h[75] = 0x0d;
	h[76] = 0x0a;
}

/* qemu's layout for 64 MiB: descriptor 1..20, RGD 21, its GTs 22..29, GD 30,
 * its GTs 31..38, grains from sector 128. Grain 0 is allocated at 128 and
 * grain 511 (the last before 32 MiB) at 256; the file is 320 sectors. */
static void mk_image(struct ptl_img *d, const char *desc)
{
	uint8_t *h = d->b;

	memset(d->b, 0, DISK_MAX);
	put_header(h, 1, 3, 20, 21, 30);
	memcpy(d->b + SEC, desc, strlen(desc));
	put32(d->b + 21 * SEC, 22);
	put32(d->b + 21 * SEC + 4, 26);
	put32(d->b + 30 * SEC, 31);
	put32(d->b + 30 * SEC + 4, 35);
	put32(d->b + 22 * SEC, 128);
	put32(d->b + 31 * SEC, 128);
	put32(d->b + 22 * SEC + 511 * 4, 256);
	put32(d->b + 31 * SEC + 511 * 4, 256);
	memset(d->b + 128 * SEC, 0x11, 128 * SEC);
	memset(d->b + 256 * SEC, 0x22, 128 * SEC);
	d->len = 384 * SEC;
}

struct run {
	struct plan_opts o;
	struct instar_resize_result res;
	struct sink sk;
	struct plan p;
	int rc;
};

static void *scratch_mem;

static int run_plan(struct ptl_img *d, struct run *r, uint64_t new_size, uint32_t flags,
		    size_t scratch_len, bool apply)
{
	struct plan_io io = {.read = ptl_img_read, .ctx = d, .file_size = d->len};
	struct plan_scratch sc;
	bool fail = r->sk.fail;

	memset(&r->res, 0, sizeof(r->res));
	memset(&r->sk, 0, sizeof(r->sk));
	r->sk.d = d;
	r->sk.old_len = d->len;
	r->sk.apply = apply;
	r->sk.fail = fail;
	if (r->o.expected_old_size == 0) /* tests never expect 0: "don't check" */
		r->o.expected_old_size = UINT64_MAX;
	r->o.new_size = new_size;
	r->o.flags = flags;
	plan_scratch_init(&sc, scratch_mem, scratch_len);
	plan_init(&r->p, sink_fn, &r->sk, 0);
	r->rc = plan_resize_vmdk(&r->o, &io, &sc, &r->p, &r->res);
	assert_int_equal(r->rc, (int)r->res.error);
	assert_true(strlen(r->res.detail) < INSTAR_DETAIL_MAX);
	return r->rc;
}

static struct ptl_img *new_disk(void)
{
	struct ptl_img *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	d->b = calloc(1, DISK_MAX);
	assert_non_null(d->b);
	mk_image(d, base_desc);
	return d;
}

static void free_disk(struct ptl_img *d)
{
	free(d->b);
	free(d);
}

static int expect_err(struct ptl_img *d, uint64_t new_size, uint32_t flags, int err,
		      const char *sub)
{
	struct run r = {0};

	run_plan(d, &r, new_size, flags, SCRATCH_LEN, false);
	if (r.rc != err || (sub && !strstr(r.res.detail, sub))) {
		fprintf(stderr, "got %s (%s), want %s (%s)\n", instar_err_name(r.res.error),
			r.res.detail, instar_err_name((uint32_t)err), sub ? sub : "");
		fail();
	}
	return 0;
}

/* ---- good images ---- */

static void test_grow_in_place(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};
	char *desc;
	uint32_t n;

	(void)state;
	run_plan(d, &r, 1ull << 30, 0, SCRATCH_LEN, true);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.res.action, INSTAR_ACTION_GROW);
	assert_true(r.res.old_virtual_size == 64 * MIB);
	assert_true(r.res.new_virtual_size == 1ull << 30);
	assert_true(r.res.file_size_before == 384 * SEC);
	/* 30 new GTs per copy (4 sectors each) at the grain-aligned end. */
	assert_true(r.res.file_size_after == (384 + 256) * SEC);
	assert_true(r.p.file_size_after == r.res.file_size_after);
	/* Crash order: ..., FLUSH, header + descriptor (one write), FLUSH. */
	n = r.sk.n;
	assert_true(n >= 3);
	assert_int_equal(r.sk.kinds[n - 1], PLAN_OP_FLUSH);
	assert_int_equal(r.sk.kinds[n - 2], PLAN_OP_WRITE);
	assert_true(r.sk.offs[n - 2] == 0 && r.sk.lens[n - 2] > SEC);
	assert_int_equal(r.sk.kinds[n - 3], PLAN_OP_FLUSH);
	for (uint32_t i = 0; i < n - 3; i++)
		assert_int_not_equal(r.sk.kinds[i], PLAN_OP_FLUSH);

	assert_true(get_le64(d->b + 12) == 2097152);
	assert_true(get_le64(d->b + 56) == 30); /* GD stayed: 32 entries fit */
	for (uint32_t i = 0; i < 32; i++) {
		uint32_t gt = get_le32(d->b + 30 * SEC + i * 4);
		uint32_t rgt = get_le32(d->b + 21 * SEC + i * 4);

		assert_true(gt != 0 && rgt != 0 && gt != rgt);
		if (i >= 2) {
			assert_true(gt >= 384 && gt + 4 <= 640);
			assert_true(rgt >= 384 && rgt + 4 <= 640);
		}
	}
	desc = (char *)d->b + SEC;
	assert_non_null(strstr(desc, "\nRW 2097152 SPARSE \"t.vmdk\"\n"));
	assert_non_null(strstr(desc, "ddb.geometry.cylinders = \"2080\"\n"));
	assert_null(strstr(desc, "CID=2e1f034f"));
	assert_non_null(strstr(desc, "parentCID=ffffffff\n"));
	assert_non_null(strstr(desc, "ddb.adapterType = \"ide\"\n"));
	free_disk(d);
}

static void test_grow_relocates_gd(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};
	uint64_t gd, rgd;

	(void)state;
	/* 8 GiB needs 256 GD entries: two sectors, the GD moves to the end. */
	run_plan(d, &r, 8ull << 30, 0, SCRATCH_LEN, true);
	assert_int_equal(r.rc, 0);
	gd = get_le64(d->b + 56);
	rgd = get_le64(d->b + 48);
	assert_true(gd >= 384 && rgd >= 384 && gd != rgd);
	assert_true(get_le32(d->b + gd * SEC) == 31);
	assert_true(get_le32(d->b + rgd * SEC) == 22);
	assert_true(get_le32(d->b + gd * SEC + 255 * 4) != 0);
	assert_true(get_le32(d->b + rgd * SEC + 255 * 4) != 0);
	assert_true(r.res.file_size_after % (128 * SEC) == 0);
	assert_true(r.res.file_size_after >= (gd + 2) * SEC);
	free_disk(d);
}

static void test_shrink_cuts_grain(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};
	/* 32 MiB - 32 KiB: the tail of grain 511 is zeroed, grains 512+ go. */
	uint64_t ns = 32 * MIB - 32768;

	(void)state;
	put32(d->b + 26 * SEC, 320); /* grain 512 allocated too */
	put32(d->b + 35 * SEC, 320);
	d->len = 448 * SEC;
	run_plan(d, &r, ns, INSTAR_RESIZE_SHRINK_ALLOWED, SCRATCH_LEN, true);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.res.action, INSTAR_ACTION_SHRINK);
	assert_true(r.res.file_size_after == 448 * SEC); /* not reclaimed */
	assert_true(get_le64(d->b + 12) == ns / SEC);
	assert_int_equal(d->b[256 * SEC + 32768 - 1], 0x22);
	assert_int_equal(d->b[256 * SEC + 32768], 0);
	assert_int_equal(d->b[256 * SEC + 65535], 0);
	assert_true(get_le32(d->b + 22 * SEC + 511 * 4) == 256);
	assert_true(get_le32(d->b + 26 * SEC) == 0);
	assert_true(get_le32(d->b + 35 * SEC) == 0);
	assert_non_null(strstr((char *)d->b + SEC, "RW 65472 SPARSE"));
	assert_non_null(strstr((char *)d->b + SEC, "cylinders = \"64\""));
	/* Crash order: the commit (header and descriptor in one write at 0,
	 * flushed) comes before every GT clear and the tail zeroing. */
	assert_true(r.sk.n >= 4);
	assert_int_equal(r.sk.kinds[0], PLAN_OP_WRITE);
	assert_true(r.sk.offs[0] == 0 && r.sk.lens[0] > SEC);
	assert_int_equal(r.sk.kinds[1], PLAN_OP_FLUSH);
	for (uint32_t i = 2; i < r.sk.n; i++) /* GTs and grains only */
		assert_true(r.sk.kinds[i] == PLAN_OP_FLUSH || r.sk.offs[i] >= 22 * SEC);
	assert_int_equal(r.sk.kinds[r.sk.n - 1], PLAN_OP_FLUSH);
	free_disk(d);
}

static void test_zero_gd_entry_gets_a_gt(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};

	(void)state;
	put32(d->b + 30 * SEC + 4, 0); /* GD[1] = 0: qemu would write at 0 */
	run_plan(d, &r, 128 * MIB, 0, SCRATCH_LEN, true);
	assert_int_equal(r.rc, 0);
	for (uint32_t i = 0; i < 4; i++)
		assert_true(get_le32(d->b + 30 * SEC + i * 4) != 0);
	free_disk(d);
}

static void test_noop_and_options(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};

	(void)state;
	run_plan(d, &r, 64 * MIB, 0, SCRATCH_LEN, false);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.res.action, INSTAR_ACTION_NOOP);
	assert_int_equal(r.sk.n, 0);
	expect_err(d, 32 * MIB, 0, INSTAR_ERR_SHRINK_WITHOUT_FLAG, "--shrink");
	expect_err(d, 64 * MIB + 1, 0, INSTAR_ERR_NOT_MULTIPLE_512, NULL);
	expect_err(d, 0, INSTAR_RESIZE_SHRINK_ALLOWED, INSTAR_ERR_INVALID_NEW_SIZE, NULL);
	expect_err(d, UINT64_MAX - 511, 0, INSTAR_ERR_TOO_LARGE, NULL);

	memset(&r, 0, sizeof(r));
	r.o.prealloc = INSTAR_PREALLOC_FALLOC;
	r.o.expected_old_size = UINT64_MAX;
	run_plan(d, &r, 128 * MIB, 0, SCRATCH_LEN, false);
	assert_int_equal(r.rc, INSTAR_ERR_PREALLOCATION_UNSUPPORTED);

	memset(&r, 0, sizeof(r));
	r.o.expected_old_size = 32 * MIB;
	run_plan(d, &r, 128 * MIB, 0, SCRATCH_LEN, false);
	assert_int_equal(r.rc, INSTAR_ERR_HEADER_MISMATCH);

	memset(&r, 0, sizeof(r));
	r.o.expected_old_size = 64 * MIB;
	run_plan(d, &r, 128 * MIB, 0, SCRATCH_LEN, false);
	assert_int_equal(r.rc, 0);
	free_disk(d);
}

static void test_io_failures(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};

	(void)state;
	d->fail_read = true;
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_READ_FAILED, NULL);
	d->fail_read = false;
	r.sk.fail = true;
	run_plan(d, &r, 128 * MIB, 0, SCRATCH_LEN, false);
	assert_int_equal(r.rc, INSTAR_ERR_WRITE_FAILED);
	/* Every scratch size either fits or says so. */
	for (size_t len = 0; len < 12000; len += 512) {
		memset(&r, 0, sizeof(r));
		run_plan(d, &r, 128 * MIB, 0, len, false);
		assert_true(r.rc == 0 || r.rc == INSTAR_ERR_SCRATCH_TOO_SMALL);
	}
	free_disk(d);
}

/* New GTs appended past the old end of file are holes: the plan neither
 * writes nor zeroes them (a 64 TiB grow has 8 GiB of them). Past the old end
 * only the moved GD copies and the last sector of the new end are written. */
static void test_grow_new_gts_are_holes(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};
	/* 1 TiB: 32768 GD entries (128 KiB a copy), 32766 new GTs of 2 KiB a
	 * copy: 128 MiB of tables, none of it written */
	const uint64_t gd_bytes = 32768 * 4;
	bool reached = false;

	(void)state;
	run_plan(d, &r, 1ull << 40, 0, SCRATCH_LEN, false);
	assert_int_equal(r.rc, 0);
	assert_true(r.res.file_size_after >= 384 * SEC + 2 * 32766 * 2048ull + 2 * gd_bytes);
	assert_int_equal(r.sk.nzero, 0);
	assert_true(r.sk.past_eof == 2 * gd_bytes + SEC);
	/* the length is reached before the commit: the last sector of the new
	 * end is written before the first FLUSH */
	for (uint32_t i = 0; i < r.sk.n && r.sk.kinds[i] != PLAN_OP_FLUSH; i++)
		reached |= r.sk.kinds[i] == PLAN_OP_WRITE &&
			   r.sk.offs[i] + r.sk.lens[i] == r.res.file_size_after;
	assert_true(reached);
	/* a small grow in place: only the last sector past the old end */
	mk_image(d, base_desc);
	run_plan(d, &r, 1ull << 30, 0, SCRATCH_LEN, false);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.sk.nzero, 0);
	assert_true(r.sk.past_eof == SEC);
	free_disk(d);
}

/* The case (16.5): 64 MiB -> 64 TiB, 2^21 GD entries (8 MiB a copy)
 * and 2 x 2^21 new GTs of 2 KiB (8 GiB). All the plan writes is O(GD): both
 * GD copies, the header with the descriptor, the last sector and the two old
 * GTs' cleared entries; no zero op. */
static void test_grow_64t_writes_only_the_gds(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};
	const uint64_t gd_bytes = (1ull << 21) * 4, gts = 2 * ((1ull << 21) - 2) * 2048;

	(void)state;
	run_plan(d, &r, 64ull << 40, 0, SCRATCH_BIG, false);
	assert_int_equal(r.rc, 0);
	assert_true(r.res.file_size_after >= 384 * SEC + gts + 2 * gd_bytes);
	assert_int_equal(r.sk.nzero, 0);
	assert_true(r.sk.written >= 2 * gd_bytes);
	assert_true(r.sk.written <= 2 * gd_bytes + (1 + 20) * SEC + SEC);
	free_disk(d);
}

/* ---- streams with the GD at the end (VMware's layout) ---- */

static const char stream_desc[] = "# Disk DescriptorFile\n"
				  "version=1\n"
				  "CID=a454774a\n"
				  "parentCID=ffffffff\n"
				  "createType=\"streamOptimized\"\n"
				  "\n"
				  "RDONLY 131072 SPARSE \"s.vmdk\"\n"
				  "\n"
				  "ddb.adapterType = \"lsilogic\"\n"
				  "ddb.geometry.cylinders = \"8\"\n"
				  "ddb.geometry.heads = \"255\"\n"
				  "ddb.geometry.sectors = \"63\"\n";

static void put_marker(uint8_t *b, uint64_t val, uint32_t type)
{
	memset(b, 0, SEC);
	put64(b, val);
	put32(b + 12, type);
}

/* 64 MiB as VMware streams it: header (GD_AT_END) and a one-sector
 * descriptor, grain 0 at 128 and grain 600 at 129 (markers with a few bytes
 * of "compressed" data, never decoded here), GT 0 (marker 130, table
 * 131..134) and GT 1 (marker 135, table 136..139), the GD marker at 140 and
 * the GD at 141, the footer marker at 142, the footer at 143 and the
 * end-of-stream marker at 144: 145 sectors. */
#define ST_END 145u
static void mk_stream(struct ptl_img *d)
{
	uint8_t *h = d->b;

	memset(d->b, 0, DISK_MAX);
	put_header(h, 3, 0x30001, 1, 0, UINT64_MAX);
	put_le16(h + 77, 1);
	memcpy(d->b + SEC, stream_desc, strlen(stream_desc));
	put64(d->b + 128 * SEC, 0);
	put32(d->b + 128 * SEC + 8, 20);
	put64(d->b + 129 * SEC, 600 * 128);
	put32(d->b + 129 * SEC + 8, 20);
	put_marker(d->b + 130 * SEC, 4, 1);
	put32(d->b + 131 * SEC, 128);
	put_marker(d->b + 135 * SEC, 4, 1);
	put32(d->b + 136 * SEC + (600 - 512) * 4, 129);
	put_marker(d->b + 140 * SEC, 1, 2);
	put32(d->b + 141 * SEC, 131);
	put32(d->b + 141 * SEC + 4, 136);
	put_marker(d->b + 142 * SEC, 1, 3);
	memcpy(d->b + 143 * SEC, h, SEC);
	put64(d->b + 143 * SEC + 56, 141);
	put_marker(d->b + 144 * SEC, 0, 0);
	d->len = ST_END * SEC;
}

static void test_stream_footer_grow_in_place(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};

	(void)state;
	mk_stream(d);
	/* 1 GiB: 32 GD entries still fit the GD's sector */
	run_plan(d, &r, 1ull << 30, 0, SCRATCH_LEN, true);
	assert_int_equal(r.rc, 0);
	assert_true(r.res.old_virtual_size == 64 * MIB);
	assert_true(r.res.file_size_after == ST_END * SEC);
	/* the footer first (qemu's commit), then header and descriptor */
	assert_int_equal(r.sk.n, 4);
	assert_true(r.sk.kinds[0] == PLAN_OP_WRITE && r.sk.offs[0] == 143 * SEC &&
		    r.sk.lens[0] == SEC);
	assert_int_equal(r.sk.kinds[1], PLAN_OP_FLUSH);
	assert_true(r.sk.kinds[2] == PLAN_OP_WRITE && r.sk.offs[2] == 0 && r.sk.lens[2] == 2 * SEC);
	assert_int_equal(r.sk.kinds[3], PLAN_OP_FLUSH);
	assert_true(get_le64(d->b + 143 * SEC + 12) == 2097152);
	assert_true(get_le64(d->b + 143 * SEC + 56) == 141);
	assert_true(get_le64(d->b + 12) == 2097152);
	assert_true(get_le64(d->b + 56) == UINT64_MAX);
	assert_non_null(strstr((char *)d->b + SEC, "RDONLY 2097152 SPARSE \"s.vmdk\""));
	assert_non_null(strstr((char *)d->b + SEC, "cylinders = \"130\""));
	/* the markers are untouched */
	assert_true(get_le32(d->b + 142 * SEC + 12) == 3 && get_le32(d->b + 144 * SEC + 12) == 0);
	free_disk(d);
}

static void test_stream_footer_grow_moves_gd(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};
	uint8_t trio[3 * SEC];
	uint64_t end;

	(void)state;
	mk_stream(d);
	memcpy(trio, d->b + 142 * SEC, sizeof(trio));
	/* 8 GiB: 256 entries, two sectors: marker 142, GD 143..144, the
	 * footer sectors 145..147 */
	run_plan(d, &r, 8ull << 30, 0, SCRATCH_LEN, true);
	assert_int_equal(r.rc, 0);
	end = 148;
	assert_true(r.res.file_size_after == end * SEC);
	/* order: a copy of the old footer sectors at the new end, barrier, the
	 * GD over the old footer, barrier, the new footer, barrier, header */
	assert_int_equal(r.sk.n, 8);
	assert_true(r.sk.offs[0] == (end - 3) * SEC && r.sk.lens[0] == 3 * SEC);
	assert_int_equal(r.sk.kinds[1], PLAN_OP_FLUSH);
	assert_true(r.sk.offs[2] == 142 * SEC && r.sk.lens[2] == 3 * SEC);
	assert_int_equal(r.sk.kinds[3], PLAN_OP_FLUSH);
	assert_true(r.sk.offs[4] == (end - 2) * SEC && r.sk.lens[4] == SEC);
	assert_int_equal(r.sk.kinds[5], PLAN_OP_FLUSH);
	assert_true(r.sk.offs[6] == 0);
	assert_int_equal(r.sk.kinds[7], PLAN_OP_FLUSH);
	/* the result */
	assert_true(get_le64(d->b + 142 * SEC) == 2 && get_le32(d->b + 142 * SEC + 12) == 2);
	assert_true(get_le32(d->b + 143 * SEC) == 131 && get_le32(d->b + 143 * SEC + 4) == 136);
	for (uint32_t i = 2; i < 256; i++)
		assert_true(get_le32(d->b + 143 * SEC + i * 4) == 0);
	assert_memory_equal(d->b + (end - 3) * SEC, trio, SEC);
	assert_memory_equal(d->b + (end - 1) * SEC, trio + 2 * SEC, SEC);
	assert_true(get_le64(d->b + (end - 2) * SEC + 12) == 8ull << 21);
	assert_true(get_le64(d->b + (end - 2) * SEC + 56) == 143);
	assert_true(get_le64(d->b + 12) == 8ull << 21);
	assert_true(get_le64(d->b + 56) == UINT64_MAX);
	/* the old GD (141) is left as it was */
	assert_true(get_le32(d->b + 141 * SEC) == 131);
	free_disk(d);
}

static void test_stream_footer_shrink(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};

	(void)state;
	mk_stream(d);
	/* 32 MiB: grain 600 (in GT 1) goes; the GD stays as it is */
	run_plan(d, &r, 32 * MIB, INSTAR_RESIZE_SHRINK_ALLOWED, SCRATCH_LEN, true);
	assert_int_equal(r.rc, 0);
	assert_true(r.res.file_size_after == ST_END * SEC);
	/* header and descriptor first, then the footer, then the unmapping */
	assert_true(r.sk.n >= 6);
	assert_true(r.sk.offs[0] == 0 && r.sk.kinds[1] == PLAN_OP_FLUSH);
	assert_true(r.sk.offs[2] == 143 * SEC && r.sk.lens[2] == SEC);
	assert_int_equal(r.sk.kinds[3], PLAN_OP_FLUSH);
	assert_true(r.sk.offs[4] == 136 * SEC);
	assert_int_equal(r.sk.kinds[r.sk.n - 1], PLAN_OP_FLUSH);
	assert_true(get_le32(d->b + 136 * SEC + (600 - 512) * 4) == 0);
	assert_true(get_le32(d->b + 131 * SEC) == 128);
	assert_true(get_le64(d->b + 143 * SEC + 12) == 65536);
	assert_true(get_le64(d->b + 143 * SEC + 56) == 141);
	assert_true(get_le32(d->b + 141 * SEC + 4) == 136);
	assert_true(get_le64(d->b + 12) == 65536);
	assert_non_null(strstr((char *)d->b + SEC, "RDONLY 65536 SPARSE"));
	free_disk(d);
}

static void test_stream_footer_hostile(void **state)
{
	struct ptl_img *d = new_disk();

	(void)state;
	mk_stream(d);
	expect_err(d, 128 * MIB, 0, 0, NULL);
	put32(d->b + 142 * SEC + 12, 1); /* not a footer marker */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "Invalid footer");
	mk_stream(d);
	put32(d->b + 142 * SEC + 8, 1); /* a marker with a size is a grain */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "Invalid footer");
	mk_stream(d);
	put64(d->b + 144 * SEC, 1); /* end-of-stream marker with a length */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "Invalid footer");
	mk_stream(d);
	d->b[143 * SEC] = 'X'; /* footer magic */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "Invalid footer");
	mk_stream(d);
	d->len += 512; /* something after the end-of-stream marker */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "Invalid footer");
	mk_stream(d);
	d->len -= 100; /* not whole sectors */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "whole sectors");
	mk_stream(d);
	put64(d->b + 143 * SEC + 56, UINT64_MAX); /* the footer has no GD either */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "no grain directory");
	mk_stream(d);
	put64(d->b + 143 * SEC + 56, 142); /* GD over the footer */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "beyond the footer");
	mk_stream(d);
	put32(d->b + 143 * SEC + 8, 0x30003); /* a redundant GD */
	put64(d->b + 143 * SEC + 48, 20);
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_UNSUPPORTED_FEATURE, "redundant");
	mk_stream(d);
	put32(d->b + 141 * SEC + 4, 142); /* a GT on the footer sectors */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "grain table");
	mk_stream(d);
	put64(d->b + 143 * SEC + 12, 1ull << 40); /* the footer's capacity counts */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_TOO_LARGE, "capacity");
	free_disk(d);
}

/* ---- a compressed grain the boundary cuts: rewritten whole ---- */

#define GB (128u * SEC) /* grain bytes */

/* Writes grain lba (sectors) of data[0..n) at sector sec as a stream grain:
 * marker and zlib stream; returns its sectors. */
static uint64_t put_zgrain(struct ptl_img *d, uint64_t sec, uint64_t lba, const uint8_t *data,
			   size_t n)
{
	uLongf zlen = compressBound(n);
	uint8_t *z = malloc(zlen);

	assert_non_null(z);
	assert_int_equal(compress2(z, &zlen, data, n, 6), Z_OK);
	put64(d->b + sec * SEC, lba);
	put32(d->b + sec * SEC + 8, (uint32_t)zlen);
	memcpy(d->b + sec * SEC + 12, z, zlen);
	free(z);
	return (12 + zlen + SEC - 1) / SEC;
}

/* The grain at sector sec read as qemu reads it (uncompress into a grain):
 * its marker's LBA and data; returns the decompressed length. */
static size_t get_zgrain(const struct ptl_img *d, uint64_t sec, uint64_t lba, uint8_t *out)
{
	uLongf n = GB;

	assert_true(get_le64(d->b + sec * SEC) == lba);
	assert_int_equal(uncompress(out, &n, d->b + sec * SEC + 12, get_le32(d->b + sec * SEC + 8)),
			 Z_OK);
	return n;
}

/* Grain bytes that no run of equal bytes would give: what was there. */
static void fill_grain(uint8_t *b, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((i * 7 + seed) % 251 + 1);
}

/* qemu's stream (mk_image's layout, compressed grains with markers): grain
 * 511 compressed at sector 256, cap sectors; the file ends after it. */
static void mk_zstream(struct ptl_img *d, uint64_t cap, size_t grain_len)
{
	uint8_t g[GB];
	uint64_t n;

	mk_image(d, base_desc);
	put32(d->b + 4, 3);
	put32(d->b + 8, 0x30003);
	put64(d->b + 12, cap);
	put_le16(d->b + 77, 1);
	memset(d->b + 128 * SEC, 0, 256 * SEC);
	n = put_zgrain(d, 128, 0, (const uint8_t[SEC]){1}, SEC);
	assert_true(n == 1);
	fill_grain(g, grain_len, 3);
	n = put_zgrain(d, 256, 511 * 128, g, grain_len);
	d->len = (256 + n) * SEC;
}

/* The index of the first op writing at off, or n. */
static uint32_t op_at(const struct sink *k, uint64_t off)
{
	uint32_t i = 0;

	while (i < k->n && !(k->kinds[i] == PLAN_OP_WRITE && k->offs[i] == off))
		i++;
	return i;
}

static void test_stream_shrink_rewrites_cut_grain(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};
	uint8_t want[GB], got[GB];
	uint64_t end, ns = (511 * 128 + 127) * (uint64_t)SEC; /* keeps 127 sectors */
	uint32_t ig, ih, igt, irgt;

	(void)state;
	mk_zstream(d, 131072, GB);
	end = d->len / SEC;
	run_plan(d, &r, ns, INSTAR_RESIZE_SHRINK_ALLOWED, SCRATCH_LEN, true);
	assert_int_equal(r.rc, 0);
	/* both GT copies point at the new grain, appended at the old end */
	assert_true(get_le32(d->b + 31 * SEC + 511 * 4) == end);
	assert_true(get_le32(d->b + 22 * SEC + 511 * 4) == end);
	assert_true(r.res.file_size_after > end * SEC && r.res.file_size_after % SEC == 0);
	assert_true(r.res.file_size_after == d->len);
	/* a whole grain: the kept part, zeros after (qemu never meets a
	 * short grain), in stored blocks with the Adler-32 qemu checks */
	assert_int_equal(get_zgrain(d, end, 511 * 128, got), GB);
	fill_grain(want, GB, 3);
	memset(want + 127 * SEC, 0, SEC);
	assert_memory_equal(got, want, GB);
	assert_true(d->b[end * SEC + 12] == 0x78 && d->b[end * SEC + 13] == 0x01);
	/* the old grain is left where it was (leaked) */
	assert_true(get_le64(d->b + 256 * SEC) == 511 * 128);
	/* order: the grain, barrier, commit, barrier, the GT entries */
	ig = op_at(&r.sk, end * SEC);
	ih = op_at(&r.sk, 0);
	igt = op_at(&r.sk, 31 * SEC);
	irgt = op_at(&r.sk, 22 * SEC);
	assert_true(ig < ih && ih < igt && ih < irgt && igt < r.sk.n && irgt < r.sk.n);
	assert_int_equal(r.sk.kinds[ig + 1], PLAN_OP_FLUSH);
	assert_int_equal(r.sk.kinds[ih + 1], PLAN_OP_FLUSH);
	assert_int_equal(r.sk.kinds[r.sk.n - 1], PLAN_OP_FLUSH);
	free_disk(d);
}

static void test_stream_grow_rewrites_cut_grain(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};
	uint8_t want[GB], got[GB];
	uint64_t end, cap = 511 * 128 + 100; /* the old end keeps 100 sectors */
	uint32_t ig, ih, igt;

	(void)state;
	/* a whole grain with garbage past the old end, then a short one as
	 * qemu writes the last grain of a stream */
	for (int pass = 0; pass < 2; pass++) {
		size_t glen = pass ? 100 * SEC : GB;

		mk_zstream(d, cap, glen);
		memset(&r, 0, sizeof(r));
		run_plan(d, &r, 64 * MIB, 0, SCRATCH_LEN, true);
		assert_int_equal(r.rc, 0);
		assert_true(get_le64(d->b + 12) == 131072);
		/* behind the new GTs (GD entry 1 is new: 384..391) */
		end = get_le32(d->b + 31 * SEC + 511 * 4);
		assert_true(end == 512 && r.res.file_size_after > end * SEC);
		assert_true(get_le32(d->b + 22 * SEC + 511 * 4) == end);
		assert_int_equal(get_zgrain(d, end, 511 * 128, got), GB);
		fill_grain(want, GB, 3);
		memset(want + 100 * SEC, 0, GB - 100 * SEC);
		assert_memory_equal(got, want, GB);
		/* order: the grain, barrier, the GT entries, barrier, commit */
		ig = op_at(&r.sk, end * SEC);
		igt = op_at(&r.sk, 31 * SEC);
		ih = op_at(&r.sk, 0);
		assert_true(ig < igt && igt < ih && ih < r.sk.n);
		assert_int_equal(r.sk.kinds[ig + 1], PLAN_OP_FLUSH);
		assert_int_equal(r.sk.kinds[ih - 1], PLAN_OP_FLUSH);
	}
	free_disk(d);
}

/* A whole grain already zero past the boundary is left alone. */
static void test_stream_cut_grain_already_zero(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};
	uint8_t g[GB];
	uint64_t len;

	(void)state;
	mk_zstream(d, 511 * 128 + 100, GB);
	fill_grain(g, 100 * SEC, 3);
	memset(g + 100 * SEC, 0, GB - 100 * SEC);
	memset(d->b + 256 * SEC, 0, 128 * SEC);
	d->len = (256 + put_zgrain(d, 256, 511 * 128, g, GB)) * SEC;
	len = d->len;
	run_plan(d, &r, 64 * MIB, 0, SCRATCH_LEN, true);
	assert_int_equal(r.rc, 0);
	/* the new GTs only (384..391, grain-aligned end), no grain, GT 0
	 * untouched */
	assert_true(len < 384 * SEC && r.res.file_size_after == 512 * SEC);
	assert_true(get_le32(d->b + 31 * SEC + 511 * 4) == 256);
	assert_int_equal(op_at(&r.sk, 31 * SEC), r.sk.n);
	assert_int_equal(op_at(&r.sk, 22 * SEC), r.sk.n);
	free_disk(d);
}

/* VMware's layout: the grain goes where the footer was, the GD moves
 * behind it, then the footer sectors. */
static void test_stream_footer_shrink_rewrites_cut_grain(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};
	uint8_t g[GB], got[GB];
	uint64_t ns = (600 * 128 + 64) * (uint64_t)SEC, csec, end, gd;
	uint32_t ih, ifo, igt;

	(void)state;
	mk_stream(d);
	memset(g, 0x33, GB / 2);
	memset(g + GB / 2, 0x44, GB / 2);
	memset(d->b + 129 * SEC, 0, SEC);
	assert_true(put_zgrain(d, 129, 600 * 128, g, GB) == 1);
	run_plan(d, &r, ns, INSTAR_RESIZE_SHRINK_ALLOWED, SCRATCH_LEN, true);
	assert_int_equal(r.rc, 0);
	/* the grain at 142 (the old footer marker), GD marker and GD, footer */
	gd = get_le64(d->b + d->len - 2 * SEC + 56);
	csec = gd - 1 - 142;
	end = 142 + csec + 2 + 3;
	assert_true(csec >= 129 && csec <= 130);
	assert_true(r.res.file_size_after == end * SEC && d->len == end * SEC);
	assert_true(get_le32(d->b + 136 * SEC + (600 - 512) * 4) == 142);
	assert_int_equal(get_zgrain(d, 142, 600 * 128, got), GB);
	memset(g + 64 * SEC, 0, GB - 64 * SEC);
	assert_memory_equal(got, g, GB);
	assert_true(get_le32(d->b + (gd - 1) * SEC + 12) == 2); /* GD marker */
	assert_true(get_le32(d->b + gd * SEC) == 131 && get_le32(d->b + gd * SEC + 4) == 136);
	assert_true(get_le32(d->b + (end - 3) * SEC + 12) == 3);
	assert_true(get_le64(d->b + (end - 2) * SEC + 12) == 600 * 128 + 64);
	assert_true(get_le32(d->b + (end - 1) * SEC + 12) == 0);
	/* order: footer copy, barrier, grain + GD, barrier, header, barrier,
	 * footer, barrier, the GT entry */
	assert_true(r.sk.offs[0] == (end - 3) * SEC && r.sk.kinds[1] == PLAN_OP_FLUSH);
	assert_true(r.sk.offs[2] == 142 * SEC && r.sk.lens[2] == (csec + 2) * SEC);
	assert_int_equal(r.sk.kinds[3], PLAN_OP_FLUSH);
	ih = op_at(&r.sk, 0);
	ifo = op_at(&r.sk, (end - 2) * SEC);
	igt = op_at(&r.sk, 136 * SEC);
	assert_true(ih == 4 && ih < ifo && ifo < igt && igt < r.sk.n);
	assert_int_equal(r.sk.kinds[r.sk.n - 1], PLAN_OP_FLUSH);
	free_disk(d);
}

static void test_stream_cut_grain_hostile(void **state)
{
	struct ptl_img *d = new_disk();
	uint64_t ns = (511 * 128 + 127) * (uint64_t)SEC;
	const uint32_t sh = INSTAR_RESIZE_SHRINK_ALLOWED;

	(void)state;
	mk_zstream(d, 131072, GB);
	expect_err(d, ns, sh, 0, NULL);
	put64(d->b + 256 * SEC, 510 * 128); /* the marker's LBA */
	expect_err(d, ns, sh, INSTAR_ERR_CORRUPT, "marker for another grain");
	mk_zstream(d, 131072, GB);
	put32(d->b + 256 * SEC + 8, 0); /* compressed length */
	expect_err(d, ns, sh, INSTAR_ERR_CORRUPT, "invalid length");
	put32(d->b + 256 * SEC + 8, 2 * GB); /* more than qemu reads */
	expect_err(d, ns, sh, INSTAR_ERR_CORRUPT, "invalid length");
	mk_zstream(d, 131072, GB);
	put32(d->b + 256 * SEC + 8, get_le32(d->b + 256 * SEC + 8) - 2); /* cut trailer */
	expect_err(d, ns, sh, INSTAR_ERR_CORRUPT, "does not inflate");
	mk_zstream(d, 131072, GB);
	d->b[256 * SEC + 12 + get_le32(d->b + 256 * SEC + 8) - 1] ^= 1; /* Adler-32 */
	expect_err(d, ns, sh, INSTAR_ERR_CORRUPT, "does not inflate");
	mk_zstream(d, 131072, GB);
	d->b[256 * SEC + 12] = 0x79; /* zlib header check bits */
	expect_err(d, ns, sh, INSTAR_ERR_CORRUPT, "does not inflate");
	/* more than a grain of data */
	mk_zstream(d, 131072, GB);
	{
		static uint8_t big[GB + SEC];

		fill_grain(big, sizeof(big), 3);
		put_zgrain(d, 256, 511 * 128, big, sizeof(big));
	}
	expect_err(d, ns, sh, INSTAR_ERR_CORRUPT, "does not inflate");
	/* short, where the old image reads the whole grain */
	mk_zstream(d, 131072, 127 * SEC);
	expect_err(d, ns, sh, INSTAR_ERR_CORRUPT, "shorter");
	/* GD and RGD disagree */
	mk_zstream(d, 131072, GB);
	put32(d->b + 22 * SEC + 511 * 4, 128);
	expect_err(d, ns, sh, INSTAR_ERR_CORRUPT, "different sectors");
	/* only the RGD maps it: rebuilt from there */
	put32(d->b + 22 * SEC + 511 * 4, 256);
	put32(d->b + 31 * SEC + 511 * 4, 0);
	expect_err(d, ns, sh, 0, NULL);
	/* the grain on the header, beyond the file */
	mk_zstream(d, 131072, GB);
	put32(d->b + 22 * SEC + 511 * 4, 0);
	put32(d->b + 31 * SEC + 511 * 4, 0x7fffffff);
	expect_err(d, ns, sh, INSTAR_ERR_CORRUPT, "out of range");
	put32(d->b + 31 * SEC + 511 * 4, 1);
	expect_err(d, ns, sh, INSTAR_ERR_CORRUPT, "out of range");
	/* compressed without markers: the grain's length is unknown */
	mk_zstream(d, 131072, GB);
	put32(d->b + 8, 0x10003);
	expect_err(d, ns, sh, INSTAR_ERR_UNSUPPORTED_SHRINK, "without grain markers");
	put64(d->b + 12, 511 * 128 + 100);
	expect_err(d, 64 * MIB, 0, INSTAR_ERR_UNSUPPORTED_FEATURE, "without grain markers");
	free_disk(d);
}

/* ---- hostile images ---- */

static void test_hostile_header(void **state)
{
	struct ptl_img *d = new_disk();

	(void)state;
	put64(d->b + 20, 100); /* grainSize not a power of two */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "grainSize");
	/* qemu's checks and words (open failures) */
	put64(d->b + 20, 0);
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "L1 entry size is invalid");
	put64(d->b + 20, 1ull << 40); /* 512 << 40: 0 in 32 bits, as qemu multiplies */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "L1 entry size is invalid");
	put64(d->b + 20, 1ull << 22);
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "Invalid granularity");
	mk_image(d, base_desc);
	put32(d->b + 44, 513);
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "L2 table size too big");
	put32(d->b + 44, 0);
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "L1 entry size is invalid");
	mk_image(d, base_desc);
	put64(d->b + 64, 1u << 20); /* grainOffset past the end */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "File truncated, expecting at least");
	mk_image(d, base_desc);
	put32(d->b + 4, 4);
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_UNSUPPORTED_FEATURE, "Unsupported VMDK version 4");
	mk_image(d, base_desc);
	/* qemu's block layer: the size in bytes (an unsigned product) past
	 * BDRV_MAX_LENGTH fails the open; past INT64_MAX bytes, its length */
	put64(d->b + 12, UINT64_MAX);
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED,
		   "Could not refresh total sector count: File too large");
	put64(d->b + 12, 1ull << 55); /* 2^64 bytes: 0 */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_TOO_LARGE,
		   "Failed to inquire current image length: File too large");
	put64(d->b + 12, 1ull << 41); /* opens; over instar's 64 TiB */
	expect_err(d, 128 * MIB, INSTAR_RESIZE_SHRINK_ALLOWED, INSTAR_ERR_TOO_LARGE, "over 64 TiB");
	mk_image(d, base_desc);
	put64(d->b + 56, 1ull << 40); /* GD far beyond EOF */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "beyond end of file");
	put64(d->b + 56, UINT64_MAX - 1); /* would wrap */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, NULL);
	put64(d->b + 56, 21); /* GD == RGD */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "overlaps");
	put64(d->b + 56, 5); /* inside the descriptor */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "overlaps");
	put64(d->b + 56, 0);
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, NULL);
	mk_image(d, base_desc);
	put64(d->b + 36, 1ull << 40); /* descriptorSize absurd */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "descriptorSize");
	put64(d->b + 36, 0);
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "descriptorSize");
	put64(d->b + 36, 20);
	put64(d->b + 28, 1000); /* descriptor beyond EOF */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "descriptor");
	put64(d->b + 28, 0);
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "multi-file");
	mk_image(d, base_desc);
	put32(d->b + 4, 4);
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_UNSUPPORTED_FEATURE, "version");
	put32(d->b + 4, 1);
	put32(d->b + 8, 3 | 1u << 9);
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_UNSUPPORTED_FEATURE, "flags");
	put32(d->b + 8, 3);
	d->b[75] = 0x0a; /* CRLF mangled */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "newline");
	mk_image(d, base_desc);
	put64(d->b + 56, UINT64_MAX); /* GD_AT_END, but the file has no footer */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "Invalid footer");
	mk_image(d, base_desc);
	d->len = 100; /* truncated header */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, NULL);
	mk_image(d, base_desc);
	memcpy(d->b, "COWD", 4);
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "vmfsSparse");
	free_disk(d);
}

static void test_hostile_tables(void **state)
{
	struct ptl_img *d = new_disk();

	(void)state;
	put32(d->b + 30 * SEC, 0x7fffffff); /* GT beyond EOF */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "grain table");
	mk_image(d, base_desc);
	put32(d->b + 30 * SEC + 4, 2); /* GT inside the descriptor */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "grain table");
	mk_image(d, base_desc);
	put32(d->b + 21 * SEC, 30); /* RGD's GT on top of the GD */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_CORRUPT, "grain table");
	mk_image(d, base_desc);
	/* The grain cut by the new end points at the header. */
	put32(d->b + 31 * SEC + 511 * 4, 0);
	put32(d->b + 22 * SEC + 511 * 4, 0);
	expect_err(d, 32 * MIB - 512, INSTAR_RESIZE_SHRINK_ALLOWED, 0, NULL);
	put32(d->b + 31 * SEC + 511 * 4, 1); /* v1: GTE 1 = sector 1 */
	expect_err(d, 32 * MIB - 512, INSTAR_RESIZE_SHRINK_ALLOWED, INSTAR_ERR_CORRUPT, "grain");
	put32(d->b + 31 * SEC + 511 * 4, 0xfffffff0u);
	expect_err(d, 32 * MIB - 512, INSTAR_RESIZE_SHRINK_ALLOWED, INSTAR_ERR_CORRUPT, "grain");
	/* With zeroed grains, GTE 1 is "reads as zero": nothing to zero. */
	put32(d->b + 4, 2);
	put32(d->b + 8, 7);
	put32(d->b + 31 * SEC + 511 * 4, 1);
	expect_err(d, 32 * MIB - 512, INSTAR_RESIZE_SHRINK_ALLOWED, 0, NULL);
	/* A compressed grain that is not one (0x22 bytes, no marker). */
	mk_image(d, base_desc);
	put32(d->b + 4, 3);
	put32(d->b + 8, 0x30003);
	put_le16(d->b + 77, 1);
	expect_err(d, 32 * MIB - 512, INSTAR_RESIZE_SHRINK_ALLOWED, INSTAR_ERR_CORRUPT,
		   "compressed grain");
	expect_err(d, 32 * MIB, INSTAR_RESIZE_SHRINK_ALLOWED, 0, NULL);
	d->b[77] = 2; /* qemu: version 3 without deflate must be read-only */
	expect_err(d, 32 * MIB, INSTAR_RESIZE_SHRINK_ALLOWED, INSTAR_ERR_UNSUPPORTED_FEATURE,
		   "VMDK version 3 must be read only");
	put32(d->b + 4, 2);
	expect_err(d, 32 * MIB, INSTAR_RESIZE_SHRINK_ALLOWED, INSTAR_ERR_UNSUPPORTED_FEATURE,
		   "compression");
	free_disk(d);
}

static void set_desc(struct ptl_img *d, const char *text)
{
	memset(d->b + SEC, 0, 20 * SEC);
	memcpy(d->b + SEC, text, strlen(text));
}

static char *replace(const char *text, const char *from, const char *to)
{
	static char buf[20 * SEC + 1024];
	const char *p = strstr(text, from);

	assert_non_null(p);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
	return buf;
}

static void test_hostile_descriptor(void **state)
{
	struct ptl_img *d = new_disk();
	char big[20 * SEC + 1];
	size_t n;

	(void)state;
	d->b[SEC + 30] = 0x01; /* binary */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "not text");
	d->b[SEC + 30] = 0x7f;
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "not text");
	/* qemu's vmdk_read_cid finds no CID in the text at 0x200: its open
	 * fails with EINVAL, before instar's own refusals */
	set_desc(d, "");
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "Invalid argument");
	set_desc(d, replace(base_desc, "createType", "kreateType"));
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "createType");
	set_desc(d, replace(base_desc, "monolithicSparse", "vmfsSparse"));
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "vmfsSparse");
	/* a delta disk: qemu-img's answer for every vmdk, without a detail */
	set_desc(d, replace(base_desc, "parentCID=ffffffff", "parentCID=12345678"));
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, NULL);
	set_desc(d, replace(base_desc, "CID=2e1f034f", "CID=2e1f034f00"));
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "CID");
	set_desc(d, replace(base_desc, "CID=2e1f034f", "CID=zz"));
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "Invalid argument");
	/* qemu's strstr finds "CID" inside "parentCID": no CID line passes its
	 * open, and the sparse image is resized (its new CID from 0) */
	set_desc(d, replace(base_desc, "CID=2e1f034f\n", ""));
	expect_err(d, 128 * MIB, 0, 0, NULL);
	set_desc(d, replace(base_desc, "RW 131072 SPARSE \"t.vmdk\"\n",
			    "RW 131072 SPARSE \"t.vmdk\"\nRW 131072 SPARSE \"u.vmdk\"\n"));
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "extent lines");
	set_desc(d, replace(base_desc, "RW 131072 SPARSE \"t.vmdk\"\n", ""));
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "extent lines");
	set_desc(d, replace(base_desc, "SPARSE", "FLAT"));
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "FLAT");
	set_desc(d, replace(base_desc, "heads = \"16\"", "heads = \"0\""));
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "heads");
	set_desc(d, replace(base_desc, "heads = \"16\"", "heads = \"99999999999999999999999\""));
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "heads");
	set_desc(d, replace(base_desc, "sectors = \"63\"", "sectors = \"x\""));
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, "sectors");

	/* Text filling descriptorSize exactly: a longer number cannot fit. */
	n = strlen(base_desc);
	memcpy(big, base_desc, n);
	memset(big + n, 'x', sizeof(big) - n - 2);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	set_desc(d, big);
	expect_err(d, 1ull << 30, 0, INSTAR_ERR_TOO_LARGE, "descriptorSize");
	/* The same with a free comment line instead: it makes room (the
	 * signature line and the section headings stay). */
	memset(big + n, 'x', sizeof(big) - n - 2);
	big[n] = '#';
	big[n + 1] = ' ';
	set_desc(d, big);
	{
		struct run r = {0};
		const char *t = (char *)d->b + SEC;

		run_plan(d, &r, 1ull << 30, 0, SCRATCH_LEN, true);
		assert_int_equal(r.rc, 0);
		assert_non_null(strstr(t, "RW 2097152 SPARSE \"t.vmdk\"\n"));
		assert_true(strncmp(t, "# Disk DescriptorFile\n", 22) == 0);
		assert_non_null(strstr(t, "\n# Extent description\n"));
		assert_non_null(strstr(t, "\n# The Disk Data Base\n#DDB\n"));
		assert_null(strstr(t, "\n# xxx"));
		assert_true(strlen(t) < 20 * SEC);
	}
	mk_image(d, base_desc);

	/* A VMware-style descriptor: UTF-8 name, extra keys, lsilogic. */
	set_desc(d, "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=fffffffe\n"
		    "parentCID=ffffffff\nisNativeSnapshot=\"no\"\n"
		    "createType=\"monolithicSparse\"\n\n# Extent description\n"
		    "RW 131072 SPARSE \"d\xc3\xa9mo.vmdk\"\n\n# The Disk Data Base \n#DDB\n\n"
		    "ddb.adapterType = \"lsilogic\"\nddb.geometry.cylinders = \"8\"\n"
		    "ddb.geometry.heads = \"255\"\nddb.geometry.sectors = \"63\"\n"
		    "ddb.virtualHWVersion = \"8\"\n");
	{
		struct run r = {0};

		run_plan(d, &r, 1ull << 30, 0, SCRATCH_LEN, true);
		assert_int_equal(r.rc, 0);
		assert_non_null(
		    strstr((char *)d->b + SEC, "RW 2097152 SPARSE \"d\xc3\xa9mo.vmdk\"\n"));
		assert_non_null(strstr((char *)d->b + SEC, "cylinders = \"130\"\n"));
		assert_null(strstr((char *)d->b + SEC, "CID=fffffffe"));
		assert_non_null(strstr((char *)d->b + SEC, "isNativeSnapshot=\"no\"\n"));
	}
	mk_image(d, base_desc);

	/* CRLF descriptors keep their line ends. */
	set_desc(d, "# Disk DescriptorFile\r\nCID=1\r\nparentCID=ffffffff\r\n"
		    "createType=\"monolithicSparse\"\r\nRW 131072 SPARSE \"t.vmdk\"\r\n"
		    "ddb.geometry.cylinders = \"130\"\r\nddb.geometry.heads = \"16\"\r\n"
		    "ddb.geometry.sectors = \"63\"\r\n");
	{
		struct run r = {0};

		run_plan(d, &r, 1ull << 30, 0, SCRATCH_LEN, true);
		assert_int_equal(r.rc, 0);
		assert_non_null(strstr((char *)d->b + SEC, "RW 2097152 SPARSE \"t.vmdk\"\r\n"));
		assert_non_null(strstr((char *)d->b + SEC, "cylinders = \"2080\"\r\n"));
	}
	free_disk(d);
}

/* qemu's vmdk_parent_open: a parentFileNameHint in the 10 KiB at 0x200 is
 * the backing file, which the host must have opened by exactly that name;
 * the image is then refused as qemu-img refuses every vmdk (no detail). */
static void test_parent_hint(void **state)
{
	struct ptl_img *d = new_disk();
	struct run r = {0};
	const char *name = "base.vmdk";

	(void)state;
	set_desc(d, replace(base_desc, "parentCID=ffffffff\n",
			    "parentCID=ffffffff\nparentFileNameHint=\"base.vmdk\"\n"));
	/* the host opened nothing: the image changed since its probe */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_HEADER_MISMATCH, "parent file name");
	/* another name */
	r.o.flags = INSTAR_RESIZE_BACKING;
	r.o.backing_name_crc = instar_crc32(0, "base.vmd", 8);
	run_plan(d, &r, 128 * MIB, INSTAR_RESIZE_BACKING, SCRATCH_LEN, false);
	assert_int_equal(r.rc, INSTAR_ERR_HEADER_MISMATCH);
	/* that name: refused without a detail, nothing written, also for the
	 * same size */
	r.o.backing_name_crc = instar_crc32(0, name, strlen(name));
	run_plan(d, &r, 128 * MIB, INSTAR_RESIZE_BACKING, SCRATCH_LEN, false);
	assert_int_equal(r.rc, INSTAR_ERR_UNSUPPORTED_SUBFORMAT);
	assert_string_equal(r.res.detail, "");
	assert_int_equal(r.sk.n, 0);
	run_plan(d, &r, 64 * MIB, INSTAR_RESIZE_BACKING, SCRATCH_LEN, false);
	assert_int_equal(r.rc, INSTAR_ERR_UNSUPPORTED_SUBFORMAT);
	/* the host named a backing file the image does not name */
	set_desc(d, base_desc);
	run_plan(d, &r, 128 * MIB, INSTAR_RESIZE_BACKING, SCRATCH_LEN, false);
	assert_int_equal(r.rc, INSTAR_ERR_HEADER_MISMATCH);
	/* the name runs to the next '"' anywhere after it (qemu's strchr) */
	set_desc(d, replace(base_desc, "parentCID=ffffffff\n",
			    "parentCID=ffffffff\nparentFileNameHint=\"base.vmdk\n"));
	memset(&r.o, 0, sizeof(r.o));
	r.o.backing_name_crc =
	    instar_crc32(0, "base.vmdk\ncreateType=", strlen("base.vmdk\ncreateType="));
	run_plan(d, &r, 128 * MIB, INSTAR_RESIZE_BACKING, SCRATCH_LEN, false);
	assert_int_equal(r.rc, INSTAR_ERR_UNSUPPORTED_SUBFORMAT);
	/* no '"' after it: qemu fails the open with EINVAL */
	set_desc(d, replace(base_desc, "ddb.adapterType = \"ide\"\n",
			    "ddb.adapterType = \"ide\"\nparentFileNameHint=\"base.vmdk\n"));
	memset(&r.o, 0, sizeof(r.o));
	run_plan(d, &r, 128 * MIB, 0, SCRATCH_LEN, false);
	assert_int_equal(r.rc, INSTAR_ERR_PARSE_FAILED);
	assert_string_equal(r.res.detail, "Invalid argument");
	assert_int_equal(r.res.flags & (INSTAR_RESULT_OPEN | INSTAR_RESULT_OPEN_ERRNO),
			 INSTAR_RESULT_OPEN | INSTAR_RESULT_OPEN_ERRNO);
	/* an empty name is no backing file: resized */
	set_desc(d, replace(base_desc, "parentCID=ffffffff\n",
			    "parentCID=ffffffff\nparentFileNameHint=\"\"\n"));
	run_plan(d, &r, 128 * MIB, 0, SCRATCH_LEN, false);
	assert_int_equal(r.rc, 0);
	free_disk(d);
}

static void test_text_descriptor_file(void **state)
{
	struct ptl_img *d = new_disk();
	static const char head[] = "# Disk DescriptorFile\nversion=1\nCID=1\n"
				   "parentCID=ffffffff\ncreateType=\"twoGbMaxExtentSparse\"\n";
	static char text[1024];
	struct run r = {0};

	(void)state;
	/* twoGbMaxExtentSparse: a grow appends extents (the last one keeps its
	 * 2048 sectors: qemu reads them from its header) */
	memset(d->b, 0, DISK_MAX);
	snprintf(text, sizeof(text), "%sRW 2048 SPARSE \"x-s001.vmdk\"\n", head);
	memcpy(d->b, text, strlen(text));
	d->len = SEC; /* qemu pads the text to a sector */
	run_plan(d, &r, 5 * 1024 * MIB, 0, SCRATCH_LEN, true);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr((char *)d->b, "RW 2048 SPARSE \"x-s001.vmdk\"\n"
					     "RW 4194304 SPARSE \"x-s002.vmdk\"\n"
					     "RW 4194304 SPARSE \"x-s003.vmdk\"\n"
					     "RW 2095104 SPARSE \"x-s004.vmdk\"\n"));
	assert_null(strstr((char *)d->b, "x-s005"));
	/* a shrink drops whole extents: to where x-s002 ends, or refused */
	run_plan(d, &r, 2 * 1024 * MIB + MIB, INSTAR_RESIZE_SHRINK_ALLOWED, SCRATCH_LEN, true);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr((char *)d->b, "RW 2048 SPARSE \"x-s001.vmdk\"\n"
					     "RW 4194304 SPARSE \"x-s002.vmdk\"\n"));
	assert_null(strstr((char *)d->b, "x-s003"));
	expect_err(d, MIB, 0, INSTAR_ERR_SHRINK_WITHOUT_FLAG, NULL);
	/* inside an extent: the host's copy of it, under the next number */
	run_plan(d, &r, 2 * 1024 * MIB, INSTAR_RESIZE_SHRINK_ALLOWED, SCRATCH_LEN, true);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr((char *)d->b, "RW 2048 SPARSE \"x-s001.vmdk\"\n"
					     "RW 4192256 SPARSE \"x-s003.vmdk\"\n"));
	assert_null(strstr((char *)d->b, "x-s002"));
	/* no preallocation: the new extents are sparse */
	r = (struct run){.o.prealloc = INSTAR_PREALLOC_FULL};
	run_plan(d, &r, 5 * 1024 * MIB, 0, SCRATCH_LEN, false);
	assert_int_equal(r.rc, INSTAR_ERR_PREALLOCATION_UNSUPPORTED);
	/* off the rule: names, types, extents over 2 GiB */
	snprintf(text, sizeof(text),
		 "%sRW 2048 SPARSE \"x-s001.vmdk\"\nRW 8 SPARSE \"y-s002.vmdk\"\n", head);
	memset(d->b, 0, DISK_MAX);
	memcpy(d->b, text, strlen(text));
	d->len = SEC; /* qemu pads the text to a sector */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
		   "extent 2 is not named as the first with a higher number");
	snprintf(text, sizeof(text), "%sRW 2048 FLAT \"x-s001.vmdk\" 0\n", head);
	memset(d->b, 0, DISK_MAX);
	memcpy(d->b, text, strlen(text));
	d->len = SEC; /* qemu pads the text to a sector */
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
		   "extent line is not RW N SPARSE \"name\"");
	snprintf(text, sizeof(text), "%sRW 4194305 SPARSE \"x-s001.vmdk\"\n", head);
	memset(d->b, 0, DISK_MAX);
	memcpy(d->b, text, strlen(text));
	d->len = SEC; /* qemu pads the text to a sector */
	expect_err(d, 4 * 1024 * MIB, 0, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "over 2 GiB");
	/* monolithicFlat: test_vmdk_flat_plan.c; twoGbMaxExtentFlat:
	 * tests/compat/twogb_flat.sh */
	d->len = 0;
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, NULL);
	memset(d->b, 0xff, 8192);
	d->len = 8192;
	expect_err(d, 128 * MIB, 0, INSTAR_ERR_PARSE_FAILED, NULL);
	free_disk(d);
}

/* Random damage to the metadata: any error code is fine, a crash is not. */
static void test_fuzz_metadata(void **state)
{
	struct ptl_img *d = new_disk();
	uint64_t x = 0x9e3779b97f4a7c15ull;

	(void)state;
	for (int it = 0; it < 3000; it++) {
		struct run r = {0};
		int flips = 1 + it % 4;

		mk_image(d, base_desc);
		for (int f = 0; f < flips; f++) {
			uint32_t off;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			/* header, descriptor start, GDs, first GTs */
			off = (uint32_t)(x % (40 * SEC));
			if (it % 3 == 0)
				off = (uint32_t)(x % 80);
			d->b[off] = (uint8_t)(x >> 40);
		}
		run_plan(d, &r, (it % 2 ? 128 : 16) * MIB, INSTAR_RESIZE_SHRINK_ALLOWED,
			 SCRATCH_LEN, false);
		assert_true(r.rc >= 0 && r.rc < INSTAR_ERR_COUNT);
	}
	free_disk(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_grow_in_place),
	    cmocka_unit_test(test_grow_relocates_gd),
	    cmocka_unit_test(test_grow_new_gts_are_holes),
	    cmocka_unit_test(test_grow_64t_writes_only_the_gds),
	    cmocka_unit_test(test_stream_footer_grow_in_place),
	    cmocka_unit_test(test_stream_footer_grow_moves_gd),
	    cmocka_unit_test(test_stream_footer_shrink),
	    cmocka_unit_test(test_stream_footer_hostile),
	    cmocka_unit_test(test_shrink_cuts_grain),
	    cmocka_unit_test(test_stream_shrink_rewrites_cut_grain),
	    cmocka_unit_test(test_stream_grow_rewrites_cut_grain),
	    cmocka_unit_test(test_stream_cut_grain_already_zero),
	    cmocka_unit_test(test_stream_footer_shrink_rewrites_cut_grain),
	    cmocka_unit_test(test_stream_cut_grain_hostile),
	    cmocka_unit_test(test_zero_gd_entry_gets_a_gt),
	    cmocka_unit_test(test_noop_and_options),
	    cmocka_unit_test(test_io_failures),
	    cmocka_unit_test(test_hostile_header),
	    cmocka_unit_test(test_hostile_tables),
	    cmocka_unit_test(test_hostile_descriptor),
	    cmocka_unit_test(test_parent_hint),
	    cmocka_unit_test(test_text_descriptor_file),
	    cmocka_unit_test(test_fuzz_metadata),
	};
	int rc;

	scratch_mem = malloc(SCRATCH_BIG);
	if (!scratch_mem)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(scratch_mem);
	return rc;
}
