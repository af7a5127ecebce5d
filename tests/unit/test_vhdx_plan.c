/* tests/unit/test_vhdx_plan.c — the vhdx planner on in-memory images, many
 * of them hostile: every bad structure must give an error, never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plan.h"
#include "plan_testlib.h"
#include "vhdx_layout.h"

#define MB (1024u * 1024u)
#define IMG_LEN (8 * MB)
#define MD (3 * MB)

static void set_crc(uint8_t *b, size_t len)
{
	put_le32(b + 4, 0);
	put_le32(b + 4, plan_crc32c(0, b, len));
}

static void md_item(uint8_t *img, int i, const uint8_t *g, uint32_t off, uint32_t len)
{
	uint8_t *e = img + MD + 32 + 32 * i;

	memcpy(e, g, 16);
	put_le32(e + 16, off);
	put_le32(e + 20, len);
}

/* Dynamic 64 MiB disk, 1 MiB blocks: log at 1M, BAT at 2M, metadata at 3M,
 * block 0 present at 4M. */
static void build(uint8_t *img)
{
	memset(img, 0, IMG_LEN);
	memcpy(img, "vhdxfile", 8);
	for (int k = 0; k < 2; k++) {
		uint8_t *h = img + (64u << 10) * (k + 1);

		memcpy(h, "head", 4);
		put_le64(h + 8, 10 + k);
		put_le16(h + 66, 1);
		put_le32(h + 68, MB);
		put_le64(h + 72, MB);
		set_crc(h, 4096);
	}
	for (int k = 0; k < 2; k++) {
		uint8_t *r = img + (192u << 10) + (64u << 10) * k;

		memcpy(r, "regi", 4);
		put_le32(r + 8, 2);
		memcpy(r + 16, instar_vhdx_guid_bat, 16);
		put_le64(r + 32, 2 * MB);
		put_le32(r + 40, MB);
		memcpy(r + 48, instar_vhdx_guid_metadata, 16);
		put_le64(r + 64, MD);
		put_le32(r + 72, MB);
		set_crc(r, 65536);
	}
	memcpy(img + MD, "metadata", 8);
	/* the five items qemu requires */
	put_le16(img + MD + 10, 5);
	md_item(img, 0, instar_vhdx_guid_file_params, 0x10000, 8);
	md_item(img, 1, instar_vhdx_guid_disk_size, 0x10008, 8);
	md_item(img, 2, instar_vhdx_guid_logical_sector, 0x10010, 4);
	md_item(img, 3, instar_vhdx_guid_page83, 0x10018, 16);
	md_item(img, 4, instar_vhdx_guid_phys_sector, 0x10014, 4);
	put_le32(img + MD + 0x10014, 512);
	put_le32(img + MD + 0x10000, MB);
	put_le64(img + MD + 0x10008, 64ull * MB);
	put_le32(img + MD + 0x10010, 512);
	put_le64(img + 2 * MB, 4ull * MB | 6);
	for (int i = 1; i < 64; i++)
		put_le64(img + 2 * MB + 8 * i, 2);
}

static void fix_rt(uint8_t *img)
{
	set_crc(img + (192u << 10), 65536);
}

static int run(uint8_t *img, size_t len, uint64_t new_size, uint32_t flags,
	       struct instar_resize_result *res)
{
	return ptl_run(plan_resize_vhdx, img, len, new_size, flags, res);
}

static void expect_err(uint8_t *img, int err)
{
	struct instar_resize_result r;

	assert_int_equal(run(img, IMG_LEN, 128ull * MB, INSTAR_RESIZE_SHRINK_ALLOWED, &r), err);
	assert_int_equal(r.error, err);
	assert_true(r.detail[0] != '\0');
}

