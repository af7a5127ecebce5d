/* guest/plan/vhd.c — the VHD ("vpc") resize planner: fixed and dynamic disks,
 * grow and shrink. Pure: reads through plan_io, emits ops; freestanding.
 *
 * Size rule: shared/vhd_size.h, the one the host probe uses too (qemu 7.2's
 * reading rule: CHS unless the creator's tools use current_size or the
 * geometry is the maximum). For CHS creators a request is rounded UP to the
 * next CHS-representable size, as `qemu-img create -f vpc` does, and
 * current_size is kept equal to C*H*S*512; for current_size creators (and a
 * disk2vhd image with the maximum geometry, which it keeps) the request is
 * kept, rounded up to 512. The rounded size is what new_virtual_size
 * reports, and every footer with the new size carries it in current_size
 * and original_size (@40, what libvhdi reads) alike.
 *
 * Crash order (an interruption leaves the old or the new disk):
 * - dynamic grow: [relocated BAT + a copy of the old footer after it at EOF,
 *   stale entries beyond the old size cleared, stale tail zeroed] -> FLUSH ->
 *   dynamic header (table_offset, max_table_entries; one sector) -> FLUSH ->
 *   footer at EOF-512, footer at 0 -> FLUSH -> discard what is now unused.
 *   Between the two footer writes a reader of the EOF copy sees the new size
 *   and qemu (which reads the copy at 0) the old one; both are valid disks.
 * - dynamic shrink: footers (commit) -> FLUSH -> clear BAT entries past the
 *   end, zero the kept tail of a cut block -> FLUSH -> discard freed blocks,
 *   and if the file can shrink, a footer at the new end -> FLUSH -> truncate.
 *   Stale data left by a crash after the commit lies above the size, and a
 *   later grow by this planner clears it before making it visible. No BAT
 *   entry is cleared before both footers are durable, so between the two
 *   footer writes (no barrier between them: either may land first) the
 *   reader of the copy at 0 (qemu) and the reader of the EOF copy (spec,
 *   libvhdi) each see a whole disk, the old or the new one (issue 15).
 * - fixed grow: copy of the old footer at the new EOF (old size; the file is
 *   just longer) -> FLUSH -> zero the old footer sector, now beyond the disk
 *   -> FLUSH -> new footer at the new EOF (commit) -> FLUSH.
 * - fixed shrink: new footer at the old EOF-512 (commit; the file is longer
 *   than the disk) -> FLUSH -> new footer at the new end -> FLUSH -> truncate.
 * Differencing disks are refused. */
#include "plan.h"
#include "size.h"
#include "vhd_size.h"

#define VHD_SECTOR 512u
#define VHD_FOOTER_LEN 512u
#define VHD_DYN_LEN 1024u
#define VHD_TYPE_FIXED 2u
#define VHD_TYPE_DYNAMIC 3u
#define VHD_TYPE_DIFF 4u
#define VHD_BAT_FREE 0xffffffffu
#define VHD_MAX_SECTORS INSTAR_VHD_MAX_SECTORS /* qemu's limit: 2040 GiB */
#define VHD_CHUNK_ENTRIES 16384u	       /* BAT entries per read/write chunk */

/* footer fields */
#define VF_ORIG_SIZE INSTAR_VHD_F_ORIG_SIZE
#define VF_CUR_SIZE INSTAR_VHD_F_CUR_SIZE
#define VF_CYL INSTAR_VHD_F_CYL
#define VF_HEADS INSTAR_VHD_F_HEADS
#define VF_SPT INSTAR_VHD_F_SPT
#define VF_TYPE 60
#define VF_CSUM 64
#define VF_DATA_OFF 16
/* dynamic header fields */
#define VD_TABLE_OFF 16
#define VD_MTE 28
#define VD_BLOCK_SIZE 32
#define VD_CSUM 36

