/* tests/unit/test_unzstd.c — the zstd decoder (guest/plan/unzstd.c) against
 * host libzstd as the encoder: exact round trips over sizes, data kinds,
 * levels and frame parameters, qemu's cluster shape, and truncated, corrupted
 * and hand-built frames that must fail cleanly. Inputs are copied into
 * exact-size heap buffers so the sanitizers see any read past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_c_targetCBlockSize */
#include <zstd.h>

#include "unzstd.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define FAIL INSTAR_ERR_PARSE_FAILED

static void *work;

/* ---- data ---- */

enum kind { K_RANDOM, K_ZEROS, K_TEXT, K_PATTERN, K_MIXED, K_COUNT };
static const char *const kind_name[K_COUNT] = {"random", "zeros", "text", "pattern", "mixed"};

static uint64_t rng(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static void fill_text(uint8_t *b, size_t n, uint64_t *s)
{
	static const char *const words[] = {
	    "the",   "of",	 "and",	    "qcow2",	"cluster", "image", "to",    "a",
	    "in",    "is",	 "zstd",    "frame",	"block",   "for",   "table", "offset",
	    "with",  "refcount", "l2",	    "size",	"header",  "that",  "guest", "resize",
	    "bytes", "not",	 "literal", "sequence", "window",  "on",    "be",    "data"};
	size_t i = 0, col = 0;

	while (i < n) {
		uint64_t r = rng(s);
		const char *w = words[(r >> 8) % (r & 1 ? 8 : 32)];
		size_t len = strlen(w);

		for (size_t k = 0; k < len && i < n; k++, col++)
			b[i++] = (uint8_t)w[k];
		if (i < n) {
			b[i++] = col > 70 ? '\n' : (r >> 20) % 11 == 0 ? ',' : ' ';
			col = col > 70 ? 0 : col + 1;
		}
	}
}

static void fill(uint8_t *b, size_t n, enum kind k, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;

	switch (k) {
	case K_RANDOM:
		for (size_t i = 0; i < n; i++)
			b[i] = (uint8_t)(rng(&s) >> 56);
		break;
	case K_ZEROS:
		memset(b, 0, n);
		break;
	case K_TEXT:
		fill_text(b, n, &s);
		break;
	case K_PATTERN: {
		/* A 37-byte record with a counter: long matches, repeat offsets. */
		for (size_t i = 0; i < n; i++) {
			size_t rec = i / 37, at = i % 37;

			b[i] = at < 4 ? (uint8_t)(rec >> (8 * at))
				      : (uint8_t)("PATTERN-record-"[at % 15]);
		}
		break;
	}
	case K_MIXED:
		/* Runs of everything, and copies of earlier runs far back. */
		for (size_t i = 0; i < n;) {
			size_t len = 1 + rng(&s) % (8 * KiB);
			unsigned what = (unsigned)(rng(&s) % 5);

			if (len > n - i)
				len = n - i;
			if (what == 4 && i > len) {
				size_t from = rng(&s) % (i - len);

				memmove(b + i, b + from, len);
			} else {
				fill(b + i, len, what == 3 ? K_TEXT : (enum kind)what, rng(&s));
			}
			i += len;
		}
		break;
	default:
		break;
	}
}

/* ---- encoding with libzstd ---- */

struct cparams {
	int level;
	int checksum;
	int no_csize;	   /* ZSTD_c_contentSizeFlag = 0 */
	int wlog;	   /* ZSTD_c_windowLog, 0: default */
	int target_cblock; /* ZSTD_c_targetCBlockSize, 0: off */
	size_t flush;	   /* > 0: ZSTD_e_flush after every this many bytes */
};

/* Compresses like qemu's qcow2_zstd_compress (ZSTD_compressStream2 with
 * ZSTD_e_end), optionally flushing along the way. Returns a malloc'ed frame. */
static uint8_t *compress(const uint8_t *src, size_t n, const struct cparams *p, size_t *ret_len)
{
	size_t cap = ZSTD_compressBound(n) + 1024 + (p->flush ? n / p->flush * 8 : 0), r;
	uint8_t *dst = malloc(cap);
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_outBuffer out = {dst, cap, 0};
	ZSTD_inBuffer in = {src, 0, 0};

	assert_non_null(dst);
	assert_non_null(c);
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, p->level)));
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, p->checksum)));
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, !p->no_csize)));
	if (p->wlog)
		assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, p->wlog)));
	if (p->target_cblock)
		assert_false(ZSTD_isError(
		    ZSTD_CCtx_setParameter(c, ZSTD_c_targetCBlockSize, p->target_cblock)));
	if (p->flush) {
		assert_false(ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(c, n)));
		while (in.size < n) {
			in.size = n - in.size > p->flush ? in.size + p->flush : n;
			do {
				r = ZSTD_compressStream2(c, &out, &in, ZSTD_e_flush);
				assert_false(ZSTD_isError(r));
				assert_true(out.pos < out.size);
			} while (r != 0);
		}
	}
	in.size = n;
	do {
		r = ZSTD_compressStream2(c, &out, &in, ZSTD_e_end);
		assert_false(ZSTD_isError(r));
		assert_true(r == 0 || out.pos < out.size);
	} while (r != 0);
	ZSTD_freeCCtx(c);
	*ret_len = out.pos;
	return dst;
}

/* Decodes in[0..len) (copied to an exact-size buffer) into a fresh n-byte
 * buffer pre-filled with junk; returns the result, output in *ret_out. */
static int decode(const uint8_t *in, size_t len, size_t n, uint8_t **ret_out)
{
	uint8_t *exact = malloc(len ? len : 1), *out = malloc(n ? n : 1);
	int rc;

	assert_non_null(exact);
	assert_non_null(out);
	if (len)
		memcpy(exact, in, len);
	memset(out, 0xa5, n);
	rc = plan_unzstd(exact, len, out, n, work);
	free(exact);
	if (ret_out)
		*ret_out = out;
	else
		free(out);
	return rc;
}

