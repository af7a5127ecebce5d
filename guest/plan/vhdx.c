/* guest/plan/vhdx.c — the VHDX resize planner: fixed and dynamic disks, grow
 * and shrink. Pure: reads through plan_io, emits ops; freestanding.
 *
 * Commit scheme (no log): the Virtual Disk Size item is one field inside one
 * sector of the metadata region, so writing that sector is the atomic commit;
 * everything it depends on is made valid first:
 *   1. header: the non-current copy gets seq+1 and new FileWriteGuid and
 *      DataWriteGuid (a torn write fails its CRC and the old copy stays
 *      current) -> FLUSH
 *   2. prepare, all invisible at the old size: BAT entries past the old count
 *      (in place, or a new BAT region at the 1 MiB-aligned EOF holding a copy
 *      of the table), new zeroed blocks of a fixed disk, the stale tail of a
 *      cut block -> FLUSH
 *   3. if the BAT moved: region table 1 (the one qemu reads), FLUSH, region
 *      table 2, FLUSH. A BAT region larger than the entry count is valid, so
 *      the disk is still the old one, with a bigger table.
 *   4. commit: the sector holding Virtual Disk Size -> FLUSH
 *   5. cleanup: shrink clears BAT entries past the new count, zeroes the kept
 *      tail of a cut block, discards freed blocks and the old BAT region, and
 *      gives back trailing space.
 * A shrink thus commits before it unmaps anything (issue 15): before 4 the
 * old disk is whole; after it the cleared entries lie past the size.
 * Two headers: only the non-current one is written (step 1), once; the two
 * then differ only in sequence number and write GUIDs, and point at the same
 * log, region tables and metadata, so a reader that trusts either copy (the
 * highest valid sequence, as qemu does, or the other one) sees the same
 * disk at every step. Two region tables (grow with a moved BAT only): table
 * 1 then table 2, each flushed, both before the commit; either describes a
 * valid old disk until the size sector is written.
 * The spec wants region-table and metadata updates to go through the log; a
 * reader that replays nothing sees the same sequence of valid states here.
 * A non-empty log (LogGuid != 0) is refused: it must be replayed first. */
#include "plan.h"
#include "size.h"
#include "vhdx_layout.h"

#define MiB (1024ull * 1024)
#define VHDX_HDR1 (64 * 1024ull)
#define VHDX_HDR2 (128 * 1024ull)
#define VHDX_HDR_LEN 4096u
#define VHDX_MAX_SIZE (64ull << 40)
#define VHDX_CHUNK 8192u /* BAT entries per read/write chunk */

#define BAT_NOT_PRESENT 0u
#define BAT_UNDEFINED 1u
#define BAT_ZERO 2u
#define BAT_UNMAPPED 3u
#define BAT_UNMAPPED_V095 5u
#define BAT_FULLY_PRESENT 6u
#define BAT_OFF_MASK (~0xfffffull)

struct vhdx {
	const struct plan_io *io;
	struct plan *p;
	struct instar_resize_result *ret;
	uint64_t file_size;
	uint8_t *hdr;	    /* current header */
	uint64_t hdr_other; /* offset of the non-current copy */
	uint8_t *rt;	    /* region table 1 */
	uint8_t *mdt;	    /* metadata table */
	uint8_t *chunk;	    /* BAT chunk */
	uint32_t bat_rt_idx;
	uint64_t bat_off, bat_len, md_off, md_len, log_off, log_len;
	uint64_t vds_pos; /* file offset of the Virtual Disk Size item */
	uint32_t block_size, lss, cr;
	bool fixed;
	uint64_t old_size, new_size;
	uint64_t old_entries, new_entries;
	uint64_t kept_end; /* end of everything that stays */
	bool tail_alloc;
	uint64_t tail_off, tail_len;
	/* what qemu's open reads (vhdx_qemu_open) */
	uint64_t q_log_off, q_bat_off, q_md_off, q_size;
	uint32_t q_log_len, q_bat_len, q_bs, q_lss, q_nregions;
};

static int vhdx_fail(struct vhdx *v, int err, const char *msg)
{
	plan_set_detail(v->ret, msg);
	return err;
}

static bool vhdx_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static uint64_t vhdx_round_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

static bool vhdx_crc_ok(uint8_t *b, uint32_t len)
{
	uint32_t want = get_le32(b + 4), got;

	put_le32(b + 4, 0);
	got = plan_crc32c(0, b, len);
	put_le32(b + 4, want);
	return got == want;
}

static void vhdx_crc_set(uint8_t *b, uint32_t len)
{
	put_le32(b + 4, 0);
	put_le32(b + 4, plan_crc32c(0, b, len));
}

static bool vhdx_guid_zero(const uint8_t *g)
{
	for (int i = 0; i < 16; i++)
		if (g[i])
			return false;
	return true;
}

static uint64_t vhdx_entries_for(const struct vhdx *v, uint64_t size)
{
	uint64_t nb = size / v->block_size + (size % v->block_size != 0);

	return nb ? nb + (nb - 1) / v->cr : 0;
}

static bool vhdx_is_sb(const struct vhdx *v, uint64_t j)
{
	return j % (v->cr + 1) == v->cr;
}

static uint64_t vhdx_payload_index(const struct vhdx *v, uint64_t j)
{
	return j - j / (v->cr + 1);
}

/* A fresh GUID without a random source: a CRC mix of the old one, the new
 * sequence number and size; the sequence number differs on every update. */
