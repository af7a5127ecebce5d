/* guest/plan/qcow2.c — the qcow2 resize planner (grow, shrink, preallocation).
 * Pure: reads metadata through plan_io, emits ordered ops; freestanding.
 *
 * How it works: everything is decided and validated before the first op is
 * emitted (reads, refcount arithmetic in an in-memory refblock cache), then
 * the stream is written in crash-safe layers:
 *   1. new clusters (tables, refblocks, reftable, tail copies, bitmap
 *      tables and directory) and +1 refcounts                       -> FLUSH
 *   2. reftable switch (entries in place or header @48)             -> FLUSH
 *   3. grow only: L1/L2 links (header @36, entries in place)        -> FLUSH
 *   4. commit: header size @24 (with bitmaps: sector 0, size and
 *      directory offset in one write)                               -> FLUSH
 *   5. shrink only: unlink past the new end (L2 entries, straddling or
 *      tail table relinked to its copy, L1 entries zeroed, the kept tail
 *      of a cut cluster zeroed in place)                            -> FLUSH
 *   6. refcount decrements (refblocks in place)                    -> FLUSH
 *   7. discards of clusters whose refcount fell to 0.
 *   8. shrink only: refblocks left counting only themselves leave the
 *      reftable, as qemu drops them (a crash before: leaks)       -> FLUSH
 *      those that lay in another refblock's range: their count
 *      there goes to 0 (a crash before: a leak)                   -> FLUSH
 *      and are discarded. Then the final length: after the last cluster
 *      still counted.
 * Every prefix is the old image or the new one, at worst with leaks:
 * - Before 4 nothing the old image reads has changed (new clusters are
 *   unreferenced, +1 counts are leaks). A shrink never unmaps before its
 *   size is durable: the active layer's data past the new end (internal
 *   snapshot or not) still reads as before if the commit did not land.
 * - Between 4 and 6 the size is new and whatever layer 5 has done lies past
 *   it; refcounts only ever exceed the references (leaks, never
 *   corruption): the decrements wait behind a barrier for the unlinks.
 *   OFLAG_COPIED stays right: a copied table (snapshot-shared straddling or
 *   tail table) is linked with COPIED at refcount 1, the old one is still
 *   counted for the snapshot that keeps it. Compressed clusters past the
 *   end are unlinked, then every host cluster they span is decremented.
 * - Bitmaps: qemu checks a table's size against the image size, so new
 *   tables (with bits past a shrink's end cleared in a copied last data
 *   cluster) and directory are in layer 1 and become live with the size in
 *   the one sector-0 write of layer 4; the old ones are freed in 6.
 * - Extended L2: entries are 16 bytes, never crossing a sector; a tail copy
 *   is linked with every subcluster allocated.
 * - A crash between 4 and the end of 5 leaves the new image with clusters
 *   still mapped past its end and/or the kept tail's old bytes, as qemu
 *   leaves them: qemu-img compare, check (leaks only) and every read below
 *   the size see the new image. A later grow zeroes the partial cluster's
 *   bytes past the old end (qcow2_grow_head) and, header-only too, clears the
 *   L2 entries left mapped in its grown range in layer 3 (in place, or in a
 *   copy of a shared table), before its commit; their clusters lose the
 *   reference in 6. So a grown range always reads as zeros (or, over a
 *   longer backing file, as its zero flags say).
 * - The final length and discards only give back unreferenced space.
 *
 * Before any of it, qcow2_validate checks what the plan relies on: refcount
 * table entries, active L1 entries, the snapshot table and snapshot L1
 * tables, bitmap directory and tables: aligned, inside the file, off the
 * header and each other (qemu's corruption texts; INSTAR_ERR_CORRUPT,
 * nothing written). qemu finds such faults only when it trips over them
 * and marks the image corrupt, sometimes after a partial change. Every
 * cluster an L2 or bitmap entry releases is checked off the metadata too
 * (qcow2_dec_entry, qcow2_bm_dec_entry), while the plan is still silent.
 *
 * All new clusters form one contiguous run at the end of the used file, laid
 * out as [L1][L2 tables][data][new refblocks][new reftable]; the run counts
 * itself (fixed point over the refblocks and reftable it needs).
 *
 * Choices (documented where qemu knows more than the guest can):
 * - Backing file: the host opens the chain (as qemu-img does) and passes the
 *   backing file's length. As in qemu's block layer, only a backing file
 *   longer than the old size makes the grown range zeroed: v3 gets zero-flag
 *   L2 entries (extended L2: all subclusters "zero"; metadata preallocation:
 *   zero flags on the mapped clusters; falloc and full: zeroed data clusters
 *   mapped as data, all subclusters allocated, as qemu 7.2 maps them); v2 is
 *   refused like qemu ("Failed to zero out new clusters"). A shorter one
 *   already reads as zeros there, so the grow is header-only. Unknown
 *   length: zeroed, to be safe. The partial cluster at an unaligned old end
 *   is zeroed past the old size as qemu does (qcow2_grow_head): in place when
 *   ours alone, else moved to a new cluster with its kept part; an
 *   unallocated one takes its kept part from the backing file, which the
 *   planner reads through plan_io.read_backing (refused without it).
 * - Persistent bitmaps: resized as qemu does (tables follow the size, new
 *   entries 0, dropped data clusters freed, bits past a shrink's end cleared
 *   in a new copy of the last data cluster), new tables and directory in the
 *   run. qemu requires exact table sizes on open, so the directory offset and
 *   the size switch in one sector-0 write; qemu puts the extension in sector
 *   1, so it is first moved to the front of the extension area (same bytes,
 *   sector by sector, every torn state checked to parse). An in-use bitmap
 *   is refused with qemu's message; one that would exceed qemu's 64 MiB limit
 *   is refused (qemu resizes and then drops it).
 * - External data file: the host resizes the data file (to the new size,
 *   before a grow's commit, after a shrink's); data clusters there carry no
 *   refcounts; mapped clusters use the identity offset, as qemu allocates
 *   them; data-file-raw keeps the new range mapped (qemu's forced metadata
 *   preallocation). The shrink's kept tail is cut by the host's truncation.
 * - Shrink zeroes the kept tail of a partially cut cluster (qemu keeps the
 *   stale bytes): in place in a plain cluster owned only by the active image;
 *   a compressed (deflate or zstd) or snapshot-shared one is copied to a new
 *   cluster with the tail zeroed. One that does not decompress is left.
 * - Shrink never allocates L2 tables for unallocated L1 entries (qemu does),
 *   so an empty 64 TiB -> 1 GiB shrink costs only reading the L1.
 * - Encryption (LUKS and AES): resized without the key, which qemu needs to
 *   open the image; only metadata changes. The encryption header region
 *   (LUKS header and key material, named by its extension) is checked as
 *   qemu checks it on open and kept, like metadata, inside the file, off
 *   the other tables and counted (qcow2_check_crypt, qcow2_check_luks).
 *   Nothing that writes guest bytes is planned: preallocation and an
 *   external data file are refused, a partly cut cluster's tail and the
 *   bytes past an unaligned old end are left as qemu leaves them, and a
 *   grow over a longer backing file that would zero part of a cluster is
 *   refused (docs/formats.md §1.2). */
#include <errno.h>

#include "inflate.h"
#include "plan.h"
#include "unzstd.h"

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_INC_DIRTY (1ull << 0)
#define QCOW2_INC_CORRUPT (1ull << 1)
#define QCOW2_INC_DATA_FILE (1ull << 2)
#define QCOW2_INC_COMPRESSION (1ull << 3)
#define QCOW2_INC_EXTL2 (1ull << 4)
#define QCOW2_INC_KNOWN 0x1full
#define QCOW2_AUTOCLEAR_BITMAPS (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_RAW (1ull << 1)
#define QCOW2_AUTOCLEAR_KNOWN (QCOW2_AUTOCLEAR_BITMAPS | QCOW2_AUTOCLEAR_DATA_RAW)
#define QCOW2_COPIED (1ull << 63)
#define QCOW2_COMPRESSED (1ull << 62)
#define QCOW2_ZERO_FLAG 1ull
#define QCOW2_OFF_MASK 0x00fffffffffffe00ull
#define QCOW2_RT_MASK 0xfffffffffffffe00ull
#define QCOW2_MAX_L1_ENTRIES ((32u << 20) / 8)
#define QCOW2_MAX_RT_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536u
#define QCOW2_MAX_SNAP_EXTRA 1024u	       /* qemu's QCOW_MAX_SNAPSHOT_EXTRA_DATA */
#define QCOW2_MAX_SNAP_TABLE (1024ull * 65536) /* qemu's QCOW_MAX_SNAPSHOTS_SIZE */
#define QCOW2_SNAP_HDR 40u
#define QCOW2_MAX_OFFSET (1ull << 56) /* host offsets are 56-bit in tables */
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_BACKING_FMT 0xe2792acau
#define QCOW2_EXT_FEATURES 0x6803f857u
#define QCOW2_EXT_DATA_FILE 0x44415441u
#define QCOW2_EXT_CRYPTO 0x0537be77u /* full disk encryption header: offset, length */
#define QCOW2_CRYPT_AES 1u
#define QCOW2_CRYPT_LUKS 2u
#define QCOW2_LUKS_HDR_LEN 592u /* what qemu reads of a LUKS1 header first */
#define QCOW2_BM_IN_USE 1u
#define QCOW2_BM_FLAGS_KNOWN 7u /* in_use, auto, extra_data_compatible */
#define QCOW2_BM_MAX 65535u	/* qemu's QCOW2_MAX_BITMAPS */
#define QCOW2_BM_DIR_MAX (1u << 20)
#define QCOW2_BM_DIR_MAX_QEMU (1024u * 65535u) /* qemu's QCOW2_MAX_BITMAP_DIRECTORY_SIZE */
#define QCOW2_BM_RESERVED_FLAGS 0xfffffffcu    /* qemu's BME_RESERVED_FLAGS */
#define QCOW2_BM_MAX_TABLE 0x8000000u	       /* entries; qemu's BME_MAX_TABLE_SIZE */
#define QCOW2_BM_MAX_PHYS (64ull << 20)	       /* bytes; qemu's BME_MAX_PHYS_SIZE */
#define QCOW2_L1W_ENTRIES 8192u		       /* L1 window: 64 KiB */
#define QCOW2_BATCH (256u << 10)
#define QCOW2_ZBUF (64u << 10)
#define QCOW2_FIXPOINT_MAX 64
#define QCOW2_RELOCATE_MAX 1024

enum { QCOW2_KIND_KEEP = 0, QCOW2_KIND_NEW = 1, QCOW2_KIND_INPLACE = 2, QCOW2_KIND_COW = 3 };

/* A cached refblock: the phase-5 view (original + increments + decrements). */
struct qcow2_rb {
	uint64_t idx;
	uint8_t *buf;
	uint8_t *touched; /* bit per entry: decremented by this plan */
	int dirty;
};

/* A phase-1 copy of an existing refblock: original + run increments. */
struct qcow2_snap {
	uint64_t idx;
	uint8_t *buf;
};

struct qcow2 {
	const struct plan_opts *o;
	const struct plan_io *io;
	struct plan_scratch *s;
	struct plan *p;
	struct instar_resize_result *ret;

	/* header */
	uint32_t version, cb, rbits, hdr_len, l1_size, rt_clusters, nb_snap;
	uint32_t ctype;		   /* compression type: 0 deflate, 1 zstd */
	uint32_t crypt;		   /* 0, QCOW2_CRYPT_AES or QCOW2_CRYPT_LUKS */
	int fde;		   /* the encryption header extension was found */
	uint64_t fde_off, fde_len; /* its region (LUKS header and key material) */
	uint64_t cs, size, l1_off, rt_off, incompat, autoclear, backing_off, snap_off;
	int ext_l2, backing;
	int zero_new;		      /* the grown range must read as zeros, not backing data */
	int data_file, data_raw;      /* external data file (raw: guest offset = host offset) */
	const uint8_t *bname, *dname; /* backing / data-file names in c0 */
	uint32_t blen, dlen;
	uint64_t l2e; /* entries per L2 table */
	uint32_t esz; /* bytes per L2 entry */
	uint64_t rbe; /* refcounts per refblock */
	uint64_t file_clusters;
	const uint8_t *bm_ext; /* bitmaps extension data, or NULL */
	uint32_t bm_len;
	const uint8_t *c0; /* header cluster as read */
	uint8_t hdr0[512]; /* sector 0 as this plan leaves it (commit write) */

	/* persistent bitmaps */
	struct qcow2_bm *bms;
	uint32_t nbm;
	int bm_rewrite;
	uint8_t *bm_dir;
	uint64_t bm_dsize, bm_doff, bm_new_doff;
	uint64_t ext_end;     /* offset of the extensions' end marker */
	uint8_t *nx;	      /* reordered header cluster (bitmaps extension first) */
	const uint8_t *bm_c0; /* the header cluster as read, when nx is used */

	/* reftable (host-endian, old), refblock cache */
	uint64_t *rt;
	uint64_t rt_n;
	uint32_t *slot; /* rt index -> 1-based cache entry */
	struct qcow2_rb *rbs;
	uint32_t nrbs, caprbs;
	struct qcow2_snap *snaps;
	uint32_t nsnaps, capsnaps;

	/* L1 read window */
	uint8_t *l1w;
	uint64_t l1w_first, l1w_n;

	/* op batching */
	uint8_t *bat;
	uint64_t bat_off;
	uint32_t bat_len;
	int pending;
	uint8_t *zbuf; /* QCOW2_ZBUF zeros */
	uint8_t *tbuf; /* one cluster of work space */

	/* the run of new clusters */
	uint64_t run_a, run_fixed, run_nrb, run_nrt, run_end;
	uint64_t rt_new_n; /* entries of a relocated reftable; 0 if not moved */

	/* metadata the validation found (qcow2_validate), sorted cluster indexes */
	uint64_t *rbl, *l2l; /* refblocks; active L2 tables (NULL: not kept) */
	uint8_t *rb_drop;    /* shrink: 1 per reftable entry whose refblock goes */
	uint64_t n_drop;
	/* shrink: the clusters of dropped refblocks that lie in another
	 * refblock's range (that one counts them: freed there after the drop) */
	uint64_t *rb_foreign;
	uint64_t n_foreign;
	uint64_t nrbl, nl2l;
	uint64_t snap_end; /* end of the snapshot table (0: none) */

	/* the partial cluster at a grow's unaligned old end (qcow2_grow_head) */
	int head_mode;	       /* QCOW2_HEAD_*: what becomes of its L2 entry */
	uint64_t head_w0;      /* QCOW2_HEAD_ENTRY: the new entry */
	uint64_t head_w1;      /* extended L2: the new bitmap */
	uint8_t *head_buf;     /* QCOW2_HEAD_NEW: the new cluster's content */
	uint64_t head_old_w0;  /* the entry it replaces (its clusters lose a ref) */
	uint64_t hw_off;       /* in-place write into the cluster we own */
	uint64_t hw_len;       /* (0: none) */
	const uint8_t *hw_buf; /* its bytes (NULL: zeros) */
};

static int qcow2_fail(struct qcow2 *q, int err, const char *msg)
{
	q->ret->error = (uint32_t)err;
	if (msg)
		plan_set_detail(q->ret, msg);
	return err;
}

static uint64_t qcow2_div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

static void *qcow2_alloc(struct qcow2 *q, uint64_t len, size_t align)
{
	if (len > (uint64_t)SIZE_MAX)
		return NULL;
	return plan_alloc(q->s, (size_t)len, align);
}

/* ---- op emission ---- */

static int qcow2_put_flush(struct qcow2 *q)
{
	int rc;

	if (!q->bat_len)
		return 0;
	rc = plan_write(q->p, q->bat_off, q->bat, q->bat_len);
	q->bat_len = 0;
	q->pending = 1;
	return rc;
}

/* Writes, coalescing contiguous pieces (new tables are laid out in a row). */
static int qcow2_put(struct qcow2 *q, uint64_t off, const void *data, uint64_t len)
{
	int rc;

	if (off < sizeof(q->hdr0) && data != q->hdr0)
		plan_memcpy(q->hdr0 + off, data,
			    (size_t)(len < sizeof(q->hdr0) - off ? len : sizeof(q->hdr0) - off));
	if (!len)
		return 0;

	if (q->bat_len && off == q->bat_off + q->bat_len && q->bat_len + len <= QCOW2_BATCH) {
		plan_memcpy(q->bat + q->bat_len, data, (size_t)len);
		q->bat_len += (uint32_t)len;
		return 0;
	}
	rc = qcow2_put_flush(q);
	if (rc)
		return rc;
	if (len >= QCOW2_BATCH) {
		q->pending = 1;
		return plan_write(q->p, off, data, len);
	}
	plan_memcpy(q->bat, data, (size_t)len);
	q->bat_off = off;
	q->bat_len = (uint32_t)len;
	return 0;
}

static int qcow2_zero(struct qcow2 *q, uint64_t off, uint64_t len)
{
	int rc = qcow2_put_flush(q);

	if (rc)
		return rc;
	q->pending = 1;
	return plan_zero(q->p, off, len);
}

/* Writes len zero bytes at off as WRITE ops (for small metadata ranges). */
static int qcow2_put_zeros(struct qcow2 *q, uint64_t off, uint64_t len)
{
	while (len) {
		uint64_t n = len < QCOW2_ZBUF ? len : QCOW2_ZBUF;
		int rc = qcow2_put(q, off, q->zbuf, n);

		if (rc)
			return rc;
		off += n;
		len -= n;
	}
	return 0;
}

/* FLUSH, but only when something was written since the last one. */
static int qcow2_barrier(struct qcow2 *q)
{
	int rc = qcow2_put_flush(q);

	if (rc || !q->pending)
		return rc;
	q->pending = 0;
	return plan_flush(q->p);
}

/* ---- refcounts ---- */

static uint64_t qcow2_rc_get(const struct qcow2 *q, const uint8_t *b, uint64_t i)
{
	uint32_t per, sh;

	switch (q->rbits) {
	case 64:
		return get_be64(b + i * 8);
	case 32:
		return get_be32(b + i * 4);
	case 16:
		return get_be16(b + i * 2);
	case 8:
		return b[i];
	default: /* 1, 2, 4 bits: bit 0 is the LSB of the byte */
		per = 8 / q->rbits;
		sh = (uint32_t)(i % per) * q->rbits;
		return (uint64_t)(b[i / per] >> sh) & ((1u << q->rbits) - 1);
	}
}

static void qcow2_rc_set(const struct qcow2 *q, uint8_t *b, uint64_t i, uint64_t v)
{
	uint32_t per, sh, mask;

	switch (q->rbits) {
	case 64:
		put_be64(b + i * 8, v);
		return;
	case 32:
		put_be32(b + i * 4, (uint32_t)v);
		return;
	case 16:
		put_be16(b + i * 2, (uint16_t)v);
		return;
	case 8:
		b[i] = (uint8_t)v;
		return;
	default:
		per = 8 / q->rbits;
		sh = (uint32_t)(i % per) * q->rbits;
		mask = ((1u << q->rbits) - 1) << sh;
		b[i / per] = (uint8_t)((b[i / per] & ~mask) | ((uint32_t)(v << sh) & mask));
		return;
	}
}

