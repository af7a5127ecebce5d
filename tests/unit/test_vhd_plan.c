/* tests/unit/test_vhd_plan.c — the vhd planner on in-memory images, many of
 * them hostile: every bad header must give an error, never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plan.h"
#include "plan_testlib.h"
#include "probe.h"
#include "vhd_size.h"

#define IMG_LEN (64 * 1024)
#define BS (4096u)

static uint32_t sum_csum(const uint8_t *b, size_t len, size_t at)
{
	uint32_t s = 0;

	for (size_t i = 0; i < len; i++)
		if (i < at || i >= at + 4)
			s += b[i];
	return ~s;
}

static void fix_footer(uint8_t *f)
{
	put_be32(f + 64, sum_csum(f, 512, 64));
}

/* A dynamic disk of 16 blocks of 4 KiB (64 KiB virtual): footer copy at 0,
 * header at 512, BAT at 1536, block 0 allocated at 2048. */
static void build_dynamic(uint8_t *img)
{
	uint8_t *f = img, *h = img + 512;

	memset(img, 0, IMG_LEN);
	memcpy(f, "conectix", 8);
	put_be32(f + 8, 2);
	put_be32(f + 12, 0x10000);
	put_be64(f + 16, 512);
	memcpy(f + 28, "win ", 4); /* current_size decides */
	put_be64(f + 40, 16 * BS);
	put_be64(f + 48, 16 * BS);
	put_be16(f + 56, 4);
	f[58] = 4;
	f[59] = 17;
	put_be32(f + 60, 3);
	fix_footer(f);
	memcpy(h, "cxsparse", 8);
	put_be64(h + 8, UINT64_MAX);
	put_be64(h + 16, 1536);
	put_be32(h + 24, 0x10000);
	put_be32(h + 28, 16);
	put_be32(h + 32, BS);
	put_be32(h + 36, sum_csum(h, 1024, 36));
	memset(img + 1536, 0xff, 512);
	put_be32(img + 1536, 2048 / 512);
	memcpy(img + IMG_LEN - 512, f, 512);
}

static void fix_dyn(uint8_t *img)
{
	put_be32(img + 512 + 36, sum_csum(img + 512, 1024, 36));
}

static int run(uint8_t *img, size_t len, uint64_t new_size, uint32_t flags,
	       struct instar_resize_result *res)
{
	return ptl_run(plan_resize_vhd, img, len, new_size, flags, res);
}

static void test_valid(void **state)
{
	uint8_t *img = malloc(IMG_LEN);
	struct instar_resize_result r;

	(void)state;
	build_dynamic(img);
	assert_int_equal(run(img, IMG_LEN, 32 * BS, 0, &r), 0);
	assert_int_equal(r.action, INSTAR_ACTION_GROW);
	assert_true(r.old_virtual_size == 16 * BS);
	assert_true(r.new_virtual_size == 32 * BS);
	assert_int_equal(run(img, IMG_LEN, 8 * BS, 0, &r), INSTAR_ERR_SHRINK_WITHOUT_FLAG);
	assert_int_equal(run(img, IMG_LEN, 8 * BS + 1000, INSTAR_RESIZE_SHRINK_ALLOWED, &r), 0);
	assert_true(r.new_virtual_size == 8 * BS + 1024);
	/* grow past the padded BAT (128 entries): relocation */
	assert_int_equal(run(img, IMG_LEN, 1000 * BS, 0, &r), 0);
	assert_true(r.file_size_after > IMG_LEN);
	free(img);
}

static void expect_err(uint8_t *img, size_t len, int err)
{
	struct instar_resize_result r;

	assert_int_equal(run(img, len, 32 * BS, INSTAR_RESIZE_SHRINK_ALLOWED, &r), err);
	assert_int_equal(r.error, err);
	assert_true(r.detail[0] != '\0');
}

