/* tests/unit/test_inflate.c — the raw DEFLATE decoder (guest/plan/inflate.c).
 * Host zlib is the encoder for the round trips and, run the way qemu runs it
 * for a compressed cluster (raw inflate, windowBits -12, one Z_FINISH call,
 * success iff the output is full), the reference for what must be accepted;
 * hand-built streams cover each malformation on its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "gen_data.h"
#include "inflate.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

static _Alignas(8) uint8_t work[PLAN_INFLATE_WORK_SIZE];
static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	assert_non_null(p);
	return p;
}

/* ---- zlib: encoder and reference decoder ---- */

static size_t z_deflate(const uint8_t *src, size_t n, int level, int wbits, int strategy,
			uint8_t **ret)
{
	z_stream z = {0};
	size_t cap;
	uint8_t *dst;

	assert_int_equal(deflateInit2(&z, level, Z_DEFLATED, wbits, 9, strategy), Z_OK);
	cap = deflateBound(&z, n) + 16;
	dst = xmalloc(cap);
	z.next_in = (Bytef *)src;
	z.avail_in = (uInt)n;
	z.next_out = dst;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	assert_int_equal(deflateEnd(&z), Z_OK);
	*ret = dst;
	return cap - z.avail_out;
}

/* qemu's qcow2 decompression (block/qcow2-threads.c): 0 or -1. */
static int z_qemu(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
	z_stream z = {0};
	int r;

	assert_int_equal(inflateInit2(&z, -12), Z_OK);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)in_len;
	z.next_out = out;
	z.avail_out = (uInt)out_len;
	r = inflate(&z, Z_FINISH);
	r = (r == Z_STREAM_END || r == Z_BUF_ERROR) && z.avail_out == 0 ? 0 : -1;
	inflateEnd(&z);
	return r;
}

/* plan_inflate with a workspace full of garbage (it must need no init). */
static int dec(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
	memset(work, (int)(rng() | 1), sizeof(work));
	return plan_inflate(in, in_len, out, out_len, work);
}

/* Both decoders on a copy of the input in an exact-size buffer; they must
 * agree, and on success produce the same bytes. Returns plan_inflate's rc. */
static int dec_vs_zlib(const uint8_t *in, size_t in_len, size_t out_len, uint8_t *ret_out)
{
	uint8_t *ibuf = xmalloc(in_len), *a = xmalloc(out_len), *b = xmalloc(out_len);
	int r, zr;

	memcpy(ibuf, in, in_len);
	memset(a, 0x5a, out_len);
	memset(b, 0xa5, out_len);
	r = dec(ibuf, in_len, a, out_len);
	zr = z_qemu(ibuf, in_len, b, out_len);
	if ((r == 0) != (zr == 0))
		fail_msg("in_len %zu out_len %zu: plan_inflate %d, zlib %d", in_len, out_len, r,
			 zr);
	if (r != 0 && r != INSTAR_ERR_PARSE_FAILED)
		fail_msg("unexpected rc %d", r);
	if (r == 0 && out_len && memcmp(a, b, out_len) != 0)
		fail_msg("in_len %zu out_len %zu: outputs differ", in_len, out_len);
	if (ret_out && r == 0)
		memcpy(ret_out, a, out_len);
	free(ibuf);
	free(a);
	free(b);
	return r;
}

/* ---- round trips ---- */

static void roundtrip(const uint8_t *src, size_t n, int level, int wbits, int strategy,
		      const char *what)
{
	uint8_t *c, *out = xmalloc(n);
	size_t clen = z_deflate(src, n, level, wbits, strategy, &c);
	int r;

	memset(out, 0xa5, n);
	r = dec(c, clen, out, n);
	if (r != 0 || memcmp(out, src, n) != 0)
		fail_msg("%s: size %zu level %d wbits %d strategy %d: rc %d", what, n, level, wbits,
			 strategy, r);
	/* One byte more output than the stream holds: the final block ends
	 * first. */
	free(out);
	out = xmalloc(n + 1);
	assert_int_equal(dec(c, clen, out, n + 1), INSTAR_ERR_PARSE_FAILED);
	free(out);
	free(c);
}

static void test_roundtrip_matrix(void **state)
{
	static const size_t sizes[] = {512, 4 * KiB, 64 * KiB, 2 * MiB};
	static const int levels[] = {0, 1, 6, 9};
	static const int wbits[] = {-12, -15};
	static const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE,
					 Z_FIXED};
	unsigned cases = 0;

	(void)state;
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		for (int k = 0; k < K_COUNT; k++) {
			uint8_t *src = xmalloc(sizes[si]);

			gen((enum kind)k, src, sizes[si]);
			for (size_t w = 0; w < 2; w++)
				for (size_t l = 0; l < 4; l++)
					for (size_t st = 0; st < 5; st++, cases++)
						roundtrip(src, sizes[si], levels[l], wbits[w],
							  strategies[st], kind_names[k]);
			free(src);
		}
	}
	assert_int_equal(cases, 4 * K_COUNT * 2 * 4 * 5);
}