/* Validated offset of refblock r of the old reftable, or 0 if there is none. */
static int qcow2_rb_off(struct qcow2 *q, uint64_t r, uint64_t *off)
{
	uint64_t o;

	*off = 0;
	if (r >= q->rt_n || q->rt[r] == 0)
		return 0;
	o = q->rt[r] & QCOW2_RT_MASK;
	if (o & (q->cs - 1) || o < q->cs || o / q->cs >= q->file_clusters)
		return qcow2_fail(q, INSTAR_ERR_CORRUPT, "qcow2: refcount block offset invalid");
	*off = o;
	return 0;
}

/* The cached refblock r if it is loaded already, else NULL. */
static struct qcow2_rb *qcow2_rb_loaded(struct qcow2 *q, uint64_t r)
{
	return q->slot[r] ? &q->rbs[q->slot[r] - 1] : NULL;
}

/* The cached refblock r (loaded on first use), or *ret_rb = NULL if absent. */
static int qcow2_rb_get(struct qcow2 *q, uint64_t r, struct qcow2_rb **ret_rb)
{
	struct qcow2_rb *e;
	uint64_t off;
	int rc;

	*ret_rb = NULL;
	rc = qcow2_rb_off(q, r, &off);
	if (rc || !off)
		return rc;
	*ret_rb = qcow2_rb_loaded(q, r);
	if (*ret_rb)
		return 0;
	if (q->nrbs >= q->caprbs)
		return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL,
				  "qcow2: too many refcount blocks");
	e = &q->rbs[q->nrbs];
	e->buf = qcow2_alloc(q, q->cs, 64);
	if (!e->buf)
		return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL,
				  "qcow2: out of scratch for refcounts");
	rc = plan_read(q->io, off, e->buf, (uint32_t)q->cs);
	if (rc)
		return qcow2_fail(q, rc, "qcow2: cannot read refcount block");
	e->idx = r;
	e->touched = NULL;
	e->dirty = 0;
	q->slot[r] = ++q->nrbs;
	*ret_rb = e;
	return 0;
}

static int qcow2_ref_get(struct qcow2 *q, uint64_t c, uint64_t *v)
{
	struct qcow2_rb *e;
	int rc = qcow2_rb_get(q, c / q->rbe, &e);

	*v = 0;
	if (rc || !e)
		return rc;
	*v = qcow2_rc_get(q, e->buf, c % q->rbe);
	return 0;
}

static int qcow2_ref_dec(struct qcow2 *q, uint64_t c)
{
	struct qcow2_rb *e;
	uint64_t i = c % q->rbe, v;
	int rc = qcow2_rb_get(q, c / q->rbe, &e);

	if (rc)
		return rc;
	if (!e || (v = qcow2_rc_get(q, e->buf, i)) == 0)
		return qcow2_fail(
		    q, INSTAR_ERR_CORRUPT,
		    "qcow2: refcount of a referenced cluster is 0; run 'qemu-img check'");
	if (!e->touched) {
		e->touched = qcow2_alloc(q, qcow2_div_up(q->rbe, 8), 8);
		if (!e->touched)
			return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
	}
	qcow2_rc_set(q, e->buf, i, v - 1);
	e->touched[i / 8] |= (uint8_t)(1u << (i % 8));
	e->dirty = 1;
	return 0;
}

/* Decrements a byte range's clusters (a table that is being freed). */
static int qcow2_ref_dec_range(struct qcow2 *q, uint64_t off, uint64_t len)
{
	uint64_t c, last;
	int rc;

	if (!len)
		return 0;
	last = (off + len - 1) >> q->cb;
	for (c = off >> q->cb; c <= last; c++) {
		rc = qcow2_ref_dec(q, c);
		if (rc)
			return rc;
	}
	return 0;
}

/* The bytes [*ret_off, *ret_off + *ret_len) a compressed L2 entry's data
 * occupies: from its offset to the end of its last 512-byte sector. */
static int qcow2_compressed(struct qcow2 *q, uint64_t w0, uint64_t *ret_off, uint64_t *ret_len)
{
	uint32_t x = 70 - q->cb; /* 62 - (cluster_bits - 8) */
	uint64_t off = w0 & ((1ull << x) - 1);
	uint64_t nsect = (w0 >> x) & ((1ull << (q->cb - 8)) - 1);

	if (off >= QCOW2_MAX_OFFSET || off < q->cs)
		return qcow2_fail(q, INSTAR_ERR_CORRUPT,
				  "qcow2: compressed cluster offset invalid");
	*ret_off = off;
	*ret_len = (nsect + 1) * 512 - (off & 511);
	return 0;
}

/* Host clusters an L2 entry (first word) holds a reference on. */
static int qcow2_entry_clusters(struct qcow2 *q, uint64_t w0, uint64_t *first, uint64_t *n)
{
	*first = 0;
	*n = 0;
	if (q->data_file) {
		/* data clusters live in the data file and are not refcounted */
		if (w0 & QCOW2_COMPRESSED)
			return qcow2_fail(q, INSTAR_ERR_CORRUPT,
					  "qcow2: compressed cluster with an external data file");
		return 0;
	}
	if (w0 & QCOW2_COMPRESSED) {
		uint64_t off, len;
		int rc = qcow2_compressed(q, w0, &off, &len);

		if (rc)
			return rc;
		*first = off >> q->cb;
		*n = ((off + len - 1) >> q->cb) - *first + 1;
		return 0;
	}
	w0 &= QCOW2_OFF_MASK;
	if (!w0)
		return 0;
	if (w0 & (q->cs - 1))
		return qcow2_fail(q, INSTAR_ERR_CORRUPT, "qcow2: cluster offset unaligned");
	*first = w0 >> q->cb;
	*n = 1;
	return 0;
}

static const char *qcow2_overlap(const struct qcow2 *q, uint64_t off, uint64_t len, uint32_t skip);
static int qcow2_ol_fail(struct qcow2 *q, const char *what, uint64_t off, const char *name);

/* An L2 entry's clusters lose its reference. They must not lie on metadata
 * (the header, L1, reftable, refblocks, active L2 tables, snapshot table,
 * bitmap directory): that count is the metadata's, and a cluster it frees
 * would be discarded and cut. qemu does not look; it frees the table. */
static int qcow2_dec_entry(struct qcow2 *q, uint64_t w0)
{
	uint64_t first, n;
	const char *ol;
	int rc = qcow2_entry_clusters(q, w0, &first, &n);

	if (!rc && n && (ol = qcow2_overlap(q, first << q->cb, n << q->cb, 0)))
		return qcow2_ol_fail(q, "Data cluster at ", first << q->cb, ol);
	for (uint64_t k = 0; !rc && k < n; k++)
		rc = qcow2_ref_dec(q, first + k);
	return rc;
}

/* ---- L1 / L2 access ---- */

static int qcow2_l1_get(struct qcow2 *q, uint64_t i, uint64_t *v)
{
	int rc;

	if (i >= q->l1_size) {
		*v = 0;
		return 0;
	}
	if (!q->l1w_n || i < q->l1w_first || i >= q->l1w_first + q->l1w_n) {
		uint64_t first = i & ~(uint64_t)(QCOW2_L1W_ENTRIES - 1);
		uint64_t n = q->l1_size - first;

		if (n > QCOW2_L1W_ENTRIES)
			n = QCOW2_L1W_ENTRIES;
		rc = plan_read(q->io, q->l1_off + first * 8, q->l1w, (uint32_t)(n * 8));
		if (rc)
			return qcow2_fail(q, rc, "qcow2: cannot read the L1 table");
		q->l1w_first = first;
		q->l1w_n = n;
	}
	*v = get_be64(q->l1w + (i - q->l1w_first) * 8);
	return 0;
}

/* Validated L2 table offset of an L1 entry (0: no table). */
static int qcow2_l2_off(struct qcow2 *q, uint64_t e, uint64_t *t)
{
	uint64_t o = e & QCOW2_OFF_MASK;

	*t = o;
	if (!o)
		return 0;
	if (o & (q->cs - 1) || o < q->cs || o / q->cs >= q->file_clusters)
		return qcow2_fail(q, INSTAR_ERR_CORRUPT, "qcow2: L2 table offset invalid");
	return 0;
}

/* The L2 table offset of L1 entry i, validated (0: none). */
static int qcow2_l2_of(struct qcow2 *q, uint64_t i, uint64_t *t)
{
	uint64_t e;
	int rc = qcow2_l1_get(q, i, &e);

	*t = 0;
	return rc ? rc : qcow2_l2_off(q, e, t);
}

static int qcow2_read_cluster(struct qcow2 *q, uint64_t off, uint8_t *buf)
{
	int rc = plan_read(q->io, off, buf, (uint32_t)q->cs);

	return rc ? qcow2_fail(q, rc, "qcow2: cannot read an L2 table") : 0;
}

static void qcow2_l2_put(const struct qcow2 *q, uint8_t *t, uint64_t j, uint64_t w0, uint64_t w1)
{
	put_be64(t + j * q->esz, w0);
	if (q->ext_l2)
		put_be64(t + j * q->esz + 8, w1);
}

/* ---- header ---- */

static void qcow2_cat(char *d, size_t cap, const char *a, const char *b, size_t blen, const char *c)
{
	size_t n = 0;

	for (; *a && n + 1 < cap; a++)
		d[n++] = *a;
	for (size_t i = 0; i < blen && b[i] && n + 1 < cap; i++)
		d[n++] = b[i];
	for (; *c && n + 1 < cap; c++)
		d[n++] = *c;
	d[n] = '\0';
}

/* A failure of the image's open (INSTAR_RESULT_OPEN): qemu-img prints it
 * as "Could not open 'NAME': MSG". */
static int qcow2_open_fail(struct qcow2 *q, int err, const char *msg)
{
	q->ret->flags |= INSTAR_RESULT_OPEN;
	return qcow2_fail(q, err, msg);
}

static int qcow2_open_fail_m(struct qcow2 *q, int err, const char *s1, uint64_t v, const char *s2)
{
	struct plan_msg m = {.n = 0};

	plan_msg_str(&m, s1);
	plan_msg_dec(&m, v);
	plan_msg_str(&m, s2);
	return qcow2_open_fail(q, err, m.b);
}

/* The end of the extension area as qemu 7.2 walks it: the backing file
 * name's offset, else the end of cluster 0. */
static uint64_t qcow2_ext_limit(const struct qcow2 *q)
{
	return q->backing_off ? q->backing_off : q->cs;
}

/* Unknown incompatible feature bits, in qemu's words: the names the last
 * feature table extension gives them (qemu reads the extensions up to the
 * first fault for it), then "Unknown incompatible feature: HEX". */
static int qcow2_unknown_features(struct qcow2 *q, uint64_t mask)
{
	const uint8_t *ft = NULL;
	uint64_t end = qcow2_ext_limit(q), ftlen = 0;
	struct plan_msg m = {.n = 0};
	int named = 0;

	for (uint64_t pos = q->hdr_len; pos < end;) {
		uint32_t type, len;

		if (pos + 8 > end)
			break;
		type = get_be32(q->c0 + pos);
		len = get_be32(q->c0 + pos + 4);
		if (len > end - pos - 8 || type == 0)
			break;
		if (type == QCOW2_EXT_FEATURES) {
			ft = q->c0 + pos + 8;
			ftlen = len;
		}
		pos += 8 + (((uint64_t)len + 7) & ~7ull);
	}
	plan_msg_str(&m, "Unsupported qcow2 feature(s): ");
	/* 48-byte entries (type, bit, 46-byte name), zeros past the table */
	for (uint64_t e = 0; ft && e + 2 < ftlen && ft[e + 2]; e += 48) {
		uint64_t bit = 1ull << (ft[e + 1] & 63);
		char name[47];
		uint64_t k;

		if (ft[e] != 0 || !(mask & bit))
			continue;
		for (k = 0; k < 46 && e + 2 + k < ftlen && ft[e + 2 + k]; k++)
			name[k] = (char)ft[e + 2 + k];
		name[k] = '\0';
		if (named++)
			plan_msg_str(&m, ", ");
		plan_msg_str(&m, name);
		mask &= ~bit;
	}
	if (mask) {
		if (named)
			plan_msg_str(&m, ", ");
		plan_msg_str(&m, "Unknown incompatible feature: ");
		plan_msg_hex(&m, mask);
	}
	return qcow2_open_fail(q, INSTAR_ERR_UNSUPPORTED_FEATURE, m.b);
}

/* The header fields (v2, v3) and the features this planner handles, checked
 * in qemu 7.2's order (qcow2_do_open) and with its words. Cluster 0 is read
 * here: the feature table of a refusal's message lives there. */
static int qcow2_parse_header(struct qcow2 *q)
{
	uint8_t h[112];
	uint64_t fsz = q->io->file_size;
	uint32_t order = 4;
	uint8_t *c0;
	int rc;

	if (fsz < 72)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				       "qcow2: file too small for a header");
	rc = plan_read(q->io, 0, h, sizeof(h));
	if (rc)
		return qcow2_open_fail(q, rc, "Could not read qcow2 header");
	if (get_be32(h) != QCOW2_MAGIC)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED, "Image is not in qcow2 format");
	q->version = get_be32(h + 4);
	if (q->version != 2 && q->version != 3)
		return qcow2_open_fail_m(q, INSTAR_ERR_UNSUPPORTED_FEATURE,
					 "Unsupported qcow2 version ", q->version, "");
	q->cb = get_be32(h + 20);
	if (q->cb < 9 || q->cb > 21)
		return qcow2_open_fail_m(q, INSTAR_ERR_PARSE_FAILED, "Unsupported cluster size: 2^",
					 q->cb, "");
	q->cs = 1ull << q->cb;
	q->backing_off = get_be64(h + 8);
	q->blen = get_be32(h + 16); /* checked in qcow2_parse_extensions */
	q->size = get_be64(h + 24);
	q->crypt = get_be32(h + 32);
	q->l1_size = get_be32(h + 36);
	q->l1_off = get_be64(h + 40);
	q->rt_off = get_be64(h + 48);
	q->rt_clusters = get_be32(h + 56);
	q->nb_snap = get_be32(h + 60);
	q->snap_off = get_be64(h + 64);
	q->hdr_len = 72;
	if (q->version == 3) {
		q->incompat = get_be64(h + 72);
		q->autoclear = get_be64(h + 88);
		order = get_be32(h + 96);
		q->hdr_len = get_be32(h + 100);
		if (q->hdr_len < 104)
			return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
					       "qcow2 header too short");
	}
	if (q->hdr_len > q->cs)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				       "qcow2 header exceeds cluster size");
	if (q->backing_off > q->cs)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED, "Invalid backing file offset");
	c0 = qcow2_alloc(q, q->cs, 8);
	if (!c0)
		return qcow2_open_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
	/* a file shorter than the cluster reads as zeros past its end, as in qemu */
	plan_memset(c0, 0, (size_t)q->cs);
	rc = plan_read(q->io, 0, c0, (uint32_t)(fsz < q->cs ? fsz : q->cs));
	if (rc)
		return qcow2_open_fail(q, rc, "qcow2: cannot read the header cluster");
	q->c0 = c0;
	if (q->hdr_len > 104)
		q->ctype = h[104];
	if (q->ctype > 1)
		return qcow2_open_fail_m(q, INSTAR_ERR_UNSUPPORTED_FEATURE,
					 "qcow2: unknown compression type: ", q->ctype, "");
	if (q->ctype == 0 && (q->incompat & QCOW2_INC_COMPRESSION))
		return qcow2_open_fail(
		    q, INSTAR_ERR_PARSE_FAILED,
		    "qcow2: Compression type incompatible feature bit must not be set");
	if (q->ctype != 0 && !(q->incompat & QCOW2_INC_COMPRESSION))
		return qcow2_open_fail(
		    q, INSTAR_ERR_PARSE_FAILED,
		    "qcow2: Compression type incompatible feature bit must be set");
	if (q->incompat & ~QCOW2_INC_KNOWN)
		return qcow2_unknown_features(q, q->incompat & ~QCOW2_INC_KNOWN);
	if (q->incompat & QCOW2_INC_CORRUPT)
		return qcow2_open_fail(q, INSTAR_ERR_CORRUPT,
				       "qcow2: Image is corrupt; cannot be opened read/write");
	q->ext_l2 = (q->incompat & QCOW2_INC_EXTL2) != 0;
	if (q->ext_l2 && q->cb < 14)
		return qcow2_open_fail_m(q, INSTAR_ERR_PARSE_FAILED,
					 "Unsupported subcluster size: ", q->cs / 32, "");
	if (order > 6)
		return qcow2_open_fail(
		    q, INSTAR_ERR_PARSE_FAILED,
		    "Reference count entry width too large; may not exceed 64 bits");
	q->rbits = 1u << order;
	q->rbe = (q->cs * 8) >> order;
	q->esz = q->ext_l2 ? 16 : 8;
	q->l2e = q->cs / q->esz;
	q->file_clusters = qcow2_div_up(fsz, q->cs);
	return 0;
}

/* qemu's qcow2_validate_table: at most max_bytes of entries, an offset
 * cluster-aligned with the table ending below 2^63. */
static int qcow2_validate_table(struct qcow2 *q, uint64_t off, uint64_t n, uint64_t esize,
				uint64_t max_bytes, const char *what, int off_err)
{
	struct plan_msg m = {.n = 0};

	plan_msg_str(&m, what);
	if (n > max_bytes / esize) {
		plan_msg_str(&m, " too large");
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED, m.b);
	}
	if ((uint64_t)INT64_MAX - n * esize < off || (off & (q->cs - 1))) {
		plan_msg_str(&m, " offset invalid");
		return qcow2_open_fail(q, off_err, m.b);
	}
	return 0;
}

/* The L1 table, the reftable and the snapshot table: qemu's checks on open
 * (its order and words), then this planner's own: tables inside the file,
 * off the header and each other (qemu reads zeros past the end and finds
 * the rest only when it trips over it). */
static int qcow2_parse_tables(struct qcow2 *q)
{
	uint64_t fend = q->file_clusters << q->cb, l1_bytes, rt_bytes, shift, idx;
	int rc;

	if (q->rt_clusters == 0)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				       "Image does not contain a reference count table");
	rc = qcow2_validate_table(q, q->rt_off, q->rt_clusters, q->cs, QCOW2_MAX_RT_BYTES,
				  "Reference count table", INSTAR_ERR_PARSE_FAILED);
	if (!rc)
		rc = qcow2_validate_table(q, q->snap_off, q->nb_snap, QCOW2_SNAP_HDR,
					  (uint64_t)QCOW2_SNAP_HDR * QCOW2_MAX_SNAPSHOTS,
					  "Snapshot table", INSTAR_ERR_CORRUPT);
	if (!rc)
		rc = qcow2_validate_table(q, q->l1_off, q->l1_size, 8,
					  (uint64_t)QCOW2_MAX_L1_ENTRIES * 8, "Active L1 table",
					  INSTAR_ERR_PARSE_FAILED);
	if (rc)
		return rc;
	/* qemu's size_to_l1, its wrap-around included */
	shift = q->cb + (q->cb - (q->ext_l2 ? 4 : 3));
	idx = (q->size + (1ull << shift) - 1) >> shift;
	if (idx > 0x7fffffffu)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED, "Image is too big");
	if (q->l1_size < idx)
		return qcow2_open_fail(q, INSTAR_ERR_CORRUPT, "L1 table is too small");

	/* beyond qemu: inside the file, not on the header */
	l1_bytes = (uint64_t)q->l1_size * 8;
	if (q->l1_size && (q->l1_off < q->cs || q->l1_off > fend || l1_bytes > fend - q->l1_off))
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				       "Active L1 table offset invalid");
	rt_bytes = (uint64_t)q->rt_clusters << q->cb;
	if (q->rt_off < q->cs || q->rt_off > fend || rt_bytes > fend - q->rt_off)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				       "Reference count table offset invalid");
	if (q->l1_size && q->l1_off < q->rt_off + rt_bytes && q->rt_off < q->l1_off + l1_bytes)
		return qcow2_open_fail(q, INSTAR_ERR_CORRUPT,
				       "qcow2: L1 table overlaps the refcount table");
	return 0;
}

