/* tests/unit/test_size.c — the qemu 7.2 SIZE grammar (docs/qemu.md §1.3). Every
 * expected value here was observed with qemu-img 7.2.22; the compat suite
 * (tests/compat/cli_size.sh) re-checks a longer list against the binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "size.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define TiB (1ull << 40)
#define PiB (1ull << 50)
#define EiB (1ull << 60)

struct ok_case {
	const char *s;
	uint64_t v;
};

static void expect_ok(const char *s, uint64_t v)
{
	uint64_t got = 0xdeadbeef;
	int r = instar_strtosz(s, &got, NULL);

	if (r != INSTAR_SIZE_OK || got != v)
		fail_msg("'%s': status %d value %llu, expected OK %llu", s, r,
			 (unsigned long long)got, (unsigned long long)v);
}

static void expect_status(const char *s, int want)
{
	uint64_t got = 0;
	int r = instar_strtosz(s, &got, NULL);

	if (r != want)
		fail_msg("'%s': status %d, expected %d", s, r, want);
}

static void test_plain(void **state)
{
	static const struct ok_case cases[] = {
	    {"0", 0},
	    {"1", 1},
	    {"512", 512},
	    {"010", 10}, /* no octal */
	    {"08", 8},
	    {"1b", 1},
	    {"1B", 1},
	    {"1k", KiB},
	    {"1K", KiB},
	    {"1m", MiB},
	    {"1M", MiB},
	    {"1g", GiB},
	    {"1G", GiB},
	    {"1t", TiB},
	    {"1T", TiB},
	    {"1p", PiB},
	    {"1P", PiB},
	    {"1e", EiB},
	    {"1E", EiB},
	    {"15E", 15 * EiB},
	    {"8E", 8 * EiB},
	    {"9E", 9 * EiB},
	    {"18446744073709551615", UINT64_MAX},
	    {"1024", 1024},
	    {"  +1k", KiB},
	    {" 1M", MiB},
	    {"\t1M", MiB},
	    {"+1M", MiB},
	    {"0x100000", 0x100000},
	    {"0X10", 16},
	    {"0xffffffffffffffff", UINT64_MAX},
	    {"0x1b", 0x1b}, /* b is a hex digit, not a suffix */
	    {"0x1e", 0x1e},
	    {"+0x10", 16},
	    {"17179869184k", 16 * TiB},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_ok(cases[i].s, cases[i].v);
}

