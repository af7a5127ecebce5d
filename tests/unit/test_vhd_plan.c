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
	plan_put_be32(f + 64, sum_csum(f, 512, 64));
}

/* A dynamic disk of 16 blocks of 4 KiB (64 KiB virtual): footer copy at 0,
 * header at 512, BAT at 1536, block 0 allocated at 2048. */
static void build_dynamic(uint8_t *img)
{
	uint8_t *f = img, *h = img + 512;

	memset(img, 0, IMG_LEN);
	memcpy(f, "conectix", 8);
	plan_put_be32(f + 8, 2);
	plan_put_be32(f + 12, 0x10000);
	plan_put_be64(f + 16, 512);
	memcpy(f + 28, "win ", 4); /* current_size decides */
	plan_put_be64(f + 40, 16 * BS);
	plan_put_be64(f + 48, 16 * BS);
	plan_put_be16(f + 56, 4);
	f[58] = 4;
	f[59] = 17;
	plan_put_be32(f + 60, 3);
	fix_footer(f);
	memcpy(h, "cxsparse", 8);
	plan_put_be64(h + 8, UINT64_MAX);
	plan_put_be64(h + 16, 1536);
	plan_put_be32(h + 24, 0x10000);
	plan_put_be32(h + 28, 16);
	plan_put_be32(h + 32, BS);
	plan_put_be32(h + 36, sum_csum(h, 1024, 36));
	memset(img + 1536, 0xff, 512);
	plan_put_be32(img + 1536, 2048 / 512);
	memcpy(img + IMG_LEN - 512, f, 512);
}

static void fix_dyn(uint8_t *img)
{
	plan_put_be32(img + 512 + 36, sum_csum(img + 512, 1024, 36));
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
	plan_put_be32(img + 512 + 28, 0xffffffffu);
	fix_dyn(img);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* table past EOF, table overflowing u64 */
	build_dynamic(img);
	plan_put_be64(img + 512 + 16, IMG_LEN);
	fix_dyn(img);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	plan_put_be64(img + 512 + 16, UINT64_MAX - 511);
	fix_dyn(img);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* table overlapping the header */
	build_dynamic(img);
	plan_put_be64(img + 512 + 16, 1024);
	fix_dyn(img);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* block past EOF, block over the BAT */
	build_dynamic(img);
	plan_put_be32(img + 1536 + 4, IMG_LEN / 512 - 2);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	plan_put_be32(img + 1536 + 4, 3);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* block size not a power of two, zero */
	build_dynamic(img);
	plan_put_be32(img + 512 + 32, 3000);
	fix_dyn(img);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	plan_put_be32(img + 512 + 32, 0);
	fix_dyn(img);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* table too small for the disk */
	build_dynamic(img);
	plan_put_be32(img + 512 + 28, 2);
	fix_dyn(img);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* header offset past EOF */
	build_dynamic(img);
	plan_put_be64(img + 16, UINT64_MAX - 100);
	fix_footer(img);
	memcpy(img + IMG_LEN - 512, img, 512);
	expect_err(img, IMG_LEN, INSTAR_ERR_CORRUPT);
	/* differencing, unknown type */
	build_dynamic(img);
	plan_put_be32(img + 60, 4);
	fix_footer(img);
	memcpy(img + IMG_LEN - 512, img, 512);
	expect_err(img, IMG_LEN, INSTAR_ERR_UNSUPPORTED_SUBFORMAT);
	plan_put_be32(img + 60, 9);
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
	plan_put_be64(img + 48, 4 * 17 * 512);
	plan_put_be16(img + 56, 1);
	img[58] = 4;
	img[59] = 17;
	fix_footer(img);
	memcpy(img + IMG_LEN - 512, img, 512);
	plan_put_be32(img + 512 + 28, 128);
	fix_dyn(img);
	assert_int_equal(run(img, IMG_LEN, 10u << 20, 0, &r), 0);
	assert_true(r.old_virtual_size == 4 * 17 * 512);
	assert_true(r.new_virtual_size == 10514432);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_hostile),
	    cmocka_unit_test(test_size_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