/* Many small random sizes: block boundaries and code shapes vary most here. */
static void test_roundtrip_small(void **state)
{
	(void)state;
	for (int i = 0; i < 400; i++) {
		size_t n = 1 + rng_below(3000);
		uint8_t *src = xmalloc(n);
		static const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY,
						 Z_RLE, Z_FIXED};

		gen((enum kind)rng_below(K_COUNT), src, n);
		roundtrip(src, n, (int)rng_below(10), rng_below(2) ? -12 : -15,
			  strategies[rng_below(5)], "small");
		free(src);
	}
}

/* The largest cluster (2 MiB) of each kind decodes to the same bytes. How
 * fast is no verdict: a unit test checks results only. */
static void test_2mib(void **state)
{
	(void)state;
	for (int k = 0; k < K_COUNT; k++) {
		size_t n = 2 * MiB, clen;
		uint8_t *src = xmalloc(n), *out = xmalloc(n), *c;

		gen((enum kind)k, src, n);
		clen = z_deflate(src, n, Z_DEFAULT_COMPRESSION, -12, Z_DEFAULT_STRATEGY, &c);
		assert_int_equal(plan_inflate(c, clen, out, n, work), 0);
		assert_memory_equal(out, src, n);
		free(src);
		free(out);
		free(c);
	}
}

/* ---- qemu's use: one cluster, the read rounded up past the stream ---- */

static void test_qemu_cluster(void **state)
{
	static const size_t clusters[] = {512, 4 * KiB, 64 * KiB, 2 * MiB};

	(void)state;
	for (size_t i = 0; i < sizeof(clusters) / sizeof(clusters[0]); i++) {
		for (int k = 0; k < K_COUNT; k++) {
			size_t n = clusters[i], clen, padded;
			uint8_t *src = xmalloc(n), *c, *in, *out = xmalloc(n);

			gen((enum kind)k, src, n);
			/* qcow2_zlib_compress: level default, -12, memLevel 9. */
			clen =
			    z_deflate(src, n, Z_DEFAULT_COMPRESSION, -12, Z_DEFAULT_STRATEGY, &c);
			/* The compressed descriptor counts 512-byte sectors, so the
			 * read carries whatever follows the stream; add one more
			 * sector of it. */
			padded = (clen + 511) / 512 * 512 + 512;
			in = xmalloc(padded);
			memcpy(in, c, clen);
			for (size_t j = clen; j < padded; j++)
				in[j] = (uint8_t)rng();
			assert_int_equal(dec_vs_zlib(in, padded, n, out), 0);
			assert_memory_equal(out, src, n);
			free(src);
			free(c);
			free(in);
			free(out);
		}
	}
}

/* An output shorter than the stream succeeds once full; a longer one fails. */
static void test_output_length(void **state)
{
	static const size_t shorter[] = {1, 2, 100, 4095, 4096, 32768, 65535};
	size_t n = 64 * KiB, clen;
	uint8_t *src = xmalloc(n), *out = xmalloc(n + 4096), *c;

	(void)state;
	gen(K_TEXT, src, n);
	clen = z_deflate(src, n, 6, -12, Z_DEFAULT_STRATEGY, &c);
	for (size_t i = 0; i < sizeof(shorter) / sizeof(shorter[0]); i++) {
		memset(out, 0xa5, n);
		assert_int_equal(dec(c, clen, out, shorter[i]), 0);
		assert_memory_equal(out, src, shorter[i]);
		/* Nothing past out_len is touched. */
		assert_int_equal(out[shorter[i]], 0xa5);
	}
	assert_int_equal(dec(c, clen, out, n), 0);
	assert_int_equal(dec(c, clen, out, n + 1), INSTAR_ERR_PARSE_FAILED);
	assert_int_equal(dec(c, clen, out, n + 4096), INSTAR_ERR_PARSE_FAILED);
	/* The output full is enough, even with the stream's tail cut off. */
	assert_int_equal(dec(c, clen / 2, out, 100), 0);
	assert_memory_equal(out, src, 100);
	free(src);
	free(out);
	free(c);
}