static void test_fractions(void **state)
{
	static const struct ok_case cases[] = {
	    {"1.5G", 1610612736},
	    {"12.345M", 12944671},
	    {"1.0005k", 1025},
	    {"1.0004k", 1024},
	    {"0.1M", 104858},
	    {"1.k", 1024},
	    {"1.0", 1},
	    {"1.0b", 1},
	    {"1.", 1},
	    {"0.0", 0},
	    {"1.5e", 3 * EiB / 2},
	    {"1.5k", 1536},
	    {"0.5k", 512},
	    {"2.25M", 2359296},
	    {"1.9999999999999999999999999999k", 1024}, /* 7.2: fraction -> 1.0 -> 0 */
	    {"1.00000000000000000001B", 1},
	    {"1.00000000000000000001k", 1024},
	    {"0.00048828125k", 1}, /* 2^-11 k = 0.5 byte, rounds up */
	    {"0.00048828124k", 0},
	    {"15.99999999999999999E", 15 * EiB},      /* .99999999999999999 -> 1.0 -> 0 */
	    {"3.999999999999999999999999G", 3 * GiB}, /* fraction rounds to 1.0 */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_ok(cases[i].s, cases[i].v);
}

static void test_invalid(void **state)
{
	static const char *const cases[] = {
	    "",	       " ",
	    "k",       "M",
	    "abc",     "1M ",
	    "1 M",     "1_000",
	    "1,5G",    "1KB",
	    "1kB",     "1GB",
	    "1GiB",    "1Gb",
	    "1Z",      "1z",
	    "-1",      "-1G",
	    " -1",     "1-",
	    "+-1",     "0x1.8M",
	    "0x1.",    "0x",
	    "0xg",     "00x10",
	    ".5k",     ".5",
	    "1.5",     "1.5b",
	    "0.5",     "1e3",
	    "1.5e3",   "1.5e3k",
	    "1.5E-3k", "1.5e+2k",
	    "1.0e0",   "inf",
	    "nan",     "INF",
	    "1.x",     "1..5k",
	    "1.5kk",   "0x1Mx",
	    "16Ex",    "99999999999999999999999k", /* strtoull ERANGE, then trailing text */
	    "1 ",      "1\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_status(cases[i], INSTAR_SIZE_INVALID);
}

static void test_out_of_range(void **state)
{
	static const char *const cases[] = {
	    "18446744073709551616",
	    "16E",
	    "16e",
	    "17E",
	    "16384P",
	    "99999999999999999999999",
	    "0x10000000000000000",
	    "-99999999999999999999999", /* ERANGE wins over the '-' check */
	    "18014398509481984k",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_status(cases[i], INSTAR_SIZE_OUT_OF_RANGE);
}

static void test_hex_suffix_warning(void **state)
{
	uint64_t v = 0;
	bool warn = false;

	(void)state;
	assert_int_equal(instar_strtosz("0x1M", &v, &warn), INSTAR_SIZE_OK);
	assert_true(warn);
	assert_int_equal(v, MiB);
	assert_int_equal(instar_strtosz("0x10", &v, &warn), INSTAR_SIZE_OK);
	assert_false(warn);
	assert_int_equal(instar_strtosz("1M", &v, &warn), INSTAR_SIZE_OK);
	assert_false(warn);
	/* the warning is printed before the trailing text is rejected */
	assert_int_equal(instar_strtosz("0x1Mx", &v, &warn), INSTAR_SIZE_INVALID);
	assert_true(warn);
	assert_int_equal(instar_strtosz("0x10000000000000M", &v, &warn), INSTAR_SIZE_OUT_OF_RANGE);
	assert_true(warn);
	assert_int_equal(instar_strtosz("0x1.8M", &v, &warn), INSTAR_SIZE_INVALID);
	assert_false(warn);
}

static void test_size_parse(void **state)
{
	struct instar_size s;

	(void)state;
	assert_int_equal(instar_size_parse("+1M", &s), INSTAR_SIZE_OK);
	assert_int_equal(s.relative, 1);
	assert_int_equal(s.value, MiB);
	assert_string_equal(s.number, "1M");

	assert_int_equal(instar_size_parse("-1G", &s), INSTAR_SIZE_OK);
	assert_int_equal(s.relative, -1);
	assert_int_equal(s.value, GiB);

	assert_int_equal(instar_size_parse("++1M", &s), INSTAR_SIZE_OK);
	assert_int_equal(s.relative, 1);
	assert_int_equal(s.value, MiB);

	assert_int_equal(instar_size_parse("+ 1k", &s), INSTAR_SIZE_OK);
	assert_int_equal(s.relative, 1);
	assert_int_equal(s.value, KiB);

	assert_int_equal(instar_size_parse("  +1k", &s), INSTAR_SIZE_OK);
	assert_int_equal(s.relative, 0);

	assert_int_equal(instar_size_parse("--1G", &s), INSTAR_SIZE_INVALID);
	assert_int_equal(instar_size_parse("-+1G", &s), INSTAR_SIZE_OK);
	assert_int_equal(s.relative, -1);
	assert_int_equal(instar_size_parse("+", &s), INSTAR_SIZE_INVALID);
	assert_int_equal(instar_size_parse("-", &s), INSTAR_SIZE_INVALID);

	assert_int_equal(instar_size_parse("+16E", &s), INSTAR_SIZE_OUT_OF_RANGE);
	assert_string_equal(s.number, "16E");
	assert_int_equal(instar_size_parse("18446744073709551616", &s), INSTAR_SIZE_OUT_OF_RANGE);
	assert_string_equal(s.number, "18446744073709551616");

	assert_int_equal(instar_size_parse("-0", &s), INSTAR_SIZE_OK);
	assert_int_equal(s.relative, -1);
	assert_int_equal(s.value, 0);
}

static void test_resolve(void **state)
{
	struct instar_size s;

	(void)state;
	/* 1000-byte raw: qemu uses 1024 as the current size */
	instar_size_parse("+10", &s);
	assert_int_equal(instar_size_resolve(&s, 1024), 1034);
	instar_size_parse("-10", &s);
	assert_int_equal(instar_size_resolve(&s, 1024), 1014);
	instar_size_parse("-2M", &s);
	assert_int_equal(instar_size_resolve(&s, 2 * MiB), 0);
	instar_size_parse("-3M", &s);
	assert_true(instar_size_resolve(&s, 2 * MiB) < 0);
	instar_size_parse("8E", &s);
	assert_true(instar_size_resolve(&s, MiB) < 0);
	instar_size_parse("18446744073709551615", &s);
	assert_int_equal(instar_size_resolve(&s, MiB), -1);
	instar_size_parse("+8E", &s);
	assert_true(instar_size_resolve(&s, MiB) < 0);
	/* -9E wraps around to a large positive size */
	instar_size_parse("-9E", &s);
	assert_int_equal(instar_size_resolve(&s, MiB), (int64_t)(7 * EiB + MiB));
	instar_size_parse("7E", &s);
	assert_int_equal(instar_size_resolve(&s, MiB), (int64_t)(7 * EiB));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain),
	    cmocka_unit_test(test_fractions),
	    cmocka_unit_test(test_invalid),
	    cmocka_unit_test(test_out_of_range),
	    cmocka_unit_test(test_hex_suffix_warning),
	    cmocka_unit_test(test_size_parse),
	    cmocka_unit_test(test_resolve),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