static void test_hostile(void **state)
{
	uint8_t *img = malloc(IMG_LEN);

	(void)state;
	/* bad footer checksum in both copies */
	build_dynamic(img);
	img[100] ^= 1;
	img[IMG_LEN - 512 + 100] ^= 1;
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* no footer at all */
	memset(img, 0, IMG_LEN);
	expect_err(img, IMG_LEN, INSTAR_ERR_PARSE_FAILED);
	/* too small, odd length */
	build_dynamic(img);
	expect_err(img, 100, INSTAR_ERR_PARSE_FAILED);
	expect_err(img, IMG_LEN - 1, INSTAR_ERR_PARSE_FAILED);
	/* bad dynamic header checksum */
	build_dynamic(img);
	img[512 + 700] = 1;
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* huge max_table_entries */
	build_dynamic(img);
	put_be32(img + 512 + 28, 0xffffffffu);
	fix_dyn(img);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* table past EOF, table overflowing u64 */
	build_dynamic(img);
	put_be64(img + 512 + 16, IMG_LEN);
	fix_dyn(img);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	put_be64(img + 512 + 16, UINT64_MAX - 511);
	fix_dyn(img);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* table overlapping the header */
	build_dynamic(img);
	put_be64(img + 512 + 16, 1024);
	fix_dyn(img);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* block past EOF, block over the BAT */
	build_dynamic(img);
	put_be32(img + 1536 + 4, IMG_LEN / 512 - 2);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	put_be32(img + 1536 + 4, 3);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* block size not a power of two, zero */
	build_dynamic(img);
	put_be32(img + 512 + 32, 3000);
	fix_dyn(img);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	put_be32(img + 512 + 32, 0);
	fix_dyn(img);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* table too small for the disk */
	build_dynamic(img);
	put_be32(img + 512 + 28, 2);
	fix_dyn(img);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* header offset past EOF */
	build_dynamic(img);
	put_be64(img + 16, UINT64_MAX - 100);
	fix_footer(img);
	memcpy(img + IMG_LEN - 512, img, 512);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* differencing, unknown type */
	build_dynamic(img);
	put_be32(img + 60, 4);
	fix_footer(img);
	memcpy(img + IMG_LEN - 512, img, 512);
	expect_err(img, IMG_LEN, INSTAR_ERR_UNSUPPORTED_SUBFORMAT);
	put_be32(img + 60, 9);
	fix_footer(img);
	memcpy(img + IMG_LEN - 512, img, 512);
	expect_err(img, IMG_LEN, INSTAR_ERR_PARSE_FAILED);
	free(img);
}

static void test_size_rules(void **state)
{
	uint8_t *img = malloc(IMG_LEN);
	struct instar_resize_result r;

	(void)state;
	build_dynamic(img);
	/* beyond 2040 GiB */
	assert_int_equal(run(img, IMG_LEN, 2041ull << 30, 0, &r), INSTAR_ERR_TOO_LARGE);
	assert_int_equal(run(img, IMG_LEN, UINT64_MAX, 0, &r), INSTAR_ERR_TOO_LARGE);
	/* a CHS creator rounds up like qemu-img create: 10 MiB -> 10514432 */
	memcpy(img + 28, "qemu", 4);
	put_be64(img + 48, 4 * 17 * 512);
	put_be16(img + 56, 1);
	img[58] = 4;
	img[59] = 17;
	fix_footer(img);
	memcpy(img + IMG_LEN - 512, img, 512);
	put_be32(img + 512 + 28, 128);
	fix_dyn(img);
	assert_int_equal(run(img, IMG_LEN, 10u << 20, 0, &r), 0);
	assert_true(r.old_virtual_size == 4 * 17 * 512);
	assert_true(r.new_virtual_size == 10514432);
	free(img);
}

/* ---- the size rule shared with the host probe (shared/vhd_size.h) ---- */

#define MEM_CAP (1u << 20)

/* An image in memory that the plan is applied to as it is emitted (reads see
 * earlier writes, as in the guest). */
struct mem_img {
	struct ptl_img img;
	size_t cap;
};

static int apply_sink(void *ctx, const struct plan_op *op)
{
	struct mem_img *m = ctx;

	if (op->kind == PLAN_OP_FLUSH || op->kind == PLAN_OP_DISCARD)
		return 0;
	assert_true(op->off + op->len <= m->cap);
	if (op->kind == PLAN_OP_WRITE)
		memcpy(m->img.b + op->off, op->data, op->len);
	else
		memset(m->img.b + op->off, 0, op->len);
	if (op->off + op->len > m->img.len)
		m->img.len = op->off + op->len;
	return 0;
}

/* What the host does: the probe's size, then the plan with it as the
 * expected old size; the ops are applied and the final length set. */
static uint64_t host_probe(const struct mem_img *m)
{
	struct instar_probe_input in = {0};
	struct instar_probe_info info;
	size_t head = m->img.len < INSTAR_PROBE_HEAD_LEN ? m->img.len : INSTAR_PROBE_HEAD_LEN;
	size_t tail = m->img.len < INSTAR_PROBE_TAIL_LEN ? m->img.len : INSTAR_PROBE_TAIL_LEN;

	in.file_size = m->img.len;
	in.windows[0] = (struct instar_probe_window){0, m->img.b, head};
	in.windows[1] =
	    (struct instar_probe_window){m->img.len - tail, m->img.b + m->img.len - tail, tail};
	in.nwindows = 2;
	assert_int_equal(instar_probe(&in, &info), 0);
	assert_int_equal(info.format, INSTAR_FMT_VHD);
	return info.virtual_size;
}

