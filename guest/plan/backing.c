/* guest/plan/backing.c — the backing chain as an image sees it (backing.h).
 * Written from docs/formats.md and the qcow2 specification. */
#include <errno.h>

#include "backing.h"
#include "inflate.h"
#include "unzstd.h"

#define BK_QCOW2_MAGIC 0x514649fbu
#define BK_OFF_MASK 0x00fffffffffffe00ull /* L1 and standard L2 entries */
#define BK_COMPRESSED (1ull << 62)
#define BK_ZERO 1ull
/* incompatible features: dirty, corrupt, data file, compression type, extended L2 */
#define BK_INCOMPAT_DATA_FILE (1ull << 2)
#define BK_INCOMPAT_COMPRESSION (1ull << 3)
#define BK_INCOMPAT_EXT_L2 (1ull << 4)
#define BK_INCOMPAT_KNOWN 0x1full

void plan_backing_init(struct plan_backing *b, struct plan_scratch *s)
{
	plan_memset(b, 0, sizeof(*b));
	b->s = s;
}

int plan_backing_add(struct plan_backing *b, uint32_t format, uint64_t file_len, plan_read_fn read,
		     void *ctx)
{
	struct plan_backing_dev *d;

	if (b->ndev >= PLAN_BACKING_MAX_DEVS ||
	    (format != INSTAR_FMT_RAW && format != INSTAR_FMT_QCOW2) || !read)
		return -EINVAL;
	d = &b->dev[b->ndev++];
	plan_memset(d, 0, sizeof(*d));
	d->read = read;
	d->ctx = ctx;
	d->format = format;
	d->file_len = file_len;
	return 0;
}

/* Bytes [off, off+len) of the file; zeros past its end. */
static int bk_file(const struct plan_backing_dev *d, uint64_t off, uint8_t *buf, uint64_t len)
{
	uint64_t n = off < d->file_len ? d->file_len - off : 0;

	if (n > len)
		n = len;
	plan_memset(buf + n, 0, (size_t)(len - n));
	return n ? d->read(d->ctx, off, buf, (uint32_t)n) : 0;
}

static int bk_qcow2_parse(struct plan_backing_dev *d)
{
	uint8_t h[112];
	uint64_t incompat = 0, span, need, boff;
	uint32_t version, hlen = 72, bsize;
	int r;

	plan_memset(h, 0, sizeof(h));
	r = bk_file(d, 0, h, sizeof(h));
	if (r)
		return r;
	version = get_be32(h + 4);
	if (get_be32(h) != BK_QCOW2_MAGIC || (version != 2 && version != 3))
		return -EINVAL;
	boff = get_be64(h + 8);
	bsize = get_be32(h + 16);
	d->cb = get_be32(h + 20);
	d->size = get_be64(h + 24) & ~511ull; /* qemu reads whole sectors of it */
	d->l1_size = get_be32(h + 36);
	d->l1_off = get_be64(h + 40);
	if (d->cb < 9 || d->cb > 21)
		return -EINVAL;
	if (get_be32(h + 32) != 0)
		return -ENOTSUP; /* encrypted */
	if (version == 3) {
		incompat = get_be64(h + 72);
		hlen = get_be32(h + 100);
		if (hlen < 104)
			return -EINVAL;
	}
	if (incompat & ~BK_INCOMPAT_KNOWN)
		return -ENOTSUP;
	if (incompat & BK_INCOMPAT_DATA_FILE)
		return -ENOTSUP;
	if (incompat & BK_INCOMPAT_COMPRESSION) {
		if (hlen < 105 || h[104] > 1)
			return -ENOTSUP;
		d->zstd = h[104] == 1;
	}
	d->ext_l2 = (incompat & BK_INCOMPAT_EXT_L2) != 0;
	if (d->ext_l2 && d->cb < 14)
		return -EINVAL; /* subclusters of at least 512 bytes */
	d->has_backing = boff != 0 && bsize != 0;
	/* the L1 table must cover the size, aligned and inside the file */
	span = ((1ull << d->cb) / (d->ext_l2 ? 16 : 8)) << d->cb; /* bytes per L2 table */
	need = d->size / span + (d->size % span != 0);
	if (d->l1_size < need || d->l1_off % (1ull << d->cb) || d->l1_off > d->file_len ||
	    (uint64_t)d->l1_size * 8 > d->file_len - d->l1_off)
		return -EINVAL;
	return 0;
}

static int bk_read(struct plan_backing *b, uint32_t lvl, uint64_t off, uint8_t *buf, uint64_t len);