static void vhdx_guid_next(uint8_t *g, uint64_t seq, uint64_t size, uint32_t salt)
{
	uint8_t in[36];

	plan_memcpy(in, g, 16);
	put_le64(in + 16, seq);
	put_le64(in + 24, size);
	put_le32(in + 32, salt);
	for (uint32_t k = 0; k < 4; k++)
		put_le32(g + 4 * k, plan_crc32c(k * 0x9e3779b9u + salt, in, sizeof(in)));
	g[7] = (uint8_t)((g[7] & 0x0f) | 0x40); /* version 4 */
	g[8] = (uint8_t)((g[8] & 0x3f) | 0x80);
}

/* ---- qemu 7.2's vhdx_open (block/vhdx.c, vhdx-log.c), in its order ---- */

/* A failure of the image's open (INSTAR_RESULT_OPEN) in qemu's words. */
static int vhdx_open_fail(struct vhdx *v, int err, const char *msg)
{
	v->ret->flags |= INSTAR_RESULT_OPEN;
	return vhdx_fail(v, err, msg);
}

/* qemu's driver fails without a message: the block layer names the file
 * before the errno's text (INSTAR_RESULT_OPEN_ERRNO). */
static int vhdx_open_errno(struct vhdx *v, int err, const char *text)
{
	v->ret->flags |= INSTAR_RESULT_OPEN | INSTAR_RESULT_OPEN_ERRNO;
	return vhdx_fail(v, err, text);
}
#define VHDX_EINVAL "Invalid argument"
#define VHDX_ENOTSUP "Operation not supported"
#define VHDX_EIO "Input/output error"

/* qemu's largest request end (shared/size.h). */
#define VHDX_QEMU_IO_MAX INSTAR_QEMU_MAX_LENGTH

/* The file's length as qemu's block layer gives it: in whole sectors. */
static uint64_t vhdx_qemu_length(const struct vhdx *v)
{
	return (v->file_size + 511) / 512 * 512;
}

/* qemu prints a line of its own (error_report) before it fails the open
 * with -EINVAL: the detail is that line, and the CLI prints it before the
 * block layer's "Could not open 'FILE': Invalid argument"
 * (INSTAR_RESULT_OPEN_PRELINE). */
static int vhdx_open_einval_line(struct vhdx *v, const char *line)
{
	v->ret->flags |= INSTAR_RESULT_OPEN | INSTAR_RESULT_OPEN_ERRNO | INSTAR_RESULT_OPEN_PRELINE;
	return vhdx_fail(v, INSTAR_ERR_CORRUPT, line);
}

/* qemu's region overlap test (vhdx_region_check) of [start, start + len)
 * against the log and region table entries 0..n-1, in the order of qemu's
 * list (the last registered first, the log last); an overlap fails the
 * open with qemu's line naming the first region it meets. 0 when none. */
static int vhdx_q_overlap_check(struct vhdx *v, uint64_t start, uint64_t len, uint32_t n)
{
	uint64_t end = start + len, rs = 0, re = 0;
	struct plan_msg m = {.n = 0};
	uint32_t j;

	/* j = n..1: region table entry j - 1; j = 0: the log */
	for (j = n + 1; j-- > 0;) {
		const uint8_t *e = j ? v->rt + INSTAR_VHDX_RT_ENTRY(j - 1) : NULL;

		rs = e ? get_le64(e + 16) : v->q_log_off;
		re = rs + (e ? get_le32(e + 24) : v->q_log_len);
		if (!(start >= re || end <= rs))
			break;
	}
	if (j == UINT32_MAX)
		return 0;
	plan_msg_str(&m, "VHDX region ");
	plan_msg_dec(&m, start);
	plan_msg_str(&m, "-");
	plan_msg_dec(&m, end);
	plan_msg_str(&m, " overlaps with region ");
	plan_msg_dec(&m, rs);
	plan_msg_str(&m, "-");
	if (re) /* qemu's "%." PRIu64: precision 0 prints no digit for 0 */
		plan_msg_dec(&m, re);
	return vhdx_open_einval_line(v, m.b);
}

/* qemu's line for BAT entry i whose payload block is not inside the file:
 * what ("start" or "end") offset off, the file's length len. */
static int vhdx_q_bat_past_end(struct vhdx *v, uint64_t i, const char *what, uint64_t off,
			       uint64_t len)
{
	struct plan_msg m = {.n = 0};

	plan_msg_str(&m, "VHDX BAT entry ");
	plan_msg_dec(&m, i);
	plan_msg_str(&m, " ");
	plan_msg_str(&m, what);
	plan_msg_str(&m, " offset ");
	plan_msg_dec(&m, off);
	plan_msg_str(&m, " points after end of file (");
	plan_msg_dec(&m, len);
	plan_msg_str(&m, "). Image has probably been truncated.");
	return vhdx_open_einval_line(v, m.b);
}

static bool vhdx_q_header_valid(uint8_t *h)
{
	return vhdx_crc_ok(h, VHDX_HDR_LEN) && plan_memcmp(h, "head", 4) == 0 &&
	       get_le16(h + 66) == 1;
}

/* The file identifier, the headers (valid: checksum, "head", version 1;
 * the higher sequence number, or two identical ones) and the log fields
 * qemu checks before it looks for a log to replay. Leaves the current
 * header's log in q_log_off, q_log_len. */