/* The full disk encryption header extension, checked as qemu's open checks
 * it (its messages): LUKS only, 16 bytes, a cluster-aligned offset. The
 * last one counts, as in qemu. Where it points is checked later
 * (qcow2_check_crypt). */
static int qcow2_crypto_ext(struct qcow2 *q, const uint8_t *d, uint32_t len)
{
	struct plan_msg m = {.n = 0};

	if (q->crypt != QCOW2_CRYPT_LUKS)
		return qcow2_open_fail(
		    q, INSTAR_ERR_PARSE_FAILED,
		    "CRYPTO header extension only expected with LUKS encryption method");
	if (len != 16)
		return qcow2_open_fail_m(q, INSTAR_ERR_PARSE_FAILED,
					 "CRYPTO header extension size ", len,
					 ", but expected size 16");
	q->fde = 1;
	q->fde_off = get_be64(d);
	q->fde_len = get_be64(d + 8);
	if (q->fde_off & (q->cs - 1)) {
		plan_msg_str(&m, "Encryption header offset '");
		plan_msg_dec(&m, q->fde_off);
		plan_msg_str(&m, "' is not a multiple of cluster size '");
		plan_msg_dec(&m, q->cs);
		plan_msg_str(&m, "'");
		return qcow2_open_fail(q, INSTAR_ERR_CORRUPT, m.b);
	}
	return 0;
}

/* The bitmaps extension, checked as qemu's open checks it (its order and
 * words); the first one is the one resized. Without the autoclear bit the
 * bitmaps are stale (qemu warns and drops the extension): ignored. */
static int qcow2_bitmaps_ext(struct qcow2 *q, const uint8_t *d, uint32_t len)
{
	struct plan_msg m = {.n = 0};
	uint32_t nb;
	uint64_t dsize;

	if (len != 24)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				       "bitmaps_ext: Invalid extension length");
	if (!(q->autoclear & QCOW2_AUTOCLEAR_BITMAPS))
		return 0;
	nb = get_be32(d);
	dsize = get_be64(d + 8);
	if (get_be32(d + 4) != 0)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				       "bitmaps_ext: Reserved field is not zero");
	if (nb > QCOW2_BM_MAX)
		return qcow2_open_fail_m(q, INSTAR_ERR_PARSE_FAILED, "bitmaps_ext: Image has ", nb,
					 " bitmaps, exceeding the QEMU supported maximum of 65535");
	if (nb == 0)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				       "found bitmaps extension with zero bitmaps");
	if (get_be64(d + 16) & (q->cs - 1))
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				       "bitmaps_ext: invalid bitmap directory offset");
	if (dsize > QCOW2_BM_DIR_MAX_QEMU) {
		plan_msg_str(&m, "bitmaps_ext: bitmap directory size (");
		plan_msg_dec(&m, dsize);
		plan_msg_str(&m, ") exceeds the maximum supported size (");
		plan_msg_dec(&m, QCOW2_BM_DIR_MAX_QEMU);
		plan_msg_str(&m, ")");
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED, m.b);
	}
	if (!q->bm_ext) {
		q->bm_ext = d;
		q->bm_len = len;
	}
	return 0;
}

/* The encryption method, the header extensions (bitmaps, data file,
 * encryption header) in cluster 0 after the header, walked as qemu 7.2
 * walks them (up to the backing file name), the backing file name; in
 * qemu's order, with its words. */
static int qcow2_parse_extensions(struct qcow2 *q)
{
	const uint8_t *c0 = q->c0;
	uint64_t end = qcow2_ext_limit(q);
	int rc;

	if (q->crypt > QCOW2_CRYPT_LUKS)
		return qcow2_open_fail_m(q, INSTAR_ERR_UNSUPPORTED_FEATURE,
					 "Unsupported encryption method ", q->crypt, "");
	plan_memcpy(q->hdr0, c0, sizeof(q->hdr0));
	q->ext_end = q->hdr_len;
	for (uint64_t pos = q->hdr_len; pos < end; q->ext_end = pos) {
		uint32_t type, len;

		if (pos + 8 > end)
			return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
					       "Header extension too large");
		type = get_be32(c0 + pos);
		len = get_be32(c0 + pos + 4);
		if (len > end - pos - 8)
			return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
					       "Header extension too large");
		if (type == 0)
			break;
		if (type == QCOW2_EXT_BACKING_FMT && len >= 16)
			return qcow2_open_fail_m(q, INSTAR_ERR_PARSE_FAILED,
						 "ERROR: ext_backing_format: len=", len,
						 " too large (>=16)");
		if (type == QCOW2_EXT_BITMAPS && (rc = qcow2_bitmaps_ext(q, c0 + pos + 8, len)))
			return rc;
		if (type == QCOW2_EXT_DATA_FILE) { /* the last one counts, as in qemu */
			q->dname = c0 + pos + 8;
			q->dlen = len;
		}
		if (type == QCOW2_EXT_CRYPTO && (rc = qcow2_crypto_ext(q, c0 + pos + 8, len)))
			return rc;
		pos += 8 + (((uint64_t)len + 7) & ~7ull);
	}
	if (q->version >= 3 && (q->autoclear & QCOW2_AUTOCLEAR_DATA_RAW) &&
	    !(q->incompat & QCOW2_INC_DATA_FILE))
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				       "data-file-raw requires a data file");
	if (q->crypt == QCOW2_CRYPT_LUKS && !q->fde)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				       "Missing CRYPTO header for crypt method 2");
	if (q->backing_off) {
		if (q->blen > 1023 || q->blen > q->cs - q->backing_off)
			return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
					       "Backing file name too long");
		if (q->blen == 0) /* beyond qemu: an empty name */
			return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
					       "qcow2: backing file name invalid");
		q->backing = 1;
		q->bname = c0 + q->backing_off;
	}
	/* beyond qemu: extensions start 8-byte aligned (qemu-img writes them so) */
	if (q->hdr_len % 8)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED, "qcow2: header length invalid");
	return 0;
}

/* The image's open: every failure is INSTAR_RESULT_OPEN but the last. A
 * dirty image (lazy refcounts), which qemu repairs on open, is refused
 * last, in instar's words and not as a failed open: a state instar does
 * not resize, not damage (docs/design.md §3.1). */
static int qcow2_parse(struct qcow2 *q)
{
	int rc = qcow2_parse_header(q);

	if (!rc)
		rc = qcow2_parse_tables(q);
	if (!rc)
		rc = qcow2_parse_extensions(q);
	/* the block layer's check once the driver has opened the image */
	if (!rc && q->size > (uint64_t)INT64_MAX)
		rc = qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				     "Could not refresh total sector count: File too large");
	if (!rc && (q->incompat & QCOW2_INC_DIRTY))
		rc = qcow2_fail(
		    q, INSTAR_ERR_REQUIRES_CHECK,
		    "qcow2: image is dirty (lazy refcounts); run 'qemu-img check -r all'");
	return rc;
}

/* ---- the reftable and the refblock cache ---- */

static int qcow2_load_reftable(struct qcow2 *q)
{
	uint64_t bytes = (uint64_t)q->rt_clusters << q->cb, room;
	uint8_t *b;
	int rc;

	q->rt_n = bytes / 8;
	b = qcow2_alloc(q, bytes, 8);
	q->slot = qcow2_alloc(q, q->rt_n * sizeof(uint32_t), 8);
	if (!b || !q->slot)
		return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL,
				  "qcow2: out of scratch for the reftable");
	rc = plan_read(q->io, q->rt_off, b, (uint32_t)bytes);
	if (rc)
		return qcow2_fail(q, rc, "qcow2: cannot read the refcount table");
	q->rt = (uint64_t *)(void *)b;
	for (uint64_t i = 0; i < q->rt_n; i++)
		q->rt[i] = get_be64(b + i * 8); /* same slot: read before write */
	room = (q->s->len - q->s->used) / (q->cs + sizeof(struct qcow2_rb));
	q->caprbs = (uint32_t)(room < q->rt_n ? room : q->rt_n);
	q->capsnaps = q->caprbs < 4096 ? q->caprbs : 4096;
	q->rbs = qcow2_alloc(q, (uint64_t)q->caprbs * sizeof(struct qcow2_rb) + 1, 8);
	q->snaps = qcow2_alloc(q, (uint64_t)q->capsnaps * sizeof(struct qcow2_snap) + 1, 8);
	if (!q->rbs || !q->snaps)
		return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
	return 0;
}

static int qcow2_rb_new(const struct qcow2 *q, uint64_t r)
{
	return r >= q->rt_n || q->rt[r] == 0;
}

/* Places a run of `fixed` new clusters plus the refblocks and reftable it
 * needs: a fixed point, since those count themselves too. The run starts
 * after the file, the L1 and the reftable, and past any cluster that the
 * refcounts already claim there (leaks beyond EOF are skipped, not reused). */
static int qcow2_layout(struct qcow2 *q, uint64_t fixed)
{
	uint64_t a = q->file_clusters, e, nrb = 0, nrt = 0, rtn = 0, end = 0, r0 = 0, r1 = 0;

	if (q->l1_size) {
		e = qcow2_div_up(q->l1_off + (uint64_t)q->l1_size * 8, q->cs);
		a = e > a ? e : a;
	}
	e = (q->rt_off >> q->cb) + q->rt_clusters;
	a = e > a ? e : a;
	q->run_fixed = fixed;
	q->run_a = q->run_end = a;
	q->run_nrb = q->run_nrt = q->rt_new_n = 0;
	if (!fixed)
		return 0;
	for (int reloc = 0;; reloc++) {
		int it, found = 0;
		uint64_t hi = 0;

		nrb = nrt = rtn = 0;
		for (it = 0; it < QCOW2_FIXPOINT_MAX; it++) {
			uint64_t total, cnt = 0, nrt2 = 0, rtn2 = 0;

			if (__builtin_add_overflow(fixed, nrb, &total) ||
			    __builtin_add_overflow(total, nrt, &total) ||
			    __builtin_add_overflow(a, total, &end) ||
			    end > (QCOW2_MAX_OFFSET >> q->cb))
				return qcow2_fail(q, INSTAR_ERR_TOO_LARGE,
						  "qcow2: image file would grow too large");
			r0 = a / q->rbe;
			r1 = (end - 1) / q->rbe;
			for (uint64_t r = r0; r <= r1; r++)
				cnt += (uint64_t)qcow2_rb_new(q, r);
			if (r1 >= q->rt_n) {
				rtn2 = r1 + 1;
				if (rtn2 > QCOW2_MAX_RT_BYTES / 8)
					return qcow2_fail(
					    q, INSTAR_ERR_TOO_LARGE,
					    "qcow2: refcount table would grow too large");
				nrt2 = qcow2_div_up(rtn2 * 8, q->cs);
			}
			if (cnt == nrb && nrt2 == nrt) {
				rtn = rtn2;
				break;
			}
			nrb = cnt;
			nrt = nrt2;
		}
		if (it == QCOW2_FIXPOINT_MAX)
			return qcow2_fail(q, INSTAR_ERR_INTERNAL,
					  "qcow2: refcount layout did not settle");
		/* scan whole refblocks so one step skips all their claims */
		for (uint64_t r = r0; r <= r1 && r < q->rt_n; r++) {
			struct qcow2_rb *rb;
			uint64_t lo = r * q->rbe, c0 = a > lo ? a : lo;
			int rc = qcow2_rb_get(q, r, &rb);

			if (rc)
				return rc;
			for (uint64_t c = c0; rb && c < lo + q->rbe; c++)
				if (qcow2_rc_get(q, rb->buf, c - lo)) {
					hi = c;
					found = 1;
				}
		}
		if (!found)
			break;
		if (reloc >= QCOW2_RELOCATE_MAX)
			return qcow2_fail(q, INSTAR_ERR_CORRUPT, "qcow2: no free clusters found");
		a = hi + 1;
	}
	q->run_a = a;
	q->run_end = end;
	q->run_nrb = nrb;
	q->run_nrt = nrt;
	q->rt_new_n = rtn;
	return 0;
}

/* +1 for every run cluster in the existing refblocks that cover the run; the
 * result is kept as a phase-1 copy, the cache goes on to phase 5. */
static int qcow2_apply_incs(struct qcow2 *q)
{
	uint64_t r0, r1;

	if (q->run_end == q->run_a)
		return 0;
	r0 = q->run_a / q->rbe;
	r1 = (q->run_end - 1) / q->rbe;
	for (uint64_t r = r0; r <= r1 && r < q->rt_n; r++) {
		struct qcow2_rb *rb;
		struct qcow2_snap *sn;
		uint64_t lo = r * q->rbe;
		uint64_t c0 = q->run_a > lo ? q->run_a : lo;
		uint64_t c1 = q->run_end < lo + q->rbe ? q->run_end : lo + q->rbe;
		int rc = qcow2_rb_get(q, r, &rb);

		if (rc)
			return rc;
		if (!rb)
			continue;
		for (uint64_t c = c0; c < c1; c++)
			qcow2_rc_set(q, rb->buf, c - lo, 1);
		if (q->nsnaps >= q->capsnaps)
			return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL,
					  "qcow2: too many refblocks");
		sn = &q->snaps[q->nsnaps];
		sn->buf = qcow2_alloc(q, q->cs, 64);
		if (!sn->buf)
			return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
		plan_memcpy(sn->buf, rb->buf, (size_t)q->cs);
		sn->idx = r;
		q->nsnaps++;
		rb->dirty = 0;
	}
	return 0;
}

/* Layer 1 refcount part: updated existing refblocks, new refblocks and the
 * relocated reftable (all in the run, nothing references them yet). */
static int qcow2_emit_refcounts(struct qcow2 *q)
{
	uint64_t r0, r1, k = 0, rb_base = q->run_a + q->run_fixed;
	int rc;

	for (uint32_t i = 0; i < q->nsnaps; i++) {
		rc = qcow2_put(q, q->rt[q->snaps[i].idx] & QCOW2_RT_MASK, q->snaps[i].buf, q->cs);
		if (rc)
			return rc;
	}
	if (q->run_end == q->run_a)
		return 0;
	r0 = q->run_a / q->rbe;
	r1 = (q->run_end - 1) / q->rbe;
	for (uint64_t r = r0; r <= r1; r++) {
		uint64_t lo = r * q->rbe;
		uint64_t c0 = q->run_a > lo ? q->run_a : lo;
		uint64_t c1 = q->run_end < lo + q->rbe ? q->run_end : lo + q->rbe;

		if (!qcow2_rb_new(q, r))
			continue;
		plan_memset(q->tbuf, 0, (size_t)q->cs);
		for (uint64_t c = c0; c < c1; c++)
			qcow2_rc_set(q, q->tbuf, c - lo, 1);
		rc = qcow2_put(q, (rb_base + k) << q->cb, q->tbuf, q->cs);
		if (rc)
			return rc;
		k++;
	}
	if (!q->rt_new_n)
		return 0;
	k = 0;
	for (uint64_t m = 0; m < q->run_nrt; m++) {
		uint64_t per = q->cs / 8;

		for (uint64_t j = 0; j < per; j++) {
			uint64_t r = m * per + j, v = 0;

			if (r < q->rt_n)
				v = q->rt[r];
			if (r >= r0 && r <= r1 && qcow2_rb_new(q, r))
				v = (rb_base + k++) << q->cb;
			put_be64(q->tbuf + j * 8, v);
		}
		rc = qcow2_put(q, (rb_base + q->run_nrb + m) << q->cb, q->tbuf, q->cs);
		if (rc)
			return rc;
	}
	return 0;
}

/* Layer 2: make the new refblocks reachable. */
static int qcow2_emit_reftable_switch(struct qcow2 *q)
{
	uint64_t r0, r1, k = 0, rb_base = q->run_a + q->run_fixed;
	uint8_t b[12];
	int rc;

	if (q->run_end == q->run_a)
		return 0;
	if (q->rt_new_n) {
		put_be64(b, (rb_base + q->run_nrb) << q->cb);
		put_be32(b + 8, (uint32_t)q->run_nrt);
		return qcow2_put(q, 48, b, 12);
	}
	r0 = q->run_a / q->rbe;
	r1 = (q->run_end - 1) / q->rbe;
	for (uint64_t r = r0; r <= r1; r++) {
		if (!qcow2_rb_new(q, r))
			continue;
		put_be64(b, (rb_base + k++) << q->cb);
		rc = qcow2_put(q, q->rt_off + r * 8, b, 8);
		if (rc)
			return rc;
	}
	return 0;
}

/* The end of layer 1 and layer 2: the refcounts, a barrier, the new
 * refblocks made reachable, a barrier. */
static int qcow2_emit_ref_layers(struct qcow2 *q)
{
	int rc = qcow2_emit_refcounts(q);

	if (!rc)
		rc = qcow2_barrier(q);
	if (!rc)
		rc = qcow2_emit_reftable_switch(q);
	if (!rc)
		rc = qcow2_barrier(q);
	return rc;
}

/* Header size @24 between barriers: the commit point. */
static int qcow2_commit(struct qcow2 *q)
{
	uint8_t b[8];
	int rc = qcow2_barrier(q);

	if (rc)
		return rc;
	put_be64(b, q->o->new_size);
	if (q->bm_rewrite) {
		/* size and bitmap directory become live in one sector write */
		put_be64(q->hdr0 + 24, q->o->new_size);
		put_be64(q->hdr0 + (q->bm_ext - q->c0) + 16, q->bm_new_doff);
		rc = qcow2_put(q, 0, q->hdr0, sizeof(q->hdr0));
	} else {
		rc = qcow2_put(q, 24, b, 8);
	}
	if (!rc)
		rc = qcow2_barrier(q);
	return rc;
}

/* Phase 5: decremented refblocks, then discards of clusters now free. */
static int qcow2_emit_cleanup(struct qcow2 *q, uint64_t file_after)
{
	uint64_t run_lo = 0, run_n = 0;
	int rc;

	for (uint64_t r = 0; r < q->rt_n; r++) {
		struct qcow2_rb *rb = qcow2_rb_loaded(q, r);

		if (!rb || !rb->dirty)
			continue;
		rc = qcow2_put(q, q->rt[r] & QCOW2_RT_MASK, rb->buf, q->cs);
		if (rc)
			return rc;
	}
	rc = qcow2_barrier(q);
	if (rc)
		return rc;
	for (uint64_t r = 0; r < q->rt_n; r++) {
		struct qcow2_rb *rb = qcow2_rb_loaded(q, r);

		if (!rb || !rb->touched)
			continue;
		for (uint64_t i = 0; i < q->rbe; i++) {
			uint64_t c = r * q->rbe + i;

			if (!(rb->touched[i / 8] & (1u << (i % 8))) || qcow2_rc_get(q, rb->buf, i))
				continue;
			if ((c << q->cb) >= file_after)
				continue;
			if (run_n && run_lo + run_n == c) {
				run_n++;
				continue;
			}
			if (run_n && (rc = plan_discard(q->p, run_lo << q->cb, run_n << q->cb)))
				return rc;
			run_lo = c;
			run_n = 1;
		}
	}
	if (run_n)
		return plan_discard(q->p, run_lo << q->cb, run_n << q->cb);
	return 0;
}