static void expect_roundtrip(const uint8_t *src, size_t n, const struct cparams *p,
			     const char *what)
{
	size_t clen;
	uint8_t *c = compress(src, n, p, &clen), *out;
	int rc = decode(c, clen, n, &out);

	if (rc != 0 || memcmp(out, src, n) != 0)
		fail_msg("%s: %zu bytes, level %d, checksum %d: rc %d, %s", what, n, p->level,
			 p->checksum, rc, rc ? "failed" : "output differs");
	free(out);
	free(c);
}

/* ---- walking a frame, to check what libzstd produced and to corrupt it ---- */

struct blk {
	size_t off; /* of the block header in the frame */
	size_t size;
	unsigned type;
};

struct walk {
	unsigned fhd;
	size_t hdr_len; /* magic + frame header */
	size_t nblk;
	size_t end; /* after the last block (where a checksum would start) */
	struct blk blk[8192];
};

static void walk_frame(const uint8_t *f, size_t len, struct walk *w)
{
	static const unsigned did[4] = {0, 1, 2, 4};
	unsigned fhd, fcs;
	size_t pos;
	uint32_t bh;

	assert_true(len >= 6);
	assert_int_equal(f[0] | f[1] << 8 | f[2] << 16 | (uint32_t)f[3] << 24, 0xfd2fb528u);
	fhd = f[4];
	fcs = fhd >> 6 ? 1u << (fhd >> 6) : (fhd >> 5) & 1;
	pos = 5 + !(fhd & 0x20) + did[fhd & 3] + fcs;
	w->fhd = fhd;
	w->hdr_len = pos;
	w->nblk = 0;
	do {
		assert_true(pos + 3 <= len);
		bh = f[pos] | f[pos + 1] << 8 | (uint32_t)f[pos + 2] << 16;
		assert_true(w->nblk < 8192);
		w->blk[w->nblk++] = (struct blk){pos, bh >> 3, (bh >> 1) & 3};
		pos += 3 + ((bh >> 1 & 3) == 1 ? 1 : bh >> 3);
	} while (!(bh & 1));
	w->end = pos;
}

static struct walk *walk_new(const uint8_t *f, size_t len)
{
	struct walk *w = malloc(sizeof(*w));

	assert_non_null(w);
	walk_frame(f, len, w);
	return w;
}

/* Bytes of the literals section header and of the whole section of the
 * compressed block whose content starts at b. */
static void lit_section(const uint8_t *b, unsigned *ret_type, size_t *ret_hsize, size_t *ret_size)
{
	unsigned type = b[0] & 3, fmt = b[0] >> 2 & 3;
	uint64_t h = 0;
	size_t hs;

	if (type < 2) {
		hs = fmt == 1 ? 2 : fmt == 3 ? 3 : 1;
		for (size_t i = 0; i < hs; i++)
			h |= (uint64_t)b[i] << (8 * i);
		*ret_size = hs + (type == 1 ? 1 : hs == 1 ? b[0] >> 3 : (size_t)(h >> 4));
	} else {
		unsigned wbits;

		hs = fmt < 2 ? 3 : fmt + 2;
		wbits = (unsigned)hs * 4 - 2;
		for (size_t i = 0; i < hs; i++)
			h |= (uint64_t)b[i] << (8 * i);
		*ret_size = hs + (size_t)((h >> (4 + wbits)) & ((1u << wbits) - 1));
	}
	*ret_type = type;
	*ret_hsize = hs;
}

/* ---- tests ---- */

static void test_roundtrip_matrix(void **state)
{
	static const size_t sizes[] = {512, 4 * KiB, 64 * KiB, 2 * MiB};
	static const int levels[] = {1, 3, 9, 19, -5};
	uint8_t *src = malloc(2 * MiB);
	unsigned n = 0;

	(void)state;
	assert_non_null(src);
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		for (int k = 0; k < K_COUNT; k++) {
			fill(src, sizes[si], (enum kind)k, si * 10 + (size_t)k);
			for (size_t li = 0; li < sizeof(levels) / sizeof(levels[0]); li++) {
				struct cparams p = {.level = levels[li],
						    .checksum = (int)(n++ & 1)};

				/* Level 19 on 2 MiB takes seconds for little news. */
				if (sizes[si] == 2 * MiB && levels[li] == 19 && k != K_MIXED &&
				    k != K_TEXT)
					continue;
				expect_roundtrip(src, sizes[si], &p, kind_name[k]);
			}
		}
	}
	free(src);
}

/* Sizes that leave every possible XXH64 tail (8-, 4- and 1-byte steps),
 * with the checksum on: a wrong XXH64 fails them all. */
static void test_checksum_sizes(void **state)
{
	static const size_t sizes[] = {1,    2,	   3,	 4,	5,	7,	8,	9,     12,
				       13,   15,   16,	 31,	32,	33,	39,	63,    100,
				       1000, 4095, 4097, 65537, 131071, 131072, 131073, 300001};
	uint8_t *src = malloc(300001);

	(void)state;
	assert_non_null(src);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (int k = 0; k < K_COUNT; k++) {
			struct cparams p = {.level = 3, .checksum = 1};

			fill(src, sizes[i], (enum kind)k, i);
			expect_roundtrip(src, sizes[i], &p, kind_name[k]);
		}
	}
	free(src);
}