static int vhdx_q_headers(struct vhdx *v)
{
	uint8_t *h1 = v->rt, *h2 = v->rt + VHDX_HDR_LEN, *h;
	bool ok1, ok2;
	int r = plan_read_z(v->io, 0, h1, 8);

	if (r)
		return r;
	if (plan_memcmp(h1, "vhdxfile", 8) != 0)
		return vhdx_open_errno(v, INSTAR_ERR_PARSE_FAILED, VHDX_EINVAL);
	r = plan_read_z(v->io, VHDX_HDR1, h1, VHDX_HDR_LEN);
	if (!r)
		r = plan_read_z(v->io, VHDX_HDR2, h2, VHDX_HDR_LEN);
	if (r)
		return r;
	ok1 = vhdx_q_header_valid(h1);
	ok2 = vhdx_q_header_valid(h2);
	if ((!ok1 && !ok2) || (ok1 && ok2 && get_le64(h1 + 8) == get_le64(h2 + 8) &&
			       plan_memcmp(h1, h2, VHDX_HDR_LEN) != 0))
		return vhdx_open_fail(v, INSTAR_ERR_CORRUPT, "No valid VHDX header found");
	h = ok1 && (!ok2 || get_le64(h1 + 8) >= get_le64(h2 + 8)) ? h1 : h2;
	v->q_log_off = get_le64(h + 72);
	v->q_log_len = get_le32(h + 68);
	/* vhdx_parse_log: where the log lies and its version, even without one */
	if (v->q_log_off < MiB || v->q_log_off % MiB || get_le16(h + 64) != 0)
		return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EINVAL);
	if (!vhdx_guid_zero(h + 48) && v->q_log_len % MiB)
		return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EINVAL);
	return 0;
}

/* Region table 1: checksum, signature, count, each entry against the log
 * and the entries before it, one BAT and one metadata region, no unknown
 * required region. */
static int vhdx_q_regions(struct vhdx *v)
{
	bool bat = false, md = false;
	uint32_t n;
	int r = plan_read_z(v->io, INSTAR_VHDX_RT1, v->rt, INSTAR_VHDX_TABLE_LEN);

	if (r)
		return r;
	if (!vhdx_crc_ok(v->rt, INSTAR_VHDX_TABLE_LEN) || plan_memcmp(v->rt, "regi", 4) != 0)
		return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EINVAL);
	n = get_le32(v->rt + 8);
	if (n > INSTAR_VHDX_TABLE_MAX)
		return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EINVAL);
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = v->rt + INSTAR_VHDX_RT_ENTRY(i);

		r = vhdx_q_overlap_check(v, get_le64(e + 16), get_le32(e + 24), i);
		if (r)
			return r;
		if (instar_vhdx_guid_eq(e, instar_vhdx_guid_bat)) {
			if (bat)
				return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EINVAL);
			bat = true;
			v->q_bat_off = get_le64(e + 16);
			v->q_bat_len = get_le32(e + 24);
		} else if (instar_vhdx_guid_eq(e, instar_vhdx_guid_metadata)) {
			if (md)
				return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EINVAL);
			md = true;
			v->q_md_off = get_le64(e + 16);
		} else if (get_le32(e + 28) & 1) {
			return vhdx_open_errno(v, INSTAR_ERR_UNSUPPORTED_FEATURE, VHDX_ENOTSUP);
		}
	}
	if (!bat || !md)
		return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EINVAL);
	v->q_nregions = n;
	return 0;
}

/* Reads a metadata item's first len bytes where qemu reads them: at the
 * metadata region plus the entry's offset, unchecked. */
static int vhdx_q_item(struct vhdx *v, const uint8_t *entry, uint8_t *b, uint32_t len)
{
	uint64_t off = v->q_md_off + get_le32(entry + 16);

	if (off > VHDX_QEMU_IO_MAX - len)
		return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EIO);
	return plan_read_z(v->io, off, b, len);
}

/* The metadata table and the items qemu reads: the five it requires (and
 * no parent locator), once each, no unknown required item; no parent; the
 * block size 1-256 MiB and a power of two; a logical sector of 512. */
static int vhdx_q_metadata(struct vhdx *v)
{
	static const uint8_t *const guids[6] = {
	    instar_vhdx_guid_file_params, instar_vhdx_guid_disk_size,
	    instar_vhdx_guid_page83,	  instar_vhdx_guid_logical_sector,
	    instar_vhdx_guid_phys_sector, instar_vhdx_guid_parent_locator};
	const uint8_t *item[6] = {0};
	uint8_t b[8];
	uint32_t n, bs, lss;
	int r;

	if (v->q_md_off > VHDX_QEMU_IO_MAX - INSTAR_VHDX_TABLE_LEN)
		return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EIO);
	r = plan_read_z(v->io, v->q_md_off, v->mdt, INSTAR_VHDX_TABLE_LEN);
	if (r)
		return r;
	if (plan_memcmp(v->mdt, "metadata", 8) != 0)
		return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EINVAL);
	n = get_le16(v->mdt + 10);
	if (n > INSTAR_VHDX_TABLE_MAX)
		return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EINVAL);
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = v->mdt + INSTAR_VHDX_MD_ENTRY(i);
		int k = 0;

		while (k < 6 && !instar_vhdx_guid_eq(e, guids[k]))
			k++;
		if (k < 6 && item[k])
			return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EINVAL);
		if (k < 6)
			item[k] = e;
		else if (get_le32(e + 24) & 4)
			return vhdx_open_errno(v, INSTAR_ERR_UNSUPPORTED_FEATURE, VHDX_ENOTSUP);
	}
	/* all five, and no parent locator (qemu opens no differencing file) */
	for (int k = 0; k < 6; k++)
		if (!item[k] != (k == 5))
			return vhdx_open_errno(v,
					       item[5] ? INSTAR_ERR_UNSUPPORTED_SUBFORMAT
						       : INSTAR_ERR_UNSUPPORTED_FEATURE,
					       VHDX_ENOTSUP);
	r = vhdx_q_item(v, item[0], b, 8);
	if (r)
		return r;
	bs = get_le32(b);
	if (get_le32(b + 4) & 2) /* a parent, but no locator */
		return vhdx_open_errno(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, VHDX_EINVAL);
	r = vhdx_q_item(v, item[1], b, 8);
	if (r)
		return r;
	v->q_size = get_le64(b);
	r = vhdx_q_item(v, item[3], b, 4);
	if (!r)
		r = vhdx_q_item(v, item[4], b + 4, 4);
	if (r)
		return r;
	lss = get_le32(b);
	if (bs < MiB || bs > 256 * MiB)
		return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EINVAL);
	/* instar resizes 4096-byte logical sectors too (the spec's other size) */
	if (lss != 512 && lss != 4096)
		return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_ENOTSUP);
	/* sectors per block, chunk ratio and block size: powers of two */
	if (bs & (bs - 1))
		return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EINVAL);
	v->q_bs = bs;
	v->q_lss = lss;
	return 0;
}