struct vhd {
	const struct plan_io *io;
	struct plan *p;
	struct instar_resize_result *ret;
	uint8_t *footer; /* primary footer, 512 */
	uint8_t *dyn;	 /* dynamic header, 1024 */
	uint8_t *chunk;	 /* one BAT chunk */
	uint64_t file_size;
	uint64_t old_size; /* what readers report */
	uint64_t new_size; /* rounded request */
	bool dynamic;
	/* dynamic only */
	uint64_t data_offset, table_offset, bat_bytes;
	uint32_t mte, block_size, bitmap_size;
	uint64_t keep;	   /* entries >= keep must end up unallocated */
	uint64_t kept_end; /* end of the last block below keep */
	bool tail_alloc;   /* block keep-1 is cut and allocated */
	uint64_t tail_off; /* its data offset of the cut point */
	uint64_t tail_len;
};

static int vhd_fail(struct vhd *v, int err, const char *msg)
{
	plan_set_detail(v->ret, msg);
	return err;
}

/* A failure of the image's open (INSTAR_RESULT_OPEN): qemu-img prints it
 * as "Could not open 'NAME': MSG". */
static int vhd_open_fail(struct vhd *v, int err, const char *msg)
{
	v->ret->flags |= INSTAR_RESULT_OPEN;
	return vhd_fail(v, err, msg);
}

/* Rounds a request to what the footer can express (vhd_size.h); fills CHS. */
static int vhd_round(struct vhd *v, uint64_t req, struct instar_vhd_chs *g)
{
	switch (instar_vhd_resize_size(v->footer, req, &v->new_size, g)) {
	case 0:
		return 0;
	case -1:
		return vhd_fail(v, INSTAR_ERR_TOO_LARGE, "vhd size limit is 2040 GiB");
	default:
		return vhd_fail(v, INSTAR_ERR_INTERNAL, "vhd geometry search failed");
	}
}

/* The new footer: old one with the new size in current_size and in
 * original_size (libvhdi reports the latter; qemu and Hyper-V the former). */
static void vhd_footer_set(uint8_t *f, const uint8_t *old, uint64_t size,
			   const struct instar_vhd_chs *g)
{
	plan_memcpy(f, old, VHD_FOOTER_LEN);
	put_be64(f + VF_ORIG_SIZE, size);
	put_be64(f + VF_CUR_SIZE, size);
	put_be16(f + VF_CYL, (uint16_t)g->cyls);
	f[VF_HEADS] = (uint8_t)g->heads;
	f[VF_SPT] = (uint8_t)g->spt;
	put_be32(f + VF_CSUM, 0);
	put_be32(f + VF_CSUM, instar_vhd_checksum(f, VHD_FOOTER_LEN, VF_CSUM));
}