static int host_resize(struct mem_img *m, uint64_t new_size, uint32_t flags,
		       struct instar_resize_result *res)
{
	static uint8_t scratch[1 << 20];
	struct plan_io io = {.read = ptl_img_read, .ctx = &m->img, .file_size = m->img.len};
	struct plan_opts o = {
	    .new_size = new_size, .expected_old_size = host_probe(m), .flags = flags};
	struct plan_scratch s;
	struct plan p;
	int r;

	memset(res, 0, sizeof(*res));
	plan_scratch_init(&s, scratch, sizeof(scratch));
	plan_init(&p, apply_sink, m, 0);
	r = plan_resize_vhd(&o, &io, &s, &p, res);
	if (r == 0) {
		assert_true(res->file_size_after <= m->cap);
		if (res->file_size_after > m->img.len)
			memset(m->img.b + m->img.len, 0, res->file_size_after - m->img.len);
		m->img.len = res->file_size_after;
	}
	return r;
}

/* A dynamic disk (blocks of bs, mte entries, none allocated) or a fixed one
 * (zeros, then the footer) with a hand-built footer. */
static void build_footer_img(struct mem_img *m, bool dynamic, const char *creator, uint64_t cur,
			     uint16_t c, uint8_t h, uint8_t spt, uint32_t bs, uint32_t mte)
{
	uint8_t f[512] = {0}, *d;
	uint64_t bat = ((uint64_t)mte * 4 + 511) / 512 * 512;

	memcpy(f, "conectix", 8);
	put_be32(f + 8, 2);
	put_be32(f + 12, 0x10000);
	put_be64(f + 16, dynamic ? 512 : UINT64_MAX);
	memcpy(f + 28, creator, 4);
	put_be64(f + 40, cur);
	put_be64(f + 48, cur);
	put_be16(f + 56, c);
	f[58] = h;
	f[59] = spt;
	put_be32(f + 60, dynamic ? 3 : 2);
	fix_footer(f);
	memset(m->img.b, 0, m->cap);
	if (!dynamic) {
		m->img.len = (size_t)cur + 512;
		memcpy(m->img.b + cur, f, 512);
		return;
	}
	d = m->img.b + 512;
	memcpy(m->img.b, f, 512);
	memcpy(d, "cxsparse", 8);
	put_be64(d + 8, UINT64_MAX);
	put_be64(d + 16, 1536);
	put_be32(d + 24, 0x10000);
	put_be32(d + 28, mte);
	put_be32(d + 32, bs);
	put_be32(d + 36, sum_csum(d, 1024, 36));
	memset(m->img.b + 1536, 0xff, bat);
	m->img.len = 1536 + bat + 512;
	memcpy(m->img.b + m->img.len - 512, f, 512);
}

/* Both footers (the one at 0 of a dynamic disk, the one at EOF) hold size in
 * current_size and original_size, the geometry c/h/s, a good checksum. */
static void check_footers(const struct mem_img *m, bool dynamic, uint64_t size, uint32_t c,
			  uint32_t h, uint32_t spt)
{
	const uint8_t *f = m->img.b + m->img.len - 512;

	for (int k = 0; k < (dynamic ? 2 : 1); k++, f = m->img.b) {
		assert_memory_equal(f, "conectix", 8);
		assert_true(get_be32(f + 64) == sum_csum(f, 512, 64));
		assert_true(get_be64(f + 48) == size);
		assert_true(get_be64(f + 40) == size); /* original_size: libvhdi */
		assert_int_equal(get_be16(f + 56), c);
		assert_int_equal(f[58], h);
		assert_int_equal(f[59], spt);
		assert_true(instar_vhd_virtual_size(f) == size);
	}
}

struct rule_case {
	char creator[5];
	uint16_t c;
	uint8_t h, s;
	uint64_t old;	     /* qemu-img 7.2 (checked in test_probe) */
	uint64_t grown;	     /* after a resize to 200000 */
	uint32_t nc, nh, ns; /* its geometry */
};