/* The BAT: qemu's entry count (its 32-bit arithmetic) within the region, the
 * region readable, and every fully present payload block inside the file
 * and clear of the log and the regions (qemu reports each on a line of its
 * own first). */
static int vhdx_q_bat(struct vhdx *v)
{
	uint64_t cr = ((uint64_t)1 << 23) * v->q_lss / v->q_bs,
		 total = v->q_size / v->q_lss * v->q_lss;
	uint32_t cr_bits = 0, blocks, entries;
	uint64_t payblocks = cr, len = vhdx_qemu_length(v);

	while (((uint64_t)1 << cr_bits) < cr)
		cr_bits++;
	blocks = (uint32_t)((v->q_size + v->q_bs - 1) / v->q_bs);
	entries = blocks + ((blocks - 1) >> cr_bits);
	if (entries > v->q_bat_len / 8)
		return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EINVAL);
	if (v->q_bat_off > VHDX_QEMU_IO_MAX - v->q_bat_len)
		return vhdx_open_errno(v, INSTAR_ERR_CORRUPT, VHDX_EIO);
	for (uint64_t base = 0; base < entries; base += VHDX_CHUNK) {
		uint64_t n = entries - base < VHDX_CHUNK ? entries - base : VHDX_CHUNK;
		int r = plan_read_z(v->io, v->q_bat_off + base * 8, v->chunk, (uint32_t)(n * 8));

		if (r)
			return r;
		for (uint64_t k = 0; k < n; k++) {
			uint64_t i = base + k, e = get_le64(v->chunk + 8 * k);
			uint64_t off = e & BAT_OFF_MASK, blen = v->q_bs;

			if ((e & 7) != BAT_FULLY_PRESENT)
				continue;
			if (total - i * v->q_bs < blen)
				blen = total - i * v->q_bs;
			if (off > 0x7fffffffffffffffull - v->q_bs) {
				struct plan_msg m = {.n = 0};

				plan_msg_str(&m, "VHDX BAT entry ");
				plan_msg_dec(&m, i);
				plan_msg_str(&m, " offset overflow.");
				return vhdx_open_einval_line(v, m.b);
			}
			if (off >= len)
				return vhdx_q_bat_past_end(v, i, "start", off, len);
			if (off + blen > len)
				return vhdx_q_bat_past_end(v, i, "end", off + blen - 1, len);
			if (payblocks--) {
				r = vhdx_q_overlap_check(v, off, v->q_bs, v->q_nregions);
				if (r)
					return r;
			} else {
				payblocks = cr;
			}
		}
	}
	return 0;
}

static int vhdx_qemu_open(struct vhdx *v)
{
	int r = vhdx_q_headers(v);

	if (!r)
		r = vhdx_q_regions(v);
	if (!r)
		r = vhdx_q_metadata(v);
	if (!r)
		r = vhdx_q_bat(v);
	return r;
}

/* ---- what instar checks beyond qemu ---- */

static int vhdx_headers(struct vhdx *v, struct plan_scratch *sc)
{
	uint8_t *h1 = plan_alloc(sc, VHDX_HDR_LEN, 8), *h2 = plan_alloc(sc, VHDX_HDR_LEN, 8);
	bool ok1, ok2;
	int r;

	if (!h1 || !h2)
		return vhdx_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL, "vhdx planner scratch");
	r = plan_read(v->io, VHDX_HDR1, h1, VHDX_HDR_LEN);
	if (!r)
		r = plan_read(v->io, VHDX_HDR2, h2, VHDX_HDR_LEN);
	if (r)
		return r;
	/* valid as qemu counts it: signature, checksum, version 1 */
	ok1 = plan_memcmp(h1, "head", 4) == 0 && vhdx_crc_ok(h1, VHDX_HDR_LEN) &&
	      get_le16(h1 + 66) == 1;
	ok2 = plan_memcmp(h2, "head", 4) == 0 && vhdx_crc_ok(h2, VHDX_HDR_LEN) &&
	      get_le16(h2 + 66) == 1;
	if (!ok1 && !ok2)
		return vhdx_open_fail(v, INSTAR_ERR_CORRUPT, "no valid vhdx header");
	if (ok1 && ok2 && get_le64(h1 + 8) == get_le64(h2 + 8) &&
	    plan_memcmp(h1, h2, VHDX_HDR_LEN) != 0)
		return vhdx_open_fail(v, INSTAR_ERR_CORRUPT,
				      "vhdx headers share a sequence number");
	if (ok1 && (!ok2 || get_le64(h1 + 8) >= get_le64(h2 + 8))) {
		v->hdr = h1;
		v->hdr_other = VHDX_HDR2;
	} else {
		v->hdr = h2;
		v->hdr_other = VHDX_HDR1;
	}
	if (get_le64(v->hdr + 8) == UINT64_MAX)
		return vhdx_open_fail(v, INSTAR_ERR_CORRUPT, "vhdx sequence number exhausted");
	if (!vhdx_guid_zero(v->hdr + 48))
		return vhdx_fail(v, INSTAR_ERR_REQUIRES_CHECK,
				 "vhdx log must be replayed first (qemu-img check -r all)");
	v->log_len = get_le32(v->hdr + 68);
	v->log_off = get_le64(v->hdr + 72);
	if (v->log_len % MiB || v->log_off % MiB || v->log_off < MiB || v->log_off > v->file_size ||
	    v->file_size - v->log_off < v->log_len)
		return vhdx_open_fail(v, INSTAR_ERR_CORRUPT, "vhdx log outside the file");
	return 0;
}