/* Layer 3 extra: clear autoclear bits we do not understand (the spec asks a
 * writer to), keeping "bitmaps consistent" which we leave valid. */
static int qcow2_emit_autoclear(struct qcow2 *q)
{
	uint8_t b[8];

	if (q->version < 3 || !(q->autoclear & ~QCOW2_AUTOCLEAR_KNOWN))
		return 0;
	put_be64(b, q->autoclear & QCOW2_AUTOCLEAR_KNOWN);
	return qcow2_put(q, 88, b, 8);
}

/* Persistent bitmaps (extension 0x23852875): each bitmap's table follows the
 * virtual size. A bitmap whose table size changes, or whose last kept data
 * cluster holds bits past the new end, gets a new table (and, if needed, a
 * new last data cluster) in the run; then a new directory. The extension's
 * directory offset and the size @24 switch together in one sector-0 write. */
struct qcow2_bm {
	uint32_t dpos;	       /* entry offset in the directory */
	uint32_t old_n, new_n; /* table entries */
	uint64_t toff;	       /* old table offset */
	uint8_t *tab;	       /* old table (big-endian entries) */
	uint8_t *fix;	       /* new content of entry `last`'s cluster, or NULL */
	uint64_t last;	       /* index of the last kept entry */
	uint64_t new_toff;     /* set at layout */
	uint64_t fixc;	       /* run cluster of the new `fix` cluster */
	int rewrite;
};

/* A table entry's data cluster loses this bitmap's reference (not one on
 * metadata: see qcow2_dec_entry). */
static int qcow2_bm_dec_entry(struct qcow2 *q, uint64_t e)
{
	uint64_t o = e & QCOW2_OFF_MASK;
	const char *ol;

	if (!o)
		return 0;
	ol = qcow2_overlap(q, o, q->cs, 0);
	if (ol)
		return qcow2_ol_fail(q, "Bitmap data cluster at ", o, ol);
	return qcow2_ref_dec(q, o >> q->cb);
}

/* Bits of a bitmap of granularity 2^g covering size bytes. */
static uint64_t qcow2_bm_bits(uint64_t size, uint32_t g)
{
	return (size >> g) + ((size & ((1ull << g) - 1)) != 0);
}

static int qcow2_bm_entry_ok(const struct qcow2 *q, uint64_t e)
{
	uint64_t o = e & QCOW2_OFF_MASK;

	if (e & ~(QCOW2_OFF_MASK | 1ull))
		return 0; /* reserved bits */
	if (!o)
		return 1;
	return !(e & 1) && !(o & (q->cs - 1)) && o >= q->cs && o / q->cs < q->file_clusters;
}

/* Decides what entry `last` must become: fix = the new cluster content when
 * bits at or past `vb` (valid bits in that cluster) are set. */
static int qcow2_bm_tail(struct qcow2 *q, struct qcow2_bm *bm, uint64_t vb)
{
	uint64_t e = get_be64(bm->tab + bm->last * 8), bits = q->cs * 8, o = e & QCOW2_OFF_MASK;
	int dirty = 0;

	if (vb >= bits || (!o && !(e & 1)))
		return 0;
	bm->fix = qcow2_alloc(q, q->cs, 64);
	if (!bm->fix)
		return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL,
				  "qcow2: out of scratch for bitmaps");
	if (!o) {
		plan_memset(bm->fix, 0xff, (size_t)q->cs); /* all ones */
		dirty = 1;
	} else {
		int rc = plan_read(q->io, o, bm->fix, (uint32_t)q->cs);

		if (rc)
			return qcow2_fail(q, rc, "qcow2: cannot read a bitmap data cluster");
		for (uint64_t i = vb / 8; i < q->cs && !dirty; i++) {
			uint8_t m = i == vb / 8 ? (uint8_t)(0xffu << (vb % 8)) : 0xff;

			dirty = (bm->fix[i] & m) != 0;
		}
	}
	if (!dirty) {
		bm->fix = NULL;
		return 0;
	}
	if (vb % 8)
		bm->fix[vb / 8] &= (uint8_t)((1u << (vb % 8)) - 1);
	plan_memset(bm->fix + (vb + 7) / 8, 0, (size_t)(q->cs - (vb + 7) / 8));
	bm->rewrite = 1;
	return 0;
}

/* The extension chain of a header cluster image h: every extension but the
 * feature-name table (names only) must match the original's bytes, and the
 * bitmaps one must be present. Returns 1 if h parses that way. */
static int qcow2_chain_ok(const struct qcow2 *q, const uint8_t *h)
{
	uint32_t seen = 0, want = 0;
	uint64_t pos;

	for (pos = q->hdr_len; pos < q->ext_end;) {
		uint32_t len = get_be32(q->c0 + pos + 4);

		want += get_be32(q->c0 + pos) != QCOW2_EXT_FEATURES;
		pos += 8 + (((uint64_t)len + 7) & ~7ull);
	}
	for (pos = q->hdr_len; pos + 8 <= q->cs;) {
		uint32_t type = get_be32(h + pos), len = get_be32(h + pos + 4);
		uint64_t o, n = 8 + (((uint64_t)len + 7) & ~7ull);
		int match = 0;

		if (type == 0)
			return seen == want;
		if (len > q->cs - pos - 8)
			return 0;
		if (type != QCOW2_EXT_FEATURES) {
			for (o = q->hdr_len; o < q->ext_end && !match;) {
				uint32_t l2 = get_be32(q->c0 + o + 4);

				match = get_be32(q->c0 + o) == type && l2 == len &&
					!plan_memcmp(q->c0 + o, h + pos, (size_t)n);
				o += 8 + (((uint64_t)l2 + 7) & ~7ull);
			}
			if (!match)
				return 0;
			seen++;
		}
		pos += n;
	}
	return 0;
}

/* qemu puts the bitmaps extension after the feature-name table, past the
 * first sector. Moves it first (same bytes, same total length), written
 * sector by sector with barriers; every intermediate state must parse with
 * every extension but the feature names intact. Then the commit can switch
 * size and directory in one sector-0 write. */
static int qcow2_bm_reorder(struct qcow2 *q, const uint8_t *ext)
{
	uint64_t bpos = (uint64_t)(ext - q->c0) - 8, blen = 8 + ((q->bm_len + 7ull) & ~7ull);
	uint64_t w = q->hdr_len, nsec = (q->ext_end + 511) / 512;
	uint8_t *hy;

	if (q->hdr_len + 32 > 512 ||
	    (q->backing_off && q->backing_off < q->ext_end + 8 && q->backing_off >= q->hdr_len))
		return qcow2_fail(q, INSTAR_ERR_UNSUPPORTED_FEATURE,
				  "qcow2: the bitmaps extension cannot be moved into the first "
				  "sector; cannot switch it atomically with the size");
	q->nx = qcow2_alloc(q, q->cs, 64);
	hy = qcow2_alloc(q, q->cs, 64);
	if (!q->nx || !hy)
		return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
	plan_memcpy(q->nx, q->c0, (size_t)q->cs);
	plan_memcpy(q->nx + w, q->c0 + bpos, (size_t)blen);
	w += blen;
	plan_memcpy(q->nx + w, q->c0 + q->hdr_len, (size_t)(bpos - q->hdr_len));
	w += bpos - q->hdr_len;
	plan_memcpy(q->nx + w, q->c0 + bpos + blen, (size_t)(q->ext_end - bpos - blen));
	for (uint64_t k = 1; k < nsec; k++) {
		plan_memcpy(hy, q->c0, (size_t)q->cs);
		plan_memcpy(hy, q->nx, (size_t)(k * 512));
		if (!qcow2_chain_ok(q, hy))
			return qcow2_fail(q, INSTAR_ERR_UNSUPPORTED_FEATURE,
					  "qcow2: the bitmaps extension cannot be moved into the "
					  "first sector crash-safely; cannot switch it atomically "
					  "with the size");
	}
	plan_memcpy(q->hdr0, q->nx, sizeof(q->hdr0));
	q->bm_ext = q->nx + q->hdr_len + 8;
	q->bm_c0 = q->c0;
	q->c0 = q->nx;
	return 0;
}

/* The bitmap directory (dir, dsize bytes, nb entries) as qemu's open reads
 * it (bitmap_list_load): entry by entry, in its order and words; records
 * where each entry starts. */
static int qcow2_bm_walk(struct qcow2 *q, const uint8_t *dir, uint64_t dsize, uint32_t nb)
{
	uint64_t pos = 0;
	uint32_t n = 0;

	while (pos < dsize) {
		uint32_t flags, nlen, xlen, tn;
		uint64_t ent, toff;
		int bad, small;

		if (pos + 24 > dsize)
			return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
					       "Broken bitmap directory");
		if (++n > nb)
			return qcow2_open_fail(
			    q, INSTAR_ERR_PARSE_FAILED,
			    "More bitmaps found than specified in header extension");
		toff = get_be64(dir + pos);
		tn = get_be32(dir + pos + 8);
		flags = get_be32(dir + pos + 12);
		nlen = get_be16(dir + pos + 18);
		xlen = get_be32(dir + pos + 20);
		ent = 24 + (uint64_t)xlen + nlen;
		if (pos + ((ent + 7) & ~7ull) > dsize)
			return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
					       "Broken bitmap directory");
		if (xlen)
			return qcow2_open_fail(q, INSTAR_ERR_UNSUPPORTED_FEATURE,
					       "Bitmap extra data is not supported");
		bad = toff == 0 || toff & (q->cs - 1) || tn > QCOW2_BM_MAX_TABLE ||
		      dir[pos + 17] > 31 || dir[pos + 17] < 9 || flags & QCOW2_BM_RESERVED_FLAGS ||
		      nlen > 1023 || dir[pos + 16] != 1;
		/* a table too small for the size: corrupt rather than malformed */
		small = tn == 0 ||
			(!(flags & QCOW2_BM_IN_USE) && !bad &&
			 qcow2_div_up(qcow2_bm_bits(q->size, dir[pos + 17]), q->cs * 8) > tn);
		if (bad || small) {
			char msg[INSTAR_DETAIL_MAX];

			qcow2_cat(msg, sizeof(msg), "Bitmap '", (const char *)dir + pos + 24, nlen,
				  "' doesn't satisfy the constraints");
			return qcow2_open_fail(
			    q, bad ? INSTAR_ERR_PARSE_FAILED : INSTAR_ERR_CORRUPT, msg);
		}
		q->bms[n - 1].dpos = (uint32_t)pos;
		pos += (ent + 7) & ~7ull;
	}
	if (n != nb)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				       "Less bitmaps found than specified in header extension");
	if (pos != dsize)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED, "Broken bitmap directory");
	return 0;
}

/* Bitmap i's entry and table against the file, its new table size, and the
 * tail of its last kept table cluster. */
static int qcow2_bm_plan_one(struct qcow2 *q, struct qcow2_bm *bm)
{
	const uint8_t *d = q->bm_dir + bm->dpos;
	uint32_t flags = get_be32(d + 12), g = d[17];
	uint64_t ob, nbits, per = q->cs * 8, keep, vb, fend = q->file_clusters << q->cb;
	int rc;

	bm->toff = get_be64(d);
	bm->old_n = get_be32(d + 8);
	if (flags & ~QCOW2_BM_FLAGS_KNOWN || d[16] != 1 || g < 9 || g > 31 ||
	    bm->old_n > QCOW2_BM_MAX_TABLE || bm->toff & (q->cs - 1) || bm->toff < q->cs ||
	    bm->toff > fend || (uint64_t)bm->old_n * 8 > fend - bm->toff)
		return qcow2_fail(q, INSTAR_ERR_PARSE_FAILED, "qcow2: bitmap entry invalid");
	ob = qcow2_bm_bits(q->size, g);
	if (qcow2_div_up(ob, per) > bm->old_n)
		return qcow2_fail(q, INSTAR_ERR_CORRUPT, "qcow2: bitmap table too small");
	nbits = qcow2_bm_bits(q->o->new_size, g);
	if (nbits > QCOW2_BM_MAX_PHYS * 8 || qcow2_div_up(nbits, per) * q->cs > QCOW2_BM_MAX_PHYS) {
		char msg[INSTAR_DETAIL_MAX];

		/* qemu resizes, then loses the bitmap on close: refuse */
		qcow2_cat(msg, sizeof(msg), "Bitmap '", (const char *)d + 24 + get_be32(d + 20),
			  get_be16(d + 18),
			  "' doesn't satisfy the constraints: Too much space will be "
			  "occupied by the bitmap. Use larger granularity");
		return qcow2_fail(q, INSTAR_ERR_TOO_LARGE, msg);
	}
	bm->new_n = (uint32_t)qcow2_div_up(nbits, per);
	bm->rewrite = bm->new_n != bm->old_n;
	bm->tab = qcow2_alloc(q, (uint64_t)bm->old_n * 8 + 8, 8);
	if (!bm->tab)
		return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL,
				  "qcow2: out of scratch for bitmaps");
	if (bm->old_n && (rc = plan_read(q->io, bm->toff, bm->tab, bm->old_n * 8)))
		return qcow2_fail(q, rc, "qcow2: cannot read a bitmap table");
	for (uint32_t k = 0; k < bm->old_n; k++)
		if (!qcow2_bm_entry_ok(q, get_be64(bm->tab + (uint64_t)k * 8)))
			return qcow2_fail(q, INSTAR_ERR_CORRUPT,
					  "qcow2: bitmap table entry invalid");
	keep = bm->old_n < bm->new_n ? bm->old_n : bm->new_n;
	if (!keep)
		return 0;
	bm->last = keep - 1;
	vb = (ob < nbits ? ob : nbits) - bm->last * per;
	return qcow2_bm_tail(q, bm, vb);
}

/* Parses and validates the directory and the tables; refuses an in-use
 * bitmap with qemu's message; plans which bitmaps are rewritten. */
static int qcow2_check_bitmaps(struct qcow2 *q, const uint8_t *ext, uint32_t len)
{
	uint32_t nb;
	uint64_t dsize, doff, fend = q->file_clusters << q->cb;
	uint8_t *dir;
	int rc;

	if (!(q->autoclear & QCOW2_AUTOCLEAR_BITMAPS))
		return 0; /* extension stale: bitmaps already inconsistent */
	if (len < 24)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				       "bitmaps_ext: Invalid extension length");
	nb = get_be32(ext);
	dsize = get_be64(ext + 8);
	doff = get_be64(ext + 16);
	if (nb == 0)
		return 0;
	if (dsize == 0)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				       "Requested bitmap directory size is zero");
	/* beyond qemu: instar's bound on the directory; inside the file */
	if (nb > QCOW2_BM_MAX || dsize > QCOW2_BM_DIR_MAX || doff & (q->cs - 1) || doff < q->cs ||
	    doff > fend || dsize > fend - doff)
		return qcow2_open_fail(q, INSTAR_ERR_PARSE_FAILED,
				       "qcow2: bitmap directory invalid");
	dir = qcow2_alloc(q, dsize, 8);
	q->bms = qcow2_alloc(q, (uint64_t)nb * sizeof(struct qcow2_bm), 8);
	if (!dir || !q->bms)
		return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL,
				  "qcow2: out of scratch for bitmaps");
	rc = plan_read(q->io, doff, dir, (uint32_t)dsize);
	if (rc)
		return qcow2_open_fail(q, rc, "Failed to read bitmap directory");
	q->bm_dir = dir;
	q->bm_dsize = dsize;
	q->bm_doff = doff;
	q->nbm = nb;
	rc = qcow2_bm_walk(q, dir, dsize, nb);
	if (rc)
		return rc;
	/* the in-use refusal first, as qemu: any inconsistent bitmap */
	for (uint32_t i = 0; i < nb; i++) {
		const uint8_t *d = dir + q->bms[i].dpos;
		uint32_t nlen = get_be16(d + 18);

		if (nlen == 0) /* beyond qemu: a bitmap without a name */
			return qcow2_fail(q, INSTAR_ERR_PARSE_FAILED,
					  "qcow2: bitmap directory entry invalid");
		if (get_be32(d + 12) & QCOW2_BM_IN_USE) {
			char msg[INSTAR_DETAIL_MAX];

			qcow2_cat(msg, sizeof(msg), "Bitmap '", (const char *)d + 24, nlen,
				  "' is inconsistent and cannot be used");
			return qcow2_fail(q, INSTAR_ERR_UNSUPPORTED_FEATURE, msg);
		}
	}
	for (uint32_t i = 0; i < nb; i++) {
		rc = qcow2_bm_plan_one(q, &q->bms[i]);
		if (rc)
			return rc;
		q->bm_rewrite |= q->bms[i].rewrite;
	}
	if (q->bm_rewrite && (uint64_t)(ext - q->c0) + 24 > 512)
		return qcow2_bm_reorder(q, ext);
	return 0;
}

/* Clusters the bitmap rewrite needs in the run. */
static uint64_t qcow2_bm_clusters(const struct qcow2 *q)
{
	uint64_t n = 0;

	if (!q->bm_rewrite)
		return 0;
	for (uint32_t i = 0; i < q->nbm; i++) {
		const struct qcow2_bm *bm = &q->bms[i];

		if (bm->rewrite)
			n += qcow2_div_up((uint64_t)bm->new_n * 8, q->cs) + (bm->fix != NULL);
	}
	return n + qcow2_div_up(q->bm_dsize, q->cs);
}

/* Phase-5 decrements of the old tables, dropped/replaced data clusters and
 * the old directory; assigns the new offsets from run cluster `base`. */
static int qcow2_bm_plan(struct qcow2 *q, uint64_t base)
{
	int rc = 0;

	if (!q->bm_rewrite)
		return 0;
	for (uint32_t i = 0; i < q->nbm && !rc; i++) {
		struct qcow2_bm *bm = &q->bms[i];

		if (!bm->rewrite)
			continue;
		if (bm->fix)
			bm->fixc = base++;
		bm->new_toff = base << q->cb;
		base += qcow2_div_up((uint64_t)bm->new_n * 8, q->cs);
		for (uint64_t k = bm->new_n; k < bm->old_n && !rc; k++)
			rc = qcow2_bm_dec_entry(q, get_be64(bm->tab + k * 8));
		if (!rc && bm->fix)
			rc = qcow2_bm_dec_entry(q, get_be64(bm->tab + bm->last * 8));
		if (!rc)
			rc = qcow2_ref_dec_range(q, bm->toff, (uint64_t)bm->old_n * 8);
	}
	q->bm_new_doff = base << q->cb;
	if (!rc)
		rc = qcow2_ref_dec_range(q, q->bm_doff, q->bm_dsize);
	return rc;
}