static bool vhd_ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* The file's length as qemu's block layer gives it: in whole sectors. */
static uint64_t vhd_qemu_length(const struct vhd *v)
{
	return (v->file_size + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
}

/* qemu's largest request end (shared/size.h): a read ending past it
 * fails. */
#define VHD_QEMU_IO_MAX INSTAR_QEMU_MAX_LENGTH

/* The dynamic header and block table checks of qemu 7.2's vpc_open, in its
 * order and words: the header read ("Error reading dynamic VHD header":
 * past qemu's largest offset; past the end of the file it reads zeros),
 * its magic, the block size, the table's size, the table read, and the end
 * of the table and of every block against the file's length. */
static int vhd_open_dynamic(struct vhd *v)
{
	uint64_t doff = get_be64(v->footer + VF_DATA_OFF), toff, tsize, end;
	uint32_t bs, mte, bitmap;
	struct plan_msg m = {.n = 0};
	int r;

	if (doff > VHD_QEMU_IO_MAX - VHD_DYN_LEN)
		return vhd_open_fail(v, INSTAR_ERR_CORRUPT, "Error reading dynamic VHD header");
	r = plan_read_z(v->io, doff, v->dyn, VHD_DYN_LEN);
	if (r)
		return r;
	if (plan_memcmp(v->dyn, "cxsparse", 8) != 0)
		return vhd_open_fail(v, INSTAR_ERR_PARSE_FAILED, "Invalid header magic");
	bs = get_be32(v->dyn + VD_BLOCK_SIZE);
	if (bs < VHD_SECTOR || (bs & (bs - 1))) {
		plan_msg_str(&m, "Invalid block size ");
		plan_msg_dec(&m, bs);
		return vhd_open_fail(v, INSTAR_ERR_CORRUPT, m.b);
	}
	/* qemu's "Too many blocks" (size / block size above 2^32 - 1) cannot
	 * happen below the 2040 GiB limit. */
	mte = get_be32(v->dyn + VD_MTE);
	if ((uint64_t)mte * bs < v->old_size)
		return vhd_open_fail(v, INSTAR_ERR_CORRUPT, "Page table too small");
	if (mte > 0x7fffffffu / 4) {
		/* printed as a signed 32-bit number */
		plan_msg_str(&m, "Max Table Entries too large (");
		if (mte > 0x7fffffffu) {
			plan_msg_str(&m, "-");
			plan_msg_dec(&m, 0x100000000ull - mte);
		} else {
			plan_msg_dec(&m, mte);
		}
		plan_msg_str(&m, ")");
		return vhd_open_fail(v, INSTAR_ERR_CORRUPT, m.b);
	}
	tsize = (uint64_t)mte * 4;
	toff = get_be64(v->dyn + VD_TABLE_OFF);
	if (toff > VHD_QEMU_IO_MAX - tsize)
		return vhd_open_fail(v, INSTAR_ERR_CORRUPT, "Error reading pagetable");
	/* The first free byte after the table and every block (with qemu's
	 * bitmap size: none below 4 KiB blocks) must lie within the file. */
	bitmap = ((bs / (8 * VHD_SECTOR)) + VHD_SECTOR - 1) & ~(VHD_SECTOR - 1);
	end = toff + tsize;
	for (uint64_t i = 0; end <= vhd_qemu_length(v) && i < mte; i += VHD_CHUNK_ENTRIES) {
		uint32_t n = mte - i < VHD_CHUNK_ENTRIES ? (uint32_t)(mte - i) : VHD_CHUNK_ENTRIES;

		r = plan_read_z(v->io, toff + i * 4, v->chunk, n * 4);
		if (r)
			return r;
		for (uint32_t k = 0; k < n; k++) {
			uint32_t e = get_be32(v->chunk + 4 * k);

			if (e != VHD_BAT_FREE && (uint64_t)e * VHD_SECTOR + bitmap + bs > end)
				end = (uint64_t)e * VHD_SECTOR + bitmap + bs;
		}
	}
	if ((end + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR > vhd_qemu_length(v))
		return vhd_open_fail(v, INSTAR_ERR_CORRUPT,
				     "block-vpc: free_data_block_offset points after the end of "
				     "file. The image has been truncated.");
	return 0;
}

/* qemu 7.2's open first (vhd_size.h's footer rule, then vhd_open_dynamic
 * when the footer is the first sector's, which qemu reads as a dynamic
 * disk's whatever its type), then what instar refuses beyond qemu, as
 * failed opens too: a length not in whole sectors, a footer whose type does
 * not fit where it lies, a fixed disk shorter than its size, a dynamic
 * header with a bad checksum or out of place, a table beyond instar's limit
 * (the largest disk's), outside the file or over its header. A
 * differencing disk is refused, not as a failed open. */
static int vhd_parse(struct vhd *v)
{
	uint8_t *f = v->footer, *last = v->dyn; /* the last sector, until copied */
	enum instar_vhd_footer_pick pick;
	uint64_t eof_footer;
	const char *msg;
	int r;

	/* qemu's file length is in whole sectors, zeros past the end */
	r = plan_read_z(v->io, 0, f, VHD_FOOTER_LEN);
	if (!r && v->file_size)
		r = plan_read_z(v->io, vhd_qemu_length(v) - VHD_FOOTER_LEN, last, VHD_FOOTER_LEN);
	if (r)
		return r;
	pick = instar_vhd_footer_open(f, v->file_size ? last : 0, &msg);
	switch (pick) {
	case INSTAR_VHD_FOOTER_REFUSED:
		/* a checksum is corrupt; no footer where qemu looks is a parse */
		return vhd_open_fail(v,
				     plan_memcmp(msg, "Incorrect", 9) == 0
					 ? INSTAR_ERR_CORRUPT
					 : INSTAR_ERR_PARSE_FAILED,
				     msg);
	case INSTAR_VHD_FOOTER_TOO_LARGE:
		/* the host's probe says qemu's words, which name the file */
		return vhd_open_fail(v, INSTAR_ERR_CORRUPT, "vhd size beyond 2040 GiB");
	case INSTAR_VHD_FOOTER_LAST:
		plan_memcpy(f, last, VHD_FOOTER_LEN);
		break;
	default:
		break;
	}
	v->old_size = instar_vhd_virtual_size(f);
	if (pick == INSTAR_VHD_FOOTER_FIRST) {
		r = vhd_open_dynamic(v);
		if (r)
			return r;
	}

	/* beyond qemu */
	if (v->file_size % VHD_SECTOR)
		return vhd_open_fail(v, INSTAR_ERR_PARSE_FAILED,
				     "vhd file size is not whole sectors");
	eof_footer = v->file_size - VHD_FOOTER_LEN;
	switch (get_be32(f + VF_TYPE)) {
	case VHD_TYPE_FIXED:
		if (pick == INSTAR_VHD_FOOTER_FIRST)
			return vhd_open_fail(v, INSTAR_ERR_PARSE_FAILED, "no vhd footer");
		v->dynamic = false;
		break;
	case VHD_TYPE_DYNAMIC:
		if (pick != INSTAR_VHD_FOOTER_FIRST)
			return vhd_open_fail(v, INSTAR_ERR_CORRUPT, "vhd footer copies disagree");
		v->dynamic = true;
		break;
	case VHD_TYPE_DIFF:
		return vhd_fail(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "differencing vhd");
	default:
		return vhd_open_fail(v, INSTAR_ERR_PARSE_FAILED, "unknown vhd disk type");
	}
	if (!v->dynamic) {
		if (v->old_size > eof_footer)
			return vhd_open_fail(v, INSTAR_ERR_CORRUPT,
					     "fixed vhd shorter than its size");
		return 0;
	}

	v->data_offset = get_be64(f + VF_DATA_OFF);
	if (get_be32(v->dyn + VD_CSUM) != instar_vhd_checksum(v->dyn, VHD_DYN_LEN, VD_CSUM))
		return vhd_open_fail(v, INSTAR_ERR_CORRUPT, "vhd dynamic header checksum mismatch");
	if (v->data_offset < VHD_FOOTER_LEN || v->data_offset % VHD_SECTOR ||
	    v->data_offset > eof_footer || eof_footer - v->data_offset < VHD_DYN_LEN)
		return vhd_open_fail(v, INSTAR_ERR_CORRUPT,
				     "vhd dynamic header offset out of range");
	v->table_offset = get_be64(v->dyn + VD_TABLE_OFF);
	v->mte = get_be32(v->dyn + VD_MTE);
	v->block_size = get_be32(v->dyn + VD_BLOCK_SIZE);
	/* bitmap: one bit per sector, padded to a sector */
	v->bitmap_size =
	    (v->block_size / VHD_SECTOR + 8 * VHD_SECTOR - 1) / (8 * VHD_SECTOR) * VHD_SECTOR;
	if ((uint64_t)v->mte > VHD_MAX_SECTORS * VHD_SECTOR / v->block_size)
		return vhd_open_fail(v, INSTAR_ERR_CORRUPT, "vhd max_table_entries too large");
	v->bat_bytes = ((uint64_t)v->mte * 4 + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
	if (v->table_offset < VHD_FOOTER_LEN || v->table_offset % VHD_SECTOR ||
	    v->table_offset > eof_footer || eof_footer - v->table_offset < v->bat_bytes)
		return vhd_open_fail(v, INSTAR_ERR_CORRUPT, "vhd block table outside the file");
	if (vhd_ranges_overlap(v->table_offset, v->bat_bytes, v->data_offset, VHD_DYN_LEN))
		return vhd_open_fail(v, INSTAR_ERR_CORRUPT, "vhd block table overlaps its header");
	return 0;
}

/* Reads BAT chunk c (entries c*N ..) of the current table into v->chunk;
 * returns the number of entries read. */
static int vhd_read_chunk(struct vhd *v, uint64_t c, uint32_t *ret_n)
{
	uint64_t first = c * VHD_CHUNK_ENTRIES;
	uint64_t n = v->mte - first;

	if (n > VHD_CHUNK_ENTRIES)
		n = VHD_CHUNK_ENTRIES;
	*ret_n = (uint32_t)n;
	return plan_read(v->io, v->table_offset + first * 4, v->chunk, (uint32_t)n * 4);
}

static uint64_t vhd_block_span(const struct vhd *v)
{
	return (uint64_t)v->bitmap_size + v->block_size;
}

/* Pass 1: every allocated block must lie inside the file and clear of the
 * metadata we rewrite. Also finds the end of the kept blocks and the cut. */
static int vhd_scan(struct vhd *v, uint64_t min_size)
{
	uint64_t span = vhd_block_span(v), limit = v->file_size - VHD_FOOTER_LEN;
	uint64_t nchunks = ((uint64_t)v->mte + VHD_CHUNK_ENTRIES - 1) / VHD_CHUNK_ENTRIES;
	uint64_t cut = min_size / v->block_size;
	int r;

	v->keep = min_size / v->block_size + (min_size % v->block_size != 0);
	v->kept_end = 0;
	v->tail_alloc = false;
	for (uint64_t c = 0; c < nchunks; c++) {
		uint32_t n;

		r = vhd_read_chunk(v, c, &n);
		if (r)
			return r;
		for (uint32_t k = 0; k < n; k++) {
			uint64_t i = c * VHD_CHUNK_ENTRIES + k, off, end;
			uint32_t e = get_be32(v->chunk + 4 * k);

			if (e == VHD_BAT_FREE)
				continue;
			off = (uint64_t)e * VHD_SECTOR;
			end = off + span;
			if (off < VHD_FOOTER_LEN || end > limit)
				return vhd_open_fail(v, INSTAR_ERR_CORRUPT,
						     "vhd block outside the file");
			if (vhd_ranges_overlap(off, span, v->data_offset, VHD_DYN_LEN) ||
			    vhd_ranges_overlap(off, span, v->table_offset, v->bat_bytes))
				return vhd_open_fail(v, INSTAR_ERR_CORRUPT,
						     "vhd block overlaps the metadata");
			if (i < v->keep && end > v->kept_end)
				v->kept_end = end;
			if (i == cut && min_size % v->block_size) {
				v->tail_alloc = true;
				v->tail_off = off + v->bitmap_size + min_size % v->block_size;
				v->tail_len = v->block_size - min_size % v->block_size;
			}
		}
	}
	return 0;
}

struct vhd_discard {
	uint64_t off, len;
};

static int vhd_discard_add(struct plan *p, struct vhd_discard *d, uint64_t off, uint64_t len)
{
	int r;

	if (d->len && d->off + d->len == off) {
		d->len += len;
		return 0;
	}
	r = plan_discard(p, d->off, d->len);
	d->off = off;
	d->len = len;
	return r;
}

/* Rewrites the BAT entries >= keep that are allocated (and those between the
 * old and the new max_table_entries) to free, in place, chunk by chunk, and
 * discards the freed blocks. Freed blocks lie above the visible size, so the
 * discard order does not matter. Never re-reads what it wrote: in the guest
 * reads see staged writes, in plan-apply they do not. */
static int vhd_clear_in_place(struct vhd *v, uint32_t new_mte, struct vhd_discard *disc)
{
	uint64_t span = vhd_block_span(v);
	uint64_t end = new_mte > v->mte ? new_mte : v->mte;
	uint64_t first_c = v->keep / VHD_CHUNK_ENTRIES;
	int r;

	for (uint64_t c = first_c; c * VHD_CHUNK_ENTRIES < end; c++) {
		uint64_t base = c * VHD_CHUNK_ENTRIES, n = end - base;
		bool dirty = false;

		uint64_t bytes;

		if (n > VHD_CHUNK_ENTRIES)
			n = VHD_CHUNK_ENTRIES;
		/* whole sectors (the table is padded to them) */
		bytes = (n * 4 + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
		r = plan_read(v->io, v->table_offset + base * 4, v->chunk, (uint32_t)bytes);
		if (r)
			return r;
		for (uint64_t k = 0; k < n; k++) {
			uint64_t i = base + k;
			uint32_t e = get_be32(v->chunk + 4 * k);

			if (i < v->keep || (i < v->mte && e == VHD_BAT_FREE))
				continue;
			if (i >= v->mte && e == VHD_BAT_FREE)
				continue;
			if (i < v->mte && disc) {
				r = vhd_discard_add(v->p, disc, (uint64_t)e * VHD_SECTOR, span);
				if (r)
					return r;
			}
			put_be32(v->chunk + 4 * k, VHD_BAT_FREE);
			dirty = true;
		}
		if (dirty) {
			r = plan_write(v->p, v->table_offset + base * 4, v->chunk, bytes);
			if (r)
				return r;
		}
	}
	return 0;
}

/* Collects the blocks >= keep of the old table for discarding. */
static int vhd_discard_stale(struct vhd *v, struct vhd_discard *disc)
{
	uint64_t span = vhd_block_span(v);
	uint64_t nchunks = ((uint64_t)v->mte + VHD_CHUNK_ENTRIES - 1) / VHD_CHUNK_ENTRIES;
	int r;

	for (uint64_t c = v->keep / VHD_CHUNK_ENTRIES; c < nchunks; c++) {
		uint32_t n;

		r = vhd_read_chunk(v, c, &n);
		if (r)
			return r;
		for (uint32_t k = 0; k < n; k++) {
			uint32_t e = get_be32(v->chunk + 4 * k);

			if (c * VHD_CHUNK_ENTRIES + k < v->keep || e == VHD_BAT_FREE)
				continue;
			r = vhd_discard_add(v->p, disc, (uint64_t)e * VHD_SECTOR, span);
			if (r)
				return r;
		}
	}
	return 0;
}

/* Writes a relocated table of new_mte entries at off (old entries < keep). */
static int vhd_write_new_bat(struct vhd *v, uint64_t off, uint64_t new_bytes)
{
	uint64_t total = new_bytes / 4;
	int r;

	for (uint64_t base = 0; base < total; base += VHD_CHUNK_ENTRIES) {
		uint64_t n = total - base, have = 0;

		if (n > VHD_CHUNK_ENTRIES)
			n = VHD_CHUNK_ENTRIES;
		if (base < v->mte && base < v->keep) {
			uint32_t got;

			r = vhd_read_chunk(v, base / VHD_CHUNK_ENTRIES, &got);
			if (r)
				return r;
			have = got;
		}
		for (uint64_t k = 0; k < n; k++)
			if (k >= have || base + k >= v->keep)
				put_be32(v->chunk + 4 * k, VHD_BAT_FREE);
		r = plan_write(v->p, off + base * 4, v->chunk, n * 4);
		if (r)
			return r;
	}
	return 0;
}

static int vhd_write_footers(struct vhd *v, const uint8_t *nf, uint64_t eof_footer)
{
	int r = plan_write(v->p, eof_footer, nf, VHD_FOOTER_LEN);

	if (!r && v->dynamic)
		r = plan_write(v->p, 0, nf, VHD_FOOTER_LEN);
	return r;
}

/* Writes footer f at off, then a barrier: a footer move is one step. */
static int vhd_footer_at(struct vhd *v, uint64_t off, const uint8_t *f)
{
	int r = plan_write(v->p, off, f, VHD_FOOTER_LEN);

	return r ? r : plan_flush(v->p);
}

static int vhd_plan_fixed(struct vhd *v, const struct plan_opts *o, const uint8_t *nf)
{
	uint64_t d = v->file_size - VHD_FOOTER_LEN; /* where the footer is now */
	uint64_t s = v->new_size, zend;
	int r;

	if (s > d) {
		/* The old footer, copied to the new end, keeps the old disk valid
		 * while the old footer sector is turned into zeroed data. */
		r = vhd_footer_at(v, s, v->footer);
		zend = o->prealloc == INSTAR_PREALLOC_OFF ? d + VHD_FOOTER_LEN : s;
		if (!r)
			r = plan_zero(v->p, v->old_size, zend - v->old_size);
		if (!r)
			r = plan_flush(v->p);
		if (!r)
			r = vhd_footer_at(v, s, nf);
		v->p->file_size_after = s + VHD_FOOTER_LEN;
		return r;
	}
	/* s <= d: the footer stays at EOF for the commit, then moves down. */
	r = 0;
	if (s > v->old_size) {
		r = plan_zero(v->p, v->old_size, s - v->old_size);
		if (!r)
			r = plan_flush(v->p);
	}
	if (!r)
		r = vhd_footer_at(v, d, nf);
	if (!r && s < d)
		r = vhd_footer_at(v, s, nf);
	v->p->file_size_after = s + VHD_FOOTER_LEN;
	return r;
}

static int vhd_write_header(struct vhd *v, uint64_t table_offset, uint32_t mte)
{
	put_be64(v->dyn + VD_TABLE_OFF, table_offset);
	put_be32(v->dyn + VD_MTE, mte);
	put_be32(v->dyn + VD_CSUM, instar_vhd_checksum(v->dyn, VHD_DYN_LEN, VD_CSUM));
	/* every changed field lies in the first sector */
	return plan_write(v->p, v->data_offset, v->dyn, VHD_SECTOR);
}

static int vhd_plan_dyn_grow(struct vhd *v, const uint8_t *nf)
{
	uint64_t need = v->new_size / v->block_size + (v->new_size % v->block_size != 0);
	uint64_t eof_footer = v->file_size - VHD_FOOTER_LEN;
	uint32_t new_mte = v->mte, start;
	struct vhd_discard disc = {0, 0};
	int r = 0;

	if (need > new_mte)
		new_mte = (uint32_t)need; /* need <= 2^32 / 512 by the size limit */
	if ((uint64_t)new_mte * 4 > v->bat_bytes) {
		/* Relocate: a new table at the old EOF, then the old footer after
		 * it so EOF-512 stays a valid footer at every step. */
		uint64_t nb = ((uint64_t)new_mte * 4 + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
		uint64_t nt = v->file_size;

		r = plan_write(v->p, nt + nb, v->footer, VHD_FOOTER_LEN);
		if (!r)
			r = vhd_write_new_bat(v, nt, nb);
		if (!r && v->tail_alloc)
			r = plan_zero(v->p, v->tail_off, v->tail_len);
		if (!r)
			r = plan_flush(v->p);
		if (!r)
			r = vhd_write_header(v, nt, new_mte);
		if (!r)
			r = plan_flush(v->p);
		if (!r)
			r = vhd_write_footers(v, nf, nt + nb);
		if (!r)
			r = plan_flush(v->p);
		/* cleanup: the old table and the old trailing footer are unused */
		if (!r)
			r = vhd_discard_stale(v, &disc);
		if (!r)
			r = vhd_discard_add(v->p, &disc, v->table_offset, v->bat_bytes);
		if (!r)
			r = vhd_discard_add(v->p, &disc, eof_footer, VHD_FOOTER_LEN);
		if (!r)
			r = plan_discard(v->p, disc.off, disc.len);
		v->p->file_size_after = nt + nb + VHD_FOOTER_LEN;
		return r;
	}
	/* In place: stale entries past the old size are freed before the new
	 * size makes them visible; new entries in the padding are set. */
	start = v->p->nops;
	r = vhd_clear_in_place(v, new_mte, &disc);
	if (!r && v->tail_alloc)
		r = plan_zero(v->p, v->tail_off, v->tail_len);
	if (!r)
		r = plan_discard(v->p, disc.off, disc.len);
	if (!r && v->p->nops != start)
		r = plan_flush(v->p);
	if (!r && new_mte != v->mte) {
		r = vhd_write_header(v, v->table_offset, new_mte);
		if (!r)
			r = plan_flush(v->p);
	}
	if (!r)
		r = vhd_write_footers(v, nf, eof_footer);
	if (!r)
		r = plan_flush(v->p);
	v->p->file_size_after = v->file_size;
	return r;
}

static int vhd_plan_dyn_shrink(struct vhd *v, const uint8_t *nf)
{
	uint64_t eof_footer = v->file_size - VHD_FOOTER_LEN;
	uint64_t end = v->table_offset + v->bat_bytes;
	struct vhd_discard disc = {0, 0};
	int r;

	r = vhd_write_footers(v, nf, eof_footer);
	if (!r)
		r = plan_flush(v->p);
	/* cleanup: nothing below is visible any more */
	if (!r)
		r = vhd_clear_in_place(v, v->mte, &disc);
	if (!r && v->tail_alloc)
		r = plan_zero(v->p, v->tail_off, v->tail_len);
	if (!r)
		r = plan_flush(v->p);
	if (!r)
		r = plan_discard(v->p, disc.off, disc.len);
	/* give back trailing space: footer right after the last structure */
	if (end < v->data_offset + VHD_DYN_LEN)
		end = v->data_offset + VHD_DYN_LEN;
	if (end < v->kept_end)
		end = v->kept_end;
	v->p->file_size_after = v->file_size;
	if (!r && end < eof_footer) {
		r = vhd_footer_at(v, end, nf);
		v->p->file_size_after = end + VHD_FOOTER_LEN;
	}
	return r;
}

static int vhd_plan(struct vhd *v, const struct plan_opts *o, struct plan_scratch *sc)
{
	struct instar_vhd_chs g;
	uint8_t *nf;
	int r;

	v->footer = plan_alloc(sc, VHD_FOOTER_LEN, 8);
	v->dyn = plan_alloc(sc, VHD_DYN_LEN, 8);
	nf = plan_alloc(sc, VHD_FOOTER_LEN, 8);
	v->chunk = plan_alloc(sc, VHD_CHUNK_ENTRIES * 4, 8);
	if (!v->footer || !v->dyn || !nf || !v->chunk)
		return vhd_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL, "vhd planner scratch");
	r = vhd_parse(v);
	if (r)
		return r;
	v->ret->old_virtual_size = v->old_size;
	if (o->expected_old_size != UINT64_MAX && o->expected_old_size != v->old_size)
		return vhd_fail(v, INSTAR_ERR_HEADER_MISMATCH, "vhd size differs from the probe");
	r = vhd_round(v, o->new_size, &g);
	if (r)
		return r;
	v->ret->new_virtual_size = v->new_size;
	if (v->new_size < v->old_size) {
		v->ret->action = INSTAR_ACTION_SHRINK;
		if (!(o->flags & INSTAR_RESIZE_SHRINK_ALLOWED))
			return vhd_fail(v, INSTAR_ERR_SHRINK_WITHOUT_FLAG,
					"shrinking needs the shrink flag");
	} else {
		v->ret->action =
		    v->new_size > v->old_size ? INSTAR_ACTION_GROW : INSTAR_ACTION_NOOP;
	}
	/* Preallocation: fixed disks are fully allocated anyway, so falloc and
	 * full just allocate the grown range; dynamic disks cannot. */
	if (o->prealloc != INSTAR_PREALLOC_OFF) {
		if (v->dynamic || o->prealloc == INSTAR_PREALLOC_METADATA)
			return vhd_fail(v, INSTAR_ERR_PREALLOCATION_UNSUPPORTED,
					"vhd supports only falloc/full on fixed disks");
		if (o->prealloc > INSTAR_PREALLOC_FULL)
			return vhd_fail(v, INSTAR_ERR_INVALID_OPTION, "unknown preallocation");
		if (v->ret->action == INSTAR_ACTION_SHRINK)
			return vhd_fail(v, INSTAR_ERR_PREALLOC_NOT_GROWING,
					"preallocation needs a growing size");
	}
	v->p->file_size_after = v->file_size;
	if (v->ret->action == INSTAR_ACTION_NOOP)
		return 0;
	vhd_footer_set(nf, v->footer, v->new_size, &g);
	if (!v->dynamic)
		return vhd_plan_fixed(v, o, nf);
	r = vhd_scan(v, v->new_size < v->old_size ? v->new_size : v->old_size);
	if (r)
		return r;
	if (v->ret->action == INSTAR_ACTION_GROW)
		return vhd_plan_dyn_grow(v, nf);
	return vhd_plan_dyn_shrink(v, nf);
}

int plan_resize_vhd(const struct plan_opts *o, const struct plan_io *io, struct plan_scratch *s,
		    struct plan *p, struct instar_resize_result *ret)
{
	struct vhd v = {.io = io, .p = p, .ret = ret, .file_size = io->file_size};
	int r;

	ret->action = INSTAR_ACTION_NOOP;
	ret->file_size_before = io->file_size;
	ret->file_size_after = io->file_size;
	r = vhd_plan(&v, o, s);
	if (r == 0)
		ret->file_size_after = p->file_size_after;
	ret->error = (uint32_t)r;
	return r;
}