static int vhdx_regions(struct vhdx *v)
{
	uint32_t n;
	bool have_bat = false, have_md = false;
	int r = plan_read(v->io, INSTAR_VHDX_RT1, v->rt, INSTAR_VHDX_TABLE_LEN);

	if (r)
		return r;
	/* qemu reads only table 1 and refuses the file when it is bad */
	if (plan_memcmp(v->rt, "regi", 4) != 0 || !vhdx_crc_ok(v->rt, INSTAR_VHDX_TABLE_LEN))
		return vhdx_open_fail(v, INSTAR_ERR_CORRUPT, "vhdx region table checksum mismatch");
	n = get_le32(v->rt + 8);
	if (n > INSTAR_VHDX_TABLE_MAX)
		return vhdx_open_fail(v, INSTAR_ERR_CORRUPT, "vhdx region table too long");
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = v->rt + INSTAR_VHDX_RT_ENTRY(i);
		uint64_t off = get_le64(e + 16), len = get_le32(e + 24);

		if (off % MiB || off < MiB || len == 0 || len % MiB || off > v->file_size ||
		    v->file_size - off < len)
			return vhdx_open_fail(v, INSTAR_ERR_CORRUPT,
					      "vhdx region outside the file");
		if (vhdx_overlap(off, len, v->log_off, v->log_len))
			return vhdx_open_fail(v, INSTAR_ERR_CORRUPT,
					      "vhdx region overlaps the log");
		for (uint32_t k = 0; k < i; k++) {
			const uint8_t *o = v->rt + INSTAR_VHDX_RT_ENTRY(k);

			if (vhdx_overlap(off, len, get_le64(o + 16), get_le32(o + 24)))
				return vhdx_open_fail(v, INSTAR_ERR_CORRUPT,
						      "vhdx regions overlap");
		}
		if (off + len > v->kept_end)
			v->kept_end = off + len;
		if (instar_vhdx_guid_eq(e, instar_vhdx_guid_bat)) {
			if (have_bat)
				return vhdx_open_fail(v, INSTAR_ERR_CORRUPT,
						      "two vhdx BAT regions");
			have_bat = true;
			v->bat_rt_idx = i;
			v->bat_off = off;
			v->bat_len = len;
		} else if (instar_vhdx_guid_eq(e, instar_vhdx_guid_metadata)) {
			if (have_md)
				return vhdx_open_fail(v, INSTAR_ERR_CORRUPT,
						      "two vhdx metadata regions");
			have_md = true;
			v->md_off = off;
			v->md_len = len;
		} else if (get_le32(e + 28) & 1) {
			return vhdx_open_fail(v, INSTAR_ERR_UNSUPPORTED_FEATURE,
					      "unknown required vhdx region");
		}
	}
	if (!have_bat || !have_md)
		return vhdx_open_fail(v, INSTAR_ERR_CORRUPT, "vhdx BAT or metadata region missing");
	if (v->md_len < INSTAR_VHDX_TABLE_LEN)
		return vhdx_open_fail(v, INSTAR_ERR_CORRUPT, "vhdx metadata region too small");
	return 0;
}

/* Finds a metadata item; returns its absolute offset or 0 when absent. */
static int vhdx_md_item(struct vhdx *v, const uint8_t *guid, uint32_t want_len, uint64_t *ret_pos)
{
	uint16_t n = get_le16(v->mdt + 10);

	*ret_pos = 0;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = v->mdt + INSTAR_VHDX_MD_ENTRY(i);
		uint64_t off = get_le32(e + 16), len = get_le32(e + 20);

		if (!instar_vhdx_guid_eq(e, guid))
			continue;
		if (*ret_pos)
			return vhdx_open_fail(v, INSTAR_ERR_CORRUPT,
					      "duplicate vhdx metadata item");
		if (off < INSTAR_VHDX_TABLE_LEN || len < want_len || off > v->md_len ||
		    v->md_len - off < len)
			return vhdx_open_fail(v, INSTAR_ERR_CORRUPT,
					      "vhdx metadata item out of range");
		*ret_pos = v->md_off + off;
	}
	return 0;
}

/* Reads the first len bytes of a metadata item the disk must have into b;
 * missing is the error when it has none. */
static int vhdx_md_read(struct vhdx *v, const uint8_t *guid, uint32_t len, const char *missing,
			uint64_t *ret_pos, uint8_t *b)
{
	int r = vhdx_md_item(v, guid, len, ret_pos);

	if (!r && !*ret_pos)
		r = vhdx_open_fail(v, INSTAR_ERR_CORRUPT, missing);
	if (!r)
		r = plan_read(v->io, *ret_pos, b, len);
	return r;
}

