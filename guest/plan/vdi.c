/* guest/plan/vdi.c — the VirtualBox VDI resize planner: header version 1.1,
 * dynamic (type 1) and static (type 2) images, grow and shrink. Pure: reads
 * through plan_io, emits ops; freestanding. Layout: shared/vdi_layout.h and
 * docs/formats.md §8.
 *
 * The invariant every reader relies on. Block map entry i names the block
 * that holds virtual bytes [i MiB, i+1 MiB): it lies at offset_data + e MiB.
 * qemu and VirtualBox allocate a new block at index blocks_allocated and then
 * count it, so a block index >= blocks_allocated would be overwritten by the
 * next allocation: every allocated entry must be < blocks_allocated, and no
 * two entries may name the same block. qemu-img check also wants the number
 * of allocated entries to equal blocks_allocated; fewer is a leak (qemu's own
 * allocation leaves one when it stops between its header and map writes).
 * The planner accepts leaks and refuses every other breach (CORRUPT); a
 * shrink removes the leaks (blocks_allocated becomes the kept count), a grow
 * keeps blocks_allocated as it is.
 *
 * Sizes: a request is rounded up to 512 (as qemu-img create -f vdi rounds);
 * blocks_in_image becomes ceil(size / 1 MiB); at most qemu 7.2's 0x1fffff80
 * blocks (INSTAR_VDI_BLOCKS_MAX). Preallocation modes other than off are refused.
 *
 * Grow, block map has room (offset_bmap + 4 * new blocks <= offset_data):
 *   new entries (unallocated; static: the next block indices, their blocks
 *   appended as holes) and the zeroed tail of a cut last block -> FLUSH ->
 *   header (disk size, blocks_in_image, blocks_allocated; one sector: the
 *   commit) -> FLUSH.
 * Grow, block map full: k = the MiB blocks the new map needs. The map moves
 *   to the old offset_data and the data start moves k blocks up (the old map
 *   space stays unused), so the blocks at data indices 0..k-1 move to the
 *   end: copies at indices T..T+k-1 (T = max(1 + highest named block, k)),
 *   the zeroed tail of a cut last block (or of its copy), static: the new
 *   blocks appended as holes; all unseen by the old disk -> FLUSH -> header:
 *   blocks_allocated += copies -> FLUSH -> entries repointed to the copies
 *   -> FLUSH -> the new map (every index k lower) written at the old
 *   offset_data, which no entry names any more -> FLUSH -> header
 *   (offset_bmap, offset_data, sizes; the commit) -> FLUSH -> discard the old
 *   map. Until the commit the old disk is whole; between the first header
 *   write and the commit the copies are counted but not all named, which
 *   qemu-img check reports as a block count mismatch (a leak; reads and
 *   writes stay correct), and with a full old map (no spare entry) the
 *   copies lie past blocks_in_image. docs/formats.md §8.3 says why no order
 *   of writes avoids either.
 * Shrink (with the shrink flag): entries past the new end are dropped and
 *   their blocks freed. If every kept entry names a block below the kept
 *   count: header (the commit) -> FLUSH -> cleanup. Otherwise the freed
 *   holes are filled by moving the highest kept blocks down: header with the
 *   new size and the old blocks_allocated (commit; leaves a leak) -> FLUSH
 *   -> copies into the holes -> FLUSH -> entries repointed, the kept tail of
 *   a cut block zeroed, dropped entries marked unallocated -> FLUSH ->
 *   header blocks_allocated = kept count -> FLUSH. The file ends after the
 *   last kept block.
 * A grow reads zeros in the range it exposes: the tail of a cut last block
 * is zeroed before the commit (a shrink by this planner zeroes it too).
 * VirtualBox's logical geometry (header_size >= 0x190) is marked not
 * calculated (0/0/0), as its create does, so that it is derived again. */
#include "open_check.h"
#include "plan.h"
#include "vdi_layout.h"

#define VDI_BS INSTAR_VDI_BLOCK_SIZE
#define VDI_SECTOR 512u
#define VDI_CHUNK 16384u /* block map entries per read/write */
#define VDI_COPY 65536u	 /* bytes per copy step */
#define VDI_FREE INSTAR_VDI_UNALLOCATED