#define CUR64K 65536u
static const struct rule_case rule_cases[] = {
    /* CHS creators: CHS != current_size, the CHS size is read; a request
     * rounds up as qemu-img create -f vpc 200000 does (208896, 6/4/17) */
    {"vpc ", 1, 4, 17, 34816, 208896, 6, 4, 17},
    {"vs  ", 1, 4, 17, 34816, 208896, 6, 4, 17},
    {"qemu", 1, 4, 17, 34816, 208896, 6, 4, 17},
    {"d2v\0", 1, 4, 17, 34816, 208896, 6, 4, 17},
    /* current_size creators: exact to 512, the spec's geometry */
    {"win ", 1, 4, 17, CUR64K, 200192, 5, 4, 17},
    {"qem2", 1, 4, 17, CUR64K, 200192, 5, 4, 17},
    {"d2v ", 1, 4, 17, CUR64K, 200192, 5, 4, 17},
    /* the maximum geometry: current_size is read; disk2vhd and current_size
     * creators keep it (so qemu goes on reading current_size), a CHS creator
     * gets CHS again */
    {"d2v\0", 65535, 16, 255, CUR64K, 200192, 65535, 16, 255},
    {"win ", 65535, 16, 255, CUR64K, 200192, 65535, 16, 255},
    {"vpc ", 65535, 16, 255, CUR64K, 208896, 6, 4, 17},
};

static void test_creator_rule(void **state)
{
	struct mem_img m = {.img = {.b = malloc(MEM_CAP)}, .cap = MEM_CAP};
	struct instar_resize_result r;

	(void)state;
	for (size_t i = 0; i < sizeof(rule_cases) / sizeof(rule_cases[0]); i++) {
		const struct rule_case *c = &rule_cases[i];

		for (int dyn = 0; dyn < 2; dyn++) {
			build_footer_img(&m, dyn, c->creator, CUR64K, c->c, c->h, c->s, BS, 16);
			/* probe and planner agree on the old size */
			assert_true(host_probe(&m) == c->old);
			if (host_resize(&m, 200000, 0, &r) != 0)
				fail_msg("case %zu (%.4s, %s): %s", i, c->creator,
					 dyn ? "dynamic" : "fixed", r.detail);
			assert_true(r.old_virtual_size == c->old);
			assert_true(r.new_virtual_size == c->grown);
			check_footers(&m, dyn, c->grown, c->nc, c->nh, c->ns);
			/* and on the new one: the host's verify */
			assert_true(host_probe(&m) == c->grown);
		}
	}
	free(m.img.b);
}

/* Virtual PC's 127 GB default disk: CHS 65535/16/254 (266334240 sectors),
 * current_size 266338304 sectors. Every resize used to fail: the probe took
 * current_size and the planner CHS (HEADER_MISMATCH). */
static void test_virtual_pc_127g(void **state)
{
	const uint64_t cur = 266338304ull * 512, chs = 65535ull * 16 * 254 * 512;
	const uint32_t mte = (uint32_t)(cur / (2u << 20));
	struct mem_img m = {.img = {.b = malloc(MEM_CAP)}, .cap = MEM_CAP};
	struct instar_resize_result r;

	(void)state;
	build_footer_img(&m, true, "vpc ", cur, 65535, 16, 254, 2u << 20, mte);
	assert_true(host_probe(&m) == chs);
	/* +1 GiB: above the largest CHS size, exact, the maximum geometry */
	assert_int_equal(host_resize(&m, chs + (1ull << 30), 0, &r), 0);
	assert_true(r.old_virtual_size == chs);
	assert_true(r.new_virtual_size == chs + (1ull << 30));
	check_footers(&m, true, chs + (1ull << 30), 65535, 16, 255);
	assert_true(host_probe(&m) == chs + (1ull << 30));
	/* shrink to 100 GiB: CHS again, as qemu-img create 100G rounds */
	build_footer_img(&m, true, "vpc ", cur, 65535, 16, 254, 2u << 20, mte);
	assert_int_equal(host_resize(&m, 100ull << 30, INSTAR_RESIZE_SHRINK_ALLOWED, &r), 0);
	assert_true(r.new_virtual_size == 107374632960ull);
	assert_true(host_probe(&m) == 107374632960ull);
	assert_true(instar_vhd_virtual_size(m.img.b) == 107374632960ull);
	assert_true(get_be64(m.img.b + 40) == 107374632960ull);
	free(m.img.b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),	    cmocka_unit_test(test_hostile),
	    cmocka_unit_test(test_size_rules),	    cmocka_unit_test(test_creator_rule),
	    cmocka_unit_test(test_virtual_pc_127g),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