static void test_no_content_size(void **state)
{
	static const size_t sizes[] = {512, 64 * KiB, 2 * MiB};
	uint8_t *src = malloc(2 * MiB);

	(void)state;
	assert_non_null(src);
	for (size_t i = 0; i < 3; i++) {
		for (int k = 0; k < K_COUNT; k++) {
			struct cparams p = {.level = 3, .checksum = k & 1, .no_csize = 1};
			size_t clen;
			uint8_t *c;

			fill(src, sizes[i], (enum kind)k, 100 + i);
			c = compress(src, sizes[i], &p, &clen);
			/* No FCS and no single segment: a window descriptor. */
			assert_int_equal(c[4] & 0xe0, 0);
			free(c);
			expect_roundtrip(src, sizes[i], &p, kind_name[k]);
		}
	}
	free(src);
}

static void test_small_window(void **state)
{
	static const int wlogs[] = {10, 11, 13, 16};
	static const int levels[] = {1, 3, 19};
	uint8_t *src = malloc(2 * MiB);

	(void)state;
	assert_non_null(src);
	for (size_t wi = 0; wi < 4; wi++) {
		for (size_t li = 0; li < 3; li++) {
			for (int k = K_TEXT; k <= K_MIXED; k++) {
				size_t n = levels[li] == 19 ? 256 * KiB : 2 * MiB;
				struct cparams p = {
				    .level = levels[li], .checksum = 1, .wlog = wlogs[wi]};
				size_t clen;
				uint8_t *c;

				fill(src, n, (enum kind)k, 200 + wi);
				c = compress(src, n, &p, &clen);
				assert_int_equal(c[4] & 0x20, 0); /* window descriptor */
				assert_int_equal(c[5], (wlogs[wi] - 10) << 3);
				free(c);
				expect_roundtrip(src, n, &p, kind_name[k]);
			}
		}
	}
	free(src);
}

static void test_many_blocks(void **state)
{
	static const size_t flushes[] = {97, 1000, 5000, 40000};
	uint8_t *src = malloc(2 * MiB);
	size_t clen;
	uint8_t *c;
	struct walk *w;

	(void)state;
	assert_non_null(src);
	for (int k = 0; k < K_COUNT; k++) {
		for (size_t fi = 0; fi < 4; fi++) {
			for (int level = 1; level <= 19; level += 9) {
				size_t n = fi == 0 ? 64 * KiB : 2 * MiB;
				struct cparams p = {
				    .level = level, .checksum = 1, .flush = flushes[fi]};

				if (level == 19 && n > 256 * KiB)
					n = 256 * KiB;
				fill(src, n, (enum kind)k, 300 + fi);
				c = compress(src, n, &p, &clen);
				w = walk_new(c, clen);
				assert_true(w->nblk >= n / flushes[fi]);
				free(w);
				free(c);
				expect_roundtrip(src, n, &p, kind_name[k]);
			}
		}
	}
	/* ZSTD_c_targetCBlockSize splits compressed blocks small. */
	for (int k = K_TEXT; k <= K_MIXED; k++) {
		struct cparams p = {.level = 3, .target_cblock = 256};

		fill(src, 2 * MiB, (enum kind)k, 400);
		c = compress(src, 2 * MiB, &p, &clen);
		w = walk_new(c, clen);
		assert_true(w->nblk > 2 * MiB / (128 * KiB));
		free(w);
		free(c);
		expect_roundtrip(src, 2 * MiB, &p, kind_name[k]);
	}
	free(src);
}

static void test_two_frames(void **state)
{
	uint8_t *a = malloc(64 * KiB), *b = malloc(64 * KiB), *cat, *out;
	struct cparams pa = {.level = 3, .checksum = 1}, pb = {.level = 19, .no_csize = 1};
	size_t la, lb;
	uint8_t *ca, *cb;

	(void)state;
	fill(a, 40 * KiB, K_TEXT, 1);
	memcpy(b, a, 24 * KiB); /* the same text: a match into frame one would be wrong */
	ca = compress(a, 40 * KiB, &pa, &la);
	cb = compress(b, 24 * KiB, &pb, &lb);
	cat = malloc(la + lb + 8);
	memcpy(cat, ca, la);
	memcpy(cat + la, cb, lb);
	assert_int_equal(decode(cat, la + lb, 64 * KiB, &out), 0);
	assert_memory_equal(out, a, 40 * KiB);
	assert_memory_equal(out + 40 * KiB, b, 24 * KiB);
	free(out);
	/* One byte more than both frames: out of input. */
	assert_int_equal(decode(cat, la + lb, 64 * KiB + 1, NULL), FAIL);
	/* Both frames with a skippable frame between them. */
	memcpy(cat + la, "\x5a\x2a\x4d\x18\x00\x00\x00\x00", 8);
	memcpy(cat + la + 8, cb, lb);
	assert_int_equal(decode(cat, la + lb + 8, 64 * KiB, &out), 0);
	assert_memory_equal(out + 40 * KiB, b, 24 * KiB);
	free(out);
	free(cat);
	free(ca);
	free(cb);
	free(a);
	free(b);
}

