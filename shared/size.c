/* shared/size.c — qemu 7.2's SIZE grammar (qemu_strtosz and the +/- of
 * img_resize), reimplemented freestanding. The quirks are deliberate: the
 * integer part follows glibc strtoull, the fraction follows glibc strtod into
 * a double and then a truncating conversion to 64-bit fixed point, exactly
 * as 7.2 does; see docs/qemu.md §1.3 for the observable consequences. */
#include <stddef.h>

#include "size.h"

enum { CONV_OK = 0, CONV_NONE = -1, CONV_RANGE = -2 };

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 10;
	return 99;
}

/* glibc strtoull(s, &end, base) for base 10 or 16, reporting "no conversion"
 * (end = s) and overflow (value saturated, end past all digits). The value of
 * a negative number is not computed: the caller rejects any '-'. */
static int conv_u64(const char *s, unsigned base, const char **ret_end, uint64_t *ret_val)
{
	const char *p = s;
	uint64_t v = 0;
	bool overflow = false, any = false;

	while (is_space(*p))
		p++;
	if (*p == '+' || *p == '-')
		p++;
	if (base == 16 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') && digit_value(p[2]) < 16)
		p += 2;
	for (; digit_value(*p) < (int)base; p++) {
		unsigned d = (unsigned)digit_value(*p);

		any = true;
		if (v > (UINT64_MAX - d) / base)
			overflow = true;
		else
			v = v * base + d;
	}
	if (!any) {
		*ret_end = s;
		*ret_val = 0;
		return CONV_NONE;
	}
	*ret_end = p;
	*ret_val = overflow ? UINT64_MAX : v;
	return overflow ? CONV_RANGE : CONV_OK;
}

/* Compares the significant digits starting at sig (n digits available)
 * with ref, as decimal fractions: <0, 0 or >0. */
static int cmp_digits(const char *sig, uint64_t n, const char *ref)
{
	uint64_t i;

	for (i = 0; ref[i]; i++) {
		char c = i < n ? sig[i] : '0';

		if (c != ref[i])
			return c < ref[i] ? -1 : 1;
	}
	return 0;
}

#define FRAC_DIGITS 200

/* floor(d * 2^64), where d is the double nearest to 0.<digits> (n digits,
 * first significant digit within the first 21). The result is exact: a
 * rounding midpoint between doubles >= 2^-66 has at most 120 decimals, so 200
 * digits plus a sticky bit decide it. d == 1.0 converts to 0 as the x86-64
 * code of (uint64_t)(fraction * 0x1p64) does in qemu 7.2. */
static uint64_t frac_fixed64(const char *digits, uint64_t n)
{
	uint8_t a[FRAC_DIGITS];
	uint64_t m = n < FRAC_DIGITS ? n : FRAC_DIGITS, i, mant = 0;
	bool sticky = false, round = false;
	int p, first = 0, got = 0;

	for (i = 0; i < m; i++)
		a[i] = (uint8_t)(digits[i] - '0');
	for (i = m; i < n; i++)
		if (digits[i] != '0')
			sticky = true;

	for (p = 1; got < 54; p++) {
		unsigned carry = 0;
		uint64_t k = m;

		while (k-- > 0) {
			unsigned v = a[k] * 2u + carry;

			a[k] = (uint8_t)(v % 10);
			carry = v / 10;
		}
		if (!first) {
			if (!carry) {
				if (p > 66)
					return 0;
				continue;
			}
			first = p;
		}
		if (got < 53)
			mant = mant << 1 | carry;
		else
			round = carry;
		got++;
	}
	for (i = 0; i < m && !sticky; i++)
		if (a[i])
			sticky = true;
	if (round && (sticky || (mant & 1))) {
		mant++;
		if (mant == (1ull << 53)) {
			mant >>= 1;
			first--;
		}
	}
	if (first == 0)
		return 0; /* d == 1.0 */
	/* d = mant * 2^-(first + 52); d * 2^64 = mant * 2^(12 - first) */
	if (first <= 12)
		return mant << (12 - first);
	return mant >> (first - 12);
}

enum { FRAC_VALUE, FRAC_NOCONV, FRAC_EXPONENT, FRAC_ERANGE };

/* glibc strtod on ".ddd[e[+-]ddd]" at f, as 7.2's do_strtosz sees it: no
 * conversion, an exponent (rejected by the caller unless out of range), an
 * ERANGE over- or underflow, or the fixed-point value. *ret_end is strtod's
 * end pointer. The 1e+-308 boundary with an exponent is approximated to 17
 * significant digits, which nobody types. */
static int conv_fraction(const char *f, const char **ret_end, uint64_t *ret_valf)
{
	const char *p = f + 1, *digits = p, *sig = NULL;
	uint64_t n = 0, lead = 0, nsig;
	int64_t exp = 0, e10;
	bool has_exp = false;

	*ret_valf = 0;
	while (*p >= '0' && *p <= '9') {
		if (!sig && *p != '0')
			sig = p;
		if (!sig)
			lead++;
		p++;
		n++;
	}
	if (n == 0) {
		*ret_end = f;
		return FRAC_NOCONV;
	}
	if (*p == 'e' || *p == 'E') {
		const char *q = p + 1;
		bool neg = false;

		if (*q == '+' || *q == '-')
			neg = *q++ == '-';
		if (*q >= '0' && *q <= '9') {
			has_exp = true;
			for (; *q >= '0' && *q <= '9'; q++)
				if (exp < 1000000)
					exp = exp * 10 + (*q - '0');
			if (neg)
				exp = -exp;
			p = q;
		}
	}
	*ret_end = p;
	if (!sig) /* exactly zero: never out of range */
		return has_exp ? FRAC_EXPONENT : FRAC_VALUE;

	nsig = n - lead;
	e10 = exp - (int64_t)lead - 1; /* decimal exponent of the first digit */
	if (e10 > 308 || (e10 == 308 && cmp_digits(sig, nsig, "17976931348623158") >= 0))
		return FRAC_ERANGE;
	if (e10 < -308 || (e10 == -308 && cmp_digits(sig, nsig, "22250738585072014") < 0))
		return FRAC_ERANGE;
	if (has_exp)
		return FRAC_EXPONENT;
	if (lead > 20) /* below 2^-66: floor(d * 2^64) is 0 */
		return FRAC_VALUE;
	*ret_valf = frac_fixed64(digits, n);
	return FRAC_VALUE;
}

static uint64_t suffix_mul(char c)
{
	switch (c) {
	case 'b':
	case 'B':
		return 1;
	case 'k':
	case 'K':
		return 1ull << 10;
	case 'm':
	case 'M':
		return 1ull << 20;
	case 'g':
	case 'G':
		return 1ull << 30;
	case 't':
	case 'T':
		return 1ull << 40;
	case 'p':
	case 'P':
		return 1ull << 50;
	case 'e':
	case 'E':
		return 1ull << 60;
	default:
		return 0;
	}
}

/* a * b = *ret_hi:*ret_lo */
static void mul_64x64(uint64_t a, uint64_t b, uint64_t *ret_hi, uint64_t *ret_lo)
{
	uint64_t al = a & 0xffffffffu, ah = a >> 32, bl = b & 0xffffffffu, bh = b >> 32;
	uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
	uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);

	*ret_lo = (mid << 32) | (ll & 0xffffffffu);
	*ret_hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
}