/* Layer 1: new data clusters, tables and the directory. */
static int qcow2_bm_emit(struct qcow2 *q)
{
	uint8_t b[8];
	int rc = 0;

	if (!q->bm_rewrite)
		return 0;
	/* sector by sector, sector 0 first, each durable before the next */
	for (uint64_t k = 0; q->nx && k < (q->ext_end + 511) / 512 && !rc; k++) {
		if (!plan_memcmp(q->nx + k * 512, q->bm_c0 + k * 512, 512))
			continue;
		rc = qcow2_put(q, k * 512, q->nx + k * 512, 512);
		if (!rc)
			rc = qcow2_barrier(q);
	}
	for (uint32_t i = 0; i < q->nbm && !rc; i++) {
		struct qcow2_bm *bm = &q->bms[i];
		uint64_t keep = bm->old_n < bm->new_n ? bm->old_n : bm->new_n;

		if (!bm->rewrite)
			continue;
		if (bm->fix && (rc = qcow2_put(q, bm->fixc << q->cb, bm->fix, q->cs)))
			return rc;
		if (keep > 1 && (rc = qcow2_put(q, bm->new_toff, bm->tab, (keep - 1) * 8)))
			return rc;
		if (keep) {
			plan_memcpy(b, bm->tab + (keep - 1) * 8, 8);
			if (bm->fix)
				put_be64(b, bm->fixc << q->cb);
			rc = qcow2_put(q, bm->new_toff + (keep - 1) * 8, b, 8);
		}
		if (!rc && (bm->new_n - keep) * 8 <= QCOW2_BATCH)
			rc = qcow2_put_zeros(q, bm->new_toff + keep * 8, (bm->new_n - keep) * 8);
		else if (!rc)
			rc = qcow2_zero(q, bm->new_toff + keep * 8, (bm->new_n - keep) * 8);
	}
	for (uint32_t i = 0; i < q->nbm && !rc; i++) {
		struct qcow2_bm *bm = &q->bms[i];

		if (!bm->rewrite)
			continue;
		put_be64(q->bm_dir + bm->dpos, bm->new_toff);
		put_be32(q->bm_dir + bm->dpos + 8, bm->new_n);
	}
	if (!rc)
		rc = qcow2_put(q, q->bm_new_doff, q->bm_dir, q->bm_dsize);
	return rc;
}

/* ---- validation: what the plan relies on, checked before it is made ----
 * qemu notices a corrupt structure only when an operation trips over it
 * (and then marks the image corrupt, sometimes after a partial change); the
 * planner checks up front and refuses with nothing written: refcount table
 * entries, active L1 entries, the snapshot table and the snapshot L1 tables,
 * the bitmap directory and tables: cluster-aligned where qemu requires it,
 * inside the file, not on the header, not on each other. Messages are
 * qemu's corruption event texts where qemu has one for the same fault. */

enum {
	QCOW2_OL_HEADER = 1,
	QCOW2_OL_L1 = 2,
	QCOW2_OL_RT = 4,
	QCOW2_OL_RB = 8,
	QCOW2_OL_L2 = 16,
	QCOW2_OL_SNAP = 32,
	QCOW2_OL_BMDIR = 64,
	QCOW2_OL_CRYPT = 128,
};

/* CORRUPT with "a X b Y c" (X, Y in hex; b, c optional). */
static int qcow2_corrupt(struct qcow2 *q, const char *a, uint64_t x, const char *b, uint64_t y,
			 const char *c)
{
	struct plan_msg m;

	m.n = 0;
	m.b[0] = '\0';
	plan_msg_str(&m, a);
	plan_msg_hex0x(&m, x);
	if (b) {
		plan_msg_str(&m, b);
		if (c) {
			plan_msg_hex0x(&m, y);
			plan_msg_str(&m, c);
		}
	}
	return qcow2_fail(q, INSTAR_ERR_CORRUPT, m.b);
}

static void qcow2_sift(uint64_t *a, uint64_t i, uint64_t n)
{
	for (;;) {
		uint64_t c = 2 * i + 1, t;

		if (c >= n)
			return;
		if (c + 1 < n && a[c + 1] > a[c])
			c++;
		if (a[i] >= a[c])
			return;
		t = a[i];
		a[i] = a[c];
		a[c] = t;
		i = c;
	}
}

static void qcow2_sort(uint64_t *a, uint64_t n)
{
	for (uint64_t i = n / 2; i-- > 0;)
		qcow2_sift(a, i, n);
	for (uint64_t e = n; e > 1; e--) {
		uint64_t t = a[0];

		a[0] = a[e - 1];
		a[e - 1] = t;
		qcow2_sift(a, 0, e - 1);
	}
}

/* Whether a sorted list holds a value in [lo, hi). */
static int qcow2_any_in(const uint64_t *a, uint64_t n, uint64_t lo, uint64_t hi)
{
	uint64_t l = 0, h = n;

	while (l < h) {
		uint64_t m = l + (h - l) / 2;

		if (a[m] < lo)
			l = m + 1;
		else
			h = m;
	}
	return l < n && a[l] < hi;
}

static int qcow2_meet(uint64_t c0, uint64_t c1, uint64_t off, uint64_t len, uint32_t cb)
{
	uint64_t d0, d1;

	if (!len)
		return 0;
	d0 = off >> cb;
	d1 = ((off + len - 1) >> cb) + 1;
	return c0 < d1 && d0 < c1;
}

/* The metadata (qemu's names) that host bytes [off, off+len) lie on, or
 * NULL; `skip` leaves kinds out (QCOW2_OL_*). */
static const char *qcow2_overlap(const struct qcow2 *q, uint64_t off, uint64_t len, uint32_t skip)
{
	uint64_t c0 = off >> q->cb, c1;

	if (!len)
		return NULL;
	c1 = ((off + len - 1) >> q->cb) + 1;
	if (!(skip & QCOW2_OL_HEADER) && c0 == 0)
		return "qcow2_header";
	if (!(skip & QCOW2_OL_L1) && qcow2_meet(c0, c1, q->l1_off, (uint64_t)q->l1_size * 8, q->cb))
		return "active L1 table";
	if (!(skip & QCOW2_OL_RT) &&
	    qcow2_meet(c0, c1, q->rt_off, (uint64_t)q->rt_clusters << q->cb, q->cb))
		return "refcount table";
	if (!(skip & QCOW2_OL_RB) && q->rbl && qcow2_any_in(q->rbl, q->nrbl, c0, c1))
		return "refcount block";
	if (!(skip & QCOW2_OL_L2) && q->l2l && qcow2_any_in(q->l2l, q->nl2l, c0, c1))
		return "active L2 table";
	if (!(skip & QCOW2_OL_SNAP) && q->snap_end &&
	    qcow2_meet(c0, c1, q->snap_off, q->snap_end - q->snap_off, q->cb))
		return "snapshot table";
	if (!(skip & QCOW2_OL_BMDIR) && q->bm_dir &&
	    qcow2_meet(c0, c1, q->bm_doff, q->bm_dsize, q->cb))
		return "bitmap directory";
	if (!(skip & QCOW2_OL_CRYPT) && q->fde && qcow2_meet(c0, c1, q->fde_off, q->fde_len, q->cb))
		return "encryption header";
	return NULL;
}

static int qcow2_ol_fail(struct qcow2 *q, const char *what, uint64_t off, const char *name)
{
	struct plan_msg m;

	m.n = 0;
	m.b[0] = '\0';
	plan_msg_str(&m, what);
	plan_msg_hex0x(&m, off);
	plan_msg_str(&m, " overlaps with ");
	plan_msg_str(&m, name);
	return qcow2_fail(q, INSTAR_ERR_CORRUPT, m.b);
}

/* Refcount table entries: aligned, inside the file, off the other tables,
 * each refblock once. Leaves q->rbl sorted. */
static int qcow2_check_reftable(struct qcow2 *q)
{
	uint64_t n = 0, k = 0;
	const char *ol;

	for (uint64_t r = 0; r < q->rt_n; r++) /* first, as qemu's reads find them */
		if (q->rt[r] & QCOW2_RT_MASK & (q->cs - 1))
			return qcow2_corrupt(q, "Refblock offset ", q->rt[r] & QCOW2_RT_MASK,
					     " unaligned (reftable index: ", r, ")");
	for (uint64_t r = 0; r < q->rt_n; r++) {
		uint64_t o = q->rt[r] & QCOW2_RT_MASK;

		if (!o)
			continue;
		if (o >> q->cb >= q->file_clusters)
			return qcow2_corrupt(q, "Refblock at ", o,
					     " is not covered by the refcount structures", 0, NULL);
		ol = qcow2_overlap(q, o, q->cs,
				   QCOW2_OL_RB | QCOW2_OL_L2 | QCOW2_OL_SNAP | QCOW2_OL_BMDIR);
		if (ol)
			return qcow2_ol_fail(q, "Refblock at ", o, ol);
		n++;
	}
	q->rbl = qcow2_alloc(q, n * 8 + 8, 8);
	if (!q->rbl)
		return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
	for (uint64_t r = 0; r < q->rt_n; r++)
		if (q->rt[r] & QCOW2_RT_MASK)
			q->rbl[k++] = (q->rt[r] & QCOW2_RT_MASK) >> q->cb;
	qcow2_sort(q->rbl, n);
	q->nrbl = n;
	for (uint64_t i = 1; i < n; i++)
		if (q->rbl[i] == q->rbl[i - 1])
			return qcow2_corrupt(q, "Refblock at ", q->rbl[i] << q->cb,
					     " is listed twice in the refcount table", 0, NULL);
	return 0;
}

/* Active L1 entries: each L2 table aligned, inside the file, off the
 * header, L1, reftable and refblocks, and used once. The sorted list (for
 * the later overlap checks) is kept if the scratch holds it. */
static int qcow2_check_l1(struct qcow2 *q)
{
	uint64_t n = 0, k = 0, e, t;
	const char *ol;
	int rc;

	for (uint64_t i = 0; i < q->l1_size; i++) {
		rc = qcow2_l1_get(q, i, &e);
		if (rc)
			return rc;
		t = e & QCOW2_OFF_MASK;
		if (!t)
			continue;
		if (t & (q->cs - 1))
			return qcow2_corrupt(q, "L2 table offset ", t, " unaligned (L1 index: ", i,
					     ")");
		if (t >> q->cb >= q->file_clusters)
			return qcow2_corrupt(q, "L2 table offset ", t,
					     " is beyond the end of the image file (L1 index: ", i,
					     ")");
		ol = qcow2_overlap(q, t, q->cs, QCOW2_OL_L2 | QCOW2_OL_SNAP | QCOW2_OL_BMDIR);
		if (ol)
			return qcow2_ol_fail(q, "L2 table at ", t, ol);
		n++;
	}
	/* a huge L1 in a small scratch: every table was checked alone above,
	 * only the pairwise checks are skipped */
	if (q->s->len - q->s->used < n * 8 + 4 * q->cs + (512u << 10))
		return 0;
	q->l2l = qcow2_alloc(q, n * 8 + 8, 8);
	if (!q->l2l)
		return 0;
	for (uint64_t i = 0; i < q->l1_size && k < n; i++) {
		rc = qcow2_l1_get(q, i, &e);
		if (rc)
			return rc;
		if (e & QCOW2_OFF_MASK)
			q->l2l[k++] = (e & QCOW2_OFF_MASK) >> q->cb;
	}
	qcow2_sort(q->l2l, n);
	q->nl2l = n;
	for (uint64_t i = 1; i < n; i++)
		if (q->l2l[i] == q->l2l[i - 1])
			return qcow2_corrupt(q, "L2 table at ", q->l2l[i] << q->cb,
					     " is listed twice in the active L1 table", 0, NULL);
	return 0;
}

/* The snapshot table (as qemu reads it on open) and each snapshot's L1
 * table: inside the file and off the other metadata. Pass 0 walks the
 * table and finds its end, pass 1 checks the L1 tables against it. */
static int qcow2_check_snapshots(struct qcow2 *q)
{
	uint64_t fsz = q->io->file_size;
	uint8_t b[QCOW2_SNAP_HDR];
	const char *ol;
	int rc;

	if (!q->nb_snap)
		return 0;
	if (q->snap_off & (q->cs - 1) || q->snap_off == 0 || q->snap_off >= fsz)
		return qcow2_open_fail(q, INSTAR_ERR_CORRUPT, "Snapshot table offset invalid");
	for (int pass = 0; pass < 2; pass++) {
		uint64_t off = q->snap_off;

		for (uint32_t i = 0; i < q->nb_snap; i++) {
			uint64_t l1o;
			uint32_t l1n, xs;

			off = (off + 7) & ~7ull;
			if (off + QCOW2_SNAP_HDR > fsz)
				return qcow2_open_fail(
				    q, INSTAR_ERR_CORRUPT,
				    "Snapshot table runs past the end of the image file");
			rc = plan_read(q->io, off, b, QCOW2_SNAP_HDR);
			if (rc)
				return qcow2_open_fail(q, rc, "Failed to read snapshot table");
			l1o = get_be64(b);
			l1n = get_be32(b + 8);
			xs = get_be32(b + 36);
			if (xs > QCOW2_MAX_SNAP_EXTRA) {
				struct plan_msg m;

				m.n = 0;
				m.b[0] = '\0';
				plan_msg_str(&m,
					     "Too much extra metadata in snapshot table entry ");
				plan_msg_dec(&m, i);
				rc = qcow2_open_fail(q, INSTAR_ERR_CORRUPT, m.b);
				plan_set_hint(q->ret, "You can force-remove this extra metadata "
						      "with qemu-img check -r all");
				return rc;
			}
			off += QCOW2_SNAP_HDR + xs + get_be16(b + 12) + get_be16(b + 14);
			if (off - q->snap_off > QCOW2_MAX_SNAP_TABLE) {
				struct plan_msg m = {.n = 0};

				plan_msg_str(&m, "You can force-remove all ");
				plan_msg_dec(&m, q->nb_snap - i);
				plan_msg_str(&m,
					     " overhanging snapshots with qemu-img check -r all");
				rc = qcow2_open_fail(q, INSTAR_ERR_CORRUPT,
						     "Snapshot table is too big");
				plan_set_hint(q->ret, m.b);
				return rc;
			}
			if (l1n > QCOW2_MAX_L1_ENTRIES)
				return qcow2_fail(q, INSTAR_ERR_CORRUPT,
						  "Snapshot L1 table too large");
			if (l1n && (l1o & (q->cs - 1) || l1o < q->cs || l1o > fsz ||
				    (uint64_t)l1n * 8 > fsz - l1o))
				return qcow2_fail(q, INSTAR_ERR_CORRUPT,
						  "Snapshot L1 table offset invalid");
			if (pass && l1n &&
			    (ol = qcow2_overlap(q, l1o, (uint64_t)l1n * 8, QCOW2_OL_BMDIR)))
				return qcow2_ol_fail(q, "Snapshot L1 table at ", l1o, ol);
		}
		if (off > fsz)
			return qcow2_open_fail(
			    q, INSTAR_ERR_CORRUPT,
			    "Snapshot table runs past the end of the image file");
		if (!pass && (ol = qcow2_overlap(q, q->snap_off, off - q->snap_off,
						 QCOW2_OL_SNAP | QCOW2_OL_BMDIR)))
			return qcow2_ol_fail(q, "Snapshot table at ", q->snap_off, ol);
		q->snap_end = off;
	}
	return 0;
}

/* The bitmap directory and tables (parsed by qcow2_check_bitmaps): off the
 * other metadata. */
static int qcow2_check_bitmap_places(struct qcow2 *q)
{
	const char *ol;

	if (!q->nbm)
		return 0;
	ol = qcow2_overlap(q, q->bm_doff, q->bm_dsize, QCOW2_OL_BMDIR);
	if (ol)
		return qcow2_ol_fail(q, "Bitmap directory at ", q->bm_doff, ol);
	for (uint32_t i = 0; i < q->nbm; i++) {
		const struct qcow2_bm *bm = &q->bms[i];

		ol = qcow2_overlap(q, bm->toff, (uint64_t)bm->old_n * 8, 0);
		if (ol)
			return qcow2_ol_fail(q, "Bitmap table at ", bm->toff, ol);
	}
	return 0;
}

#define QCOW2_FDE_OUTSIDE "Request for data outside of extension header"

/* The encryption header region (LUKS header and key material): long enough
 * for the header, inside the file, off the qcow2 header, the L1 table and
 * the reftable; qcow2_validate keeps everything else off it. */
static int qcow2_check_crypt(struct qcow2 *q)
{
	const char *ol;

	if (!q->fde)
		return 0;
	if (q->fde_len < QCOW2_LUKS_HDR_LEN)
		return qcow2_fail(q, INSTAR_ERR_CORRUPT, QCOW2_FDE_OUTSIDE);
	if (q->fde_off > q->io->file_size || q->fde_len > q->io->file_size - q->fde_off)
		return qcow2_corrupt(q, "Encryption header at ", q->fde_off,
				     " runs past the end of the image file", 0, NULL);
	ol = qcow2_overlap(q, q->fde_off, q->fde_len, QCOW2_OL_CRYPT | QCOW2_OL_BMDIR);
	if (ol)
		return qcow2_ol_fail(q, "Encryption header at ", q->fde_off, ol);
	return 0;
}

/* Then the LUKS1 header in it as qemu checks it on open, its key material
 * inside the region (qemu's messages); and for a resize (after the reftable
 * checks) every cluster of the region counted, so that no shrink ends the
 * file before it. */
static int qcow2_check_luks(struct qcow2 *q, int counted)
{
	uint64_t payload, refs, end;
	int rc;

	if (!q->fde)
		return 0;
	rc = plan_luks_header(q->io, q->fde_off, q->fde_len, QCOW2_FDE_OUTSIDE, &payload, q->ret);
	if (rc) /* qemu's crypto layer reads the LUKS header on open */
		q->ret->flags |= INSTAR_RESULT_OPEN;
	if (rc || !counted)
		return rc;
	end = qcow2_div_up(q->fde_off + q->fde_len, q->cs);
	for (uint64_t c = q->fde_off >> q->cb; c < end; c++) {
		rc = qcow2_ref_get(q, c, &refs);
		if (rc)
			return rc;
		if (!refs)
			return qcow2_corrupt(q, "Encryption header cluster at ", c << q->cb,
					     " has a refcount of 0", 0, NULL);
	}
	return 0;
}

static int qcow2_validate(struct qcow2 *q)
{
	int rc = qcow2_check_reftable(q);

	if (!rc)
		rc = qcow2_check_l1(q);
	if (!rc)
		rc = qcow2_check_snapshots(q);
	if (!rc)
		rc = qcow2_check_bitmap_places(q);
	return rc;
}

/* An L2 table we change: in place when the active image owns it alone,
 * else (shared with a snapshot) a copy. */
static int qcow2_table_kind(struct qcow2 *q, uint64_t t, int *ret_kind)
{
	uint64_t refs;
	int rc = qcow2_ref_get(q, t >> q->cb, &refs);

	if (rc)
		return rc;
	if (!refs)
		return qcow2_fail(q, INSTAR_ERR_CORRUPT,
				  "qcow2: L2 table has refcount 0; run 'qemu-img check'");
	*ret_kind = refs == 1 ? QCOW2_KIND_INPLACE : QCOW2_KIND_COW;
	return 0;
}

