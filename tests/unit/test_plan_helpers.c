/* tests/unit/test_plan_helpers.c — the planners' shared helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "abi_names.h"
#include "plan.h"

static void test_crc32c(void **state)
{
	(void)state;
	/* The standard check value of CRC-32C. */
	assert_int_equal(plan_crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(plan_crc32c(0, "", 0), 0);
}

static void test_endian(void **state)
{
	uint8_t b[8];

	(void)state;
	put_be64(b, 0x0102030405060708ull);
	assert_int_equal(b[0], 1);
	assert_int_equal(b[7], 8);
	assert_true(get_be64(b) == 0x0102030405060708ull);
	assert_true(get_le64(b) == 0x0807060504030201ull);
	put_le32(b, 0xa1b2c3d4u);
	assert_int_equal(b[0], 0xd4);
	assert_int_equal(get_le32(b), 0xa1b2c3d4u);
	assert_int_equal(get_be16(b), 0xd4c3);
}

static void test_scratch(void **state)
{
	_Alignas(64) uint8_t mem[256];
	struct plan_scratch s;
	uint8_t *a, *b;

	(void)state;
	memset(mem, 0xaa, sizeof(mem));
	plan_scratch_init(&s, mem, sizeof(mem));
	a = plan_alloc(&s, 10, 1);
	assert_non_null(a);
	assert_int_equal(a[9], 0);
	b = plan_alloc(&s, 16, 64);
	assert_non_null(b);
	assert_int_equal((uintptr_t)b % 64, 0);
	assert_null(plan_alloc(&s, 1000, 8));
	assert_null(plan_alloc(&s, SIZE_MAX, 8));
	assert_null(plan_alloc(&s, 8, 3));
}

struct rec {
	int n;
	uint32_t kinds[8];
};

static int rec_sink(void *ctx, const struct plan_op *op)
{
	struct rec *r = ctx;

	if (r->n >= 8)
		return -1;
	r->kinds[r->n++] = op->kind;
	return 0;
}

static void test_plan_stream(void **state)
{
	struct rec r = {0};
	struct plan p;
	uint8_t d[4] = {1, 2, 3, 4};

	(void)state;
	plan_init(&p, rec_sink, &r, 3);
	assert_int_equal(plan_write(&p, 0, d, 4), 0);
	assert_int_equal(plan_write(&p, 0, d, 0), 0); /* empty: not emitted */
	assert_int_equal(plan_flush(&p), 0);
	assert_int_equal(plan_zero(&p, 512, 512), 0);
	assert_int_equal(plan_discard(&p, 1024, 512), INSTAR_ERR_SCRATCH_TOO_SMALL);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.kinds[0], PLAN_OP_WRITE);
	assert_int_equal(r.kinds[1], PLAN_OP_FLUSH);
	assert_int_equal(r.kinds[2], PLAN_OP_ZERO);
	plan_init(&p, rec_sink, &r, 0);
	assert_int_equal(plan_zero(&p, UINT64_MAX, 2), INSTAR_ERR_INTERNAL);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(instar_err_name(INSTAR_ERR_HEADER_MISMATCH), "HEADER_MISMATCH");
	assert_string_equal(instar_err_name(9999), "UNKNOWN");
	assert_int_equal(instar_format_from_name("qcow2"), INSTAR_FMT_QCOW2);
	assert_int_equal(instar_format_from_name("vpc"), INSTAR_FMT_VHD);
	assert_int_equal(instar_format_from_name("vhd"), INSTAR_FMT_VHD);
	assert_int_equal(instar_format_from_name("qcow"), -1);
	assert_int_equal(instar_prealloc_from_name("falloc"), INSTAR_PREALLOC_FALLOC);
	assert_int_equal(instar_prealloc_from_name("bogus"), -1);
	for (uint32_t e = 0; e < INSTAR_ERR_COUNT; e++)
		assert_string_not_equal(instar_err_name(e), "UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c),  cmocka_unit_test(test_endian),
	    cmocka_unit_test(test_scratch), cmocka_unit_test(test_plan_stream),
	    cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