/* Every prefix of small stored, fixed and dynamic streams: the same verdict
 * as zlib's, and failure for all but the last two bytes (which at most hold
 * the end-of-block code). */
static void test_truncated(void **state)
{
	static const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FIXED, Z_HUFFMAN_ONLY};
	size_t n = 1500;
	uint8_t *src = xmalloc(n);

	(void)state;
	gen(K_TEXT, src, n);
	for (int lv = 0; lv < 2; lv++) {
		for (size_t st = 0; st < 3; st++) {
			uint8_t *c;
			size_t clen = z_deflate(src, n, lv ? 6 : 0, -12, strategies[st], &c);
			unsigned fails = 0;

			for (size_t p = 0; p < clen; p++) {
				int r = dec_vs_zlib(c, p, n, NULL);

				if (p + 2 < clen)
					assert_int_equal(r, INSTAR_ERR_PARSE_FAILED);
				fails += r != 0;
			}
			assert_true(fails >= clen - 2);
			assert_int_equal(dec_vs_zlib(c, clen, n, NULL), 0);
			free(c);
		}
	}
	free(src);
}

/* Bit flips, byte stores, truncation and garbage on small valid streams, with
 * output lengths around the true one: plan_inflate and zlib agree on each. */
static void test_mutations_vs_zlib(void **state)
{
	static const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE,
					 Z_FIXED};
	unsigned ok = 0, bad = 0;

	(void)state;
	for (int i = 0; i < 3000; i++) {
		size_t n = 1 + rng_below(2000), clen, out_len;
		uint8_t *src = xmalloc(n), *c;

		gen((enum kind)rng_below(K_COUNT), src, n);
		clen = z_deflate(src, n, (int)rng_below(10), -12, strategies[rng_below(5)], &c);
		for (int m = 0; m < 8; m++) {
			uint8_t *t = xmalloc(clen + 64);
			size_t tlen = clen;

			memcpy(t, c, clen);
			for (uint32_t f = rng_below(4); f-- > 0;) {
				size_t at = rng_below((uint32_t)tlen);

				if (rng_below(2))
					t[at] ^= (uint8_t)(1u << rng_below(8));
				else
					t[at] = (uint8_t)rng();
			}
			if (rng_below(4) == 0)
				tlen = rng_below((uint32_t)tlen + 1);
			else if (rng_below(4) == 0)
				for (uint32_t g = rng_below(64); g-- > 0;)
					t[tlen++] = (uint8_t)rng();
			switch (rng_below(4)) {
			case 0:
				out_len = n;
				break;
			case 1:
				out_len = rng_below((uint32_t)n + 1);
				break;
			case 2:
				out_len = n + rng_below(8);
				break;
			default:
				out_len = 1 + rng_below(4096);
				break;
			}
			if (dec_vs_zlib(t, tlen, out_len, NULL) == 0)
				ok++;
			else
				bad++;
			free(t);
		}
		free(src);
		free(c);
	}
	/* Both verdicts came up often. */
	assert_true(ok > 1000);
	assert_true(bad > 1000);
}

/* Random bytes, with the first block header forced to each type. */
static void test_random_vs_zlib(void **state)
{
	uint8_t buf[512];

	(void)state;
	for (int i = 0; i < 30000; i++) {
		size_t len = 1 + rng_below(sizeof(buf));

		for (size_t j = 0; j < len; j++)
			buf[j] = (uint8_t)rng();
		buf[0] = (uint8_t)((buf[0] & ~6u) | (rng_below(3) << 1));
		dec_vs_zlib(buf, len, 1 + rng_below(2048), NULL);
	}
	/* Every case asserted agreement; a constant control on top. */
	assert_int_equal(dec_vs_zlib((const uint8_t *)"\x03\x00", 2, 1, NULL),
			 INSTAR_ERR_PARSE_FAILED);
}

/* ---- hand-built streams ---- */

struct bw {
	uint8_t b[40000];
	size_t bits;
};

static void bw_init(struct bw *w)
{
	memset(w, 0, sizeof(*w));
}

/* n bits of v, LSB first (header fields, extra bits; zeros past bit 31). */
static void bw_put(struct bw *w, uint32_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++, w->bits++)
		if (i < 32 && (v >> i & 1))
			w->b[w->bits / 8] |= (uint8_t)(1u << (w->bits % 8));
}

/* A Huffman code: its bits MSB first. */
static void bw_code(struct bw *w, uint32_t code, unsigned len)
{
	while (len--)
		bw_put(w, code >> len & 1, 1);
}

static void bw_align(struct bw *w)
{
	w->bits = (w->bits + 7) / 8 * 8;
}