struct vdi {
	const struct plan_io *io;
	struct plan *p;
	struct instar_resize_result *ret;
	uint8_t *hdr;	/* the header as read, 512 */
	uint8_t *nhdr;	/* the header to write, 512 */
	uint8_t *chunk; /* VDI_CHUNK entries */
	uint8_t *buf;	/* VDI_COPY bytes */
	uint64_t *used; /* bit e: some entry names block e (e < nalloc) */
	uint64_t file_size, old_size, new_size;
	uint32_t type, bmap, data, blocks, nalloc;
	uint32_t nblocks;   /* new blocks_in_image */
	uint32_t nkeep;	    /* allocated entries below nblocks */
	uint32_t movers;    /* of them, those naming a block >= nkeep */
	uint32_t maxref;    /* 1 + the highest block an entry names; 0: none */
	uint32_t cut_entry; /* entry of the block that holds the cut, or VDI_FREE */
};

static int vdi_fail(struct vdi *v, int err, const char *msg)
{
	plan_set_detail(v->ret, msg);
	return err;
}

/* The header or the map's place damaged: a failed open, in instar's words
 * where qemu opens the image (docs/design.md §3.1). */
static int vdi_open_fail(struct vdi *v, int err, const char *msg)
{
	v->ret->flags |= INSTAR_RESULT_OPEN;
	return vdi_fail(v, err, msg);
}

static bool vdi_alloc(uint32_t e)
{
	return e < INSTAR_VDI_ZERO;
}

static uint64_t vdi_round512(uint64_t x)
{
	return (x + VDI_SECTOR - 1) & ~(uint64_t)(VDI_SECTOR - 1);
}

static uint32_t vdi_blocks_for(uint64_t size)
{
	return (uint32_t)((size + VDI_BS - 1) / VDI_BS);
}

/* The header as qemu's vdi_open reads it (zeros past the file's end) and
 * its checks (shared/open_check.c): a failure is the open's
 * (INSTAR_RESULT_OPEN), in qemu's order and words. Then the planner's own
 * checks, beyond qemu's (README): the image type and block extra data (an
 * image instar does not resize), then the header size, the map's and the
 * data's places and blocks_allocated (damage: failed opens too). */
static int vdi_parse(struct vdi *v)
{
	const uint8_t *h = v->hdr;
	uint32_t hsize;
	uint64_t disk;
	uint32_t n =
	    v->file_size < INSTAR_VDI_HEADER_LEN ? (uint32_t)v->file_size : INSTAR_VDI_HEADER_LEN;
	char msg[INSTAR_DETAIL_MAX];
	int r;

	plan_memset(v->hdr, 0, INSTAR_VDI_HEADER_LEN);
	r = n ? plan_read(v->io, 0, v->hdr, n) : 0;
	if (r)
		return r;
	r = instar_vdi_open_check(h, msg, sizeof(msg));
	if (r)
		return vdi_open_fail(v, r, msg);
	if (v->file_size < INSTAR_VDI_HEADER_LEN)
		return vdi_open_fail(v, INSTAR_ERR_PARSE_FAILED,
				     "vdi file shorter than its header");
	v->type = get_le32(h + INSTAR_VDI_H_TYPE);
	if (v->type != INSTAR_VDI_TYPE_DYNAMIC && v->type != INSTAR_VDI_TYPE_STATIC)
		return vdi_fail(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
				"vdi image type other than dynamic or static");
	if (get_le32(h + INSTAR_VDI_H_BLOCK_EXTRA) != 0)
		return vdi_fail(v, INSTAR_ERR_UNSUPPORTED_FEATURE, "vdi block extra data");
	hsize = get_le32(h + INSTAR_VDI_H_HEADER_SIZE);
	if (hsize < INSTAR_VDI_HEADER_SIZE_MIN ||
	    hsize > INSTAR_VDI_HEADER_LEN - INSTAR_VDI_H_HEADER_SIZE)
		return vdi_open_fail(v, INSTAR_ERR_CORRUPT, "vdi header size out of range");
	disk = get_le64(h + INSTAR_VDI_H_DISK_SIZE);
	v->old_size = vdi_round512(disk);
	v->bmap = get_le32(h + INSTAR_VDI_H_OFFSET_BMAP);
	v->data = get_le32(h + INSTAR_VDI_H_OFFSET_DATA);
	v->blocks = get_le32(h + INSTAR_VDI_H_BLOCKS);
	v->nalloc = get_le32(h + INSTAR_VDI_H_ALLOCATED);
	/* above blocks_in_image only by what an interrupted relocating grow
	 * counts (its copies: at most 4096 blocks, a 4 GiB map) */
	if (v->nalloc > INSTAR_VDI_BLOCKS_MAX + 4096u)
		return vdi_open_fail(v, INSTAR_ERR_CORRUPT,
				     "vdi blocks_allocated beyond the limit");
	if (v->bmap < INSTAR_VDI_HEADER_LEN)
		return vdi_open_fail(v, INSTAR_ERR_CORRUPT, "vdi block map overlaps the header");
	if ((uint64_t)v->bmap + 4ull * v->blocks > v->data)
		return vdi_open_fail(v, INSTAR_ERR_CORRUPT, "vdi block map overlaps the data");
	if ((uint64_t)v->data + (uint64_t)v->nalloc * VDI_BS > v->file_size)
		return vdi_open_fail(v, INSTAR_ERR_CORRUPT,
				     "vdi file shorter than its allocated blocks");
	return 0;
}