/* Data cluster h, whose bytes from `in` on must read as zeros: when the
 * active image owns it alone (*ret_refs == 1) that range is zeroed in place
 * (*zoff, *zlen). A cluster that lies on other metadata is refused (qemu's
 * overlap check would refuse the write). */
static int qcow2_own_tail(struct qcow2 *q, uint64_t h, uint64_t in, uint64_t *zoff, uint64_t *zlen,
			  uint64_t *ret_refs)
{
	const char *ol;
	int rc;

	if (h & (q->cs - 1) || h / q->cs >= q->file_clusters)
		return qcow2_fail(q, INSTAR_ERR_CORRUPT, "qcow2: cluster offset invalid");
	rc = qcow2_ref_get(q, h >> q->cb, ret_refs);
	if (rc || *ret_refs != 1)
		return rc;
	ol = qcow2_overlap(q, h, q->cs, 0);
	if (ol) {
		struct plan_msg m;

		m.n = 0;
		m.b[0] = '\0';
		plan_msg_str(&m, "Preventing invalid write on metadata (overlaps with ");
		plan_msg_str(&m, ol);
		plan_msg_str(&m, ")");
		return qcow2_fail(q, INSTAR_ERR_CORRUPT, m.b);
	}
	*zoff = h + in;
	*zlen = q->cs - in;
	return 0;
}

/* A compressed cluster's content into buf (one cluster). Returns 0, 1 if it
 * does not decompress, or an error. */
static int qcow2_decompress(struct qcow2 *q, uint64_t w0, uint8_t *buf)
{
	size_t wsz = q->ctype ? PLAN_UNZSTD_WORK_SIZE : PLAN_INFLATE_WORK_SIZE;
	uint64_t off, csize;
	uint8_t *cbuf, *work;
	int rc = qcow2_compressed(q, w0, &off, &csize);

	if (rc)
		return rc;
	if (off >= q->io->file_size)
		return 1;
	if (csize > q->io->file_size - off)
		csize = q->io->file_size - off; /* as qemu: a short last read */
	cbuf = qcow2_alloc(q, csize, 64);
	work = qcow2_alloc(q, wsz, 64);
	if (!cbuf || !work)
		return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
	rc = plan_read(q->io, off, cbuf, (uint32_t)csize);
	if (rc)
		return qcow2_fail(q, rc, "qcow2: cannot read a compressed cluster");
	rc = q->ctype ? plan_unzstd(cbuf, (size_t)csize, buf, (size_t)q->cs, work)
		      : plan_inflate(cbuf, (size_t)csize, buf, (size_t)q->cs, work);
	return rc ? 1 : 0;
}

/* ---- grow ---- */

static int qcow2_entry_nonzero(const struct qcow2 *q, const uint8_t *t, uint64_t j)
{
	return get_be64(t + j * q->esz) != 0 || (q->ext_l2 && get_be64(t + j * q->esz + 8) != 0);
}

enum {
	QCOW2_HEAD_NONE = 0,  /* the partial cluster's entry stays */
	QCOW2_HEAD_MAP = 1,   /* preallocation maps it like a new cluster */
	QCOW2_HEAD_ENTRY = 2, /* it becomes head_w0/head_w1 (same host cluster) */
	QCOW2_HEAD_NEW = 3,   /* it moves to a new cluster holding head_buf */
};

/* Backing file bytes at guest offset off into buf. */
static int qcow2_read_backing(struct qcow2 *q, uint64_t off, uint8_t *buf, uint64_t len)
{
	int r;

	if (!len)
		return 0;
	/* -ENOTSUP: a backing file in a format or at a depth not read */
	r = q->io->read_backing ? q->io->read_backing(q->io->backing_ctx, off, buf, (uint32_t)len)
				: -ENOTSUP;
	if (r == -ENOTSUP)
		return qcow2_fail(q, INSTAR_ERR_UNSUPPORTED_FEATURE,
				  "qcow2: the partial cluster at the old end needs the backing "
				  "file's data, which is not available");
	if (r == -EINVAL)
		return qcow2_fail(q, INSTAR_ERR_CORRUPT,
				  "qcow2: the backing file is malformed where the partial cluster "
				  "at the old end reads from it");
	if (r)
		return qcow2_fail(q, INSTAR_ERR_READ_FAILED, "qcow2: cannot read the backing file");
	return 0;
}

/* The guest view of bytes [from, upto) of the partial cluster (entry
 * w0/w1) into a new buffer, zeros from upto on: its own data, decompressed,
 * zeros or the backing file's, cluster by cluster (extended L2: subcluster
 * by subcluster; `from` is a subcluster boundary). */
static int qcow2_head_view(struct qcow2 *q, uint64_t w0, uint64_t w1, uint64_t from, uint64_t upto,
			   uint8_t **ret)
{
	uint64_t h = w0 & QCOW2_OFF_MASK, gstart = (q->size >> q->cb) << q->cb, sc = q->cs / 32;
	uint8_t *buf = qcow2_alloc(q, q->cs, 64);
	int rc = 0;

	*ret = buf;
	if (!buf)
		return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
	if (w0 & QCOW2_COMPRESSED) {
		rc = qcow2_decompress(q, w0, buf);
		if (rc == 1)
			return qcow2_fail(q, INSTAR_ERR_CORRUPT,
					  "qcow2: the compressed cluster at the old end does not "
					  "decompress");
	} else if (!q->ext_l2) {
		if (h)
			rc = qcow2_read_cluster(q, h, buf);
		else if (!(q->version >= 3 && (w0 & QCOW2_ZERO_FLAG)))
			rc = qcow2_read_backing(q, gstart + from, buf + from, upto - from);
	} else {
		if (h && (w1 & 0xffffffffull))
			rc = qcow2_read_cluster(q, h, buf);
		for (uint64_t lo = from; !rc && lo < upto; lo += sc) {
			uint64_t k = lo / sc, n = upto - lo < sc ? upto - lo : sc;

			if ((w1 >> k) & 1)
				continue;
			if ((w1 >> (32 + k)) & 1)
				plan_memset(buf + lo, 0, (size_t)n);
			else
				rc = qcow2_read_backing(q, gstart + lo, buf + lo, n);
		}
	}
	if (rc)
		return rc;
	plan_memset(buf + upto, 0, (size_t)(q->cs - upto));
	return 0;
}

/* The partial cluster at the old end with extended L2 entries (over a longer
 * backing file, no data preallocation): subclusters wholly past the old end
 * read as zeros, only the one holding the old end is written. */
static int qcow2_grow_head_ext(struct qcow2 *q, uint64_t w0, uint64_t w1, int map_mode)
{
	uint64_t h = w0 & QCOW2_OFF_MASK, in = q->size & (q->cs - 1), sc = q->cs / 32;
	uint64_t k0 = in / sc, part = in % sc, nw1 = w1, s0 = k0, refs, zoff, zlen;
	int zero = (int)((w1 >> (32 + k0)) & 1), rc;
	uint8_t *buf;

	for (uint64_t k = part ? k0 + 1 : k0; k < 32; k++)
		nw1 = (nw1 | (1ull << (32 + k))) & ~(1ull << k);
	refs = 0;
	if (h) {
		rc = qcow2_ref_get(q, h >> q->cb, &refs);
		if (rc)
			return rc;
	}
	if (part && !zero && h && refs != 1) {
		/* a copy, as qemu copies on write: every subcluster from
		 * the first allocated one to the old end's is allocated
		 * (metadata preallocation: the allocated ones stay so) */
		for (uint64_t k = 0; k < k0 && !map_mode; k++)
			if ((w1 >> k) & 1) {
				s0 = k;
				break;
			}
		rc = qcow2_head_view(q, w0, w1, s0 * sc, in, &buf);
		if (rc)
			return rc;
		for (uint64_t k = s0; k <= k0; k++)
			nw1 = (nw1 | (1ull << k)) & ~(1ull << (32 + k));
		q->head_mode = QCOW2_HEAD_NEW;
		q->head_buf = buf;
		q->head_w1 = nw1;
		return 0;
	}
	if (part && !zero) {
		/* the subcluster holding the old end: its kept part, zeros */
		rc = qcow2_head_view(q, w0, w1, k0 * sc, in, &buf);
		if (rc)
			return rc;
		nw1 |= 1ull << k0;
		if (h) {
			rc = qcow2_own_tail(q, h, k0 * sc, &zoff, &zlen, &refs);
			if (rc)
				return rc;
			q->hw_off = zoff;
			q->hw_len = sc;
			q->hw_buf = buf + k0 * sc;
		} else {
			q->head_mode = QCOW2_HEAD_NEW;
			q->head_buf = buf;
			q->head_w1 = nw1;
			return 0;
		}
	}
	if (map_mode && !h) {
		/* metadata preallocation maps it (nothing in it is allocated) */
		q->head_mode = QCOW2_HEAD_NEW;
		q->head_w1 = nw1;
		q->head_buf = qcow2_alloc(q, q->cs, 64);
		if (!q->head_buf)
			return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
		return 0;
	}
	if (nw1 != w1) {
		q->head_mode = QCOW2_HEAD_ENTRY;
		q->head_w0 = w0;
		q->head_w1 = nw1;
	}
	return 0;
}

/* The partial cluster at an unaligned old end. Without a backing file that
 * shows through (or a shorter one) qemu leaves it, and so do we, but what
 * we own alone has its bytes past the old end zeroed. Over a longer backing
 * file those bytes must read as zeros after the grow, as qemu makes them
 * (its explicit zero write of the head): zeroed in place in a cluster we
 * own alone; else the cluster moves to a new one holding its kept part
 * (from a shared or compressed cluster, or the backing file for an
 * unallocated one) and zeros. Extended L2 (no preallocation of data):
 * subclusters past the old end get their zero bits, only the one holding
 * the old end is written. falloc and full move it to a fully allocated
 * cluster, as qemu's preallocation does. */
static int qcow2_grow_head_plain(struct qcow2 *q, int map_mode)
{
	uint64_t old = q->size, gh = old >> q->cb, in = old & (q->cs - 1);
	uint64_t t, w0 = 0, w1 = 0, h, refs, zoff, zlen;
	int prealloc_data =
	    q->o->prealloc == INSTAR_PREALLOC_FALLOC || q->o->prealloc == INSTAR_PREALLOC_FULL;
	uint8_t ent[16];
	int rc;

	q->head_mode = QCOW2_HEAD_NONE;
	if (q->data_file) {
		/* the cluster's bytes live in the data file, which the host resizes */
		if (!q->zero_new)
			return 0;
		return qcow2_fail(q, INSTAR_ERR_UNSUPPORTED_FEATURE,
				  "qcow2: cannot zero the partial cluster at the old end in the "
				  "external data file");
	}
	rc = qcow2_l2_of(q, gh / q->l2e, &t);
	if (rc)
		return rc;
	if (t) {
		rc = plan_read(q->io, t + (gh % q->l2e) * q->esz, ent, q->esz);
		if (rc)
			return qcow2_fail(q, rc, "qcow2: cannot read an L2 table");
		w0 = get_be64(ent);
		w1 = q->ext_l2 ? get_be64(ent + 8) : 0;
	}
	q->head_old_w0 = w0;
	h = w0 & QCOW2_OFF_MASK;

	if (!q->zero_new) {
		if (w0 & QCOW2_COMPRESSED)
			return 0;
		if (!q->ext_l2 && q->version >= 3 && (w0 & QCOW2_ZERO_FLAG))
			return 0; /* reads as zeros already */
		if (!h) {
			if (map_mode)
				q->head_mode = QCOW2_HEAD_MAP;
			return 0;
		}
		rc = qcow2_own_tail(q, h, in, &zoff, &zlen, &refs);
		if (!rc && refs == 1) {
			q->hw_off = zoff;
			q->hw_len = zlen;
		}
		return rc; /* shared with a snapshot: left as qemu leaves it */
	}

	if (w0 & QCOW2_COMPRESSED && q->ext_l2 && q->o->prealloc == INSTAR_PREALLOC_OFF)
		/* qemu cannot zero subclusters of a compressed cluster */
		return qcow2_fail(q, INSTAR_ERR_UNSUPPORTED_FEATURE,
				  "Failed to zero out new clusters: Operation not supported");
	if (w0 & QCOW2_COMPRESSED || (q->ext_l2 && prealloc_data)) {
		/* a new cluster with the kept part (extended L2: all allocated) */
		q->head_mode = QCOW2_HEAD_NEW;
		q->head_w1 = q->ext_l2 ? 0xffffffffull : 0;
		return qcow2_head_view(q, w0, w1, 0, in, &q->head_buf);
	}
	if (!q->ext_l2) {
		if (q->version >= 3 && (w0 & QCOW2_ZERO_FLAG))
			return 0; /* reads as zeros already */
		if (h) {
			rc = qcow2_own_tail(q, h, in, &zoff, &zlen, &refs);
			if (rc || refs == 1) {
				q->hw_off = zoff;
				q->hw_len = zlen;
				return rc;
			}
		}
		q->head_mode = QCOW2_HEAD_NEW;
		q->head_w1 = 0;
		return qcow2_head_view(q, w0, 0, 0, in, &q->head_buf);
	}

	return qcow2_grow_head_ext(q, w0, w1, map_mode);
}

/* Encrypted: guest bytes are ciphertext that only the key writes. Without a
 * backing file that shows through the partial cluster is left, as qemu
 * leaves it; over a longer one only what needs no data write (zero flags)
 * is done, else the grow is refused. */
static int qcow2_grow_head(struct qcow2 *q, int map_mode)
{
	int rc;

	if (q->crypt && !q->zero_new) {
		q->head_mode = QCOW2_HEAD_NONE;
		return 0;
	}
	rc = qcow2_grow_head_plain(q, map_mode);
	if (!rc && q->crypt && (q->hw_len || q->head_mode == QCOW2_HEAD_NEW))
		return qcow2_fail(q, INSTAR_ERR_UNSUPPORTED_FEATURE,
				  "qcow2: cannot zero the partial cluster at the old end of an "
				  "encrypted image over a longer backing file without its key");
	return rc;
}

/* An L2 entry of the grown range (guest cluster g, new data cluster dc).
 * Over a longer backing file (v3) it must read as zeros: without data the
 * zero flag (extended L2: every subcluster's zero bit), with metadata
 * preallocation the zero flag on the mapped cluster; falloc and full write
 * zeros into the new clusters and map them as data (extended L2: every
 * subcluster allocated), as qemu 7.2 does (its protocol truncate zeroes
 * them). With an external data file a mapped cluster is the same offset in
 * the data file (qemu's allocation there is the identity); qemu preallocates
 * only metadata there. The partial cluster at the old end (qcow2_grow_head)
 * gets the entry decided for it. Past the old end without preallocation or
 * a backing file: an empty entry (clears what a crashed shrink left). */
static void qcow2_new_entry(const struct qcow2 *q, uint8_t *t, uint64_t j, int map_mode, uint64_t g,
			    uint64_t dc, uint64_t head_c)
{
	uint64_t host = q->data_file ? g : dc;
	uint64_t w0 = map_mode ? (host << q->cb) | QCOW2_COPIED : 0, w1 = 0;
	int data =
	    q->o->prealloc == INSTAR_PREALLOC_FALLOC || q->o->prealloc == INSTAR_PREALLOC_FULL;

	if (q->head_mode >= QCOW2_HEAD_ENTRY && g == q->size >> q->cb) {
		if (q->head_mode == QCOW2_HEAD_ENTRY)
			qcow2_l2_put(q, t, j, q->head_w0, q->head_w1);
		else
			qcow2_l2_put(q, t, j, (head_c << q->cb) | QCOW2_COPIED, q->head_w1);
		return;
	}
	if (q->zero_new && q->version >= 3) {
		if (map_mode && data && !q->data_file)
			w1 = q->ext_l2 ? 0xffffffffull : 0;
		else if (q->ext_l2)
			w1 = 0xffffffff00000000ull;
		else
			w0 |= QCOW2_ZERO_FLAG;
	}
	qcow2_l2_put(q, t, j, w0, w1);
}

/* The common end of grow and shrink: autoclear bits, the size commit with
 * its barriers, then the cleanup; file_size_after is set either way. */
static int qcow2_finish(struct qcow2 *q, int rc, uint64_t after)
{
	if (!rc)
		rc = qcow2_emit_autoclear(q);
	if (!rc)
		rc = qcow2_commit(q);
	if (!rc)
		rc = qcow2_emit_cleanup(q, after);
	q->ret->file_size_after = after;
	return rc;
}

/* Whether L2 table t (L1 index i) maps anything in guest clusters [lo, hi):
 * left there by a shrink that crashed after its commit. */
static int qcow2_stale(struct qcow2 *q, uint64_t i, uint64_t t, uint64_t lo, uint64_t hi, int *ret)
{
	uint64_t j0 = lo - i * q->l2e, n = hi - lo;
	int rc = plan_read(q->io, t + j0 * q->esz, q->tbuf, (uint32_t)(n * q->esz));

	*ret = 0;
	if (rc)
		return qcow2_fail(q, rc, "qcow2: cannot read an L2 table");
	for (uint64_t j = 0; j < n && !*ret; j++)
		*ret = qcow2_entry_nonzero(q, q->tbuf, j);
	return 0;
}

/* Drops this image's references held by entries of table t in guest
 * clusters [lo, hi) (phase 5: they are overwritten before the commit). */
static int qcow2_dec_stale(struct qcow2 *q, uint64_t i, uint64_t t, uint64_t lo, uint64_t hi)
{
	uint64_t j0 = lo - i * q->l2e, n = hi - lo;
	int rc = plan_read(q->io, t + j0 * q->esz, q->tbuf, (uint32_t)(n * q->esz));

	if (rc)
		return qcow2_fail(q, rc, "qcow2: cannot read an L2 table");
	for (uint64_t j = 0; j < n && !rc; j++)
		rc = qcow2_dec_entry(q, get_be64(q->tbuf + j * q->esz));
	return rc;
}

/* What a grow decides before it emits: the tables and clusters of the grown
 * range, and where they go in the run. */
struct qcow2_grow {
	uint64_t need_l1;	     /* L1 entries the new size needs */
	int relocate;		     /* the L1 moves (need_l1 > l1_size) */
	uint64_t n_l1;		     /* clusters of the new L1 (0: not moved) */
	int map_mode;		     /* every new cluster mapped (preallocation, data-file-raw) */
	int all;		     /* every entry of the grown range is written */
	uint64_t g_old, g_new, g_lo; /* guest clusters: old end, new end, first written */
	uint64_t d_lo;		     /* guest cluster of the first new data cluster */
	uint64_t i_lo, i_hi;	     /* L1 indexes of the tables touched */
	uint8_t *kinds;		     /* QCOW2_KIND_* per L1 index in [i_lo, i_hi] */
	uint64_t n_l2, n_data, n_head;
	uint64_t l2_base, data_base, head_c; /* run clusters */
};

/* Guest clusters of L1 index i within [lo, hi). */
static void qcow2_span(const struct qcow2 *q, uint64_t i, uint64_t lo, uint64_t hi, uint64_t *glo,
		       uint64_t *ghi)
{
	*glo = i * q->l2e > lo ? i * q->l2e : lo;
	*ghi = (i + 1) * q->l2e < hi ? (i + 1) * q->l2e : hi;
}