static void test_skippable_first(void **state)
{
	static const uint8_t skip[] = {0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'};
	uint8_t src[4096], *c, *buf, *out;
	struct cparams p = {.level = 3};
	size_t clen;

	(void)state;
	fill(src, sizeof(src), K_TEXT, 7);
	c = compress(src, sizeof(src), &p, &clen);
	buf = malloc(sizeof(skip) + clen);
	memcpy(buf, skip, sizeof(skip));
	memcpy(buf + sizeof(skip), c, clen);
	assert_int_equal(decode(buf, sizeof(skip) + clen, sizeof(src), &out), 0);
	assert_memory_equal(out, src, sizeof(src));
	free(out);
	/* Any of the sixteen skippable magics. */
	buf[0] = 0x5f;
	assert_int_equal(decode(buf, sizeof(skip) + clen, sizeof(src), NULL), 0);
	/* Not a magic at all. */
	buf[0] = 0x60;
	assert_int_equal(decode(buf, sizeof(skip) + clen, sizeof(src), NULL), FAIL);
	buf[0] = 0x50;
	/* A skippable size past the end of the input. */
	buf[4] = 0xff;
	assert_int_equal(decode(buf, sizeof(skip) + clen, sizeof(src), NULL), FAIL);
	/* Only a skippable frame: nothing fills out. */
	assert_int_equal(decode(skip, sizeof(skip), 1, NULL), FAIL);
	/* ...but a zero-byte out is filled by nothing. */
	assert_int_equal(decode(skip, sizeof(skip), 0, NULL), 0);
	free(buf);
	free(c);
}

/* What qemu reads for a compressed cluster: the frame, then whatever follows
 * up to the end of its last sector; out is exactly one cluster. */
static void test_qemu_shape(void **state)
{
	static const size_t clusters[] = {512, 4 * KiB, 64 * KiB, 2 * MiB};
	uint8_t *src = malloc(2 * MiB);

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		for (int k = 0; k < K_COUNT; k++) {
			size_t cs = clusters[i], clen, padded;
			struct cparams p = {.level = 3}; /* qemu: default level, no checksum */
			uint8_t *c, *buf, *out;

			fill(src, cs, (enum kind)k, 500 + i);
			c = compress(src, cs, &p, &clen);
			padded = (clen + 511) / 512 * 512 + 512;
			buf = calloc(1, padded);
			memcpy(buf, c, clen);
			assert_int_equal(decode(buf, padded, cs, &out), 0);
			assert_memory_equal(out, src, cs);
			free(out);
			/* Trailing garbage instead of zeros is ignored too. */
			memset(buf + clen, 0xff, padded - clen);
			assert_int_equal(decode(buf, padded, cs, NULL), 0);
			/* A cluster one byte smaller cannot hold the content... */
			assert_int_equal(decode(buf, padded, cs - 1, NULL), FAIL);
			/* ...and one byte larger is not filled by it. */
			assert_int_equal(decode(buf, padded, cs + 1, NULL), FAIL);
			free(buf);
			free(c);
		}
	}
	free(src);
}

static void test_bad_checksum(void **state)
{
	uint8_t *src = malloc(64 * KiB), *c, *out;
	struct cparams p = {.level = 1, .checksum = 1};
	size_t clen;
	struct walk *w;

	(void)state;
	fill(src, 64 * KiB, K_TEXT, 9);
	c = compress(src, 64 * KiB, &p, &clen);
	assert_int_equal(decode(c, clen, 64 * KiB, NULL), 0);
	for (size_t i = clen - 4; i < clen; i++) {
		c[i] ^= 0x10;
		assert_int_equal(decode(c, clen, 64 * KiB, NULL), FAIL);
		c[i] ^= 0x10;
	}
	free(c);

	/* Random data is stored in raw blocks: a flipped content byte decodes
	 * fine and only the checksum catches it. */
	fill(src, 64 * KiB, K_RANDOM, 9);
	c = compress(src, 64 * KiB, &p, &clen);
	w = walk_new(c, clen);
	assert_int_equal(w->blk[0].type, 0);
	c[w->blk[0].off + 3 + 100] ^= 1;
	assert_int_equal(decode(c, clen, 64 * KiB, NULL), FAIL);
	/* Without the checksum flag the same frame "succeeds", wrongly. */
	c[4] &= (uint8_t)~0x04;
	assert_int_equal(decode(c, clen - 4, 64 * KiB, &out), 0);
	assert_int_equal(out[100], src[100] ^ 1);
	free(out);
	free(w);
	free(c);
	free(src);
}

static void test_truncated(void **state)
{
	static const enum kind kinds[] = {K_TEXT, K_ZEROS, K_RANDOM, K_MIXED};
	uint8_t src[3000];

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		for (int chk = 0; chk <= 1; chk++) {
			struct cparams p = {.level = 3, .checksum = chk};
			size_t clen;
			uint8_t *c;

			fill(src, sizeof(src), kinds[i], 11);
			c = compress(src, sizeof(src), &p, &clen);
			assert_int_equal(decode(c, clen, sizeof(src), NULL), 0);
			for (size_t len = 0; len < clen; len++)
				if (decode(c, len, sizeof(src), NULL) != FAIL)
					fail_msg("%s: prefix of %zu of %zu bytes did not fail",
						 kind_name[kinds[i]], len, clen);
			free(c);
		}
	}
}

/* Rewrites the frame header of f in one of its other legal forms. */
static uint8_t *reheader(const uint8_t *f, size_t len, size_t content, int single, unsigned wd,
			 unsigned did_len, uint32_t did, unsigned fcs_len, size_t *ret_len)
{
	struct walk *w = walk_new(f, len);
	uint8_t *o = malloc(len + 32), fhd;
	size_t pos = 5;
	uint64_t fcs = content - (fcs_len == 2 ? 256 : 0);

	memcpy(o, f, 4);
	fhd = (uint8_t)(w->fhd & 0x04); /* keep the checksum flag */
	fhd |= (uint8_t)(single ? 0x20 : 0);
	fhd |= (uint8_t)(did_len == 4 ? 3 : did_len);
	fhd |= (uint8_t)((fcs_len == 8 ? 3 : fcs_len == 4 ? 2 : fcs_len == 2 ? 1 : 0) << 6);
	o[4] = fhd;
	if (!single)
		o[pos++] = (uint8_t)wd;
	for (unsigned i = 0; i < did_len; i++)
		o[pos++] = (uint8_t)(did >> (8 * i));
	for (unsigned i = 0; i < fcs_len; i++)
		o[pos++] = (uint8_t)(fcs >> (8 * i));
	memcpy(o + pos, f + w->hdr_len, len - w->hdr_len);
	*ret_len = pos + len - w->hdr_len;
	free(w);
	return o;
}