static void test_valid(void **state)
{
	uint8_t *img = malloc(IMG_LEN);
	struct instar_resize_result r;

	(void)state;
	build(img);
	assert_int_equal(run(img, IMG_LEN, 128ull * MB, 0, &r), 0);
	assert_int_equal(r.action, INSTAR_ACTION_GROW);
	assert_true(r.old_virtual_size == 64ull * MB);
	assert_int_equal(run(img, IMG_LEN, 10 * MB + 1, INSTAR_RESIZE_SHRINK_ALLOWED, &r), 0);
	assert_true(r.new_virtual_size == 10 * MB + 512);
	assert_int_equal(run(img, IMG_LEN, 10 * MB, 0, &r), INSTAR_ERR_SHRINK_WITHOUT_FLAG);
	/* past the 1 MiB BAT region: relocation */
	assert_int_equal(run(img, IMG_LEN, 200ull << 30, 0, &r), 0);
	assert_true(r.file_size_after > IMG_LEN);
	assert_int_equal(run(img, IMG_LEN, (64ull << 40) + 1, 0, &r), INSTAR_ERR_TOO_LARGE);
	free(img);
}

static void test_hostile(void **state)
{
	uint8_t *img = malloc(IMG_LEN);

	(void)state;
	build(img);
	memcpy(img, "vhdxfilX", 8);
	expect_err(img, INSTAR_ERR_PARSE_FAILED);
	/* both headers with a bad CRC */
	build(img);
	img[(64u << 10) + 200] = 1;
	img[(128u << 10) + 200] = 1;
	expect_err(img, INSTAR_ERR_CORRUPT);
	/* a log to replay */
	build(img);
	memset(img + (128u << 10) + 48, 0x42, 16);
	set_crc(img + (128u << 10), 4096);
	expect_err(img, INSTAR_ERR_REQUIRES_CHECK);
	/* log past EOF */
	build(img);
	put_le64(img + (128u << 10) + 72, 1ull << 62);
	set_crc(img + (128u << 10), 4096);
	expect_err(img, INSTAR_ERR_CORRUPT);
	/* bad region table CRC */
	build(img);
	img[(192u << 10) + 1000] = 1;
	expect_err(img, INSTAR_ERR_CORRUPT);
	/* absurd region count */
	build(img);
	put_le32(img + (192u << 10) + 8, 0xffffffffu);
	fix_rt(img);
	expect_err(img, INSTAR_ERR_CORRUPT);
	/* BAT past EOF, unaligned, overlapping metadata, overlapping the log */
	build(img);
	put_le64(img + (192u << 10) + 32, UINT64_MAX - MB + 1);
	fix_rt(img);
	expect_err(img, INSTAR_ERR_CORRUPT);
	put_le64(img + (192u << 10) + 32, 2 * MB + 4096);
	fix_rt(img);
	expect_err(img, INSTAR_ERR_CORRUPT);
	put_le64(img + (192u << 10) + 32, MD);
	fix_rt(img);
	expect_err(img, INSTAR_ERR_CORRUPT);
	put_le64(img + (192u << 10) + 32, MB);
	fix_rt(img);
	expect_err(img, INSTAR_ERR_CORRUPT);
	/* BAT region too small for the size */
	build(img);
	put_le64(img + MD + 0x10008, 1ull << 40);
	expect_err(img, INSTAR_ERR_CORRUPT);
	/* bad block size, sector size, size not a sector multiple */
	build(img);
	put_le32(img + MD + 0x10000, 3 * MB);
	expect_err(img, INSTAR_ERR_CORRUPT);
	build(img);
	put_le32(img + MD + 0x10010, 1000);
	expect_err(img, INSTAR_ERR_CORRUPT);
	build(img);
	put_le64(img + MD + 0x10008, 64ull * MB + 1);
	expect_err(img, INSTAR_ERR_CORRUPT);
	/* metadata item outside its region; absurd item count */
	build(img);
	put_le32(img + MD + 32 + 32 + 16, 0xfffffff0u);
	expect_err(img, INSTAR_ERR_CORRUPT);
	build(img);
	put_le16(img + MD + 10, 0xffff);
	expect_err(img, INSTAR_ERR_CORRUPT);
	/* differencing */
	build(img);
	put_le32(img + MD + 0x10004, 2);
	expect_err(img, INSTAR_ERR_UNSUPPORTED_SUBFORMAT);
	/* block past EOF, over the BAT, bad state */
	build(img);
	put_le64(img + 2 * MB + 8, 100ull * MB | 6);
	expect_err(img, INSTAR_ERR_CORRUPT);
	put_le64(img + 2 * MB + 8, 2ull * MB | 6);
	expect_err(img, INSTAR_ERR_CORRUPT);
	put_le64(img + 2 * MB + 8, 7);
	expect_err(img, INSTAR_ERR_CORRUPT);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