static size_t bw_len(const struct bw *w)
{
	return (w->bits + 7) / 8;
}

/* The fixed literal/length code (RFC 1951 §3.2.6). */
static void bw_fixed(struct bw *w, unsigned sym)
{
	if (sym < 144)
		bw_code(w, 0x30 + sym, 8);
	else if (sym < 256)
		bw_code(w, 0x190 + sym - 144, 9);
	else if (sym < 280)
		bw_code(w, sym - 256, 7);
	else
		bw_code(w, 0xc0 + sym - 280, 8);
}

/* Canonical codes for lens[0..n) (RFC 1951 §3.2.2). */
static void canon(const uint8_t *lens, unsigned n, uint16_t *codes)
{
	unsigned count[16] = {0}, next[16], code = 0;

	for (unsigned i = 0; i < n; i++)
		count[lens[i]]++;
	count[0] = 0;
	for (unsigned b = 1; b < 16; b++) {
		code = (code + count[b - 1]) << 1;
		next[b] = code;
	}
	for (unsigned i = 0; i < n; i++)
		codes[i] = lens[i] ? (uint16_t)next[lens[i]]++ : 0;
}

static const uint8_t clen_order[19] = {16, 17, 18, 0, 8,  7, 9,	 6, 10, 5,
				       11, 4,  12, 3, 13, 2, 14, 1, 15};

/* A code length code with every symbol: 0..13 four bits, 14 and 16..18 five,
 * 15 unused. Complete. */
static const uint8_t clens_all[19] = {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 0, 5, 5, 5};

struct dyn {
	uint8_t clens[19];
	uint16_t ccodes[19];
};

/* Starts a dynamic block: the three counts, then all 19 code length code
 * lengths (HCLEN 15). */
static void bw_dyn(struct bw *w, struct dyn *d, int final, unsigned nlit, unsigned ndist,
		   const uint8_t clens[19])
{
	bw_put(w, (uint32_t) final, 1);
	bw_put(w, 2, 2);
	bw_put(w, nlit - 257, 5);
	bw_put(w, ndist - 1, 5);
	bw_put(w, 15, 4);
	memcpy(d->clens, clens, 19);
	for (int i = 0; i < 19; i++)
		bw_put(w, clens[clen_order[i]], 3);
	canon(d->clens, 19, d->ccodes);
}

static void bw_clen(struct bw *w, const struct dyn *d, unsigned sym)
{
	assert_true(d->clens[sym] != 0);
	bw_code(w, d->ccodes[sym], d->clens[sym]);
}

/* Writes code lengths one symbol each (no repeats). */
static void bw_lens(struct bw *w, const struct dyn *d, const uint8_t *lens, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		bw_clen(w, d, lens[i]);
}

/* Expects a verdict from plan_inflate and the same from zlib. */
static void expect(const struct bw *w, size_t out_len, int want, const char *what)
{
	int r = dec_vs_zlib(w->b, bw_len(w), out_len, NULL);

	if (r != want)
		fail_msg("%s: rc %d, expected %d", what, r, want);
}

static void test_bad_block_type(void **state)
{
	struct bw w;

	(void)state;
	bw_init(&w);
	bw_put(&w, 1, 1);
	bw_put(&w, 3, 2);
	bw_put(&w, 0, 16);
	expect(&w, 1, INSTAR_ERR_PARSE_FAILED, "BTYPE 3");
	/* Also after a complete non-final block. */
	bw_init(&w);
	bw_put(&w, 0, 1);
	bw_put(&w, 1, 2);
	bw_fixed(&w, 'x');
	bw_fixed(&w, 256);
	bw_put(&w, 1, 1);
	bw_put(&w, 3, 2);
	expect(&w, 1, INSTAR_ERR_PARSE_FAILED, "BTYPE 3 once full");
}

static void stored(struct bw *w, int final, uint16_t len, uint16_t nlen, const char *data)
{
	bw_put(w, (uint32_t) final, 1);
	bw_put(w, 0, 2);
	bw_align(w);
	bw_put(w, len, 16);
	bw_put(w, nlen, 16);
	for (size_t i = 0; i < strlen(data); i++)
		bw_put(w, (uint8_t)data[i], 8);
}