static int vhdx_metadata(struct vhdx *v)
{
	uint64_t pos;
	uint8_t b[8];
	uint32_t fflags;
	int r = plan_read(v->io, v->md_off, v->mdt, INSTAR_VHDX_TABLE_LEN);

	if (r)
		return r;
	if (plan_memcmp(v->mdt, "metadata", 8) != 0)
		return vhdx_open_fail(v, INSTAR_ERR_CORRUPT, "no vhdx metadata table");
	if (get_le16(v->mdt + 10) > INSTAR_VHDX_TABLE_MAX)
		return vhdx_open_fail(v, INSTAR_ERR_CORRUPT, "vhdx metadata table too long");
	r = vhdx_md_item(v, instar_vhdx_guid_parent_locator, 0, &pos);
	if (r)
		return r;
	if (pos)
		return vhdx_fail(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "differencing vhdx");

	r = vhdx_md_read(v, instar_vhdx_guid_file_params, 8, "vhdx file parameters missing", &pos,
			 b);
	if (r)
		return r;
	v->block_size = get_le32(b);
	fflags = get_le32(b + 4);
	if (fflags & 2)
		return vhdx_fail(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "differencing vhdx");
	v->fixed = fflags & 1;
	if (v->block_size < MiB || v->block_size > 256 * MiB ||
	    (v->block_size & (v->block_size - 1)))
		return vhdx_open_fail(v, INSTAR_ERR_CORRUPT, "bad vhdx block size");

	r = vhdx_md_read(v, instar_vhdx_guid_logical_sector, 4, "vhdx logical sector size missing",
			 &pos, b);
	if (r)
		return r;
	v->lss = get_le32(b);
	if (v->lss != 512 && v->lss != 4096)
		return vhdx_open_fail(v, INSTAR_ERR_CORRUPT, "bad vhdx logical sector size");
	v->cr = (uint32_t)(((uint64_t)1 << 23) * v->lss / v->block_size);

	r = vhdx_md_read(v, instar_vhdx_guid_disk_size, 8, "vhdx virtual disk size missing",
			 &v->vds_pos, b);
	if (r)
		return r;
	v->old_size = get_le64(b);
	if (v->old_size % v->lss || v->old_size > VHDX_MAX_SIZE)
		return vhdx_open_fail(v, INSTAR_ERR_CORRUPT, "bad vhdx virtual disk size");
	v->old_entries = vhdx_entries_for(v, v->old_size);
	if (v->old_entries > v->bat_len / 8)
		return vhdx_open_fail(v, INSTAR_ERR_CORRUPT, "vhdx BAT region too small");
	return 0;
}

static int vhdx_read_chunk(struct vhdx *v, uint64_t first, uint64_t n)
{
	return plan_read(v->io, v->bat_off + first * 8, v->chunk, (uint32_t)(n * 8));
}

/* The old entries from base on, at most VHDX_CHUNK of them (*ret_n). */
static int vhdx_read_old_chunk(struct vhdx *v, uint64_t base, uint64_t *ret_n)
{
	*ret_n = v->old_entries - base < VHDX_CHUNK ? v->old_entries - base : VHDX_CHUNK;
	return vhdx_read_chunk(v, base, *ret_n);
}

/* Pass 1 over the old entries: states and offsets must be sane; finds the
 * end of the kept blocks and the block cut by min_size. */
static int vhdx_scan(struct vhdx *v, uint64_t min_size)
{
	uint64_t keep = vhdx_entries_for(v, min_size);
	uint64_t cut = min_size / v->block_size;
	int r;

	v->tail_alloc = false;
	for (uint64_t base = 0; base < v->old_entries; base += VHDX_CHUNK) {
		uint64_t n;

		r = vhdx_read_old_chunk(v, base, &n);
		if (r)
			return r;
		for (uint64_t k = 0; k < n; k++) {
			uint64_t j = base + k, e = get_le64(v->chunk + 8 * k);
			uint64_t st = e & 7, off = e & BAT_OFF_MASK, len;

			if (vhdx_is_sb(v, j)) {
				if (st != BAT_NOT_PRESENT && st != BAT_FULLY_PRESENT)
					return vhdx_open_fail(v, INSTAR_ERR_CORRUPT,
							      "bad vhdx sector bitmap state");
				len = MiB;
			} else {
				if (st == 4 || st == 7)
					return vhdx_open_fail(v, INSTAR_ERR_CORRUPT,
							      "bad vhdx payload block state");
				if (st == BAT_FULLY_PRESENT && off == 0)
					return vhdx_open_fail(v, INSTAR_ERR_CORRUPT,
							      "vhdx present block at offset 0");
				len = v->block_size;
			}
			if (off == 0)
				continue;
			if (off < MiB || off > v->file_size || v->file_size - off < len)
				return vhdx_open_fail(v, INSTAR_ERR_CORRUPT,
						      "vhdx block outside the file");
			if (vhdx_overlap(off, len, v->log_off, v->log_len) ||
			    vhdx_overlap(off, len, v->bat_off, v->bat_len) ||
			    vhdx_overlap(off, len, v->md_off, v->md_len))
				return vhdx_open_fail(v, INSTAR_ERR_CORRUPT,
						      "vhdx block overlaps the metadata");
			if (j < keep && off + len > v->kept_end)
				v->kept_end = off + len;
			if (!vhdx_is_sb(v, j) && vhdx_payload_index(v, j) == cut &&
			    min_size % v->block_size) {
				v->tail_alloc = true;
				v->tail_off = off + min_size % v->block_size;
				v->tail_len = v->block_size - min_size % v->block_size;
			}
		}
	}
	return 0;
}

/* Writes BAT entries [from, to) of a table at bat_off, in whole 512-byte
 * sectors: entries below `keep` keep their old value, the others get their
 * initial state (new dynamic blocks read as zero, new fixed blocks are
 * allocated at *next_block, entries past a shrunk end are not present).
 * The neighbours sharing a sector keep what the table held. */