/* The tables of the grown range (a head that changes implies `all`): new
 * ones where the range needs entries and has no table; existing ones are
 * written when the range needs entries, or the head changes, or entries are
 * left past the old end (a shrink that crashed after its commit): in place
 * when ours alone, else copied. */
static int qcow2_grow_tables(struct qcow2 *q, struct qcow2_grow *g)
{
	g->i_lo = g->g_lo / q->l2e;
	g->i_hi = (g->g_new - 1) / q->l2e;
	g->kinds = qcow2_alloc(q, g->i_hi - g->i_lo + 1, 8);
	if (!g->kinds)
		return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
	for (uint64_t i = g->i_lo; i <= g->i_hi; i++) {
		uint64_t t, glo, ghi;
		uint8_t *kind = &g->kinds[i - g->i_lo];
		int k, stale = 0, rc = qcow2_l2_of(q, i, &t);

		if (rc)
			return rc;
		qcow2_span(q, i, g->g_old, g->g_new, &glo, &ghi);
		if (!t) {
			*kind = g->all ? QCOW2_KIND_NEW : QCOW2_KIND_KEEP;
			g->n_l2 += *kind == QCOW2_KIND_NEW;
			continue;
		}
		if (glo < ghi && (rc = qcow2_stale(q, i, t, glo, ghi, &stale)))
			return rc;
		if (!g->all && !stale && !(q->head_mode && i == g->i_lo)) {
			*kind = QCOW2_KIND_KEEP;
			continue;
		}
		rc = qcow2_table_kind(q, t, &k);
		if (rc)
			return rc;
		*kind = (uint8_t)k;
		g->n_l2 += k == QCOW2_KIND_COW;
	}
	/* the head keeps its cluster unless it moves or is mapped anew */
	g->d_lo = q->head_mode == QCOW2_HEAD_ENTRY ? g->g_old : g->g_lo;
	g->n_data = g->map_mode && !q->data_file ? g->g_new - g->d_lo : 0;
	return 0;
}

/* Phase-5 decrements, computed before anything is emitted: the old L1 and
 * reftable when they move, the head's old cluster when it moves, entries a
 * crashed shrink left in the grown range, tables replaced by copies. */
static int qcow2_grow_decrements(struct qcow2 *q, const struct qcow2_grow *g)
{
	int rc = 0;

	if (g->relocate && q->l1_size)
		rc = qcow2_ref_dec_range(q, q->l1_off, (uint64_t)q->l1_size * 8);
	if (!rc && q->rt_new_n)
		rc = qcow2_ref_dec_range(q, q->rt_off, (uint64_t)q->rt_clusters << q->cb);
	if (!rc)
		rc = qcow2_bm_plan(q, q->run_a + g->n_l1 + g->n_l2 + g->n_data + g->n_head);
	if (!rc && q->head_mode == QCOW2_HEAD_NEW)
		rc = qcow2_dec_entry(q, q->head_old_w0);
	for (uint64_t i = g->i_lo; !rc && g->kinds && i <= g->i_hi; i++) {
		uint8_t kind = g->kinds[i - g->i_lo];
		uint64_t t, glo, ghi;

		if (kind != QCOW2_KIND_COW && kind != QCOW2_KIND_INPLACE)
			continue;
		qcow2_span(q, i, g->g_old, g->g_new, &glo, &ghi);
		rc = qcow2_l2_of(q, i, &t);
		if (!rc && glo < ghi)
			rc = qcow2_dec_stale(q, i, t, glo, ghi);
		if (!rc && kind == QCOW2_KIND_COW)
			rc = qcow2_ref_dec(q, t >> q->cb);
	}
	return rc;
}

/* Layer 1, tables: the relocated L1 (new and copied tables linked), the new
 * and copied L2 tables with the grown range's entries. */
static int qcow2_grow_emit_tables(struct qcow2 *q, const struct qcow2_grow *g)
{
	uint64_t per = q->cs / 8, k = 0;
	int rc;

	for (uint64_t m = 0; m < g->n_l1; m++) {
		for (uint64_t j = 0; j < per; j++) {
			uint64_t i = m * per + j, v = 0;

			if (i < q->l1_size && (rc = qcow2_l1_get(q, i, &v)))
				return rc;
			if (g->kinds && i >= g->i_lo && i <= g->i_hi &&
			    (g->kinds[i - g->i_lo] == QCOW2_KIND_NEW ||
			     g->kinds[i - g->i_lo] == QCOW2_KIND_COW))
				v = ((g->l2_base + k++) << q->cb) | QCOW2_COPIED;
			put_be64(q->tbuf + j * 8, v);
		}
		rc = qcow2_put(q, (q->run_a + m) << q->cb, q->tbuf, q->cs);
		if (rc)
			return rc;
	}
	k = 0;
	for (uint64_t i = g->i_lo; g->kinds && i <= g->i_hi; i++) {
		uint8_t kind = g->kinds[i - g->i_lo];
		uint64_t t, glo, ghi;

		if (kind == QCOW2_KIND_INPLACE || kind == QCOW2_KIND_KEEP)
			continue;
		if (kind == QCOW2_KIND_COW) {
			rc = qcow2_l2_of(q, i, &t);
			if (!rc)
				rc = qcow2_read_cluster(q, t, q->tbuf);
			if (rc)
				return rc;
		} else {
			plan_memset(q->tbuf, 0, (size_t)q->cs);
		}
		qcow2_span(q, i, g->g_lo, g->g_new, &glo, &ghi);
		for (uint64_t c = glo; c < ghi; c++)
			qcow2_new_entry(q, q->tbuf, c - i * q->l2e, g->map_mode, c,
					g->data_base + c - g->d_lo, g->head_c);
		rc = qcow2_put(q, (g->l2_base + k++) << q->cb, q->tbuf, q->cs);
		if (rc)
			return rc;
	}
	return 0;
}

/* Layer 1, data: preallocated clusters, the head's new cluster, the head's
 * bytes written in place. */
static int qcow2_grow_emit_data(struct qcow2 *q, const struct qcow2_grow *g)
{
	int rc = 0;

	if (g->n_data && q->o->prealloc != INSTAR_PREALLOC_METADATA)
		rc = qcow2_zero(q, g->data_base << q->cb, g->n_data << q->cb);
	else if (g->n_data && q->run_end == g->data_base + g->n_data)
		/* metadata: nothing else extends the file past the new data
		 * clusters; do it now so no committed state points past EOF:
		 * zeros in the last sector of the last one (which reads as
		 * zeros anyway), so the file ends where the run does and the
		 * final length cuts off none of the writes */
		rc = qcow2_put(q, (q->run_end << q->cb) - 512, q->zbuf, 512);
	if (!rc && q->head_mode == QCOW2_HEAD_NEW)
		rc = qcow2_put(q, g->head_c << q->cb, q->head_buf, q->cs);
	if (!rc && q->hw_len && q->hw_buf)
		rc = qcow2_put(q, q->hw_off, q->hw_buf, q->hw_len);
	else if (!rc && q->hw_len)
		rc = qcow2_zero(q, q->hw_off, q->hw_len);
	return rc;
}

/* Layer 3: link the new tables, write the entries of the ones we own in
 * place, switch to the relocated L1. */
static int qcow2_grow_emit_links(struct qcow2 *q, const struct qcow2_grow *g)
{
	uint64_t k = 0;
	uint8_t b[12];
	int rc;

	for (uint64_t i = g->i_lo; g->kinds && i <= g->i_hi; i++) {
		uint8_t kind = g->kinds[i - g->i_lo];
		uint64_t t, glo, ghi;

		if (kind == QCOW2_KIND_KEEP)
			continue;
		if (kind != QCOW2_KIND_INPLACE) {
			if (!g->relocate) {
				put_be64(b, ((g->l2_base + k) << q->cb) | QCOW2_COPIED);
				rc = qcow2_put(q, q->l1_off + i * 8, b, 8);
				if (rc)
					return rc;
			}
			k++;
			continue;
		}
		rc = qcow2_l2_of(q, i, &t);
		if (rc)
			return rc;
		qcow2_span(q, i, g->g_lo, g->g_new, &glo, &ghi);
		for (uint64_t c = glo; c < ghi; c++)
			qcow2_new_entry(q, q->tbuf, c - glo, g->map_mode, c,
					g->data_base + c - g->d_lo, g->head_c);
		rc = qcow2_put(q, t + (glo - i * q->l2e) * q->esz, q->tbuf, (ghi - glo) * q->esz);
		if (rc)
			return rc;
	}
	if (!g->relocate)
		return 0;
	put_be32(b, (uint32_t)g->need_l1);
	put_be64(b + 4, q->run_a << q->cb);
	return qcow2_put(q, 36, b, 12);
}

static int qcow2_grow(struct qcow2 *q)
{
	const struct plan_opts *o = q->o;
	struct qcow2_grow gs, *g = &gs;
	uint64_t fixed, after;
	int zero_mode = q->zero_new && o->prealloc == INSTAR_PREALLOC_OFF;
	int rc;

	plan_memset(g, 0, sizeof(*g));
	g->need_l1 = qcow2_div_up(qcow2_div_up(o->new_size, q->cs), q->l2e);
	g->relocate = g->need_l1 > q->l1_size;
	g->n_l1 = g->relocate ? qcow2_div_up(g->need_l1 * 8, q->cs) : 0;
	/* data-file-raw keeps every cluster mapped: qemu forces metadata */
	g->map_mode = o->prealloc != INSTAR_PREALLOC_OFF || q->data_raw;
	g->all = zero_mode || g->map_mode;
	g->g_old = qcow2_div_up(q->size, q->cs);
	g->g_new = qcow2_div_up(o->new_size, q->cs);
	g->g_lo = g->d_lo = g->g_old;
	if (q->size & (q->cs - 1)) {
		rc = qcow2_grow_head(q, g->map_mode);
		if (rc)
			return rc;
		if (q->head_mode != QCOW2_HEAD_NONE)
			g->g_lo = g->g_old - 1;
	}
	if (g->g_lo < g->g_new && (rc = qcow2_grow_tables(q, g)))
		return rc;
	g->n_head = q->head_mode == QCOW2_HEAD_NEW && !g->n_data;
	if (__builtin_add_overflow(g->n_l1, g->n_l2, &fixed) ||
	    __builtin_add_overflow(fixed, g->n_data + g->n_head, &fixed) ||
	    __builtin_add_overflow(fixed, qcow2_bm_clusters(q), &fixed))
		return qcow2_fail(q, INSTAR_ERR_TOO_LARGE,
				  "qcow2: image file would grow too large");
	rc = qcow2_layout(q, fixed);
	if (!rc)
		rc = qcow2_apply_incs(q);
	if (!rc)
		rc = qcow2_grow_decrements(q, g);
	if (rc)
		return rc;

	g->l2_base = q->run_a + g->n_l1;
	g->data_base = g->l2_base + g->n_l2;
	g->head_c = g->data_base; /* the head's data cluster, or its own one after none */
	after = q->io->file_size;
	if (q->run_end > q->run_a && (q->run_end << q->cb) > after)
		after = q->run_end << q->cb;
	if (q->hw_buf && q->hw_off + q->hw_len > after)
		after = q->hw_off + q->hw_len; /* data past the file's end */

	rc = qcow2_grow_emit_tables(q, g);
	if (!rc)
		rc = qcow2_grow_emit_data(q, g);
	if (!rc)
		rc = qcow2_bm_emit(q);
	if (!rc)
		rc = qcow2_emit_ref_layers(q);
	if (!rc)
		rc = qcow2_grow_emit_links(q, g);
	return qcow2_finish(q, rc, after);
}

/* ---- shrink ---- */

/* Highest cluster below `limit` with a refcount, after this plan's changes. */
/* Whether cluster c holds a refblock this shrink drops from another
 * refblock's range (its count there goes to 0 after the drop). */
static bool qcow2_foreign_drop(const struct qcow2 *q, uint64_t c)
{
	for (uint64_t k = 0; k < q->n_foreign; k++)
		if (q->rb_foreign[k] == c)
			return true;
	return false;
}

static int qcow2_last_used(struct qcow2 *q, uint64_t limit, uint64_t *last)
{
	uint8_t *tmp = NULL;

	*last = 0;
	for (uint64_t r = (limit - 1) / q->rbe + 1; r-- > 0;) {
		uint64_t off, lo = r * q->rbe, n = limit - lo < q->rbe ? limit - lo : q->rbe;
		const struct qcow2_rb *rb;
		const uint8_t *buf;
		int rc = qcow2_rb_off(q, r, &off);

		if (rc)
			return rc;
		if (!off || (q->rb_drop && q->rb_drop[r]))
			continue;
		rb = qcow2_rb_loaded(q, r);
		if (rb) {
			buf = rb->buf;
		} else {
			if (!tmp && !(tmp = qcow2_alloc(q, q->cs, 64)))
				return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL,
						  "qcow2: out of scratch");
			rc = plan_read(q->io, off, tmp, (uint32_t)q->cs);
			if (rc)
				return qcow2_fail(q, rc, "qcow2: cannot read a refcount block");
			buf = tmp;
		}
		for (uint64_t i = n; i-- > 0;)
			if (qcow2_rc_get(q, buf, i) && !qcow2_foreign_drop(q, lo + i)) {
				*last = lo + i;
				return 0;
			}
	}
	return 0;
}

/* The kept tail of a partially cut cluster (guest cluster of entry w0/w1)
 * must read as zeros after a later grow; qemu leaves the old bytes. In a
 * plain cluster the active image owns alone the tail is zeroed in place
 * (*zoff, *zlen). A cluster shared with a snapshot, or a compressed one, is
 * copied: *ret_buf is the new cluster's content (kept part, then zeros) and
 * *ret_w1 its second L2 word. A compressed cluster that does not decompress
 * is left as qemu leaves it: it reads as an error before and after. */
static int qcow2_tail(struct qcow2 *q, uint64_t w0, uint64_t w1, uint8_t **ret_buf,
		      uint64_t *ret_w1, uint64_t *zoff, uint64_t *zlen)
{
	uint64_t in = q->o->new_size & (q->cs - 1), h, refs;
	uint8_t *buf;
	int rc;

	*ret_buf = NULL;
	*ret_w1 = w1;
	*zoff = *zlen = 0;
	if (q->data_file)
		return 0; /* the host cuts the data file at the new size */
	if (q->crypt)
		return 0; /* zeros must be encrypted: left as qemu leaves it */
	if (!(w0 & QCOW2_COMPRESSED)) {
		h = w0 & QCOW2_OFF_MASK;
		if (!h || (!q->ext_l2 && q->version >= 3 && (w0 & QCOW2_ZERO_FLAG)))
			return 0; /* reads as zeros (or the backing file) anyway */
		rc = qcow2_own_tail(q, h, in, zoff, zlen, &refs);
		if (rc || refs == 1)
			return rc;
		buf = qcow2_alloc(q, q->cs, 64);
		if (!buf)
			return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
		rc = qcow2_read_cluster(q, h, buf);
		if (rc)
			return rc;
	} else {
		buf = qcow2_alloc(q, q->cs, 64);
		if (!buf)
			return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
		rc = qcow2_decompress(q, w0, buf);
		if (rc)
			return rc == 1 ? 0 : rc;
		*ret_w1 = q->ext_l2 ? 0xffffffffull : 0; /* every subcluster allocated */
	}
	plan_memset(buf + in, 0, (size_t)(q->cs - in));
	*ret_buf = buf;
	return 0;
}

/* What a shrink decides before it emits. */
struct qcow2_shrink {
	uint64_t cut;	 /* guest clusters kept */
	uint64_t new_l1; /* L1 entries kept */
	/* the L2 table straddling the cut (L1 index s_idx, entries from jcut) */
	uint64_t s_idx, s_t, jcut;
	uint8_t *torig, *tnew; /* as read; as it becomes */
	int s_kind;
	/* the last kept cluster (L1 index ti, entry tj) when partially cut */
	uint64_t ti, tj, t_t, tail_w0, tail_w1, tz_off, tz_len;
	uint8_t *tail;	 /* its new cluster's content (NULL: none) */
	uint8_t *t_copy; /* copy of its shared table */
	uint8_t tent[16];
	int t_kind, tail_in_s;
	/* run clusters: the tail's new cluster, the copy of its table */
	uint64_t p_tail, p_tab;
	/* L1 entries past the new end that hold something */
	uint64_t z_lo, z_hi;
	int have_z;
};

/* The L2 table straddling the cut: when it maps anything past the cut, it
 * is cleared there, in place or (shared with a snapshot) in a copy. */
static int qcow2_shrink_straddle(struct qcow2 *q, struct qcow2_shrink *k)
{
	int mod = 0, rc;

	if (!(k->cut % q->l2e) || (k->s_idx = k->cut / q->l2e) >= q->l1_size)
		return 0;
	rc = qcow2_l2_of(q, k->s_idx, &k->s_t);
	if (rc)
		return rc;
	k->jcut = k->cut % q->l2e;
	if (!k->s_t)
		return 0;
	k->torig = qcow2_alloc(q, q->cs, 64);
	k->tnew = qcow2_alloc(q, q->cs, 64);
	if (!k->torig || !k->tnew)
		return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
	rc = qcow2_read_cluster(q, k->s_t, k->torig);
	if (rc)
		return rc;
	for (uint64_t j = k->jcut; j < q->l2e && !mod; j++)
		mod = qcow2_entry_nonzero(q, k->torig, j);
	if (!mod)
		return 0;
	/* shared with a snapshot: copy it, drop our reference */
	rc = qcow2_table_kind(q, k->s_t, &k->s_kind);
	if (rc)
		return rc;
	plan_memcpy(k->tnew, k->torig, (size_t)q->cs);
	plan_memset(k->tnew + k->jcut * q->esz, 0, (size_t)((q->l2e - k->jcut) * q->esz));
	return 0;
}

/* The kept tail of a partially cut cluster: zeroed (qemu does not). A
 * copied tail is linked from its L2 table: the straddling one (which then
 * changes even if nothing past the cut was allocated), or the one before the
 * cut, in place or copied when a snapshot shares it. */
static int qcow2_shrink_tail(struct qcow2 *q, struct qcow2_shrink *k)
{
	uint64_t w0 = 0, w1 = 0;
	uint8_t ent[16];
	int rc;

	if (!(q->o->new_size & (q->cs - 1)))
		return 0;
	if (k->torig && k->ti == k->s_idx) {
		w0 = get_be64(k->torig + k->tj * q->esz);
		w1 = q->ext_l2 ? get_be64(k->torig + k->tj * q->esz + 8) : 0;
	} else {
		rc = qcow2_l2_of(q, k->ti, &k->t_t);
		if (rc)
			return rc;
		if (k->t_t && (rc = plan_read(q->io, k->t_t + k->tj * q->esz, ent, q->esz)))
			return qcow2_fail(q, rc, "qcow2: cannot read an L2 table");
		if (k->t_t) {
			w0 = get_be64(ent);
			w1 = q->ext_l2 ? get_be64(ent + 8) : 0;
		}
	}
	rc = qcow2_tail(q, w0, w1, &k->tail, &k->tail_w1, &k->tz_off, &k->tz_len);
	if (rc)
		return rc;
	k->tail_w0 = w0;
	k->tail_in_s = k->tail && k->torig && k->ti == k->s_idx;
	if (k->tail_in_s) {
		if (k->s_kind != QCOW2_KIND_KEEP)
			return 0;
		rc = qcow2_table_kind(q, k->s_t, &k->s_kind);
		if (!rc)
			plan_memcpy(k->tnew, k->torig, (size_t)q->cs);
		return rc;
	}
	if (!k->tail)
		return 0;
	rc = qcow2_table_kind(q, k->t_t, &k->t_kind);
	if (rc || k->t_kind != QCOW2_KIND_COW)
		return rc;
	k->t_copy = qcow2_alloc(q, q->cs, 64);
	if (!k->t_copy)
		return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
	return qcow2_read_cluster(q, k->t_t, k->t_copy);
}