static void test_stored(void **state)
{
	struct bw w;
	uint8_t out[8];

	(void)state;
	bw_init(&w);
	stored(&w, 1, 3, 0x1234, "abc");
	expect(&w, 3, INSTAR_ERR_PARSE_FAILED, "LEN/NLEN mismatch");
	bw_init(&w);
	stored(&w, 1, 3, (uint16_t)~3u, "abc");
	assert_int_equal(dec_vs_zlib(w.b, bw_len(&w), 3, out), 0);
	assert_memory_equal(out, "abc", 3);
	/* Two blocks, the first non-final and empty, after a fixed block
	 * that leaves the stream unaligned. */
	bw_init(&w);
	bw_put(&w, 0, 1);
	bw_put(&w, 1, 2);
	bw_fixed(&w, 'x');
	bw_fixed(&w, 256);
	stored(&w, 0, 0, 0xffff, "");
	stored(&w, 1, 2, (uint16_t)~2u, "yz");
	assert_int_equal(dec_vs_zlib(w.b, bw_len(&w), 3, out), 0);
	assert_memory_equal(out, "xyz", 3);
	/* The stored data cut short. */
	assert_int_equal(dec_vs_zlib(w.b, bw_len(&w) - 1, 3, out), INSTAR_ERR_PARSE_FAILED);
}

/* A fixed block: literal 'a', a match of 3 at distance code dcode, EOB. */
static void fixed_match(struct bw *w, unsigned dcode)
{
	bw_put(w, 1, 1);
	bw_put(w, 1, 2);
	bw_fixed(w, 'a');
	bw_fixed(w, 257);
	bw_code(w, dcode, 5);
	bw_fixed(w, 256);
}

static void test_distance(void **state)
{
	struct bw w;
	uint8_t out[4];

	(void)state;
	bw_init(&w);
	fixed_match(&w, 0); /* distance 1 */
	assert_int_equal(dec_vs_zlib(w.b, bw_len(&w), 4, out), 0);
	assert_memory_equal(out, "aaaa", 4);
	bw_init(&w);
	fixed_match(&w, 1); /* distance 2, one byte written */
	expect(&w, 4, INSTAR_ERR_PARSE_FAILED, "distance beyond output start");
	bw_init(&w);
	fixed_match(&w, 30);
	expect(&w, 4, INSTAR_ERR_PARSE_FAILED, "distance code 30");
	bw_init(&w);
	fixed_match(&w, 31);
	expect(&w, 4, INSTAR_ERR_PARSE_FAILED, "distance code 31");
}

/* 32768 stored bytes, then a fixed block copying 258 bytes from 32768 back. */
static void test_distance_32k(void **state)
{
	static struct bw w;
	size_t n = 32768 + 258;
	uint8_t *out = xmalloc(n), *in;

	(void)state;
	bw_init(&w);
	for (int half = 0; half < 2; half++) {
		bw_put(&w, 0, 3);
		bw_align(&w);
		bw_put(&w, 16384, 16);
		bw_put(&w, (uint16_t)~16384u, 16);
		for (int i = 0; i < 16384; i++)
			bw_put(&w, (uint8_t)rng(), 8);
	}
	bw_put(&w, 1, 1);
	bw_put(&w, 1, 2);
	bw_fixed(&w, 285);  /* length 258 */
	bw_code(&w, 29, 5); /* distances 24577..32768 */
	bw_put(&w, 8191, 13);
	bw_fixed(&w, 256);
	in = w.b + 5; /* the first stored block's data */
	assert_int_equal(dec_vs_zlib(w.b, bw_len(&w), n, out), 0);
	assert_memory_equal(out, in, 258);
	assert_memory_equal(out + 32768, out, 258);
	/* 32768 back from one byte earlier is before out[0]. */
	bw_init(&w);
	bw_put(&w, 0, 3);
	bw_align(&w);
	bw_put(&w, 32767, 16);
	bw_put(&w, (uint16_t)~32767u, 16);
	for (int i = 0; i < 32767; i++)
		bw_put(&w, (uint8_t)i, 8);
	bw_put(&w, 1, 1);
	bw_put(&w, 1, 2);
	bw_fixed(&w, 285);
	bw_code(&w, 29, 5);
	bw_put(&w, 8191, 13);
	bw_fixed(&w, 256);
	expect(&w, 32767 + 258, INSTAR_ERR_PARSE_FAILED, "distance 32768 at 32767");
	free(out);
}

static void test_invalid_lit_codes(void **state)
{
	struct bw w;
	uint8_t out[300];

	(void)state;
	for (unsigned sym = 286; sym <= 287; sym++) {
		bw_init(&w);
		bw_put(&w, 1, 1);
		bw_put(&w, 1, 2);
		bw_fixed(&w, 'a');
		bw_fixed(&w, sym);
		bw_put(&w, 0, 16);
		expect(&w, 2, INSTAR_ERR_PARSE_FAILED, "literal/length code 286/287");
	}
	/* 285 next to them is length 258. */
	bw_init(&w);
	bw_put(&w, 1, 1);
	bw_put(&w, 1, 2);
	bw_fixed(&w, 'a');
	bw_fixed(&w, 285);
	bw_code(&w, 0, 5);
	bw_fixed(&w, 256);
	assert_int_equal(dec_vs_zlib(w.b, bw_len(&w), 259, out), 0);
	assert_int_equal(out[258], 'a');
}