static void test_header_forms(void **state)
{
	uint8_t src[4096], *c, *h, *out;
	struct cparams p = {.level = 3, .checksum = 1};
	size_t clen, hlen;

	(void)state;
	fill(src, sizeof(src), K_TEXT, 13);
	c = compress(src, sizeof(src), &p, &clen);
	assert_int_equal(c[4] & 0x20, 0x20); /* libzstd: single segment, 2-byte FCS */

	struct {
		int single;
		unsigned wd, did_len, fcs_len;
		uint32_t did;
		int want;
	} forms[] = {
	    {1, 0, 0, 2, 0, 0},
	    {1, 0, 0, 4, 0, 0},
	    {1, 0, 0, 8, 0, 0},
	    {1, 0, 1, 2, 0, 0},
	    {1, 0, 2, 4, 0, 0},
	    {1, 0, 4, 8, 0, 0},
	    {0, 2 << 3, 0, 0, 0, 0},
	    {0, 2 << 3, 0, 2, 0, 0},
	    {0, 2 << 3, 4, 8, 0, 0},
	    {0, 17 << 3, 0, 0, 0, 0}, /* 128 MiB: libzstd's default limit */
	    {0, 17 << 3 | 1, 0, 0, 0, FAIL},
	    {0, 31 << 3 | 7, 0, 0, 0, FAIL},
	    {1, 0, 1, 2, 7, FAIL},
	    {1, 0, 4, 2, 1u << 31, FAIL},   /* dictionaries */
	    {0, 1 << 3 | 7, 0, 2, 0, FAIL}, /* a 3.75 KiB window: 4 KiB blocks */
	};
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		h = reheader(c, clen, sizeof(src), forms[i].single, forms[i].wd, forms[i].did_len,
			     forms[i].did, forms[i].fcs_len, &hlen);
		out = NULL;
		if (decode(h, hlen, sizeof(src), &out) != forms[i].want)
			fail_msg("header form %zu: not %d", i, forms[i].want);
		if (forms[i].want == 0)
			assert_memory_equal(out, src, sizeof(src));
		free(out);
		free(h);
	}
	/* Frame content size other than what the blocks hold. */
	h = reheader(c, clen, sizeof(src) - 1, 1, 0, 0, 0, 2, &hlen);
	assert_int_equal(decode(h, hlen, sizeof(src), NULL), FAIL);
	free(h);
	h = reheader(c, clen, sizeof(src) + 1, 1, 0, 0, 0, 2, &hlen);
	assert_int_equal(decode(h, hlen, sizeof(src) + 1, NULL), FAIL);
	free(h);
	/* The reserved bit fails; the unused bit does not. */
	c[4] |= 0x08;
	assert_int_equal(decode(c, clen, sizeof(src), NULL), FAIL);
	c[4] ^= 0x18;
	assert_int_equal(decode(c, clen, sizeof(src), NULL), 0);
	c[4] &= (uint8_t)~0x10;
	free(c);
}

static void test_corrupt_blocks(void **state)
{
	uint8_t *src = malloc(64 * KiB), *c;
	struct cparams p = {.level = 3};
	size_t clen, hs, lsize;
	unsigned lt;
	struct walk *w;
	uint32_t bh;

	(void)state;
	fill(src, 64 * KiB, K_TEXT, 17);
	c = compress(src, 64 * KiB, &p, &clen);
	w = walk_new(c, clen);
	assert_int_equal(w->blk[0].type, 2);
	/* Reserved block type. */
	c[w->blk[0].off] |= 6;
	assert_int_equal(decode(c, clen, 64 * KiB, NULL), FAIL);
	c[w->blk[0].off] ^= 2;
	assert_int_equal(decode(c, clen, 64 * KiB, NULL), 0);

	/* A block larger than the 128 KiB maximum, even with input for it. */
	{
		size_t big = 128 * KiB + 1, n;
		uint8_t *f = calloc(1, big + 64), *rnd = malloc(big);

		fill(rnd, big, K_RANDOM, 1);
		memcpy(f, "\x28\xb5\x2f\xfd\x00\x40", 6); /* no FCS, 256 KiB window */
		n = 6;
		bh = (uint32_t)(1 | 0 << 1 | big << 3);
		f[n++] = (uint8_t)bh;
		f[n++] = (uint8_t)(bh >> 8);
		f[n++] = (uint8_t)(bh >> 16);
		memcpy(f + n, rnd, big);
		assert_int_equal(decode(f, n + big, big, NULL), FAIL);
		/* The same with the block at exactly the maximum is fine. */
		bh = (uint32_t)(1 | 0 << 1 | (big - 1) << 3);
		f[6] = (uint8_t)bh;
		f[7] = (uint8_t)(bh >> 8);
		f[8] = (uint8_t)(bh >> 16);
		assert_int_equal(decode(f, n + big - 1, big - 1, NULL), 0);
		free(f);
		free(rnd);
	}

	/* Bad accuracy logs: the Huffman weights' FSE table (max 6) and the
	 * first FSE-compressed sequence table (max 9 or 8). */
	{
		const uint8_t *b = c + w->blk[0].off + 3;
		size_t at;
		unsigned modes, kind;
		int found = 0;

		lit_section(b, &lt, &hs, &lsize);
		assert_int_equal(lt, 2);
		if (b[hs] < 128) {
			uint8_t save = c[w->blk[0].off + 3 + hs + 1];

			c[w->blk[0].off + 3 + hs + 1] = (uint8_t)((save & 0xf0) | 2); /* log 7 */
			assert_int_equal(decode(c, clen, 64 * KiB, NULL), FAIL);
			c[w->blk[0].off + 3 + hs + 1] = save;
			found++;
		}
		at = lsize;
		at += b[at] < 128 ? 1 : b[at] < 255 ? 2 : 3;
		modes = b[at++];
		for (kind = 0; kind < 3; kind++) {
			unsigned m = modes >> (6 - 2 * kind) & 3;

			if (m == 2)
				break;
			assert_true(m != 3);
			at += m == 1;
		}
		if (kind < 3) {
			uint8_t save = b[at];

			c[w->blk[0].off + 3 + at] = (uint8_t)(save | 0x0f); /* log 20 */
			assert_int_equal(decode(c, clen, 64 * KiB, NULL), FAIL);
			c[w->blk[0].off + 3 + at] = (uint8_t)((save & 0xf0) | 4); /* log 9 */
			if (kind == 1) /* offsets allow 8 */
				assert_int_equal(decode(c, clen, 64 * KiB, NULL), FAIL);
			c[w->blk[0].off + 3 + at] = save;
			found++;
		}
		assert_int_equal(found, 2);
		assert_int_equal(decode(c, clen, 64 * KiB, NULL), 0);
	}
	/* Reserved bits of the compression modes byte. */
	{
		const uint8_t *b = c + w->blk[0].off + 3;
		size_t at;

		lit_section(b, &lt, &hs, &lsize);
		at = lsize + (b[lsize] < 128 ? 1 : b[lsize] < 255 ? 2 : 3);
		c[w->blk[0].off + 3 + at] |= 1;
		assert_int_equal(decode(c, clen, 64 * KiB, NULL), FAIL);
		c[w->blk[0].off + 3 + at] &= (uint8_t)~1;
	}
	/* A zero last byte of the sequence bitstream (no end marker). */
	{
		size_t last = w->blk[0].off + 3 + w->blk[0].size - 1;
		uint8_t save = c[last];

		c[last] = 0;
		assert_int_equal(decode(c, clen, 64 * KiB, NULL), FAIL);
		c[last] = save;
	}
	free(w);
	free(c);
	free(src);
}

