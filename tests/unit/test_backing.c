/* tests/unit/test_backing.c — guest/plan/backing.c: the backing chain read
 * as an image sees it. qcow2 images are built here byte by byte (small
 * clusters), zlib deflates the compressed cluster. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "backing.h"
#include "plan_testlib.h"

#define CB 9u /* 512-byte clusters: 64 L2 entries, 32 KiB per L2 table */
#define CS (1u << CB)
#define IMG_MAX (64u * 1024)

static uint8_t scratch_mem[8u << 20];

struct q2 {
	uint8_t b[IMG_MAX];
	struct ptl_img img;
	uint32_t cb, next; /* next free cluster */
	bool ext;
};

/* A v3 qcow2 image of size bytes: L1 (one entry) at cluster 1, L2 at 2. */
static void q2_init(struct q2 *q, uint32_t cb, uint64_t size, bool backing, bool ext)
{
	uint64_t cs = 1ull << cb;

	memset(q, 0, sizeof(*q));
	q->cb = cb;
	q->ext = ext;
	put_be32(q->b, 0x514649fb);
	put_be32(q->b + 4, 3);
	if (backing) {
		put_be64(q->b + 8, 0x100);
		put_be32(q->b + 16, 4);
		memcpy(q->b + 0x100, "base", 4);
	}
	put_be32(q->b + 20, cb);
	put_be64(q->b + 24, size);
	put_be32(q->b + 36, 1);
	put_be64(q->b + 40, cs);
	put_be64(q->b + 72, ext ? 1u << 4 : 0);
	put_be32(q->b + 96, 4);
	put_be32(q->b + 100, 112);
	put_be64(q->b + cs, 2 * cs);
	q->next = 3;
	q->img = (struct ptl_img){.b = q->b, .len = 3 * cs};
}

static uint8_t *q2_entry(struct q2 *q, uint64_t g)
{
	uint64_t cs = 1ull << q->cb;

	return q->b + 2 * cs + g * (q->ext ? 16 : 8);
}

/* Guest cluster g mapped to a new data cluster filled with byte v. */
static uint64_t q2_data(struct q2 *q, uint64_t g, uint8_t v, uint64_t w1)
{
	uint64_t cs = 1ull << q->cb, host = q->next++ * cs;

	assert_true(host + cs <= IMG_MAX);
	memset(q->b + host, v, cs);
	put_be64(q2_entry(q, g), host | (1ull << 63));
	if (q->ext)
		put_be64(q2_entry(q, g) + 8, w1);
	q->img.len = host + cs;
	return host;
}

static struct plan_scratch sc;

static void chain(struct plan_backing *b, int n, ...)
{
	va_list ap;

	plan_scratch_init(&sc, scratch_mem, sizeof(scratch_mem));
	plan_backing_init(b, &sc);
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		uint32_t fmt = va_arg(ap, uint32_t);
		struct ptl_img *m = va_arg(ap, struct ptl_img *);

		assert_int_equal(plan_backing_add(b, fmt, m->len, ptl_img_read, m), 0);
	}
	va_end(ap);
}

static void assert_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			fail_msg("byte %zu is 0x%02x, not 0x%02x", i, p[i], v);
}

static void test_raw(void **state)
{
	static uint8_t raw[3000];
	struct ptl_img m = {.b = raw, .len = sizeof(raw)};
	struct plan_backing b;
	uint8_t buf[2048];

	(void)state;
	memset(raw, 0x5a, sizeof(raw));
	chain(&b, 1, INSTAR_FMT_RAW, &m);
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(plan_backing_read(&b, 2000, buf, sizeof(buf)), 0);
	assert_bytes(buf, 1000, 0x5a);
	assert_bytes(buf + 1000, 1048, 0); /* past its end */
	assert_int_equal(plan_backing_read(&b, 1ull << 40, buf, 16), 0);
	assert_bytes(buf, 16, 0);
	m.fail_read = true;
	assert_int_equal(plan_backing_read(&b, 0, buf, 16), -5);
}

/* qcow2 over raw: data, zero flag, unallocated (raw's bytes), past its size
 * (zeros even though the raw file is longer), no L2 table (raw). */