int instar_strtosz(const char *s, uint64_t *ret_value, bool *ret_hex_suffix)
{
	const char *end, *p;
	uint64_t val, valf = 0, mul;
	bool hex = false;
	int r;

	if (ret_hex_suffix)
		*ret_hex_suffix = false;

	r = conv_u64(s, 10, &end, &val);
	if (r == CONV_NONE)
		return INSTAR_SIZE_INVALID;
	if (r == CONV_RANGE)
		return *end ? INSTAR_SIZE_INVALID : INSTAR_SIZE_OUT_OF_RANGE;
	for (p = s; p < end; p++)
		if (*p == '-')
			return INSTAR_SIZE_INVALID;

	if (val == 0 && (*end == 'x' || *end == 'X')) {
		r = conv_u64(s, 16, &end, &val);
		if (r == CONV_NONE)
			return INSTAR_SIZE_INVALID;
		if (r == CONV_RANGE)
			return *end ? INSTAR_SIZE_INVALID : INSTAR_SIZE_OUT_OF_RANGE;
		if (*end == '.')
			return INSTAR_SIZE_INVALID;
		hex = true;
	} else if (*end == '.') {
		const char *fend;

		switch (conv_fraction(end, &fend, &valf)) {
		case FRAC_NOCONV:
			end = fend + 1;
			break;
		case FRAC_ERANGE:
			/* 7.2 steps one past strtod's end; at the terminator that
			 * reads past the string. Call it invalid instead. */
			if (*fend == '\0')
				return INSTAR_SIZE_INVALID;
			end = fend + 1;
			valf = 0;
			break;
		case FRAC_EXPONENT:
			return INSTAR_SIZE_INVALID;
		default:
			end = fend;
			break;
		}
	}

	mul = suffix_mul(*end);
	if (mul) {
		if (hex && ret_hex_suffix)
			*ret_hex_suffix = true;
		end++;
	} else {
		mul = 1;
	}
	if (*end)
		return INSTAR_SIZE_INVALID;
	if (mul == 1) {
		if (valf)
			return INSTAR_SIZE_INVALID; /* a fraction needs a scale */
	} else {
		uint64_t hi, lo, fhi, flo;

		/* 64.64 fixed point times mul, rounded half up to an integer */
		mul_64x64(val, mul, &hi, &lo);
		mul_64x64(valf, mul, &fhi, &flo);
		lo += fhi;
		hi += lo < fhi;
		fhi = flo >> 63;
		lo += fhi;
		hi += lo < fhi;
		if (hi)
			return INSTAR_SIZE_OUT_OF_RANGE;
		val = lo;
	}
	*ret_value = val;
	return INSTAR_SIZE_OK;
}

int instar_size_parse(const char *s, struct instar_size *ret)
{
	ret->relative = 0;
	ret->value = 0;
	ret->hex_suffix = false;
	if (s[0] == '+') {
		ret->relative = 1;
		s++;
	} else if (s[0] == '-') {
		ret->relative = -1;
		s++;
	}
	ret->number = s;
	return instar_strtosz(s, &ret->value, &ret->hex_suffix);
}

int64_t instar_size_resolve(const struct instar_size *s, uint64_t current)
{
	uint64_t v;

	if (s->relative > 0)
		v = current + s->value;
	else if (s->relative < 0)
		v = current - s->value;
	else
		v = s->value;
	/* two's complement, as qemu's int64_t arithmetic on x86-64 */
	return v > (uint64_t)INT64_MAX ? -(int64_t)(UINT64_MAX - v) - 1 : (int64_t)v;
}