/* Hand-built frames: no FCS, a 1 KiB window, one compressed block. */
static size_t hand_frame(uint8_t *f, const uint8_t *blk, size_t blen)
{
	uint32_t bh = (uint32_t)(1 | 2 << 1 | blen << 3);

	memcpy(f, "\x28\xb5\x2f\xfd\x00\x00", 6);
	f[6] = (uint8_t)bh;
	f[7] = (uint8_t)(bh >> 8);
	f[8] = (uint8_t)(bh >> 16);
	memcpy(f + 9, blk, blen);
	return 9 + blen;
}

static void test_hand_built(void **state)
{
	/* Raw literals "abc", one sequence, RLE tables: LL code 3, OF code
	 * 2 (two extra bits), ML code 0 (3). The bitstream byte holds the
	 * offset bits under its end marker. */
	uint8_t blk[] = {0x18, 'a', 'b', 'c', 0x01, 0x54, 3, 2, 0, 0x06};
	uint8_t f[64], *out;
	size_t n;

	(void)state;
	n = hand_frame(f, blk, sizeof(blk));
	assert_int_equal(decode(f, n, 6, &out), 0);
	assert_memory_equal(out, "abcabc", 6);
	free(out);
	/* As a single-segment frame of 6 bytes, the window and so the block
	 * maximum is 6 bytes: a 10-byte compressed block is too large. */
	f[4] = 0x20;
	f[5] = 6;
	assert_int_equal(decode(f, n, 6, NULL), FAIL);
	/* Offset value 7: offset 4, one byte before the frame's start. */
	blk[9] = 0x07;
	n = hand_frame(f, blk, sizeof(blk));
	assert_int_equal(decode(f, n, 6, NULL), FAIL);
	/* OF code 5, offset value 32: offset 29. */
	blk[7] = 5;
	blk[9] = 0x20;
	n = hand_frame(f, blk, sizeof(blk));
	assert_int_equal(decode(f, n, 6, NULL), FAIL);
	/* Offset 3 again, but the bitstream has a spare bit left over. */
	blk[7] = 2;
	blk[9] = 0x0c;
	n = hand_frame(f, blk, sizeof(blk));
	assert_int_equal(decode(f, n, 6, NULL), FAIL);
	/* Offset value 1 (repeat 1 = 1 at the frame's start): "abccc". */
	blk[7] = 0;
	blk[9] = 0x01;
	n = hand_frame(f, blk, sizeof(blk));
	assert_int_equal(decode(f, n, 6, &out), 0);
	assert_memory_equal(out, "abcccc", 6);
	free(out);
	/* A raw block "abcd", then a block of no literals and one match:
	 * with no literals, offset value 1 means repeat 2 (4, initially)
	 * and 3 means repeat 1 minus one (0: invalid). */
	{
		uint8_t b0[] = {0x28, 0xb5, 0x2f, 0xfd, 0x20, 7,    0x20, 0, 0, 'a', 'b', 'c',
				'd',  0x3d, 0,	  0,	0x00, 0x01, 0x54, 0, 0, 0,   0x01};

		assert_int_equal(decode(b0, sizeof(b0), 7, &out), 0);
		assert_memory_equal(out, "abcdabc", 7);
		free(out);
		b0[20] = 1; /* OF code 1 and one bit: offset value 3 */
		b0[22] = 0x03;
		assert_int_equal(decode(b0, sizeof(b0), 7, NULL), FAIL);
		b0[22] = 0x02; /* offset value 2: repeat 3 (8), before the start */
		assert_int_equal(decode(b0, sizeof(b0), 7, NULL), FAIL);
	}
	/* RLE literals "zzzz" then a match of 3 at offset 4 (repeat 2). */
	{
		uint8_t b1[] = {0x21, 'z', 0x01, 0x54, 4, 1, 0, 0x02};

		n = hand_frame(f, b1, sizeof(b1));
		assert_int_equal(decode(f, n, 7, &out), 0);
		assert_memory_equal(out, "zzzzzzz", 7);
		free(out);
	}
	/* Literals only (no sequences), and then a stray byte after the count. */
	{
		uint8_t b2[] = {0x18, 'x', 'y', 'z', 0x00, 0x00};

		n = hand_frame(f, b2, 5);
		assert_int_equal(decode(f, n, 3, &out), 0);
		assert_memory_equal(out, "xyz", 3);
		free(out);
		n = hand_frame(f, b2, 6);
		assert_int_equal(decode(f, n, 3, NULL), FAIL);
	}
	/* Treeless literals and Repeat tables in a frame's first block. */
	{
		uint8_t b3[] = {0x03, 0x00, 0x00, 0x00};
		uint8_t b4[] = {0x18, 'a', 'b', 'c', 0x01, 0xfc, 0x06};

		n = hand_frame(f, b3, sizeof(b3));
		assert_int_equal(decode(f, n, 3, NULL), FAIL);
		n = hand_frame(f, b4, sizeof(b4));
		assert_int_equal(decode(f, n, 6, NULL), FAIL);
	}
	/* Huffman literals with directly given weights: symbol 0 weight 1,
	 * symbol 1 (implied) weight 1, one bit each; the stream 0x16 holds
	 * 0,1,1,0 under its end marker. */
	{
		uint8_t b7[] = {0x42, 0xc0, 0x00, 0x80, 0x10, 0x16, 0x00};

		n = hand_frame(f, b7, sizeof(b7));
		assert_int_equal(decode(f, n, 4, &out), 0);
		assert_memory_equal(out, "\0\1\1\0", 4);
		free(out);
		/* Weight 2 and the implied 2: a valid code of two 1-bit
		 * codes, but the spec requires a weight-1 symbol. */
		b7[4] = 0x20;
		n = hand_frame(f, b7, sizeof(b7));
		assert_int_equal(decode(f, n, 4, NULL), FAIL);
		/* Weight 3 and the implied 3: the same. */
		b7[4] = 0x30;
		n = hand_frame(f, b7, sizeof(b7));
		assert_int_equal(decode(f, n, 4, NULL), FAIL);
		/* The stream one bit short of four symbols. */
		b7[4] = 0x10;
		b7[5] = 0x0b;
		n = hand_frame(f, b7, sizeof(b7));
		assert_int_equal(decode(f, n, 4, NULL), FAIL);
	}
	/* Four streams (the same code) for 6 literals: 2, 2, 2 and 0 of them
	 * after the jump table; 5 literals cannot be split that way. */
	{
		uint8_t b8[] = {0x66, 0x00, 0x03, 0x80, 0x10, 1,    0,	  1,
				0,    1,    0,	  0x05, 0x05, 0x05, 0x01, 0x00};

		n = hand_frame(f, b8, sizeof(b8));
		assert_int_equal(decode(f, n, 6, &out), 0);
		assert_memory_equal(out, "\0\1\0\1\0\1", 6);
		free(out);
		b8[0] = 0x56;
		n = hand_frame(f, b8, sizeof(b8));
		assert_int_equal(decode(f, n, 5, NULL), FAIL);
	}
	/* An RLE table symbol beyond the largest code (LL 35). */
	{
		uint8_t b5[] = {0x18, 'a', 'b', 'c', 0x01, 0x54, 36, 2, 0, 0x06};

		n = hand_frame(f, b5, sizeof(b5));
		assert_int_equal(decode(f, n, 6, NULL), FAIL);
	}
	/* A raw-literals Regenerated_Size past the block (2-byte header). */
	{
		uint8_t b6[] = {0x04 | 0xf0, 0x7f, 'a', 0x00};

		n = hand_frame(f, b6, sizeof(b6));
		assert_int_equal(decode(f, n, 3, NULL), FAIL);
	}
}