static void test_qcow2_over_raw(void **state)
{
	static uint8_t raw[64 * 1024];
	static struct q2 q;
	struct ptl_img m = {.b = raw, .len = sizeof(raw)};
	struct plan_backing b;
	uint8_t buf[4 * CS];

	(void)state;
	memset(raw, 0x11, sizeof(raw));
	q2_init(&q, CB, 10 * CS + 512, true, false);
	q2_data(&q, 1, 0x22, 0);
	put_be64(q2_entry(&q, 2), 1); /* zero */
	chain(&b, 2, INSTAR_FMT_QCOW2, &q.img, INSTAR_FMT_RAW, &m);
	assert_int_equal(plan_backing_read(&b, 0, buf, 4 * CS), 0);
	assert_bytes(buf, CS, 0x11);
	assert_bytes(buf + CS, CS, 0x22);
	assert_bytes(buf + 2 * CS, CS, 0);
	assert_bytes(buf + 3 * CS, CS, 0x11);
	assert_int_equal(plan_backing_read(&b, 10 * CS + 256, buf, 2 * CS), 0);
	assert_bytes(buf, 256, 0x11);
	assert_bytes(buf + 256, 2 * CS - 256, 0); /* past the qcow2 size */
	/* unallocated without a backing file of its own: zeros */
	put_be64(q.b + 8, 0);
	chain(&b, 1, INSTAR_FMT_QCOW2, &q.img);
	assert_int_equal(plan_backing_read(&b, 0, buf, 2 * CS), 0);
	assert_bytes(buf, CS, 0);
	assert_bytes(buf + CS, CS, 0x22);
	/* it has one, but the chain does not hold it: refused */
	put_be64(q.b + 8, 0x100);
	chain(&b, 1, INSTAR_FMT_QCOW2, &q.img);
	assert_int_equal(plan_backing_read(&b, CS, buf, CS), 0);
	assert_int_equal(plan_backing_read(&b, 0, buf, CS), -ENOTSUP);
	/* no chain at all */
	chain(&b, 0);
	assert_int_equal(plan_backing_read(&b, 0, buf, CS), -ENOTSUP);
}

/* qcow2 over qcow2 over raw, as iotest 274 (and a fourth level refused). */
static void test_qcow2_chain(void **state)
{
	static uint8_t raw[64 * 1024];
	static struct q2 mid, top;
	struct ptl_img m = {.b = raw, .len = sizeof(raw)};
	struct plan_backing b;
	uint8_t buf[3 * CS];

	(void)state;
	memset(raw, 0x33, sizeof(raw));
	q2_init(&top, CB, 16 * CS, true, false);
	q2_init(&mid, CB, 16 * CS, true, false);
	q2_data(&mid, 0, 0x44, 0);
	q2_data(&top, 2, 0x55, 0);
	chain(&b, 3, INSTAR_FMT_QCOW2, &top.img, INSTAR_FMT_QCOW2, &mid.img, INSTAR_FMT_RAW, &m);
	assert_int_equal(plan_backing_read(&b, 0, buf, 3 * CS), 0);
	assert_bytes(buf, CS, 0x44);
	assert_bytes(buf + CS, CS, 0x33);
	assert_bytes(buf + 2 * CS, CS, 0x55);
	assert_int_equal(plan_backing_add(&b, INSTAR_FMT_RAW, 0, ptl_img_read, &m), 0);
	assert_int_equal(plan_backing_add(&b, INSTAR_FMT_RAW, 0, ptl_img_read, &m), -EINVAL);
	assert_int_equal(plan_backing_add(&b, INSTAR_FMT_VMDK, 0, ptl_img_read, &m), -EINVAL);
}

/* Extended L2 (16 KiB clusters, 512-byte subclusters): allocated, zero and
 * unallocated subclusters of one cluster. */
static void test_ext_l2(void **state)
{
	static uint8_t raw[64 * 1024];
	static struct q2 q;
	struct ptl_img m = {.b = raw, .len = sizeof(raw)};
	struct plan_backing b;
	uint8_t buf[3 * 512];

	(void)state;
	memset(raw, 0x66, sizeof(raw));
	q2_init(&q, 14, 16384, true, true);
	q.img.len = 3 * 16384;
	/* subcluster 0 allocated, 1 zero, 2 unallocated */
	q2_data(&q, 0, 0x77, 1ull | (1ull << 33));
	chain(&b, 2, INSTAR_FMT_QCOW2, &q.img, INSTAR_FMT_RAW, &m);
	assert_int_equal(plan_backing_read(&b, 0, buf, sizeof(buf)), 0);
	assert_bytes(buf, 512, 0x77);
	assert_bytes(buf + 512, 512, 0);
	assert_bytes(buf + 1024, 512, 0x66);
}