/* Reads entries [first, first + n) (n <= VDI_CHUNK) of the current map. */
static int vdi_read_entries(struct vdi *v, uint32_t first, uint32_t n)
{
	return plan_read(v->io, v->bmap + 4ull * first, v->chunk, n * 4);
}

static uint32_t vdi_chunk_len(uint32_t first, uint32_t end)
{
	return end - first > VDI_CHUNK ? VDI_CHUNK : end - first;
}

static bool vdi_used(const struct vdi *v, uint32_t e)
{
	return (v->used[e / 64] >> (e % 64)) & 1;
}

/* Every entry: allocated ones below blocks_allocated and distinct. Counts
 * the allocated entries below nblocks (nkeep); notes the entry holding byte
 * cut (if cut is not block-aligned). For a shrink, the bitmap is then
 * rebuilt from the kept entries alone and movers counts those naming a
 * block >= nkeep. */
static int vdi_scan(struct vdi *v, uint64_t cut, bool shrink)
{
	uint32_t cut_idx = (uint32_t)(cut / VDI_BS);
	int r;

	v->nkeep = 0;
	v->movers = 0;
	v->maxref = 0;
	v->cut_entry = VDI_FREE;
	for (uint32_t first = 0; first < v->blocks; first += VDI_CHUNK) {
		uint32_t n = vdi_chunk_len(first, v->blocks);

		r = vdi_read_entries(v, first, n);
		if (r)
			return r;
		for (uint32_t k = 0; k < n; k++) {
			uint32_t i = first + k, e = get_le32(v->chunk + 4 * k);

			if (i == cut_idx && cut % VDI_BS)
				v->cut_entry = e;
			if (!vdi_alloc(e))
				continue;
			if (e >= v->nalloc)
				return vdi_fail(v, INSTAR_ERR_CORRUPT,
						"vdi block map entry past blocks_allocated");
			if (vdi_used(v, e))
				return vdi_fail(v, INSTAR_ERR_CORRUPT,
						"two vdi block map entries name the same block");
			v->used[e / 64] |= 1ull << (e % 64);
			if (e >= v->maxref)
				v->maxref = e + 1;
			if (i < v->nblocks)
				v->nkeep++;
		}
	}
	if (!shrink)
		return 0;
	/* second pass over the kept entries: those that must move down */
	plan_memset(v->used, 0, ((size_t)v->nalloc + 63) / 64 * 8);
	for (uint32_t first = 0; first < v->nblocks; first += VDI_CHUNK) {
		uint32_t n = vdi_chunk_len(first, v->nblocks);

		r = vdi_read_entries(v, first, n);
		if (r)
			return r;
		for (uint32_t k = 0; k < n; k++) {
			uint32_t e = get_le32(v->chunk + 4 * k);

			if (!vdi_alloc(e))
				continue;
			v->used[e / 64] |= 1ull << (e % 64);
			if (e >= v->nkeep)
				v->movers++;
		}
	}
	return 0;
}