static int vhdx_write_entries(struct vhdx *v, uint64_t bat_off, uint64_t from, uint64_t to,
			      uint64_t keep, uint64_t *next_block)
{
	bool in_place = bat_off == v->bat_off;
	uint64_t src_end = in_place ? v->bat_len / 8 : v->old_entries;
	int r;

	for (uint64_t base = from; base < to;) {
		uint64_t n = VHDX_CHUNK - base % VHDX_CHUNK, first = base / 64 * 64, wend, have;

		if (n > to - base)
			n = to - base;
		wend = vhdx_round_up(base + n, 64);
		have = first < src_end ? (src_end < wend ? src_end : wend) - first : 0;
		r = have ? vhdx_read_chunk(v, first, have) : 0;
		if (r)
			return r;
		plan_memset(v->chunk + 8 * have, 0, (wend - first - have) * 8);
		for (uint64_t j = base; j < base + n; j++) {
			uint8_t *e = v->chunk + 8 * (j - first);

			if (j < keep && j < v->old_entries)
				continue;
			if (vhdx_is_sb(v, j) || j >= v->new_entries) {
				put_le64(e, BAT_NOT_PRESENT);
			} else if (v->fixed) {
				put_le64(e, *next_block | BAT_FULLY_PRESENT);
				*next_block += v->block_size;
			} else {
				put_le64(e, BAT_ZERO);
			}
		}
		r = plan_write(v->p, bat_off + first * 8, v->chunk, (wend - first) * 8);
		if (r)
			return r;
		base += n;
	}
	return 0;
}

/* Discards the blocks of old entries >= keep. Reads only the old table. */
static int vhdx_discard_from(struct vhdx *v, uint64_t keep)
{
	uint64_t doff = 0, dlen = 0;
	int r;

	for (uint64_t base = keep; base < v->old_entries;) {
		uint64_t n;

		r = vhdx_read_old_chunk(v, base, &n);
		if (r)
			return r;
		for (uint64_t k = 0; k < n; k++) {
			uint64_t e = get_le64(v->chunk + 8 * k), off = e & BAT_OFF_MASK;
			uint64_t len = vhdx_is_sb(v, base + k) ? MiB : v->block_size;

			if (!off)
				continue;
			if (dlen && doff + dlen == off) {
				dlen += len;
				continue;
			}
			r = plan_discard(v->p, doff, dlen);
			if (r)
				return r;
			doff = off;
			dlen = len;
		}
		base += n;
	}
	return plan_discard(v->p, doff, dlen);
}

static int vhdx_write_header(struct vhdx *v, struct plan_scratch *sc)
{
	uint8_t *h = plan_alloc(sc, VHDX_HDR_LEN, 8);
	uint64_t seq = get_le64(v->hdr + 8) + 1;

	if (!h)
		return vhdx_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL, "vhdx planner scratch");
	plan_memcpy(h, v->hdr, VHDX_HDR_LEN);
	put_le64(h + 8, seq);
	vhdx_guid_next(h + 16, seq, v->new_size, 1);
	vhdx_guid_next(h + 32, seq, v->new_size, 2);
	vhdx_crc_set(h, VHDX_HDR_LEN);
	return plan_write(v->p, v->hdr_other, h, VHDX_HDR_LEN);
}

/* Points the BAT region entry at [off, len) in both region tables. */
static int vhdx_write_regions(struct vhdx *v, uint64_t off, uint64_t len)
{
	uint8_t *e = v->rt + INSTAR_VHDX_RT_ENTRY(v->bat_rt_idx);
	uint64_t used = vhdx_round_up(16 + 32ull * get_le32(v->rt + 8), 512);
	int r;

	put_le64(e + 16, off);
	put_le32(e + 24, (uint32_t)len);
	vhdx_crc_set(v->rt, INSTAR_VHDX_TABLE_LEN);
	/* the rest of the 64 KiB is what table 1 already holds */
	r = plan_write(v->p, INSTAR_VHDX_RT1, v->rt, used);
	if (!r)
		r = plan_flush(v->p);
	if (!r)
		r = plan_write(v->p, INSTAR_VHDX_RT2, v->rt, INSTAR_VHDX_TABLE_LEN);
	if (!r)
		r = plan_flush(v->p);
	return r;
}

static int vhdx_write_size(struct vhdx *v)
{
	uint64_t first = v->vds_pos / 512 * 512, end = vhdx_round_up(v->vds_pos + 8, 512);
	uint8_t sec[1024];
	int r = plan_read(v->io, first, sec, (uint32_t)(end - first));

	if (r)
		return r;
	put_le64(sec + (v->vds_pos - first), v->new_size);
	return plan_write(v->p, first, sec, end - first);
}

static int vhdx_grow(struct vhdx *v, const struct plan_opts *o)
{
	uint64_t need = v->new_entries * 8, eof = vhdx_round_up(v->file_size, MiB);
	uint64_t bat_off = v->bat_off, bat_len = v->bat_len, next, last_block;
	bool reloc = need > v->bat_len;
	int r;

	if (reloc) {
		bat_off = eof;
		bat_len = vhdx_round_up(need, MiB);
		if (bat_len > 0xfff00000ull)
			return vhdx_fail(v, INSTAR_ERR_TOO_LARGE, "vhdx BAT region too large");
		eof = bat_off + bat_len;
	}
	next = eof;
	/* prepare */
	if (reloc) {
		r = vhdx_write_entries(v, bat_off, 0, v->new_entries, v->old_entries, &next);
		if (!r)
			r = plan_zero(v->p, bat_off + vhdx_round_up(need, 512),
				      bat_len - vhdx_round_up(need, 512));
	} else {
		r = vhdx_write_entries(v, bat_off, v->old_entries, v->new_entries, v->old_entries,
				       &next);
	}
	if (r)
		return r;
	last_block = next;
	if (v->fixed && next > eof) {
		/* new blocks of a fixed disk: sparse unless preallocating, but the
		 * file must reach past the last one before any entry points there */
		if (o->prealloc == INSTAR_PREALLOC_OFF)
			r = plan_zero(v->p, next - v->lss, v->lss);
		else
			r = plan_zero(v->p, eof, next - eof);
		if (r)
			return r;
	}
	if (v->tail_alloc) {
		r = plan_zero(v->p, v->tail_off, v->tail_len);
		if (r)
			return r;
	}
	r = plan_flush(v->p);
	if (!r && reloc)
		r = vhdx_write_regions(v, bat_off, bat_len);
	if (!r)
		r = vhdx_write_size(v);
	if (!r)
		r = plan_flush(v->p);
	if (!r && reloc)
		r = plan_discard(v->p, v->bat_off, v->bat_len);
	v->p->file_size_after = v->file_size;
	if (last_block > v->file_size)
		v->p->file_size_after = last_block;
	return r;
}