/* The run: [straddling copy][tail cluster][copy of the tail's table][bitmaps];
 * the tail's new entry set in the table that links it. */
static int qcow2_shrink_layout(struct qcow2 *q, struct qcow2_shrink *k)
{
	uint64_t n_run =
	    (k->s_kind == QCOW2_KIND_COW) + (k->tail != NULL) + (k->t_kind == QCOW2_KIND_COW);
	uint64_t nw0;
	uint8_t *tab;
	int rc = qcow2_layout(q, n_run + qcow2_bm_clusters(q));

	if (!rc)
		rc = qcow2_apply_incs(q);
	if (!rc)
		rc = qcow2_bm_plan(q, q->run_a + n_run);
	if (rc)
		return rc;
	k->p_tail = q->run_a + (k->s_kind == QCOW2_KIND_COW);
	k->p_tab = k->p_tail + (k->tail != NULL);
	if (!k->tail)
		return 0;
	nw0 = (k->p_tail << q->cb) | QCOW2_COPIED;
	tab = k->tail_in_s ? k->tnew : k->t_copy;
	if (tab) {
		qcow2_l2_put(q, tab, k->tj, nw0, k->tail_w1);
	} else {
		put_be64(k->tent, nw0);
		put_be64(k->tent + 8, k->tail_w1);
	}
	rc = qcow2_dec_entry(q, k->tail_w0);
	if (!rc && k->t_kind == QCOW2_KIND_COW)
		rc = qcow2_ref_dec(q, k->t_t >> q->cb);
	return rc;
}

/* Phase-5 decrements: cut entries, then whole tables past the new L1. */
static int qcow2_shrink_decrements(struct qcow2 *q, struct qcow2_shrink *k)
{
	uint64_t e, t;
	int rc = 0;

	if (k->s_kind != QCOW2_KIND_KEEP) {
		for (uint64_t j = k->jcut; j < q->l2e && !rc; j++)
			rc = qcow2_dec_entry(q, get_be64(k->torig + j * q->esz));
		if (!rc && k->s_kind == QCOW2_KIND_COW)
			rc = qcow2_ref_dec(q, k->s_t >> q->cb);
		if (rc)
			return rc;
	}
	for (uint64_t i = k->new_l1; i < q->l1_size; i++) {
		rc = qcow2_l1_get(q, i, &e);
		if (rc)
			return rc;
		if (!e)
			continue;
		if (!k->have_z)
			k->z_lo = i;
		k->z_hi = i;
		k->have_z = 1;
		rc = qcow2_l2_off(q, e, &t);
		if (rc)
			return rc;
		if (!t)
			continue;
		rc = qcow2_read_cluster(q, t, q->tbuf);
		for (uint64_t j = 0; j < q->l2e && !rc; j++)
			rc = qcow2_dec_entry(q, get_be64(q->tbuf + j * q->esz));
		if (!rc)
			rc = qcow2_ref_dec(q, t >> q->cb);
		if (rc)
			return rc;
	}
	return 0;
}

/* Refblock r as this plan leaves it: the cached copy, else read into tmp. */
static int qcow2_rb_view(struct qcow2 *q, uint64_t r, uint64_t off, uint8_t *tmp,
			 const uint8_t **buf)
{
	const struct qcow2_rb *rb = qcow2_rb_loaded(q, r);
	int rc;

	if (rb) {
		*buf = rb->buf;
		return 0;
	}
	rc = plan_read(q->io, off, tmp, (uint32_t)q->cs);
	if (rc)
		return qcow2_fail(q, rc, "qcow2: cannot read a refcount block");
	*buf = tmp;
	return 0;
}

/* Refblocks left counting nothing but themselves go, as qemu's shrink drops
 * them from the reftable (qcow2_shrink_reftable; which then lets the file
 * end move back): one with no refcount after this plan's decrements but,
 * when it lies in the range it describes, its own. Its reftable entry is
 * cleared after the decrements are durable (qcow2_shrink_emit_drops). The
 * own count of one in its own range vanishes with it; one in another
 * refblock's range is counted there, with 1, and that count goes to 0 after
 * the drop, as qemu's qcow2_discard_refcount_block does (a crash between
 * leaves a leak). One whose count there is not 1 is kept (qemu would call
 * the image corrupt). */
static int qcow2_shrink_drops(struct qcow2 *q)
{
	uint8_t *tmp = NULL;
	int rc;

	q->rb_drop = qcow2_alloc(q, q->rt_n, 8);
	q->rb_foreign = qcow2_alloc(q, q->rt_n * 8, 8);
	if (!q->rb_drop || !q->rb_foreign)
		return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
	for (uint64_t r = 0; r < q->rt_n; r++) {
		uint64_t off, self, i, v;
		const uint8_t *buf;
		bool own;

		rc = qcow2_rb_off(q, r, &off);
		if (rc)
			return rc;
		if (!off)
			continue;
		self = off >> q->cb;
		own = self / q->rbe == r;
		if (!tmp && !(tmp = qcow2_alloc(q, q->cs, 64)))
			return qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
		rc = qcow2_rb_view(q, r, off, tmp, &buf);
		if (rc)
			return rc;
		for (i = 0; i < q->rbe; i++)
			if ((!own || i != self % q->rbe) && qcow2_rc_get(q, buf, i))
				break;
		if (i != q->rbe)
			continue;
		if (!own) {
			rc = qcow2_ref_get(q, self, &v);
			if (rc)
				return rc;
			if (v != 1)
				continue;
			q->rb_foreign[q->n_foreign++] = self;
		}
		q->rb_drop[r] = 1;
		q->n_drop++;
	}
	return 0;
}

/* After the decrements are durable: the dropped refblocks leave the reftable
 * (a crash before leaves them counting leaks only), then their clusters
 * below the new end are discarded. */
static int qcow2_shrink_emit_drops(struct qcow2 *q, uint64_t after)
{
	uint8_t z[8] = {0};
	int rc = 0;

	if (!q->n_drop)
		return 0;
	for (uint64_t r = 0; r < q->rt_n && !rc; r++)
		if (q->rb_drop[r])
			rc = qcow2_put(q, q->rt_off + r * 8, z, 8);
	if (!rc)
		rc = qcow2_barrier(q);
	/* the clusters of those that lay in another refblock's range are
	 * freed there (qcow2_shrink_drops found their count 1) */
	for (uint64_t k = 0; k < q->n_foreign && !rc; k++) {
		uint64_t c = q->rb_foreign[k];
		struct qcow2_rb *rb;

		rc = qcow2_rb_get(q, c / q->rbe, &rb);
		if (rc)
			break;
		if (!rb)
			return qcow2_fail(q, INSTAR_ERR_INTERNAL, "qcow2: a counted refblock lost");
		qcow2_rc_set(q, rb->buf, c % q->rbe, 0);
		rc = qcow2_put(q, q->rt[c / q->rbe] & QCOW2_RT_MASK, rb->buf, q->cs);
	}
	if (!rc && q->n_foreign)
		rc = qcow2_barrier(q);
	for (uint64_t r = 0; r < q->rt_n && !rc; r++) {
		uint64_t off = q->rt[r] & QCOW2_RT_MASK;

		if (q->rb_drop[r] && off < after)
			rc = plan_discard(q->p, off, q->cs);
	}
	return rc;
}

/* The file's length after the shrink: the free tail goes. */
static int qcow2_shrink_end(struct qcow2 *q, uint64_t *after)
{
	uint64_t last, limit = q->file_clusters > q->run_end ? q->file_clusters : q->run_end;
	int rc = qcow2_last_used(q, limit, &last);

	if (rc)
		return rc;
	if (q->run_end > q->run_a && q->run_end - 1 > last)
		last = q->run_end - 1;
	*after = q->io->file_size;
	if ((q->run_end << q->cb) > *after)
		*after = q->run_end << q->cb;
	if (((last + 1) << q->cb) < *after)
		*after = (last + 1) << q->cb;
	return 0;
}

/* Layer 4: unlink what lies past the new end, now beyond the size; the
 * refcounts still count it, so a crash from here on leaves leaks only. */
static int qcow2_shrink_unlink(struct qcow2 *q, const struct qcow2_shrink *k)
{
	uint8_t b[8];
	int rc = 0;

	if (k->s_kind == QCOW2_KIND_INPLACE) {
		uint64_t j0 = k->tail_in_s ? k->tj : k->jcut;

		rc = qcow2_put(q, k->s_t + j0 * q->esz, k->tnew + j0 * q->esz,
			       (q->l2e - j0) * q->esz);
	} else if (k->s_kind == QCOW2_KIND_COW) {
		put_be64(b, (q->run_a << q->cb) | QCOW2_COPIED);
		rc = qcow2_put(q, q->l1_off + k->s_idx * 8, b, 8);
	}
	if (!rc && k->t_kind == QCOW2_KIND_INPLACE) {
		rc = qcow2_put(q, k->t_t + k->tj * q->esz, k->tent, q->esz);
	} else if (!rc && k->t_kind == QCOW2_KIND_COW) {
		put_be64(b, (k->p_tab << q->cb) | QCOW2_COPIED);
		rc = qcow2_put(q, q->l1_off + k->ti * 8, b, 8);
	}
	if (!rc && k->have_z)
		rc = qcow2_put_zeros(q, q->l1_off + k->z_lo * 8, (k->z_hi - k->z_lo + 1) * 8);
	if (!rc && k->tz_len)
		rc = qcow2_zero(q, k->tz_off, k->tz_len);
	return rc;
}

static int qcow2_shrink(struct qcow2 *q)
{
	struct qcow2_shrink ks, *k = &ks;
	uint64_t after = 0;
	int rc;

	plan_memset(k, 0, sizeof(*k));
	k->cut = qcow2_div_up(q->o->new_size, q->cs);
	k->new_l1 = qcow2_div_up(k->cut, q->l2e);
	k->ti = (k->cut - 1) / q->l2e;
	k->tj = (k->cut - 1) % q->l2e;
	k->s_kind = k->t_kind = QCOW2_KIND_KEEP;
	rc = qcow2_shrink_straddle(q, k);
	if (!rc)
		rc = qcow2_shrink_tail(q, k);
	if (!rc)
		rc = qcow2_shrink_layout(q, k);
	if (!rc)
		rc = qcow2_shrink_decrements(q, k);
	if (!rc)
		rc = qcow2_shrink_drops(q);
	if (!rc)
		rc = qcow2_shrink_end(q, &after);
	if (rc)
		return rc;

	/* layer 1: a copy of a shared straddling table, the tail's new cluster
	 * and the copy of its shared table */
	if (k->s_kind == QCOW2_KIND_COW)
		rc = qcow2_put(q, q->run_a << q->cb, k->tnew, q->cs);
	if (!rc && k->tail)
		rc = qcow2_put(q, k->p_tail << q->cb, k->tail, q->cs);
	if (!rc && k->t_kind == QCOW2_KIND_COW)
		rc = qcow2_put(q, k->p_tab << q->cb, k->t_copy, q->cs);
	if (!rc)
		rc = qcow2_bm_emit(q);
	if (!rc)
		rc = qcow2_emit_ref_layers(q);
	/* layer 3: the commit. Nothing the old image reads has changed yet:
	 * the size (and, with bitmaps, the new directory) goes first. */
	if (!rc)
		rc = qcow2_emit_autoclear(q);
	if (!rc)
		rc = qcow2_commit(q);
	if (!rc)
		rc = qcow2_shrink_unlink(q, k);
	/* layer 5 (decrements) only once no table points at what they free */
	if (!rc)
		rc = qcow2_barrier(q);
	if (!rc)
		rc = qcow2_emit_cleanup(q, after);
	if (!rc)
		rc = qcow2_shrink_emit_drops(q, after);
	q->ret->file_size_after = after;
	return rc;
}

/* ---- entry ---- */

/* The backing file and the external data file are the host's to open: the
 * names it resolved must be the ones this header holds. Then what the grown
 * range needs: zeros over the backing file only where qemu's block layer
 * asks for them (backing file longer than the image, BDRV_REQ_ZERO_WRITE). */
static int qcow2_check_names(struct qcow2 *q)
{
	const struct plan_opts *o = q->o;

	if (!plan_host_named(o, INSTAR_RESIZE_BACKING, q->backing, q->bname, q->blen))
		return qcow2_fail(q, INSTAR_ERR_HEADER_MISMATCH,
				  "qcow2: backing file name differs from the host's probe");
	q->zero_new = plan_backing_needs_zeros(o, q->backing, q->size);

	q->data_file = (q->incompat & QCOW2_INC_DATA_FILE) != 0;
	q->data_raw = q->version >= 3 && (q->autoclear & QCOW2_AUTOCLEAR_DATA_RAW) != 0;
	if (q->data_file && !q->dname)
		return qcow2_fail(q, INSTAR_ERR_UNSUPPORTED_FEATURE,
				  "qcow2: external data file without a name in the header");
	if (!plan_host_named(o, INSTAR_RESIZE_DATA_FILE, q->data_file, q->dname, q->dlen))
		return qcow2_fail(q, INSTAR_ERR_HEADER_MISMATCH,
				  "qcow2: data file name differs from the host's probe");
	if (q->data_file && q->nb_snap)
		return qcow2_fail(q, INSTAR_ERR_UNSUPPORTED_FEATURE,
				  "qcow2: internal snapshots with an external data file");
	return 0;
}

static int qcow2_check_request(struct qcow2 *q)
{
	const struct plan_opts *o = q->o;
	uint64_t need_l1;
	int rc;

	if (o->expected_old_size != UINT64_MAX && o->expected_old_size != q->size)
		return qcow2_fail(q, INSTAR_ERR_HEADER_MISMATCH,
				  "qcow2: virtual size differs from the host's probe");
	if (o->new_size == 0 || o->new_size > (uint64_t)INT64_MAX)
		return qcow2_fail(q, INSTAR_ERR_INVALID_NEW_SIZE,
				  "New image size must be positive");
	if (o->prealloc > INSTAR_PREALLOC_FULL)
		return qcow2_fail(q, INSTAR_ERR_INVALID_OPTION, "Invalid preallocation mode");
	if (o->prealloc != INSTAR_PREALLOC_OFF && o->new_size <= q->size)
		return qcow2_fail(q, INSTAR_ERR_PREALLOC_NOT_GROWING,
				  "Preallocation can only be used for growing images");
	if (o->new_size < q->size && !(o->flags & INSTAR_RESIZE_SHRINK_ALLOWED))
		return qcow2_fail(q, INSTAR_ERR_SHRINK_WITHOUT_FLAG,
				  "Use the --shrink option to perform a shrink operation.");
	if (o->new_size % 512)
		return qcow2_fail(q, INSTAR_ERR_NOT_MULTIPLE_512,
				  "The new size must be a multiple of 512");
	if (q->version < 3 && q->nb_snap)
		return qcow2_fail(q, INSTAR_ERR_UNSUPPORTED_FEATURE,
				  "Can't resize a v2 image which has snapshots");
	/* The key is never here: nothing that needs encrypted guest bytes. */
	if (q->crypt && o->prealloc != INSTAR_PREALLOC_OFF)
		return qcow2_fail(q, INSTAR_ERR_PREALLOCATION_UNSUPPORTED,
				  "qcow2: preallocation of an encrypted image needs the key to "
				  "write encrypted zeros (qemu-img's new clusters read as noise)");
	if (q->crypt && (q->incompat & QCOW2_INC_DATA_FILE))
		return qcow2_fail(q, INSTAR_ERR_UNSUPPORTED_FEATURE,
				  "qcow2: encrypted images with an external data file are not "
				  "supported");
	if (q->bm_ext) {
		rc = qcow2_check_bitmaps(q, q->bm_ext, q->bm_len);
		if (rc)
			return rc;
	}
	rc = qcow2_check_names(q);
	if (rc)
		return rc;
	need_l1 = qcow2_div_up(qcow2_div_up(o->new_size, q->cs), q->l2e);
	if (need_l1 > q->l1_size && need_l1 > QCOW2_MAX_L1_ENTRIES)
		return qcow2_fail(q, INSTAR_ERR_TOO_LARGE,
				  "Failed to grow the L1 table: File too large");
	if (q->version < 3 && q->zero_new && o->new_size > q->size &&
	    o->prealloc == INSTAR_PREALLOC_OFF)
		return qcow2_fail(q, INSTAR_ERR_UNSUPPORTED_FEATURE,
				  "Failed to zero out new clusters: Operation not supported");
	return 0;
}

int plan_resize_qcow2(const struct plan_opts *o, const struct plan_io *io, struct plan_scratch *s,
		      struct plan *p, struct instar_resize_result *ret)
{
	struct qcow2 qs;
	struct qcow2 *q = &qs;
	int rc;

	plan_memset(q, 0, sizeof(*q));
	q->o = o;
	q->io = io;
	q->s = s;
	q->p = p;
	q->ret = ret;
	plan_result_init(ret, p, o, io);

	rc = qcow2_parse(q);
	if (rc)
		goto out;
	ret->old_virtual_size = q->size;
	rc = qcow2_check_request(q);
	if (rc)
		goto out;
	q->l1w = qcow2_alloc(q, QCOW2_L1W_ENTRIES * 8, 64);
	q->bat = qcow2_alloc(q, QCOW2_BATCH, 64);
	q->zbuf = qcow2_alloc(q, QCOW2_ZBUF, 64);
	q->tbuf = qcow2_alloc(q, q->cs, 64);
	if (!q->l1w || !q->bat || !q->zbuf || !q->tbuf) {
		rc = qcow2_fail(q, INSTAR_ERR_SCRATCH_TOO_SMALL, "qcow2: out of scratch");
		goto out;
	}
	rc = qcow2_load_reftable(q);
	if (!rc)
		rc = qcow2_check_crypt(q);
	if (!rc && o->new_size != q->size)
		rc = qcow2_validate(q);
	if (!rc)
		rc = qcow2_check_luks(q, o->new_size != q->size);
	if (rc)
		goto out;
	if (o->new_size > q->size) {
		ret->action = INSTAR_ACTION_GROW;
		rc = qcow2_grow(q);
	} else if (o->new_size < q->size) {
		ret->action = INSTAR_ACTION_SHRINK;
		rc = qcow2_shrink(q);
	} else {
		/* same size: qemu still rewrites the size field */
		q->bm_rewrite = 0;
		rc = qcow2_commit(q);
	}
out:
	if (rc && ret->error == INSTAR_OK)
		ret->error = (uint32_t)rc;
	if (ret->error == INSTAR_OK)
		p->file_size_after = ret->file_size_after;
	return (int)ret->error;
}