/* Literal/length lengths: 'a' and EOB 1 bit each (complete); distance 0. */
static void dyn_simple(struct bw *w, struct dyn *d, unsigned nlit, unsigned ndist,
		       const uint8_t *dlens)
{
	uint8_t lens[288] = {0};

	lens['a'] = 1;
	lens[256] = 1;
	bw_dyn(w, d, 1, nlit, ndist, clens_all);
	bw_lens(w, d, lens, nlit);
	bw_lens(w, d, dlens, ndist);
}

static void test_dynamic_header(void **state)
{
	static const uint8_t d1[32] = {1};
	struct bw w;
	struct dyn d;
	uint8_t out[8], lens[320] = {0};

	(void)state;
	/* Control: "aa" then EOB ('a' is code 0, EOB code 1). */
	bw_init(&w);
	dyn_simple(&w, &d, 257, 1, d1);
	bw_code(&w, 0, 1);
	bw_code(&w, 0, 1);
	bw_code(&w, 1, 1);
	assert_int_equal(dec_vs_zlib(w.b, bw_len(&w), 2, out), 0);
	assert_memory_equal(out, "aa", 2);

	/* HLIT 287/288 and HDIST 31/32 are refused (as zlib does). */
	for (unsigned extra = 1; extra <= 2; extra++) {
		bw_init(&w);
		dyn_simple(&w, &d, 286 + extra, 1, d1);
		bw_code(&w, 0, 1);
		bw_code(&w, 1, 1);
		expect(&w, 1, INSTAR_ERR_PARSE_FAILED, "HLIT > 286");
		bw_init(&w);
		dyn_simple(&w, &d, 257, 30 + extra, d1);
		bw_code(&w, 0, 1);
		bw_code(&w, 1, 1);
		expect(&w, 1, INSTAR_ERR_PARSE_FAILED, "HDIST > 30");
	}

	/* Over-subscribed code length code: all 19 one bit long. */
	bw_init(&w);
	bw_put(&w, 1, 1);
	bw_put(&w, 2, 2);
	bw_put(&w, 0, 5);
	bw_put(&w, 0, 5);
	bw_put(&w, 15, 4);
	for (int i = 0; i < 19; i++)
		bw_put(&w, 1, 3);
	bw_put(&w, 0, 32);
	expect(&w, 1, INSTAR_ERR_PARSE_FAILED, "over-subscribed code length code");

	/* Incomplete code length code: only symbol 1, one bit long. */
	bw_init(&w);
	{
		uint8_t cl[19] = {0};

		cl[1] = 1;
		bw_dyn(&w, &d, 1, 257, 1, cl);
		bw_put(&w, 0, 300);
	}
	expect(&w, 1, INSTAR_ERR_PARSE_FAILED, "incomplete code length code");

	/* Over-subscribed literal/length code: three 1-bit codes. */
	bw_init(&w);
	memset(lens, 0, sizeof(lens));
	lens['a'] = lens['b'] = lens[256] = 1;
	bw_dyn(&w, &d, 1, 257, 1, clens_all);
	bw_lens(&w, &d, lens, 257);
	bw_lens(&w, &d, d1, 1);
	bw_put(&w, 0, 16);
	expect(&w, 1, INSTAR_ERR_PARSE_FAILED, "over-subscribed literal/length code");

	/* Incomplete literal/length code longer than one bit. */
	bw_init(&w);
	memset(lens, 0, sizeof(lens));
	lens['a'] = lens[256] = 2;
	bw_dyn(&w, &d, 1, 257, 1, clens_all);
	bw_lens(&w, &d, lens, 257);
	bw_lens(&w, &d, d1, 1);
	bw_put(&w, 0, 16);
	expect(&w, 1, INSTAR_ERR_PARSE_FAILED, "incomplete literal/length code");

	/* Over-subscribed distance code. */
	bw_init(&w);
	{
		static const uint8_t d3[3] = {1, 1, 1};

		dyn_simple(&w, &d, 257, 3, d3);
		bw_put(&w, 0, 16);
	}
	expect(&w, 1, INSTAR_ERR_PARSE_FAILED, "over-subscribed distance code");

	/* No end-of-block code. */
	bw_init(&w);
	memset(lens, 0, sizeof(lens));
	lens['a'] = lens['b'] = 1;
	bw_dyn(&w, &d, 1, 257, 1, clens_all);
	bw_lens(&w, &d, lens, 257);
	bw_lens(&w, &d, d1, 1);
	bw_put(&w, 0, 16);
	expect(&w, 1, INSTAR_ERR_PARSE_FAILED, "no end-of-block code");
}