/* Issue 19 (fuzz_backing): a standard L2 entry with the zero flag and a
 * host offset (what `qemu-io -c 'write -z'` leaves over an allocated
 * cluster: qemu's QCOW2_CLUSTER_ZERO_ALLOC) reads as zeros, not as the
 * stale bytes of that cluster nor its backing file's. */
static void test_zero_alloc(void **state)
{
	static uint8_t raw[64 * 1024];
	static struct q2 q;
	struct ptl_img m = {.b = raw, .len = sizeof(raw)};
	struct plan_backing b;
	uint8_t buf[3 * CS];
	uint64_t host;

	(void)state;
	memset(raw, 0x11, sizeof(raw));
	q2_init(&q, CB, 8 * CS, true, false);
	host = q2_data(&q, 1, 0x22, 0);
	put_be64(q2_entry(&q, 1), host | (1ull << 63) | 1);
	chain(&b, 2, INSTAR_FMT_QCOW2, &q.img, INSTAR_FMT_RAW, &m);
	assert_int_equal(plan_backing_read(&b, 0, buf, 3 * CS), 0);
	assert_bytes(buf, CS, 0x11);
	assert_bytes(buf + CS, CS, 0);
	assert_bytes(buf + 2 * CS, CS, 0x11);
	/* an unaligned one: test_hostile */
}

/* Extended L2: a subcluster both allocated and zero is corrupt (qemu's
 * QCOW2_SUBCLUSTER_INVALID), not read as either. */
static void test_ext_l2_invalid(void **state)
{
	static uint8_t raw[64 * 1024];
	static struct q2 q;
	struct ptl_img m = {.b = raw, .len = sizeof(raw)};
	struct plan_backing b;
	uint8_t buf[512];

	(void)state;
	memset(raw, 0x66, sizeof(raw));
	q2_init(&q, 14, 16384, true, true);
	q.img.len = 3 * 16384;
	/* subcluster 0 allocated, 1 allocated and zero */
	q2_data(&q, 0, 0x77, 3ull | (1ull << 33));
	chain(&b, 2, INSTAR_FMT_QCOW2, &q.img, INSTAR_FMT_RAW, &m);
	assert_int_equal(plan_backing_read(&b, 0, buf, sizeof(buf)), 0);
	assert_bytes(buf, 512, 0x77);
	assert_int_equal(plan_backing_read(&b, 512, buf, sizeof(buf)), -EINVAL);
}

/* A compressed (deflate) cluster, and one that does not decompress. */
static void test_compressed(void **state)
{
	static struct q2 q;
	struct plan_backing b;
	uint8_t plain[CS], buf[CS];
	z_stream z;
	uint64_t host, x = 62 - (CB - 8), nsect;

	(void)state;
	for (unsigned i = 0; i < CS; i++)
		plain[i] = (uint8_t)(i * 7);
	q2_init(&q, CB, 4 * CS, false, false);
	host = (uint64_t)q.next++ * CS + 100; /* not sector-aligned, as qemu packs them */
	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = plain;
	z.avail_in = CS;
	z.next_out = q.b + host;
	z.avail_out = 2 * CS;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	nsect = (host % 512 + z.total_out + 511) / 512 - 1;
	deflateEnd(&z);
	q.img.len = host + 2 * CS;
	put_be64(q2_entry(&q, 1), (1ull << 62) | (nsect << x) | host);
	chain(&b, 1, INSTAR_FMT_QCOW2, &q.img);
	assert_int_equal(plan_backing_read(&b, CS + 100, buf, CS - 100), 0);
	assert_memory_equal(buf, plain + 100, CS - 100);
	memset(q.b + host, 0xff, 8); /* a reserved block type */
	chain(&b, 1, INSTAR_FMT_QCOW2, &q.img);
	assert_int_equal(plan_backing_read(&b, CS, buf, CS), -EINVAL);
	/* its offset past the file */
	put_be64(q2_entry(&q, 1), (1ull << 62) | (0xfffffull << 20));
	chain(&b, 1, INSTAR_FMT_QCOW2, &q.img);
	assert_int_equal(plan_backing_read(&b, CS, buf, CS), -EINVAL);
	/* no scratch for it */
	plan_backing_init(&b, NULL);
	put_be64(q2_entry(&q, 1), (1ull << 62) | (nsect << x) | host);
	assert_int_equal(plan_backing_add(&b, INSTAR_FMT_QCOW2, q.img.len, ptl_img_read, &q.img),
			 0);
	assert_int_equal(plan_backing_read(&b, CS, buf, CS), -ENOMEM);
}