/* Copies block src to block dst (indices from offset_data). */
static int vdi_copy_block(struct vdi *v, uint32_t src, uint32_t dst)
{
	uint64_t s = v->data + (uint64_t)src * VDI_BS, d = v->data + (uint64_t)dst * VDI_BS;
	int r;

	for (uint32_t off = 0; off < VDI_BS; off += VDI_COPY) {
		r = plan_read(v->io, s + off, v->buf, VDI_COPY);
		if (!r)
			r = plan_write(v->p, d + off, v->buf, VDI_COPY);
		if (r)
			return r;
	}
	return 0;
}

/* Zeroes the part of block e (where it will be: index loc) past byte cut. */
static int vdi_zero_tail(struct vdi *v, uint32_t loc, uint64_t cut)
{
	uint32_t in = (uint32_t)(cut % VDI_BS);

	if (in == 0)
		return 0;
	return plan_zero(v->p, v->data + (uint64_t)loc * VDI_BS + in, VDI_BS - in);
}

/* Writes the header: disk size, blocks_in_image and blocks_allocated,
 * the two offsets; with lchs, VirtualBox's LCHS geometry (when the header
 * has it) marked not calculated. */
static int vdi_write_header(struct vdi *v, uint64_t size, uint32_t blocks, uint32_t nalloc,
			    uint32_t bmap, uint32_t data, bool lchs)
{
	uint8_t *h = v->nhdr;

	plan_memcpy(h, v->hdr, INSTAR_VDI_HEADER_LEN);
	put_le64(h + INSTAR_VDI_H_DISK_SIZE, size);
	put_le32(h + INSTAR_VDI_H_BLOCKS, blocks);
	put_le32(h + INSTAR_VDI_H_ALLOCATED, nalloc);
	put_le32(h + INSTAR_VDI_H_OFFSET_BMAP, bmap);
	put_le32(h + INSTAR_VDI_H_OFFSET_DATA, data);
	if (lchs && get_le32(h + INSTAR_VDI_H_HEADER_SIZE) >= INSTAR_VDI_HEADER_SIZE_LCHS)
		plan_memset(h + INSTAR_VDI_H_LCHS, 0, 12);
	return plan_write(v->p, 0, h, INSTAR_VDI_HEADER_LEN);
}

/* The header with the new size (the commit of a grow or a shrink). */
static int vdi_write_new_header(struct vdi *v, uint32_t nalloc, uint64_t bmap, uint64_t data)
{
	return vdi_write_header(v, v->new_size, v->nblocks, nalloc, (uint32_t)bmap, (uint32_t)data,
				true);
}

/* How a relocating grow moves an allocated entry: the blocks below k to
 * their copies at T + e; with shift, every index k lower (the data start
 * moves up by k blocks). The old map may already hold the repointed value
 * (in the guest, reads see staged writes): both give the same result. */
static uint32_t vdi_moved(uint32_t e, uint32_t k, uint32_t T, bool shift)
{
	if (!vdi_alloc(e) || k == 0)
		return e;
	if (e < k)
		e += T;
	return shift ? e - k : e;
}

/* Writes map entries [from, to) at map offset base: old entries (below
 * v->blocks) through vdi_moved, new ones unallocated (static: the next
 * block indices from first_new). With only_changed, chunks that stay as
 * they are are not written. */
static int vdi_write_map(struct vdi *v, uint64_t base, uint32_t from, uint32_t to, uint32_t k,
			 uint32_t T, bool shift, uint32_t first_new, bool only_changed)
{
	int r;

	for (uint32_t first = from; first < to; first += VDI_CHUNK) {
		uint32_t n = vdi_chunk_len(first, to), nold = 0;
		bool changed = !only_changed;

		if (first < v->blocks) {
			nold = vdi_chunk_len(first, v->blocks);
			if (nold > n)
				nold = n;
			r = vdi_read_entries(v, first, nold);
			if (r)
				return r;
		}
		for (uint32_t j = 0; j < n; j++) {
			uint32_t e, i = first + j;

			if (j < nold) {
				uint32_t o = get_le32(v->chunk + 4 * j);

				e = vdi_moved(o, k, T, shift);
				changed |= e != o;
			} else {
				e = v->type == INSTAR_VDI_TYPE_STATIC ? first_new + (i - v->blocks)
								      : VDI_FREE;
				changed = true;
			}
			put_le32(v->chunk + 4 * j, e);
		}
		if (changed) {
			r = plan_write(v->p, base + 4ull * first, v->chunk, 4ull * n);
			if (r)
				return r;
		}
	}
	return 0;
}