static int vhdx_shrink(struct vhdx *v)
{
	uint64_t next = 0;
	int r = vhdx_write_size(v);

	if (!r)
		r = plan_flush(v->p);
	/* cleanup: the entries past the new count are invisible now */
	if (!r)
		r = vhdx_discard_from(v, v->new_entries);
	if (!r && v->new_entries < v->old_entries)
		r = vhdx_write_entries(v, v->bat_off, v->new_entries, v->old_entries,
				       v->new_entries, &next);
	if (!r && v->tail_alloc)
		r = plan_zero(v->p, v->tail_off, v->tail_len);
	if (!r)
		r = plan_flush(v->p);
	v->p->file_size_after = v->file_size;
	if (v->kept_end < v->file_size)
		v->p->file_size_after = v->kept_end;
	return r;
}

static int vhdx_plan(struct vhdx *v, const struct plan_opts *o, struct plan_scratch *sc)
{
	int r;

	v->rt = plan_alloc(sc, INSTAR_VHDX_TABLE_LEN, 8);
	v->mdt = plan_alloc(sc, INSTAR_VHDX_TABLE_LEN, 8);
	v->chunk = plan_alloc(sc, VHDX_CHUNK * 8 + 512, 8);
	if (!v->rt || !v->mdt || !v->chunk)
		return vhdx_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL, "vhdx planner scratch");
	r = vhdx_qemu_open(v);
	if (r)
		return r;
	if (v->file_size < 2 * MiB)
		return vhdx_open_fail(v, INSTAR_ERR_PARSE_FAILED, "file too small for vhdx");
	v->kept_end = MiB;
	r = vhdx_headers(v, sc);
	if (!r)
		r = vhdx_regions(v);
	if (!r)
		r = vhdx_metadata(v);
	if (r)
		return r;
	if (v->log_off + v->log_len > v->kept_end)
		v->kept_end = v->log_off + v->log_len;
	v->ret->old_virtual_size = v->old_size;
	if (o->expected_old_size != UINT64_MAX && o->expected_old_size != v->old_size)
		return vhdx_fail(v, INSTAR_ERR_HEADER_MISMATCH, "vhdx size differs from the probe");
	if (o->new_size > VHDX_MAX_SIZE)
		return vhdx_fail(v, INSTAR_ERR_TOO_LARGE, "vhdx size limit is 64 TiB");
	v->new_size = vhdx_round_up(o->new_size, v->lss);
	v->ret->new_virtual_size = v->new_size;
	if (v->new_size < v->old_size) {
		v->ret->action = INSTAR_ACTION_SHRINK;
		if (!(o->flags & INSTAR_RESIZE_SHRINK_ALLOWED))
			return vhdx_fail(v, INSTAR_ERR_SHRINK_WITHOUT_FLAG,
					 "shrinking needs the shrink flag");
	} else {
		v->ret->action =
		    v->new_size > v->old_size ? INSTAR_ACTION_GROW : INSTAR_ACTION_NOOP;
	}
	if (o->prealloc != INSTAR_PREALLOC_OFF) {
		if (!v->fixed || o->prealloc == INSTAR_PREALLOC_METADATA)
			return vhdx_fail(v, INSTAR_ERR_PREALLOCATION_UNSUPPORTED,
					 "vhdx supports only falloc/full on fixed disks");
		if (o->prealloc > INSTAR_PREALLOC_FULL)
			return vhdx_fail(v, INSTAR_ERR_INVALID_OPTION, "unknown preallocation");
		if (v->ret->action == INSTAR_ACTION_SHRINK)
			return vhdx_fail(v, INSTAR_ERR_PREALLOC_NOT_GROWING,
					 "preallocation needs a growing size");
	}
	v->p->file_size_after = v->file_size;
	if (v->ret->action == INSTAR_ACTION_NOOP)
		return 0;
	v->new_entries = vhdx_entries_for(v, v->new_size);
	r = vhdx_scan(v, v->new_size < v->old_size ? v->new_size : v->old_size);
	if (r)
		return r;
	/* the header with new write GUIDs goes first; alone it changes nothing */
	r = vhdx_write_header(v, sc);
	if (!r)
		r = plan_flush(v->p);
	if (r)
		return r;
	if (v->ret->action == INSTAR_ACTION_GROW)
		return vhdx_grow(v, o);
	return vhdx_shrink(v);
}

int plan_resize_vhdx(const struct plan_opts *o, const struct plan_io *io, struct plan_scratch *s,
		     struct plan *p, struct instar_resize_result *ret)
{
	struct vhdx v = {.io = io, .p = p, .ret = ret, .file_size = io->file_size};
	int r;

	ret->action = INSTAR_ACTION_NOOP;
	ret->file_size_before = io->file_size;
	ret->file_size_after = io->file_size;
	r = vhdx_plan(&v, o, s);
	if (r == 0)
		ret->file_size_after = p->file_size_after;
	ret->error = (uint32_t)r;
	return r;
}