/* Every number from the backing image is checked (4 KiB clusters). */
#define HC 4096u
static void test_hostile(void **state)
{
	static struct q2 q;
	struct plan_backing b;
	uint8_t buf[HC];
	struct {
		size_t off;
		int width;
		uint64_t v;
		int want;
	} const cases[] = {
	    {0, 4, 0x514649fa, -EINVAL},    /* magic */
	    {4, 4, 4, -EINVAL},		    /* version */
	    {20, 4, 8, -EINVAL},	    /* cluster bits */
	    {20, 4, 22, -EINVAL},	    /* cluster bits */
	    {32, 4, 1, -ENOTSUP},	    /* AES */
	    {36, 4, 0, -EINVAL},	    /* L1 smaller than the size */
	    {40, 8, HC + 512, -EINVAL},	    /* L1 unaligned */
	    {40, 8, 1ull << 40, -EINVAL},   /* L1 past the file */
	    {72, 8, 1u << 2, -ENOTSUP},	    /* external data file */
	    {72, 8, 1u << 5, -ENOTSUP},	    /* unknown incompatible feature */
	    {72, 8, 1u << 3, -ENOTSUP},	    /* compression type byte 0 -> ok, see below */
	    {100, 4, 72, -EINVAL},	    /* v3 header too short */
	    {HC, 8, 2 * HC + 512, -EINVAL}, /* L2 unaligned */
	    {HC, 8, 1ull << 50, -EINVAL},   /* L2 past the file */
	    {2 * HC, 8, (3 * HC + 512) | (1ull << 63), -EINVAL}, /* data cluster unaligned */
	    {2 * HC, 8, (3 * HC + 512) | 1, -EINVAL}, /* a zero cluster's, too (issue 19) */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int want = cases[i].want;

		q2_init(&q, 12, 4 * HC, false, false);
		q2_data(&q, 0, 0x12, 0);
		ptl_put_field(q.b, cases[i].off, cases[i].width, true, cases[i].v);
		if (cases[i].off == 72 && cases[i].v == 1u << 3) {
			q.b[104] = 2; /* an unknown compression type */
		}
		chain(&b, 1, INSTAR_FMT_QCOW2, &q.img);
		if (plan_backing_read(&b, 0, buf, HC) != want)
			fail_msg("case %zu: %d, not %d", i, plan_backing_read(&b, 0, buf, HC),
				 want);
		/* the refusal sticks */
		assert_int_equal(plan_backing_read(&b, 0, buf, HC), want);
	}
	/* the same image, unmodified, reads (the table is not vacuous) */
	q2_init(&q, 12, 4 * HC, false, false);
	q2_data(&q, 0, 0x12, 0);
	chain(&b, 1, INSTAR_FMT_QCOW2, &q.img);
	assert_int_equal(plan_backing_read(&b, 0, buf, HC), 0);
	assert_bytes(buf, HC, 0x12);
	/* zstd named and accepted: a plain cluster still reads */
	put_be64(q.b + 72, 1u << 3);
	q.b[104] = 1;
	chain(&b, 1, INSTAR_FMT_QCOW2, &q.img);
	assert_int_equal(plan_backing_read(&b, 0, buf, HC), 0);
	assert_bytes(buf, HC, 0x12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_raw),		cmocka_unit_test(test_qcow2_over_raw),
	    cmocka_unit_test(test_qcow2_chain), cmocka_unit_test(test_ext_l2),
	    cmocka_unit_test(test_compressed),	cmocka_unit_test(test_hostile),
	    cmocka_unit_test(test_zero_alloc),	cmocka_unit_test(test_ext_l2_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