/* Small alphabets make libzstd describe Huffman weights directly (4 bits
 * each) rather than FSE-compressed. */
static void test_small_alphabet(void **state)
{
	static const unsigned alphabets[] = {2, 3, 6, 16, 61, 128, 201};
	uint8_t *src = malloc(64 * KiB);
	unsigned direct = 0;

	(void)state;
	for (size_t ai = 0; ai < sizeof(alphabets) / sizeof(alphabets[0]); ai++) {
		for (int level = 1; level <= 19; level += 9) {
			struct cparams p = {.level = level, .checksum = 1};
			uint64_t r = ai + 1;
			size_t clen;
			uint8_t *c;
			struct walk *w;

			for (size_t i = 0; i < 64 * KiB; i++) {
				uint64_t v = rng(&r);

				/* Skewed (geometric) for even ones, uniform for odd. */
				v = ai & 1 ? v % alphabets[ai]
					   : (uint64_t)__builtin_ctzll(v | 1ull << 63);
				src[i] = (uint8_t)(v < alphabets[ai] ? v : alphabets[ai] - 1);
			}
			c = compress(src, 64 * KiB, &p, &clen);
			w = walk_new(c, clen);
			for (size_t b = 0; b < w->nblk; b++) {
				const uint8_t *blk = c + w->blk[b].off + 3;
				unsigned lt;
				size_t hs, ls;

				if (w->blk[b].type != 2)
					continue;
				lit_section(blk, &lt, &hs, &ls);
				if (lt == 2 && blk[hs] >= 128)
					direct++;
			}
			free(w);
			free(c);
			expect_roundtrip(src, 64 * KiB, &p, "small alphabet");
		}
	}
	assert_true(direct > 0);
	free(src);
}