/* The literal/length lengths of a dynamic block, with runs: 18 (97 zeros),
 * 'a' = 1, 18 (138), 17 (10), 17 (10), EOB = 1. */
static void dyn_lit_zeros(struct bw *w, struct dyn *d, unsigned ndist)
{
	bw_dyn(w, d, 1, 257, ndist, clens_all);
	bw_clen(w, d, 18);
	bw_put(w, 97 - 11, 7);
	bw_clen(w, d, 1);
	bw_clen(w, d, 18);
	bw_put(w, 138 - 11, 7);
	bw_clen(w, d, 17);
	bw_put(w, 10 - 3, 3);
	bw_clen(w, d, 17);
	bw_put(w, 10 - 3, 3);
	bw_clen(w, d, 1);
}

static void test_dynamic_repeats(void **state)
{
	struct bw w;
	struct dyn d;
	uint8_t out[8];

	(void)state;
	/* 16 as the first code length: nothing to repeat. */
	bw_init(&w);
	bw_dyn(&w, &d, 1, 257, 1, clens_all);
	bw_clen(&w, &d, 16);
	bw_put(&w, 0, 2);
	bw_put(&w, 0, 300);
	expect(&w, 1, INSTAR_ERR_PARSE_FAILED, "repeat at start");

	/* After the 257 literal/length lengths, the distance lengths: one
	 * plain 1 per code is valid ("a" then EOB)... */
	for (unsigned ndist = 1; ndist <= 2; ndist++) {
		bw_init(&w);
		dyn_lit_zeros(&w, &d, ndist);
		for (unsigned i = 0; i < ndist; i++)
			bw_clen(&w, &d, 1);
		bw_code(&w, 0, 1); /* 'a' */
		bw_code(&w, 1, 1); /* EOB */
		assert_int_equal(dec_vs_zlib(w.b, bw_len(&w), 1, out), 0);
		assert_int_equal(out[0], 'a');
	}
	/* ...but a 17 (3+ zeros), 18 (11+) or 16 (3 copies) runs past the last
	 * length. */
	for (unsigned sym = 16; sym <= 18; sym++) {
		bw_init(&w);
		dyn_lit_zeros(&w, &d, 2);
		bw_clen(&w, &d, sym);
		bw_put(&w, 0, 7);
		bw_put(&w, 0, 16);
		expect(&w, 1, INSTAR_ERR_PARSE_FAILED, "repeat past the last length");
	}

	/* 'a' 1 bit, EOB and 257 2 bits: complete. Distances: a single 1-bit
	 * code (incomplete, which zlib allows). "a", match(3, 1), EOB. */
	bw_init(&w);
	{
		uint8_t lens[286 + 1] = {0};

		lens['a'] = 1;
		lens[256] = 2;
		lens[257] = 2;
		lens[286] = 1; /* distance code 0 */
		bw_dyn(&w, &d, 1, 286, 1, clens_all);
		bw_lens(&w, &d, lens, 287);
		/* codes: 'a' 0, 256 10, 257 11 */
		bw_code(&w, 0, 1);
		bw_code(&w, 3, 2);
		bw_code(&w, 0, 1); /* distance code 0: 1 */
		bw_code(&w, 2, 2);
	}
	assert_int_equal(dec_vs_zlib(w.b, bw_len(&w), 4, out), 0);
	assert_memory_equal(out, "aaaa", 4);
	/* The unused distance bit pattern is not a code. */
	bw_init(&w);
	{
		uint8_t lens[287] = {0};

		lens['a'] = 1;
		lens[256] = 2;
		lens[257] = 2;
		lens[286] = 1;
		bw_dyn(&w, &d, 1, 286, 1, clens_all);
		bw_lens(&w, &d, lens, 287);
		bw_code(&w, 0, 1);
		bw_code(&w, 3, 2);
		bw_code(&w, 1, 1); /* not a distance code */
		bw_code(&w, 2, 2);
	}
	expect(&w, 4, INSTAR_ERR_PARSE_FAILED, "unused code of a 1-code distance set");
}

/* Once full, zlib (and so qemu) still decodes up to the next byte due: a bad
 * symbol or header met first fails, running out of input does not. */