/* Fills [off, off + len) of the file with unallocated entries. */
static int vdi_fill_free(struct vdi *v, uint64_t off, uint64_t len)
{
	int r;

	plan_memset(v->chunk, 0xff, VDI_CHUNK * 4);
	while (len) {
		uint64_t n = len > VDI_CHUNK * 4 ? VDI_CHUNK * 4 : len;

		r = plan_write(v->p, off, v->chunk, n);
		if (r)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

static int vdi_grow(struct vdi *v)
{
	uint64_t need = vdi_round512(4ull * v->nblocks), ndata = v->data, nbmap = v->bmap;
	uint32_t k = 0, T = 0, moved = 0, add = 0, top = v->maxref, base, nalloc_new;
	int r = 0;

	if (v->type == INSTAR_VDI_TYPE_STATIC)
		add = v->nblocks - v->blocks;
	if ((uint64_t)v->bmap + 4ull * v->nblocks > v->data) {
		k = (uint32_t)((need + VDI_BS - 1) / VDI_BS);
		nbmap = v->data;
		ndata = v->data + (uint64_t)k * VDI_BS;
		if (ndata > UINT32_MAX - VDI_SECTOR + 1)
			return vdi_fail(v, INSTAR_ERR_TOO_LARGE,
					"vdi data offset would pass 4 GiB (offset_data is 32-bit)");
		/* past every named block (a leak at the end is reused) */
		T = v->maxref > k ? v->maxref : k;
		moved = v->maxref < k ? v->maxref : k;
	}

	if (moved) {
		/* the blocks in the new map's way: copies past the allocated
		 * ones (the old disk does not see them yet) */
		for (uint32_t j = 0; j < moved; j++) {
			if (!vdi_used(v, j))
				continue;
			r = vdi_copy_block(v, j, T + j);
			if (r)
				return r;
			if (T + j + 1 > top)
				top = T + j + 1;
		}
	}
	/* blocks_allocated of the result: past the highest named block (a
	 * leak at the end goes), in the new indices */
	base = top > k ? top - k : 0;
	nalloc_new = base + add;
	/* Before anything the old disk sees: the range a grow exposes reads
	 * zeros (the kept block's tail, past the old size, or its copy's) and,
	 * static, the new blocks are appended as holes past every block. */
	if (v->cut_entry != VDI_FREE && vdi_alloc(v->cut_entry))
		r = vdi_zero_tail(v, vdi_moved(v->cut_entry, k, T, false), v->old_size);
	if (!r && add)
		r = plan_zero(v->p, ndata + (uint64_t)base * VDI_BS, (uint64_t)add * VDI_BS);
	if (!r && moved) {
		/* the copies counted (old size; blocks_in_image raised to cover
		 * the count where the old map has room, as VirtualBox requires),
		 * then named. From here to the commit the old disk has a leak,
		 * and with a full map its copies lie past blocks_in_image
		 * (docs/formats.md §8.3). */
		uint32_t nA = T + moved, bA = v->blocks;
		uint64_t cap = (v->data - v->bmap) / 4;

		if (nA > bA && nA <= cap)
			bA = nA;
		if (bA > v->blocks)
			r = vdi_fill_free(v, v->bmap + 4ull * v->blocks, 4ull * (bA - v->blocks));
		if (!r)
			r = plan_flush(v->p);
		if (!r)
			r = vdi_write_header(v, get_le64(v->hdr + INSTAR_VDI_H_DISK_SIZE), bA, nA,
					     v->bmap, v->data, false);
		if (!r)
			r = plan_flush(v->p);
		if (!r)
			r = vdi_write_map(v, v->bmap, 0, v->blocks, k, T, false, 0, true);
		if (!r)
			r = plan_flush(v->p);
	}
	if (!r && k == 0)
		r = vdi_write_map(v, v->bmap, v->blocks, v->nblocks, 0, 0, false, base, false);
	if (!r && k) {
		r = vdi_write_map(v, nbmap, 0, v->nblocks, k, T, true, base, false);
		if (!r && need > 4ull * v->nblocks)
			r = vdi_fill_free(v, nbmap + 4ull * v->nblocks, need - 4ull * v->nblocks);
	}
	if (!r)
		r = plan_flush(v->p);
	if (!r)
		r = vdi_write_new_header(v, nalloc_new, nbmap, ndata);
	if (!r)
		r = plan_flush(v->p);
	if (!r && k)
		r = plan_discard(v->p, v->bmap, v->data - v->bmap);
	v->p->file_size_after = ndata + (uint64_t)nalloc_new * VDI_BS;
	if (v->p->file_size_after < v->file_size)
		v->p->file_size_after = v->file_size;
	return r;
}

#define VDI_COPY_BLOCKS 1u /* copy each mover's block into its hole */
#define VDI_REPOINT 2u	   /* rewrite the kept entries to the holes */
#define VDI_DROP 4u	   /* mark the entries past the new end unallocated */

/* Walks the entries in order and pairs each mover (a kept allocated entry
 * naming a block >= nkeep) with the next hole (a block < nkeep no kept
 * entry names): every pass makes the same pairs, since the holes come from
 * the bitmap, which no pass changes. What a pass does is in what; a pass
 * that rewrites a chunk puts in it all a previous pass wrote there (it reads
 * the old map: plan-apply's reads do not see staged writes). Sets
 * *ret_cut_loc to where the block holding the new end will lie. */
static int vdi_compact(struct vdi *v, uint32_t what, uint32_t *ret_cut_loc)
{
	uint32_t hole = 0, cut_idx = (uint32_t)(v->new_size / VDI_BS);
	int r;

	for (uint32_t first = 0; first < v->blocks; first += VDI_CHUNK) {
		uint32_t n = vdi_chunk_len(first, v->blocks);
		bool changed = false;

		r = vdi_read_entries(v, first, n);
		if (r)
			return r;
		for (uint32_t j = 0; j < n; j++) {
			uint32_t i = first + j, e = get_le32(v->chunk + 4 * j);

			if (i >= v->nblocks) {
				if ((what & VDI_DROP) && e != VDI_FREE) {
					put_le32(v->chunk + 4 * j, VDI_FREE);
					changed = true;
				}
				continue;
			}
			if (!vdi_alloc(e) || e < v->nkeep) {
				if (i == cut_idx)
					*ret_cut_loc = e;
				continue;
			}
			while (hole < v->nkeep && vdi_used(v, hole))
				hole++;
			if (hole >= v->nkeep) /* cannot happen: as many holes as movers */
				return vdi_fail(v, INSTAR_ERR_INTERNAL,
						"vdi compaction lost count");
			if (what & VDI_COPY_BLOCKS) {
				r = vdi_copy_block(v, e, hole);
				if (r)
					return r;
			}
			if (i == cut_idx)
				*ret_cut_loc = hole;
			if (what & VDI_REPOINT) {
				put_le32(v->chunk + 4 * j, hole);
				changed = true;
			}
			hole++;
		}
		if (changed) {
			r = plan_write(v->p, v->bmap + 4ull * first, v->chunk, 4ull * n);
			if (r)
				return r;
		}
	}
	return 0;
}

static int vdi_shrink(struct vdi *v)
{
	uint32_t cut_loc = VDI_FREE;
	int r;

	if (v->movers == 0) {
		/* every kept block already lies below the kept count: one
		 * header write, then the dropped entries */
		r = vdi_write_new_header(v, v->nkeep, v->bmap, v->data);
		if (!r)
			r = plan_flush(v->p);
		if (!r)
			r = vdi_compact(v, VDI_DROP, &cut_loc);
	} else {
		/* the smaller disk first (blocks_in_image and the count as they
		 * are), then the dropped entries (a leak), the copies, the
		 * entries to the copies, and the counts */
		r = vdi_write_header(v, v->new_size, v->blocks, v->nalloc, v->bmap, v->data, true);
		if (!r)
			r = plan_flush(v->p);
		if (!r)
			r = vdi_compact(v, VDI_DROP, &cut_loc);
		if (!r)
			r = plan_flush(v->p);
		if (!r)
			r = vdi_compact(v, VDI_COPY_BLOCKS, &cut_loc);
		if (!r)
			r = plan_flush(v->p);
		if (!r)
			r = vdi_compact(v, VDI_REPOINT | VDI_DROP, &cut_loc);
	}
	if (!r && vdi_alloc(cut_loc))
		r = vdi_zero_tail(v, cut_loc, v->new_size);
	if (!r)
		r = plan_flush(v->p);
	if (!r && v->movers) {
		r = vdi_write_new_header(v, v->nkeep, v->bmap, v->data);
		if (!r)
			r = plan_flush(v->p);
	}
	v->p->file_size_after = v->data + (uint64_t)v->nkeep * VDI_BS;
	return r;
}

static int vdi_plan(struct vdi *v, const struct plan_opts *o, struct plan_scratch *sc)
{
	int r;

	v->hdr = plan_alloc(sc, INSTAR_VDI_HEADER_LEN, 8);
	v->nhdr = plan_alloc(sc, INSTAR_VDI_HEADER_LEN, 8);
	v->chunk = plan_alloc(sc, VDI_CHUNK * 4, 8);
	v->buf = plan_alloc(sc, VDI_COPY, 8);
	if (!v->hdr || !v->nhdr || !v->chunk || !v->buf)
		return vdi_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL, "vdi planner scratch");
	r = vdi_parse(v);
	if (r)
		return r;
	v->ret->old_virtual_size = v->old_size;
	if (o->expected_old_size != UINT64_MAX && o->expected_old_size != v->old_size)
		return vdi_fail(v, INSTAR_ERR_HEADER_MISMATCH, "vdi size differs from the probe");
	if (o->new_size > INSTAR_VDI_SIZE_MAX)
		return vdi_fail(v, INSTAR_ERR_TOO_LARGE, "vdi size limit is 0x1fffff80 MiB");
	v->new_size = vdi_round512(o->new_size);
	v->ret->new_virtual_size = v->new_size;
	if (v->new_size == 0)
		return vdi_fail(v, INSTAR_ERR_INVALID_NEW_SIZE, "vdi size must be positive");
	if (v->new_size < v->old_size) {
		v->ret->action = INSTAR_ACTION_SHRINK;
		if (!(o->flags & INSTAR_RESIZE_SHRINK_ALLOWED))
			return vdi_fail(v, INSTAR_ERR_SHRINK_WITHOUT_FLAG,
					"shrinking needs the shrink flag");
	} else {
		v->ret->action =
		    v->new_size > v->old_size ? INSTAR_ACTION_GROW : INSTAR_ACTION_NOOP;
	}
	if (o->prealloc != INSTAR_PREALLOC_OFF)
		return vdi_fail(v,
				o->prealloc > INSTAR_PREALLOC_FULL
				    ? INSTAR_ERR_INVALID_OPTION
				    : INSTAR_ERR_PREALLOCATION_UNSUPPORTED,
				"vdi resize supports only preallocation=off");
	v->p->file_size_after = v->file_size;
	v->nblocks = vdi_blocks_for(v->new_size);
	if (v->ret->action == INSTAR_ACTION_NOOP)
		v->nblocks = v->blocks;
	/* one bit per allocated block: bounded by the file (data + nalloc MiB) */
	v->used = plan_alloc(sc, ((size_t)v->nalloc + 63) / 64 * 8, 8);
	if (!v->used)
		return vdi_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL,
				"vdi block count too large for the planner's memory");
	r = vdi_scan(v, v->ret->action == INSTAR_ACTION_GROW ? v->old_size : v->new_size,
		     v->ret->action != INSTAR_ACTION_GROW);
	if (r)
		return r;
	if (v->ret->action == INSTAR_ACTION_GROW)
		return vdi_grow(v);
	if (v->ret->action == INSTAR_ACTION_SHRINK)
		return vdi_shrink(v);
	/* same size: nothing, unless blocks are counted that no entry names
	 * (a leak an interrupted resize or allocation left): then the named
	 * ones move down and the count is set; the file keeps its length */
	if (v->nkeep == v->nalloc)
		return 0;
	r = vdi_shrink(v);
	v->p->file_size_after = v->file_size;
	return r;
}

int plan_resize_vdi(const struct plan_opts *o, const struct plan_io *io, struct plan_scratch *s,
		    struct plan *p, struct instar_resize_result *ret)
{
	struct vdi v = {.io = io, .p = p, .ret = ret, .file_size = io->file_size};
	int r;

	plan_result_init(ret, p, o, io);
	r = vdi_plan(&v, o, s);
	if (r == 0)
		ret->file_size_after = p->file_size_after;
	ret->error = (uint32_t)r;
	return r;
}