/* A compressed cluster's bytes [in, in+n). */
static int bk_compressed(struct plan_backing *b, struct plan_backing_dev *d, uint64_t w0,
			 uint64_t in, uint8_t *buf, uint64_t n)
{
	uint64_t cs = 1ull << d->cb, x = 62 - (d->cb - 8);
	uint64_t coff = w0 & ((1ull << x) - 1);
	uint64_t csize = (((w0 >> x) & ((1ull << (d->cb - 8)) - 1)) + 1) * 512 - (coff & 511);
	int r;

	if (b->ccap < cs) {
		/* for this cluster size; a file with smaller clusters reuses them */
		b->cout = b->s ? plan_alloc(b->s, (size_t)cs, 64) : 0;
		b->cin = b->s ? plan_alloc(b->s, (size_t)(2 * cs), 64) : 0;
		if (!b->work && b->s)
			b->work = plan_alloc(b->s,
					     PLAN_UNZSTD_WORK_SIZE > PLAN_INFLATE_WORK_SIZE
						 ? PLAN_UNZSTD_WORK_SIZE
						 : PLAN_INFLATE_WORK_SIZE,
					     64);
		if (!b->cout || !b->cin || !b->work) {
			b->ccap = 0;
			return -ENOMEM;
		}
		b->ccap = cs;
	}
	if (coff >= d->file_len)
		return -EINVAL;
	if (csize > d->file_len - coff)
		csize = d->file_len - coff; /* as qemu: a short last read */
	r = bk_file(d, coff, b->cin, csize);
	if (r)
		return r;
	r = d->zstd ? plan_unzstd(b->cin, (size_t)csize, b->cout, (size_t)cs, b->work)
		    : plan_inflate(b->cin, (size_t)csize, b->cout, (size_t)cs, b->work);
	if (r)
		return -EINVAL;
	plan_memcpy(buf, b->cout + in, (size_t)n);
	return 0;
}

/* Bytes [off, off+n) of one cluster (of one subcluster with extended L2). */
static int bk_qcow2_piece(struct plan_backing *b, uint32_t lvl, uint64_t off, uint8_t *buf,
			  uint64_t n)
{
	struct plan_backing_dev *d = &b->dev[lvl];
	uint64_t cs = 1ull << d->cb, esz = d->ext_l2 ? 16 : 8, l2e = cs / esz;
	uint64_t g = off >> d->cb, in = off & (cs - 1), l1i = g / l2e, l2, w0, w1 = 0, host;
	uint8_t e[16];
	int r;

	if (l1i >= d->l1_size)
		return -EINVAL;
	r = bk_file(d, d->l1_off + l1i * 8, e, 8);
	if (r)
		return r;
	l2 = get_be64(e) & BK_OFF_MASK;
	if (l2) {
		if (l2 % cs || l2 >= d->file_len || cs > d->file_len - l2)
			return -EINVAL;
		r = bk_file(d, l2 + (g % l2e) * esz, e, esz);
		if (r)
			return r;
		w0 = get_be64(e);
		if (d->ext_l2)
			w1 = get_be64(e + 8);
	} else {
		w0 = 0;
	}
	if (w0 & BK_COMPRESSED)
		return bk_compressed(b, d, w0, in, buf, n);
	host = w0 & BK_OFF_MASK;
	if (host % cs)
		return -EINVAL; /* also under the zero flag, as qemu checks it */
	if (d->ext_l2) {
		uint64_t k = in / (cs / 32);

		if ((w1 >> k) & (w1 >> (32 + k)) & 1)
			return -EINVAL; /* allocated and zero */
		if ((w1 >> k) & 1) {
			if (!host)
				return -EINVAL;
			return bk_file(d, host + in, buf, n);
		}
		/* the zero flag is not one with extended L2 */
		w0 = (w1 >> (32 + k)) & 1 ? BK_ZERO : 0;
	} else if (host && !(w0 & BK_ZERO)) {
		return bk_file(d, host + in, buf, n);
	}
	/* zero, with or without a host cluster (qemu's ZERO_ALLOC) */
	if (w0 & BK_ZERO) {
		plan_memset(buf, 0, (size_t)n);
		return 0;
	}
	/* unallocated: what its own backing file shows, or zeros */
	if (!d->has_backing) {
		plan_memset(buf, 0, (size_t)n);
		return 0;
	}
	return bk_read(b, lvl + 1, off, buf, n);
}

static int bk_read(struct plan_backing *b, uint32_t lvl, uint64_t off, uint8_t *buf, uint64_t len)
{
	struct plan_backing_dev *d;
	int r;

	if (lvl >= b->ndev)
		return -ENOTSUP;
	d = &b->dev[lvl];
	if (d->format == INSTAR_FMT_RAW)
		return bk_file(d, off, buf, len);
	if (!d->parsed) {
		r = bk_qcow2_parse(d);
		d->parsed = r ? r : 1;
	}
	if (d->parsed < 0)
		return d->parsed;
	while (len) {
		uint64_t cs = 1ull << d->cb, piece = d->ext_l2 ? cs / 32 : cs;
		uint64_t n = piece - (off & (piece - 1));

		if (n > len)
			n = len;
		if (off >= d->size) {
			plan_memset(buf, 0, (size_t)len);
			return 0;
		}
		if (n > d->size - off)
			n = d->size - off;
		r = bk_qcow2_piece(b, lvl, off, buf, n);
		if (r)
			return r;
		off += n;
		buf += n;
		len -= n;
	}
	return 0;
}

int plan_backing_read(void *ctx, uint64_t off, void *buf, uint32_t len)
{
	return bk_read(ctx, 0, off, buf, len);
}
