/* guest/plan/unzstd.c — Zstandard frame decoder (RFC 8878), written from the
 * RFC, for qcow2 compressed clusters. Freestanding and global-free: every
 * table lives in the caller's workspace, every length taken from the input is
 * checked against what is left of the input, the output, the block and the
 * frame before it is used. */
#include "byteorder.h"
#include "unzstd.h"

#define UZ_FAIL INSTAR_ERR_PARSE_FAILED

#define UZ_MAGIC 0xfd2fb528u
#define UZ_SKIP_MAGIC 0x184d2a50u /* skippable frames: the low four bits are free */
#define UZ_BLOCK_MAX (128u << 10)
/* libzstd's default decoder limit, which qemu runs with: larger windows fail. */
#define UZ_WINDOW_MAX ((1ull << 27) + 1)
#define UZ_HUF_LOG_MAX 11u
#define UZ_HUF_WEIGHTS_MAX 255u /* explicit weights; the last one is implied */
#define UZ_WT_LOG_MAX 6u	/* FSE tables of Huffman weights */

/* Sequence symbol kinds, in the order their tables appear in a block. */
enum { UZ_LL, UZ_OF, UZ_ML, UZ_KINDS };

/* One FSE decoding state: its symbol, and how the next state is found. */
struct uz_cell {
	uint16_t base; /* next state = base + the next `bits` bits */
	uint8_t sym;
	uint8_t bits;
};

struct uz_ws {
	uint8_t lit[UZ_BLOCK_MAX];	    /* decoded literals of one block */
	uint16_t huf[1u << UZ_HUF_LOG_MAX]; /* Huffman: symbol | bits << 8 */
	struct uz_cell ll[1u << 9];
	struct uz_cell of[1u << 8];
	struct uz_cell ml[1u << 9];
	struct uz_cell wt[1u << UZ_WT_LOG_MAX];
	int16_t norm[256];
	uint16_t next[256];
	uint8_t weight[UZ_HUF_WEIGHTS_MAX + 1];
	/* The frame being decoded: [fstart, op) is its output so far. */
	uint8_t *op, *oend, *fstart, *fend;
	uint64_t window;
	size_t block_max;
	size_t rep[3];
	unsigned huf_log;
	unsigned log[UZ_KINDS];
	bool huf_ok;
	bool ok[UZ_KINDS]; /* a table exists for Repeat mode */
};

_Static_assert(sizeof(struct uz_ws) <= PLAN_UNZSTD_WORK_SIZE, "PLAN_UNZSTD_WORK_SIZE too small");
_Static_assert(_Alignof(struct uz_ws) <= 8, "workspace needs more than 8-byte alignment");

/* ---- the spec's fixed tables (RFC 8878 3.1.1.3.2.1, 3.1.1.3.2.2) ---- */

struct uz_kind {
	const int16_t *def; /* predefined distribution */
	uint8_t def_nsym, def_log, max_sym, max_log, shift;
};

static const int16_t uz_ll_def[36] = {4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1,  1,	2,  2,
				      2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1, -1, -1, -1, -1};
static const int16_t uz_of_def[29] = {1, 1, 1, 1, 1, 1, 2, 2, 2, 1,  1,	 1,  1,	 1, 1,
				      1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1};
static const int16_t uz_ml_def[53] = {1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1,	1,  1,	1,  1,	1,  1, 1,
				      1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	1,  1,	1,  1,	1,  1, 1,
				      1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1};

static const struct uz_kind uz_kinds[UZ_KINDS] = {
    [UZ_LL] = {uz_ll_def, 36, 6, 35, 9, 6},
    [UZ_OF] = {uz_of_def, 29, 5, 31, 8, 4},
    [UZ_ML] = {uz_ml_def, 53, 6, 52, 9, 2},
};

static const uint32_t uz_ll_base[36] = {
    0,	1,  2,	3,  4,	5,  6,	7,  8,	 9,   10,  11,	 12,   13,   14,   15,	  16,	 18,
    20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536,
};
static const uint8_t uz_ll_bits[36] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  0,	0,  0,	0,  1,	1,
				       1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint32_t uz_ml_base[53] = {
    3,	4,  5,	6,  7,	8,  9,	10,  11,  12,  13,   14,   15,	 16,   17,    18,    19,    20,
    21, 22, 23, 24, 25, 26, 27, 28,  29,  30,  31,   32,   33,	 34,   35,    37,    39,    41,
    43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051, 4099, 8195, 16387, 32771, 65539,
};
static const uint8_t uz_ml_bits[53] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	 0,  0,	 0,  0,	 0,  0, 0,
				       0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	 0,  0,	 0,  1,	 1,  1, 1,
				       2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