/* More than 0x7f00 sequences in one block (the 3-byte count), all of them
 * repeat offsets with no literals: they alternate between 4 and 1. */
static void test_many_sequences(void **state)
{
	uint8_t f[] = {0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38, 0x20, 0,    0, 'a', 'b', 'c', 'd',
		       0x4d, 0,	   0,	 0x00, 0xff, 0x00, 0x00, 0x54, 0, 0,   0,   0x01};
	size_t n = 4 + 0x7f00 * 3, rep[2] = {1, 4};
	uint8_t *want = malloc(n), *out;

	(void)state;
	memcpy(want, "abcd", 4);
	for (size_t at = 4; at < n; at += 3) {
		size_t off = rep[1];

		rep[1] = rep[0];
		rep[0] = off;
		for (size_t k = 0; k < 3; k++)
			want[at + k] = want[at + k - off];
	}
	assert_int_equal(decode(f, sizeof(f), n, &out), 0);
	assert_memory_equal(out, want, n);
	free(out);
	/* 0xffff + 0x7f00 sequences: 294141 bytes, more than a block. */
	f[18] = 0xff;
	f[19] = 0xff;
	assert_int_equal(decode(f, sizeof(f), 4 + 0x17eff * 3, NULL), FAIL);
	/* The 2-byte count: 0x100 sequences. */
	f[17] = 0x81;
	f[18] = 0x00;
	memmove(f + 19, f + 20, 5);
	f[13] = 0x45; /* the block is a byte shorter */
	assert_int_equal(decode(f, sizeof(f) - 1, 4 + 0x100 * 3, &out), 0);
	assert_memory_equal(out, want, 4 + 0x100 * 3);
	free(out);
	free(want);
}

static void test_random_corruption(void **state)
{
	uint8_t *src = malloc(64 * KiB), *c, *m, *out = malloc(64 * KiB);
	struct cparams p = {.level = 19, .checksum = 1};
	uint64_t s = 42;
	size_t clen;
	unsigned ok = 0, failed = 0;

	(void)state;
	fill(src, 64 * KiB, K_MIXED, 21);
	c = compress(src, 64 * KiB, &p, &clen);
	m = malloc(clen);
	for (int i = 0; i < 4000; i++) {
		size_t len = clen;
		int rc;

		memcpy(m, c, clen);
		for (int k = 0; k < 1 + i % 3; k++)
			m[rng(&s) % clen] ^= (uint8_t)(1 + rng(&s) % 255);
		if (i % 7 == 0)
			len = rng(&s) % clen;
		rc = plan_unzstd(m, len, out, 64 * KiB, work);
		if (rc == 0) {
			/* With the checksum checked, success means the data. */
			assert_memory_equal(out, src, 64 * KiB);
			ok++;
		} else {
			assert_int_equal(rc, FAIL);
			failed++;
		}
	}
	assert_true(failed > 3000);
	(void)ok;
	free(m);
	free(c);
	free(out);
	free(src);
}

static void test_args(void **state)
{
	uint8_t src[600], *c, *out = malloc(600);
	struct cparams p = {.level = 3};
	size_t clen;

	(void)state;
	fill(src, sizeof(src), K_TEXT, 1);
	c = compress(src, sizeof(src), &p, &clen);
	assert_int_equal(plan_unzstd(c, clen, out, 600, work), 0);
	assert_int_equal(plan_unzstd(c, clen, out, 600, (uint8_t *)work + 4), INSTAR_ERR_INTERNAL);
	assert_int_equal(plan_unzstd(c, clen, out, 600, NULL), INSTAR_ERR_INTERNAL);
	assert_int_equal(plan_unzstd(NULL, 0, NULL, 0, work), 0);
	assert_int_equal(plan_unzstd(NULL, 0, out, 1, work), FAIL);
	free(c);
	free(out);
}

/* 2 MiB clusters (the largest) decode to the same bytes. How fast is no
 * verdict: a unit test checks results only. */
static void test_2mib(void **state)
{
	static const struct {
		enum kind k;
		int level;
	} cases[] = {{K_TEXT, 3}, {K_TEXT, 19}, {K_MIXED, 3}, {K_RANDOM, 3}, {K_PATTERN, 3}};
	uint8_t *src = malloc(2 * MiB), *out = malloc(2 * MiB);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cparams p = {.level = cases[i].level, .checksum = 1};
		size_t clen;
		uint8_t *c;

		fill(src, 2 * MiB, cases[i].k, 31);
		c = compress(src, 2 * MiB, &p, &clen);
		assert_int_equal(plan_unzstd(c, clen, out, 2 * MiB, work), 0);
		assert_memory_equal(out, src, 2 * MiB);
		free(c);
	}
	free(src);
	free(out);
}

static int setup(void **state)
{
	(void)state;
	work = aligned_alloc(8, PLAN_UNZSTD_WORK_SIZE);
	return work ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	free(work);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_matrix),
	    cmocka_unit_test(test_checksum_sizes),
	    cmocka_unit_test(test_no_content_size),
	    cmocka_unit_test(test_small_window),
	    cmocka_unit_test(test_many_blocks),
	    cmocka_unit_test(test_two_frames),
	    cmocka_unit_test(test_skippable_first),
	    cmocka_unit_test(test_qemu_shape),
	    cmocka_unit_test(test_bad_checksum),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_header_forms),
	    cmocka_unit_test(test_corrupt_blocks),
	    cmocka_unit_test(test_hand_built),
	    cmocka_unit_test(test_small_alphabet),
	    cmocka_unit_test(test_many_sequences),
	    cmocka_unit_test(test_random_corruption),
	    cmocka_unit_test(test_args),
	    cmocka_unit_test(test_2mib),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