static void test_full_then(void **state)
{
	struct bw w;

	(void)state;
	bw_init(&w);
	bw_put(&w, 1, 1);
	bw_put(&w, 1, 2);
	bw_fixed(&w, 'a');
	bw_fixed(&w, 'b');
	assert_int_equal(dec_vs_zlib(w.b, bw_len(&w), 2, NULL), 0);
	bw_fixed(&w, 286);
	expect(&w, 2, INSTAR_ERR_PARSE_FAILED, "286 after the output filled");
	bw_init(&w);
	bw_put(&w, 1, 1);
	bw_put(&w, 1, 2);
	bw_fixed(&w, 'a');
	bw_fixed(&w, 'b');
	bw_fixed(&w, 'c');
	bw_fixed(&w, 286);
	expect(&w, 2, 0, "a literal due before 286");
	/* A match after the output filled: its distance code is decoded (30
	 * fails), but zlib looks for room before it checks how far back the
	 * distance reaches. */
	bw_init(&w);
	bw_put(&w, 1, 1);
	bw_put(&w, 1, 2);
	bw_fixed(&w, 'a');
	bw_fixed(&w, 257);
	bw_code(&w, 30, 5);
	expect(&w, 1, INSTAR_ERR_PARSE_FAILED, "distance code 30 after the output filled");
	bw_init(&w);
	bw_put(&w, 1, 1);
	bw_put(&w, 1, 2);
	bw_fixed(&w, 'a');
	bw_fixed(&w, 257);
	bw_code(&w, 1, 5);
	expect(&w, 1, 0, "far match after the output filled");
	expect(&w, 2, INSTAR_ERR_PARSE_FAILED, "far match with room");
	/* A match cut short by the output end is fine. */
	bw_init(&w);
	bw_put(&w, 1, 1);
	bw_put(&w, 1, 2);
	bw_fixed(&w, 'a');
	bw_fixed(&w, 285);
	bw_code(&w, 0, 5);
	expect(&w, 100, 0, "match cut by the output end");
}

/* plan_inflate_whole: the whole stream, how much it wrote and how much
 * input it took (a zlib trailer follows), for each level and strategy. */
static void test_whole(void **state)
{
	static const int levels[] = {0, 1, 6, 9};
	static const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FIXED, Z_HUFFMAN_ONLY};
	size_t n = 200 * KiB + 17, got, used;
	uint8_t *src = xmalloc(n), *out = xmalloc(n + 1), *z, *zt;

	(void)state;
	for (size_t i = 0; i < n; i++)
		src[i] = (uint8_t)(i < n / 2 ? i % 7 : (i * 2654435761u) >> 24);
	for (unsigned l = 0; l < 4; l++) {
		for (unsigned st = 0; st < 3; st++) {
			size_t zn = z_deflate(src, n, levels[l], -15, strategies[st], &z);

			/* trailing bytes are not taken */
			zt = xmalloc(zn + 4);
			memcpy(zt, z, zn);
			memset(zt + zn, 0xa5, 4);
			got = used = 0;
			assert_int_equal(
			    plan_inflate_whole(zt, zn + 4, out, n + 1, work, &got, &used), 0);
			assert_true(got == n && used == zn);
			assert_memory_equal(out, src, n);
			/* exactly the room it needs */
			assert_int_equal(plan_inflate_whole(z, zn, out, n, work, &got, &used), 0);
			assert_true(got == n && used == zn);
			/* a byte less room, or a byte less input: refused */
			assert_int_equal(plan_inflate_whole(z, zn, out, n - 1, work, &got, &used),
					 INSTAR_ERR_PARSE_FAILED);
			assert_int_equal(plan_inflate_whole(z, zn - 1, out, n, work, &got, &used),
					 INSTAR_ERR_PARSE_FAILED);
			free(zt);
			free(z);
		}
	}
	free(src);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_matrix),
	    cmocka_unit_test(test_roundtrip_small),
	    cmocka_unit_test(test_2mib),
	    cmocka_unit_test(test_qemu_cluster),
	    cmocka_unit_test(test_output_length),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_mutations_vs_zlib),
	    cmocka_unit_test(test_random_vs_zlib),
	    cmocka_unit_test(test_bad_block_type),
	    cmocka_unit_test(test_stored),
	    cmocka_unit_test(test_distance),
	    cmocka_unit_test(test_distance_32k),
	    cmocka_unit_test(test_invalid_lit_codes),
	    cmocka_unit_test(test_dynamic_header),
	    cmocka_unit_test(test_dynamic_repeats),
	    cmocka_unit_test(test_full_then),
	    cmocka_unit_test(test_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