/* ---- small helpers ---- */

static inline unsigned uz_highbit(uint32_t x) /* x > 0 */
{
	return 31u - (unsigned)__builtin_clz(x);
}

/* n (<= 8) bytes, little-endian. */
static uint64_t uz_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static inline size_t uz_min(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* ---- backward bit streams (RFC 8878 4.1: read from the end) ----
 * w holds the 8 bytes at p (a shorter stream sits at the top of w, zeros
 * below); bits are taken from the top of w down. After a refill at least 57
 * bits are in w unless p has reached start; bits past the stream's start read
 * as zero and make uz_bits_left() negative. */
struct uz_bits {
	const uint8_t *start, *p;
	uint64_t w;
	unsigned used;	/* bits of w consumed, from the top */
	unsigned floor; /* low bits of w that are not part of the stream */
};

static int uz_bits_init(struct uz_bits *b, const uint8_t *src, size_t len)
{
	uint8_t last;

	if (len == 0)
		return UZ_FAIL;
	last = src[len - 1];
	if (last == 0) /* the last byte carries the end marker */
		return UZ_FAIL;
	b->start = src;
	if (len >= 8) {
		b->p = src + len - 8;
		b->w = get_le64(b->p);
		b->floor = 0;
	} else {
		b->p = src;
		b->w = uz_le(src, (unsigned)len) << (64 - 8 * len);
		b->floor = (unsigned)(64 - 8 * len);
	}
	/* Skip the zero padding and the marker bit itself. */
	b->used = 8 - uz_highbit(last);
	return 0;
}

static inline int64_t uz_bits_left(const struct uz_bits *b)
{
	return (int64_t)(b->p - b->start) * 8 + 64 - (int64_t)b->floor - (int64_t)b->used;
}

static inline void uz_bits_refill(struct uz_bits *b)
{
	size_t back = uz_min(b->used >> 3, (size_t)(b->p - b->start));

	if (back) {
		b->p -= back;
		b->used -= (unsigned)(8 * back);
		b->w = get_le64(b->p);
	}
}

static inline uint64_t uz_bits_peek(const struct uz_bits *b, unsigned n) /* n <= 57 */
{
	if (b->used >= 64)
		return 0;
	return (b->w << b->used) >> 1 >> (63 - n); /* n == 0 gives 0 */
}

static inline uint64_t uz_bits_read(struct uz_bits *b, unsigned n)
{
	uint64_t v = uz_bits_peek(b, n);

	b->used += n;
	return v;
}

/* ---- FSE tables (RFC 8878 4.1.1) ---- */

/* n (<= 16) bits of src at bit pos, little-endian; zeros past len. */
static uint32_t uz_fwd_peek(const uint8_t *src, size_t len, uint64_t pos, unsigned n)
{
	uint64_t byte = pos >> 3;
	uint32_t v = 0;

	for (unsigned i = 0; i < 3; i++)
		if (byte + i < len)
			v |= (uint32_t)src[byte + i] << (8 * i);
	return (v >> (pos & 7)) & ((1u << n) - 1);
}

/* Reads a table description from src[0..len): ret_log, norm[0..ret_nsym)
 * summing to 1 << ret_log (-1 counting as 1), ret_used bytes. */
static int uz_fse_ncount(int16_t *norm, const uint8_t *src, size_t len, unsigned max_log,
			 unsigned max_sym, unsigned *ret_log, unsigned *ret_nsym, size_t *ret_used)
{
	uint64_t pos = 4, end = (uint64_t)len * 8;
	unsigned log, nsym = 0;
	uint32_t left;

	if (len == 0)
		return UZ_FAIL;
	log = (src[0] & 15u) + 5;
	if (log > max_log)
		return UZ_FAIL;
	left = 1u << log;
	while (left > 0) {
		/* Values 0..left+1; the smallest ones take one bit less. */
		uint32_t max = left + 1, bits = uz_highbit(max) + 1;
		uint32_t low = (1u << bits) - 1 - max, half = 1u << (bits - 1);
		uint32_t v = uz_fwd_peek(src, len, pos, bits);
		int32_t prob;

		if ((v & (half - 1)) < low) {
			v &= half - 1;
			pos += bits - 1;
		} else {
			if (v >= half)
				v -= low;
			pos += bits;
		}
		if (pos > end || nsym > max_sym)
			return UZ_FAIL;
		prob = (int32_t)v - 1; /* <= left */
		norm[nsym++] = (int16_t)prob;
		left -= prob < 0 ? 1u : (uint32_t)prob;
		while (prob == 0) { /* 2-bit repeat counts of further zeros */
			uint32_t r = uz_fwd_peek(src, len, pos, 2);

			pos += 2;
			if (pos > end || r > max_sym + 1 - nsym)
				return UZ_FAIL;
			for (uint32_t i = 0; i < r; i++)
				norm[nsym++] = 0;
			if (r != 3)
				break;
		}
	}
	*ret_log = log;
	*ret_nsym = nsym;
	*ret_used = (size_t)((pos + 7) / 8);
	return 0;
}

/* Builds the decoding table of a distribution that sums to 1 << log. */
static int uz_fse_build(struct uz_cell *t, uint16_t *next, const int16_t *norm, unsigned nsym,
			unsigned log)
{
	uint32_t size = 1u << log, mask = size - 1, high = size - 1, pos = 0;
	uint32_t step = (size >> 1) + (size >> 3) + 3;

	/* "Less than 1" symbols take one cell each, from the top down. */
	for (unsigned s = 0; s < nsym; s++) {
		if (norm[s] == -1) {
			t[high--].sym = (uint8_t)s;
			next[s] = 1;
		} else {
			next[s] = (uint16_t)norm[s];
		}
	}
	for (unsigned s = 0; s < nsym; s++) {
		for (int i = 0; i < norm[s]; i++) {
			t[pos].sym = (uint8_t)s;
			do
				pos = (pos + step) & mask;
			while (pos > high);
		}
	}
	if (pos != 0)
		return UZ_FAIL;
	for (uint32_t u = 0; u < size; u++) {
		uint32_t x = next[t[u].sym]++;
		unsigned bits = log - uz_highbit(x);

		t[u].bits = (uint8_t)bits;
		t[u].base = (uint16_t)((x << bits) - size);
	}
	return 0;
}

/* ---- Huffman literals (RFC 8878 4.2) ---- */

/* FSE-compressed weights in src[0..len) into z->weight; ret_n of them. */
static int uz_huf_fse_weights(struct uz_ws *z, const uint8_t *src, size_t len, unsigned *ret_n)
{
	const struct uz_cell *t = z->wt;
	unsigned log, nsym, n = 0;
	struct uz_bits b;
	uint32_t s1, s2;
	size_t used;
	int rc;

	rc = uz_fse_ncount(z->norm, src, len, UZ_WT_LOG_MAX, 255, &log, &nsym, &used);
	if (rc == 0)
		rc = uz_fse_build(z->wt, z->next, z->norm, nsym, log);
	if (rc == 0)
		rc = uz_bits_init(&b, src + used, len - used);
	if (rc != 0)
		return rc;
	s1 = (uint32_t)uz_bits_read(&b, log);
	s2 = (uint32_t)uz_bits_read(&b, log);
	if (uz_bits_left(&b) < 0)
		return UZ_FAIL;
	/* Two interleaved states; the stream ends when an update would read
	 * past its start, and then the other state gives the last weight. */
	for (;;) {
		if (n + 2 > UZ_HUF_WEIGHTS_MAX)
			return UZ_FAIL;
		z->weight[n++] = t[s1].sym;
		s1 = t[s1].base + (uint32_t)uz_bits_read(&b, t[s1].bits);
		uz_bits_refill(&b);
		if (uz_bits_left(&b) < 0) {
			z->weight[n++] = t[s2].sym;
			break;
		}
		z->weight[n++] = t[s2].sym;
		s2 = t[s2].base + (uint32_t)uz_bits_read(&b, t[s2].bits);
		uz_bits_refill(&b);
		if (uz_bits_left(&b) < 0) {
			if (n + 1 > UZ_HUF_WEIGHTS_MAX)
				return UZ_FAIL;
			z->weight[n++] = t[s1].sym;
			break;
		}
	}
	*ret_n = n;
	return 0;
}

/* Completes z->weight[0..n) with the implied last weight and builds z->huf. */
static int uz_huf_build(struct uz_ws *z, unsigned n)
{
	uint32_t sum = 0, rest, pos = 0;
	unsigned log, nsym = n + 1;

	for (unsigned i = 0; i < n; i++) {
		if (z->weight[i] > UZ_HUF_LOG_MAX)
			return UZ_FAIL;
		if (z->weight[i])
			sum += 1u << (z->weight[i] - 1);
	}
	if (sum == 0)
		return UZ_FAIL;
	log = uz_highbit(sum) + 1;
	if (log > UZ_HUF_LOG_MAX)
		return UZ_FAIL;
	rest = (1u << log) - sum;
	if (rest & (rest - 1))
		return UZ_FAIL;
	z->weight[n] = (uint8_t)(uz_highbit(rest) + 1);
	/* The rarest symbol has weight 1 (and then so does another). */
	{
		unsigned ones = 0;

		for (unsigned s = 0; s < nsym; s++)
			ones += z->weight[s] == 1;
		if (ones == 0)
			return UZ_FAIL;
	}
	/* Codes go to the lightest weights first, in symbol order within one
	 * weight; a weight-w symbol takes 2^(w-1) entries of the 2^log table. */
	for (unsigned w = 1; w <= log; w++) {
		uint16_t cell = (uint16_t)((log + 1 - w) << 8);
		uint32_t cnt = 1u << (w - 1);

		for (unsigned s = 0; s < nsym; s++) {
			if (z->weight[s] != w)
				continue;
			for (uint32_t i = 0; i < cnt; i++)
				z->huf[pos + i] = (uint16_t)(cell | s);
			pos += cnt;
		}
	}
	z->huf_log = log;
	z->huf_ok = true;
	return 0;
}

/* A Huffman tree description at src[0..len); ret_used bytes. */
static int uz_huf_table(struct uz_ws *z, const uint8_t *src, size_t len, size_t *ret_used)
{
	unsigned h, n;
	int rc;

	z->huf_ok = false;
	if (len == 0)
		return UZ_FAIL;
	h = src[0];
	if (h >= 128) { /* direct: 4 bits per weight */
		size_t bytes;

		n = h - 127;
		bytes = (n + 1) / 2;
		if (len - 1 < bytes)
			return UZ_FAIL;
		for (unsigned i = 0; i < n; i++) {
			uint8_t v = src[1 + i / 2];

			z->weight[i] = (uint8_t)(i & 1 ? v & 15 : v >> 4);
		}
		*ret_used = 1 + bytes;
	} else {
		if (h == 0 || len - 1 < h)
			return UZ_FAIL;
		rc = uz_huf_fse_weights(z, src + 1, h, &n);
		if (rc != 0)
			return rc;
		*ret_used = 1 + h;
	}
	return uz_huf_build(z, n);
}

/* One Huffman stream src[0..len) that must decode to exactly dst[0..n). */
static int uz_huf_stream(const struct uz_ws *z, const uint8_t *src, size_t len, uint8_t *dst,
			 size_t n)
{
	const uint16_t *tab = z->huf;
	unsigned log = z->huf_log;
	struct uz_bits b;
	size_t i = 0;

	if (uz_bits_init(&b, src, len) != 0)
		return UZ_FAIL;
	/* Four codes of at most 11 bits fit in the 57 a refill guarantees. */
	while (n - i >= 4) {
		uz_bits_refill(&b);
		for (unsigned k = 0; k < 4; k++) {
			uint16_t e = tab[uz_bits_peek(&b, log)];

			dst[i++] = (uint8_t)e;
			b.used += e >> 8;
		}
		if (b.p == b.start && b.used > 64 - b.floor)
			return UZ_FAIL;
	}
	while (i < n) {
		uint16_t e;

		uz_bits_refill(&b);
		e = tab[uz_bits_peek(&b, log)];
		dst[i++] = (uint8_t)e;
		b.used += e >> 8;
	}
	return uz_bits_left(&b) == 0 ? 0 : UZ_FAIL;
}

/* The literals section at src[0..len): *ret_lit[0..*ret_n), ret_used bytes.
 * Raw literals stay in the input; the others are decoded into z->lit. */
static int uz_literals(struct uz_ws *z, const uint8_t *src, size_t len, const uint8_t **ret_lit,
		       size_t *ret_n, size_t *ret_used)
{
	unsigned type, fmt, hsize;
	size_t rs, cs, used;
	int rc;

	if (len == 0)
		return UZ_FAIL;
	type = src[0] & 3u;
	fmt = (src[0] >> 2) & 3u;
	if (type < 2) { /* Raw or RLE */
		hsize = fmt == 1 ? 2 : fmt == 3 ? 3 : 1;
		if (len < hsize)
			return UZ_FAIL;
		rs = hsize == 1 ? src[0] >> 3 : (size_t)(uz_le(src, hsize) >> 4);
		if (rs > z->block_max)
			return UZ_FAIL;
		if (type == 0) {
			if (len - hsize < rs)
				return UZ_FAIL;
			*ret_lit = src + hsize;
			*ret_used = hsize + rs;
		} else {
			if (len - hsize < 1)
				return UZ_FAIL;
			__builtin_memset(z->lit, src[hsize], rs);
			*ret_lit = z->lit;
			*ret_used = hsize + 1;
		}
		*ret_n = rs;
		return 0;
	}

	/* Compressed (with a tree description) or Treeless (the last tree). */
	hsize = fmt < 2 ? 3 : fmt + 2;
	if (len < hsize)
		return UZ_FAIL;
	{
		uint64_t h = uz_le(src, hsize);
		unsigned w = hsize * 4 - 2; /* 10, 14 or 18 bits per size */

		rs = (size_t)((h >> 4) & ((1u << w) - 1));
		cs = (size_t)((h >> (4 + w)) & ((1u << w) - 1));
	}
	if (rs > z->block_max || len - hsize < cs)
		return UZ_FAIL;
	src += hsize;
	*ret_used = hsize + cs;
	if (type == 2) {
		rc = uz_huf_table(z, src, cs, &used);
		if (rc != 0)
			return rc;
		src += used;
		cs -= used;
	} else if (!z->huf_ok) {
		return UZ_FAIL;
	}
	if (fmt == 0) {
		rc = uz_huf_stream(z, src, cs, z->lit, rs);
	} else { /* four streams after a jump table of three sizes */
		size_t seg = (rs + 3) / 4, s[4], off = 6;

		/* The spec's minimums for 4 streams; rs >= 6 also keeps the last
		 * stream's share, rs - 3 * seg, from going negative. */
		if (rs < 6 || cs < 10)
			return UZ_FAIL;
		s[0] = src[0] | (size_t)src[1] << 8;
		s[1] = src[2] | (size_t)src[3] << 8;
		s[2] = src[4] | (size_t)src[5] << 8;
		if (s[0] + s[1] + s[2] > cs - 6)
			return UZ_FAIL;
		s[3] = cs - 6 - s[0] - s[1] - s[2];
		rc = 0;
		for (unsigned k = 0; k < 4 && rc == 0; k++) {
			size_t n = k < 3 ? seg : rs - 3 * seg;

			rc = uz_huf_stream(z, src + off, s[k], z->lit + k * seg, n);
			off += s[k];
		}
	}
	if (rc != 0)
		return rc;
	*ret_lit = z->lit;
	*ret_n = rs;
	return 0;
}

/* ---- sequences (RFC 8878 3.1.1.3.2) ---- */

/* One of the three tables, per its mode, from src[0..len); ret_used bytes. */
static int uz_seq_table(struct uz_ws *z, unsigned kind, unsigned mode, const uint8_t *src,
			size_t len, size_t *ret_used)
{
	const struct uz_kind *k = &uz_kinds[kind];
	struct uz_cell *t = kind == UZ_LL ? z->ll : kind == UZ_OF ? z->of : z->ml;
	unsigned log, nsym;
	int rc;

	*ret_used = 0;
	switch (mode) {
	case 0: /* Predefined */
		z->ok[kind] = false;
		rc = uz_fse_build(t, z->next, k->def, k->def_nsym, k->def_log);
		if (rc != 0)
			return rc;
		z->log[kind] = k->def_log;
		break;
	case 1: /* RLE: one symbol, no state bits */
		if (len == 0 || src[0] > k->max_sym)
			return UZ_FAIL;
		t[0] = (struct uz_cell){.base = 0, .sym = src[0], .bits = 0};
		z->log[kind] = 0;
		*ret_used = 1;
		break;
	case 2: /* FSE_Compressed */
		z->ok[kind] = false;
		rc =
		    uz_fse_ncount(z->norm, src, len, k->max_log, k->max_sym, &log, &nsym, ret_used);
		if (rc == 0)
			rc = uz_fse_build(t, z->next, z->norm, nsym, log);
		if (rc != 0)
			return rc;
		z->log[kind] = log;
		break;
	default: /* Repeat: the table of the previous block of this frame */
		if (!z->ok[kind])
			return UZ_FAIL;
		break;
	}
	z->ok[kind] = true;
	return 0;
}

/* Copies n bytes at src (which may be read up to send) to z->op; the caller
 * checked the room. */
static inline void uz_put(struct uz_ws *z, const uint8_t *src, size_t n, const uint8_t *send)
{
	if (n <= 16 && z->oend - z->op >= 16 && send - src >= 16) {
		/* Short copies are the common case: a fixed 16 bytes, of
		 * which the ones past n are overwritten later (inside out). */
		uint8_t tmp[16];

		__builtin_memcpy(tmp, src, 16);
		__builtin_memcpy(z->op, tmp, 16);
	} else if (n) {
		__builtin_memcpy(z->op, src, n);
	}
	z->op += n;
}

/* Copies a match of n bytes from off back; the caller checked both. */
static inline void uz_match(struct uz_ws *z, size_t off, size_t n)
{
	const uint8_t *s = z->op - off;
	uint8_t *d = z->op;

	z->op += n;
	if (off >= 8 && n <= 16 && z->oend - d >= 16) {
		uint64_t a, b;

		__builtin_memcpy(&a, s, 8);
		__builtin_memcpy(d, &a, 8);
		__builtin_memcpy(&b, s + 8, 8); /* s + 8 <= d: may read what d just got */
		__builtin_memcpy(d + 8, &b, 8);
		return;
	}
	/* [s, d) repeats with period off and its length is a multiple of off,
	 * so each copy from s can be as long as everything written so far. */
	while (n) {
		size_t k = uz_min((size_t)(d - s), n);

		__builtin_memcpy(d, s, k);
		d += k;
		n -= k;
	}
}

/* The sequences section src[0..len) of a block with literals lit[0..nlit);
 * the block's output must end by cap. */
static int uz_sequences(struct uz_ws *z, const uint8_t *src, size_t len, const uint8_t *lit,
			size_t nlit, uint8_t *cap)
{
	const uint8_t *lend = lit + nlit;
	size_t nseq, pos, used;
	struct uz_bits b;
	uint32_t sl, so, sm;
	unsigned modes;
	int rc;

	if (len == 0)
		return UZ_FAIL;
	if (src[0] < 128) {
		nseq = src[0];
		pos = 1;
	} else if (src[0] < 255) {
		if (len < 2)
			return UZ_FAIL;
		nseq = ((size_t)(src[0] - 128) << 8) + src[1];
		pos = 2;
	} else {
		if (len < 3)
			return UZ_FAIL;
		nseq = src[1] + ((size_t)src[2] << 8) + 0x7f00;
		pos = 3;
	}
	if (nseq == 0) { /* literals only, and nothing after the count */
		if (pos != len || nlit > (size_t)(cap - z->op))
			return UZ_FAIL;
		uz_put(z, lit, nlit, lend);
		return 0;
	}
	if (pos == len)
		return UZ_FAIL;
	modes = src[pos++];
	if (modes & 3u) /* reserved */
		return UZ_FAIL;
	for (unsigned kind = 0; kind < UZ_KINDS; kind++) {
		rc = uz_seq_table(z, kind, (modes >> uz_kinds[kind].shift) & 3u, src + pos,
				  len - pos, &used);
		if (rc != 0)
			return rc;
		pos += used;
	}
	rc = uz_bits_init(&b, src + pos, len - pos);
	if (rc != 0)
		return rc;
	sl = (uint32_t)uz_bits_read(&b, z->log[UZ_LL]);
	so = (uint32_t)uz_bits_read(&b, z->log[UZ_OF]);
	sm = (uint32_t)uz_bits_read(&b, z->log[UZ_ML]);

	for (size_t i = 0; i < nseq; i++) {
		const struct uz_cell *cl = &z->ll[sl], *co = &z->of[so], *cm = &z->ml[sm];
		size_t ll, ml, off;
		uint64_t ofv;

		/* Extra bits: offset, match length, literals length; then
		 * the states: literals length, match length, offset. */
		uz_bits_refill(&b);
		ofv = ((uint64_t)1 << co->sym) + uz_bits_read(&b, co->sym);
		uz_bits_refill(&b);
		ml = uz_ml_base[cm->sym] + (size_t)uz_bits_read(&b, uz_ml_bits[cm->sym]);
		ll = uz_ll_base[cl->sym] + (size_t)uz_bits_read(&b, uz_ll_bits[cl->sym]);
		if (i + 1 < nseq) {
			uz_bits_refill(&b);
			sl = cl->base + (uint32_t)uz_bits_read(&b, cl->bits);
			sm = cm->base + (uint32_t)uz_bits_read(&b, cm->bits);
			so = co->base + (uint32_t)uz_bits_read(&b, co->bits);
		}
		if (uz_bits_left(&b) < 0)
			return UZ_FAIL;

		if (ofv > 3) {
			off = (size_t)(ofv - 3);
			z->rep[2] = z->rep[1];
			z->rep[1] = z->rep[0];
			z->rep[0] = off;
		} else {
			/* Repeat codes; with no literals they shift by one. */
			unsigned r = (unsigned)ofv - 1 + (ll == 0);

			if (r == 0) {
				off = z->rep[0];
			} else {
				off = r == 3 ? z->rep[0] - 1 : z->rep[r];
				if (r != 1)
					z->rep[2] = z->rep[1];
				z->rep[1] = z->rep[0];
				z->rep[0] = off;
			}
		}

		if (ll > (size_t)(lend - lit) || ll > (size_t)(cap - z->op))
			return UZ_FAIL;
		uz_put(z, lit, ll, lend);
		lit += ll;
		if (off == 0 || off > (size_t)(z->op - z->fstart) || off > z->window ||
		    ml > (size_t)(cap - z->op))
			return UZ_FAIL;
		uz_match(z, off, ml);
	}
	if (uz_bits_left(&b) != 0)
		return UZ_FAIL;
	if ((size_t)(lend - lit) > (size_t)(cap - z->op))
		return UZ_FAIL;
	uz_put(z, lit, (size_t)(lend - lit), lend);
	return 0;
}

/* ---- XXH64 (the xxHash specification), seed 0 ---- */

#define UZ_P1 0x9e3779b185ebca87ull
#define UZ_P2 0xc2b2ae3d27d4eb4full
#define UZ_P3 0x165667b19e3779f9ull
#define UZ_P4 0x85ebca77c2b2ae63ull
#define UZ_P5 0x27d4eb2f165667c5ull

static inline uint64_t uz_rotl(uint64_t x, unsigned r)
{
	return x << r | x >> (64 - r);
}

static inline uint64_t uz_xxh_round(uint64_t acc, uint64_t lane)
{
	return uz_rotl(acc + lane * UZ_P2, 31) * UZ_P1;
}

static inline uint64_t uz_xxh_merge(uint64_t h, uint64_t v)
{
	return (h ^ uz_xxh_round(0, v)) * UZ_P1 + UZ_P4;
}

static uint64_t uz_xxh64(const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len;
	uint64_t h;

	if (len >= 32) {
		uint64_t v1 = UZ_P1 + UZ_P2, v2 = UZ_P2, v3 = 0, v4 = 0 - UZ_P1;

		for (; end - p >= 32; p += 32) {
			v1 = uz_xxh_round(v1, get_le64(p));
			v2 = uz_xxh_round(v2, get_le64(p + 8));
			v3 = uz_xxh_round(v3, get_le64(p + 16));
			v4 = uz_xxh_round(v4, get_le64(p + 24));
		}
		h = uz_rotl(v1, 1) + uz_rotl(v2, 7) + uz_rotl(v3, 12) + uz_rotl(v4, 18);
		h = uz_xxh_merge(h, v1);
		h = uz_xxh_merge(h, v2);
		h = uz_xxh_merge(h, v3);
		h = uz_xxh_merge(h, v4);
	} else {
		h = UZ_P5;
	}
	h += len;
	for (; end - p >= 8; p += 8)
		h = uz_rotl(h ^ uz_xxh_round(0, get_le64(p)), 27) * UZ_P1 + UZ_P4;
	if (end - p >= 4) {
		h = uz_rotl(h ^ (uint64_t)get_le32(p) * UZ_P1, 23) * UZ_P2 + UZ_P3;
		p += 4;
	}
	for (; p < end; p++)
		h = uz_rotl(h ^ *p * UZ_P5, 11) * UZ_P1;
	h ^= h >> 33;
	h *= UZ_P2;
	h ^= h >> 29;
	h *= UZ_P3;
	h ^= h >> 32;
	return h;
}

/* ---- frames (RFC 8878 3.1.1) ---- */

/* One zstd frame at src[0..len) (magic checked by the caller) appended to
 * z->op; ret_used bytes of input. */
static int uz_frame(struct uz_ws *z, const uint8_t *src, size_t len, size_t *ret_used)
{
	static const uint8_t did_len[4] = {0, 1, 2, 4};
	unsigned fhd, fcs_len, dlen;
	size_t pos = 5, room;
	uint64_t fcs = 0;
	bool single;
	int rc;

	if (len < 5)
		return UZ_FAIL;
	fhd = src[4];
	if (fhd & 0x08) /* reserved */
		return UZ_FAIL;
	single = fhd & 0x20;
	dlen = did_len[fhd & 3];
	fcs_len = fhd >> 6 ? 1u << (fhd >> 6) : single;
	if (len - pos < (single ? 0u : 1u) + dlen + fcs_len)
		return UZ_FAIL;
	if (!single) {
		unsigned wd = src[pos++];

		z->window = (uint64_t)1 << (10 + (wd >> 3));
		z->window += (z->window >> 3) * (wd & 7);
	}
	if (uz_le(src + pos, dlen) != 0) /* no dictionaries here */
		return UZ_FAIL;
	pos += dlen;
	if (fcs_len) {
		fcs = uz_le(src + pos, fcs_len) + (fcs_len == 2 ? 256 : 0);
		pos += fcs_len;
	}
	if (single)
		z->window = fcs;
	if (z->window > UZ_WINDOW_MAX)
		return UZ_FAIL;
	room = (size_t)(z->oend - z->op);
	if (fcs_len && fcs > room)
		return UZ_FAIL;
	z->fend = fcs_len ? z->op + fcs : z->oend;
	z->block_max = z->window < UZ_BLOCK_MAX ? (size_t)z->window : UZ_BLOCK_MAX;
	z->fstart = z->op;
	z->rep[0] = 1;
	z->rep[1] = 4;
	z->rep[2] = 8;
	z->huf_ok = false;
	for (unsigned k = 0; k < UZ_KINDS; k++)
		z->ok[k] = false;

	for (;;) {
		uint32_t bh;
		size_t bsize;
		unsigned type;

		if (len - pos < 3)
			return UZ_FAIL;
		bh = (uint32_t)uz_le(src + pos, 3);
		pos += 3;
		type = (bh >> 1) & 3u;
		bsize = bh >> 3;
		room = (size_t)(z->fend - z->op);
		if (type == 3 || bsize > z->block_max)
			return UZ_FAIL;
		if (type == 0) { /* Raw */
			if (len - pos < bsize || bsize > room)
				return UZ_FAIL;
			if (bsize)
				__builtin_memcpy(z->op, src + pos, bsize);
			z->op += bsize;
			pos += bsize;
		} else if (type == 1) { /* RLE: one byte, bsize times */
			if (len - pos < 1 || bsize > room)
				return UZ_FAIL;
			__builtin_memset(z->op, src[pos], bsize);
			z->op += bsize;
			pos += 1;
		} else {
			const uint8_t *lit;
			size_t nlit, used;

			if (len - pos < bsize)
				return UZ_FAIL;
			rc = uz_literals(z, src + pos, bsize, &lit, &nlit, &used);
			if (rc == 0)
				rc = uz_sequences(z, src + pos + used, bsize - used, lit, nlit,
						  z->op + uz_min(room, z->block_max));
			if (rc != 0)
				return rc;
			pos += bsize;
		}
		if (bh & 1) /* Last_Block */
			break;
	}
	if (fcs_len && z->op != z->fend)
		return UZ_FAIL;
	if (fhd & 0x04) { /* Content_Checksum */
		if (len - pos < 4)
			return UZ_FAIL;
		if (get_le32(src + pos) !=
		    (uint32_t)uz_xxh64(z->fstart, (size_t)(z->op - z->fstart)))
			return UZ_FAIL;
		pos += 4;
	}
	*ret_used = pos;
	return 0;
}

int plan_unzstd(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len, void *work)
{
	struct uz_ws *z = work;
	size_t pos = 0;

	if (!work || ((uintptr_t)work & 7) != 0)
		return INSTAR_ERR_INTERNAL;
	z->op = out;
	z->oend = out + out_len;
	while (z->op != z->oend) {
		uint32_t magic;
		size_t used;
		int rc;

		if (in_len - pos < 4)
			return UZ_FAIL;
		magic = get_le32(in + pos);
		if (magic == UZ_MAGIC) {
			rc = uz_frame(z, in + pos, in_len - pos, &used);
			if (rc != 0)
				return rc;
		} else if ((magic & ~0xfu) == UZ_SKIP_MAGIC) {
			if (in_len - pos < 8 || get_le32(in + pos + 4) > in_len - pos - 8)
				return UZ_FAIL;
			used = 8 + (size_t)get_le32(in + pos + 4);
		} else {
			return UZ_FAIL;
		}
		pos += used;
	}
	return 0;
}
