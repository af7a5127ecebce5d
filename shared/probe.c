/* shared/probe.c — bounded host-side format probe (see probe.h). Every read
 * goes through win(), which hands out a pointer only when the whole range
 * lies inside one window the caller supplied. */
#include "abi_names.h"
#include "crc32.h"
#include "byteorder.h"
#include "msgbuf.h"
#include "probe.h"
#include "vhd_size.h"
#include "open_check.h"
#include "vdi_layout.h"
#include "vhdx_layout.h"
#include "vmdk_qemu.h"

#define SECTOR 512u

static bool bytes_eq(const uint8_t *p, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)s[i])
			return false;
	return true;
}

/* [off, off + len) of the file if one window holds all of it, else NULL. */
static const uint8_t *win(const struct instar_probe_input *in, uint64_t off, uint64_t len)
{
	if (len == 0 || off > in->file_size || len > in->file_size - off)
		return NULL;
	for (unsigned i = 0; i < in->nwindows; i++) {
		const struct instar_probe_window *w = &in->windows[i];

		if (off >= w->offset && off - w->offset <= w->len &&
		    len <= w->len - (off - w->offset))
			return w->data + (off - w->offset);
	}
	return NULL;
}

/* Asks the caller for [off, off + len) unless the file cannot hold it. */
static void need(const struct instar_probe_input *in, struct instar_probe_info *ret, uint64_t off,
		 uint64_t len)
{
	if (len == 0 || len > INSTAR_PROBE_MAX_EXTRA || off > in->file_size ||
	    len > in->file_size - off || in->nwindows >= INSTAR_PROBE_MAX_WINDOWS)
		return;
	ret->need_offset = off;
	ret->need_len = (uint32_t)len;
}

static void set_sub(struct instar_probe_info *ret, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && i < sizeof(ret->subformat) - 1 && s[i]; i++)
		ret->subformat[i] = s[i];
	ret->subformat[i] = '\0';
}

/* ---- qcow2 ---- */

static uint32_t copy_name(uint8_t *d, size_t cap, const uint8_t *s, uint64_t n)
{
	uint32_t k = n < cap ? (uint32_t)n : (uint32_t)cap;

	for (uint32_t i = 0; i < k; i++)
		d[i] = s[i];
	return k;
}

/* The backing name and the header extensions of cluster 0, read as the
 * guest's planner reads them (the planner refuses any disagreement). */
static void probe_qcow2_names(const struct instar_probe_input *in, const uint8_t *h,
			      struct instar_probe_info *ret)
{
	uint32_t version = get_be32(h + 4), bits = get_be32(h + 20);
	uint64_t cs, boff = get_be64(h + 8), pos;
	uint32_t bsize = get_be32(h + 16);
	const uint8_t *p;

	if (bits < 9 || bits > 21)
		return;
	cs = 1ull << bits;
	pos = 72;
	if (version >= 3) {
		pos = get_be32(h + 100);
		ret->data_file = (get_be64(h + 72) & 4) != 0;
		ret->data_file_raw = (get_be64(h + 88) & 2) != 0;
		if (pos < 104 || pos % 8 || pos > cs)
			return;
	}
	if (boff) {
		/* qemu's qcow2 open refuses a name longer than 1023 bytes */
		if (bsize == 0 || bsize > 1023 || boff >= cs || bsize > cs - boff)
			return;
		p = win(in, boff, bsize);
		if (!p) {
			need(in, ret, boff, bsize);
			return;
		}
		ret->backing_len = copy_name(ret->backing, sizeof(ret->backing), p, bsize);
	}
	for (; pos + 8 <= cs;) {
		uint32_t type, len;

		p = win(in, pos, 8);
		if (!p) {
			need(in, ret, pos,
			     cs - pos < INSTAR_PROBE_MAX_EXTRA ? cs - pos : INSTAR_PROBE_MAX_EXTRA);
			return;
		}
		type = get_be32(p);
		len = get_be32(p + 4);
		if (type == 0)
			break;
		if (len > cs - pos - 8)
			return;
		if (type == 0xe2792aca || type == 0x44415441) {
			p = len ? win(in, pos + 8, len) : h;
			if (!p) {
				need(in, ret, pos + 8, len);
				return;
			}
			if (type == 0xe2792aca)
				ret->backing_fmt_len =
				    copy_name(ret->backing_fmt, sizeof(ret->backing_fmt), p, len);
			else if (len <= sizeof(ret->data_file_name))
				ret->data_file_len = copy_name(ret->data_file_name,
							       sizeof(ret->data_file_name), p, len);
			else
				return; /* longer than any name qemu writes */
		}
		pos += 8 + (((uint64_t)len + 7) & ~7ull);
	}
	ret->names_known = true;
}

uint32_t instar_probe_name_flags(const struct instar_probe_info *info, uint32_t *ret_backing_crc,
				 uint32_t *ret_data_crc)
{
	uint32_t flags = 0;

	*ret_backing_crc = *ret_data_crc = 0;
	if (!info->names_known)
		return 0;
	if (info->backing_len) {
		flags |= INSTAR_RESIZE_BACKING;
		*ret_backing_crc = instar_crc32(0, info->backing, info->backing_len);
	}
	if (info->data_file) {
		flags |= INSTAR_RESIZE_DATA_FILE;
		*ret_data_crc = instar_crc32(0, info->data_file_name, info->data_file_len);
	}
	return flags;
}

/* ---- vmdk ---- */

static bool str_eq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

/* qemu's text-descriptor rule over the zero-padded first 512 bytes:
 * comment lines and blank lines, then a line "version=1|2|3" (with \n or
 * \r\n). */
static bool vmdk_text_probe(const uint8_t *b)
{
	size_t p = 0, end = SECTOR;

	while (p < end) {
		if (b[p] == '#') {
			while (p < end && b[p] != '\n')
				p++;
			p++;
			continue;
		}
		if (b[p] == ' ') {
			while (p < end && b[p] == ' ')
				p++;
			if (p < end && b[p] == '\r')
				p++;
			if (p == end || b[p] != '\n')
				return false;
			p++;
			continue;
		}
		if (end - p >= 10 && bytes_eq(b + p, "version=", 8) && b[p + 8] >= '1' &&
		    b[p + 8] <= '3' && b[p + 9] == '\n')
			return true;
		return end - p >= 11 && bytes_eq(b + p, "version=", 8) && b[p + 8] >= '1' &&
		       b[p + 8] <= '3' && b[p + 9] == '\r' && b[p + 10] == '\n';
	}
	return false;
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* One extent line as qemu 7.2's vmdk_parse_extents() reads it with
 * sscanf("%10s %" SCNd64 " %10s \"%511[^\n\r\"]\" %" SCNd64): 1 for an
 * extent qemu opens (RW, sectors > 0, a known type, FLAT with an offset,
 * VMFS and the sparse types without one), 0 for a line qemu skips, -1 for a
 * line qemu refuses or instar does not read as qemu would (a name without
 * its closing quote or over 511 bytes, a number read from the next line). */
struct vmdk_ext_line {
	uint64_t sectors;
	const uint8_t *type, *name;
	size_t type_len, name_len;
	bool has_offset;
	uint64_t offset;
};

static size_t cstr_len(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

static bool is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* A decimal at d[*i] (sign, digits) up to INT64_MAX: 1, 0 if none, -1 if
 * out of range. */
static int vmdk_dec(const uint8_t *d, size_t n, size_t *i, uint64_t *ret, bool *neg)
{
	size_t k = *i;
	uint64_t v = 0;

	*neg = false;
	if (k < n && (d[k] == '+' || d[k] == '-'))
		*neg = d[k++] == '-';
	if (k >= n || !is_digit(d[k]))
		return 0;
	for (; k < n && is_digit(d[k]); k++) {
		if (v > ((uint64_t)INT64_MAX - (d[k] - '0')) / 10)
			return -1;
		v = v * 10 + (d[k] - '0');
	}
	*i = k;
	*ret = v;
	return 1;
}

static size_t vmdk_token(const uint8_t *d, size_t n, size_t *i)
{
	size_t k = *i;

	while (*i < n && d[*i] && !is_space(d[*i]))
		(*i)++;
	return *i - k;
}

static int vmdk_extent_line(const uint8_t *d, size_t n, size_t ls, struct vmdk_ext_line *e)
{
	static const char *const types[] = {"FLAT", "SPARSE", "VMFS", "VMFSSPARSE", "SESPARSE"};
	size_t i = ls, tl, k;
	bool neg, neg_sectors, known = false;
	int r;

	while (i < n && d[i] && is_space(d[i]))
		i++;
	if (vmdk_token(d, n, &i) != 2 || !bytes_eq(d + i - 2, "RW", 2))
		return 0;
	while (i < n && d[i] && is_space(d[i]))
		i++;
	r = vmdk_dec(d, n, &i, &e->sectors, &neg_sectors);
	if (r <= 0)
		return r;
	while (i < n && d[i] && is_space(d[i]))
		i++;
	e->type = d + i;
	tl = vmdk_token(d, n, &i);
	if (tl == 0 || tl > 10)
		return 0;
	e->type_len = tl;
	while (i < n && d[i] && is_space(d[i]))
		i++;
	if (i >= n || d[i] != '"')
		return 0;
	e->name = d + ++i;
	while (i < n && d[i] && d[i] != '"' && d[i] != '\n' && d[i] != '\r')
		i++;
	e->name_len = (size_t)(d + i - e->name);
	if (e->name_len == 0)
		return 0;
	if (i >= n || d[i] != '"' || e->name_len > 511)
		return -1;
	i++;
	/* the offset: sscanf skips any whitespace, line ends included */
	k = i;
	while (k < n && d[k] && is_space(d[k]))
		k++;
	e->has_offset = false;
	r = vmdk_dec(d, n, &k, &e->offset, &neg);
	if (r < 0)
		return -1;
	if (r > 0) {
		for (size_t j = i; j < k; j++)
			if (d[j] == '\n')
				return -1; /* read from the next line */
		e->has_offset = true;
		if (neg)
			e->offset = UINT64_MAX; /* negative: invalid for FLAT */
	}
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
		known |= tl == cstr_len(types[t]) && bytes_eq(e->type, types[t], tl);
	if (neg_sectors || e->sectors == 0 || !known)
		return 0; /* qemu skips the line */
	if (tl == 4 && bytes_eq(e->type, "FLAT", 4))
		return e->has_offset && e->offset != UINT64_MAX ? 1 : -1;
	return e->has_offset ? -1 : 1;
}

/* Whether extent idx (1-based) e follows the twoGbMaxExtentFlat rule after
 * the first extent first: FLAT at offset 0, named -f001, -f002, ... */
static bool vmdk_flat_split_line(const struct vmdk_ext_line *first, const struct vmdk_ext_line *e,
				 uint32_t idx)
{
	char name[INSTAR_VMDK_SPLIT_NAME_MAX + 1];
	int n;

	if (e->type_len != 4 || !bytes_eq(e->type, "FLAT", 4) || !e->has_offset || e->offset)
		return false;
	n = instar_vmdk_split_name(first->name, first->name_len, idx, name, sizeof(name));
	return n > 0 && (size_t)n == e->name_len && bytes_eq(e->name, name, (size_t)n);
}

/* Whether e follows the twoGbMaxExtentSparse rule after the first extent
 * first: SPARSE, named as the first with a number of its own (*ret_num;
 * the rule wants them increasing). */
static bool vmdk_sparse_split_line(const struct vmdk_ext_line *first, const struct vmdk_ext_line *e,
				   uint32_t *ret_num)
{
	int64_t num;

	if (e->type_len != 6 || !bytes_eq(e->type, "SPARSE", 6))
		return false;
	num = instar_vmdk_sparse_num(first->name, first->name_len, e->name, e->name_len);
	*ret_num = (uint32_t)num;
	return num > 0;
}

/* Walks a descriptor text: createType="...", and for a descriptor file the
 * sum of its extents (qemu's size for flat extents; for sparse ones qemu
 * reads each extent's header, which the host checks against this before a
 * resize: vmm/split.c) and, when it has exactly one extent and that is
 * FLAT or VMFS (monolithicFlat, ESXi's vmfs), the extent's name as the
 * file the host opens beside the image (data_file / data_file_name). A
 * twoGbMaxExtentFlat or twoGbMaxExtentSparse file whose extents follow the
 * split rule gives its layout instead (vmdk_split_ok). */
static void vmdk_descriptor(const uint8_t *d, size_t n, struct instar_probe_info *ret,
			    bool want_size)
{
	struct vmdk_ext_line e, flat = {0};
	struct instar_vmdk_split *sp = &ret->vmdk_split;
	uint64_t sectors = 0;
	unsigned extents = 0;
	/* whether the extents follow the flat and the sparse split rule; which
	 * one counts is decided by createType at the end, wherever its line is */
	bool bad = false, split_f = true, split_s = true, sparse;
	size_t i = 0;

	while (i < n && d[i]) {
		size_t ls = i, le;

		while (i < n && d[i] && d[i] != '\n')
			i++;
		le = i;
		if (i < n && d[i] == '\n')
			i++;
		if (le - ls > 12 && bytes_eq(d + ls, "createType=\"", 12)) {
			size_t q = ls + 12, qe = q;

			while (qe < le && d[qe] != '"')
				qe++;
			if (qe < le)
				set_sub(ret, (const char *)d + q, qe - q);
			continue;
		}
		if (!want_size)
			continue;
		switch (vmdk_extent_line(d, n, ls, &e)) {
		case 1:
			if (sectors + e.sectors < sectors)
				bad = true;
			sectors += e.sectors;
			if (extents++ == 0)
				flat = e;
			if (extents > INSTAR_VMDK_SPLIT_MAX_EXTENTS ||
			    e.sectors > INSTAR_VMDK_SPLIT_SECTORS) {
				split_f = split_s = false;
				break;
			}
			/* flat: the one before this one must be full */
			if ((extents > 1 && sp->ext[extents - 2] != flat.sectors) ||
			    !vmdk_flat_split_line(&flat, &e, extents))
				split_f = false;
			if (!vmdk_sparse_split_line(&flat, &e, &sp->num[extents - 1]))
				split_s = false;
			sp->ext[extents - 1] = (uint32_t)e.sectors;
			break;
		case -1:
			bad = true;
			break;
		default:
			break;
		}
	}
	if (!want_size || bad || !extents || sectors > UINT64_MAX / SECTOR)
		return;
	ret->virtual_size = sectors * SECTOR;
	ret->names_known = true;
	sparse = str_eq(ret->subformat, "twoGbMaxExtentSparse");
	if (sparse || str_eq(ret->subformat, "twoGbMaxExtentFlat")) {
		int r = -1;

		if (sparse && split_s) {
			r = instar_vmdk_split_sparse(sp, extents);
		} else if (!sparse && split_f) {
			sp->split = extents > 1 ? flat.sectors : INSTAR_VMDK_SPLIT_SECTORS;
			sp->count = extents;
			sp->last = sp->ext[extents - 1];
			r = instar_vmdk_split_valid(sp);
		}
		if (r == 0) {
			ret->vmdk_split_ok = true;
			ret->data_file_len =
			    copy_name(ret->data_file_name, sizeof(ret->data_file_name), flat.name,
				      flat.name_len);
		}
		return;
	}
	if (extents == 1 && ((flat.type_len == 4 && bytes_eq(flat.type, "FLAT", 4)) ||
			     (flat.type_len == 4 && bytes_eq(flat.type, "VMFS", 4)))) {
		ret->data_file = true;
		ret->data_file_len = copy_name(ret->data_file_name, sizeof(ret->data_file_name),
					       flat.name, flat.name_len);
	}
}

/* qemu's vmdk_parent_open (shared/vmdk_qemu.h) on the 10 KiB it reads at
 * at, as far as the file goes (qemu reads zeros past its end, where the
 * text ends): a parentFileNameHint names the backing file, in format
 * "vmdk". false when the bytes are not all in the windows. */
static bool probe_vmdk_parent(const struct instar_probe_input *in, uint64_t at,
			      struct instar_probe_info *ret)
{
	uint64_t n = in->file_size > at ? in->file_size - at : 0;
	const uint8_t *d;
	size_t off, len;

	if (n > INSTAR_VMDKQ_DESC_SIZE)
		n = INSTAR_VMDKQ_DESC_SIZE;
	d = n ? win(in, at, n) : NULL;
	if (n && !d)
		return false;
	if (instar_vmdkq_parent((const char *)d, (size_t)n, &off, &len) != 1 || !len)
		return true;
	ret->has_backing = true;
	ret->backing_len = copy_name(ret->backing, sizeof(ret->backing), d + off, len);
	ret->backing_fmt_len =
	    copy_name(ret->backing_fmt, sizeof(ret->backing_fmt), (const uint8_t *)"vmdk", 4);
	return true;
}

static void probe_vmdk_sparse(const struct instar_probe_input *in, const uint8_t *h,
			      struct instar_probe_info *ret)
{
	uint64_t cap = get_le64(h + 12), grain = get_le64(h + 20);
	uint64_t doff = get_le64(h + 28), dsize = get_le64(h + 36);
	const uint8_t *d;

	ret->version = get_le32(h + 4);
	/* A stream with the GD at the end (gdOffset all ones, as VMware
	 * writes): qemu takes every field from the footer, the sector before
	 * the last (in the tail window), after an end-of-stream marker check;
	 * without a readable footer the size is not known here. */
	if (get_le64(h + 56) == UINT64_MAX) {
		const uint8_t *f = in->file_size % SECTOR == 0 && in->file_size >= 4 * SECTOR
				       ? win(in, in->file_size - 2 * SECTOR, 2 * SECTOR)
				       : NULL;

		cap = UINT64_MAX;
		if (f && bytes_eq(f, "KDMV", 4) && get_le64(f + SECTOR) == 0 &&
		    get_le32(f + SECTOR + 8) == 0 && get_le32(f + SECTOR + 12) == 0)
			cap = get_le64(f + 12);
	}
	if (cap <= UINT64_MAX / SECTOR)
		ret->virtual_size = cap * SECTOR;
	if (grain && grain <= UINT32_MAX / SECTOR)
		ret->cluster_size = (uint32_t)(grain * SECTOR);
	/* The embedded descriptor: only for its createType, and only if it
	 * lies in what we already have. */
	if (doff && dsize && doff <= UINT64_MAX / SECTOR && dsize <= 64 * 1024 / SECTOR) {
		d = win(in, doff * SECTOR, dsize * SECTOR);
		if (d)
			vmdk_descriptor(d, (size_t)(dsize * SECTOR), ret, false);
	}
}

/* ---- vhd ---- */

static void probe_vhd(const struct instar_probe_input *in, const uint8_t *footer,
		      struct instar_probe_info *ret)
{
	uint32_t type = get_be32(footer + 60);
	uint64_t doff = get_be64(footer + 16);
	const uint8_t *dyn;

	/* the planner's rule, not a copy of it: CHS or current_size by creator
	 * and geometry (vhd_size.h) */
	ret->virtual_size = instar_vhd_virtual_size(footer);
	if (type == 2)
		set_sub(ret, "fixed", 5);
	else if (type == 3)
		set_sub(ret, "dynamic", 7);
	else if (type == 4)
		set_sub(ret, "differencing", 12);
	ret->has_backing = type == 4;
	if (type == 3 || type == 4) {
		/* dynamic header: block_size @32 */
		dyn = win(in, doff, 1024);
		if (dyn && bytes_eq(dyn, "cxsparse", 8))
			ret->cluster_size = get_be32(dyn + 32);
	}
}

/* ---- vhdx ---- */

static void probe_vhdx(const struct instar_probe_input *in, struct instar_probe_info *ret)
{
	const uint8_t *rt, *mt, *item;
	uint64_t md_off = 0, md_len = 0, vds_off = 0, fp_off = 0;
	bool vds = false, fp = false;
	uint32_t n, i;

	ret->version = 1;
	rt = win(in, INSTAR_VHDX_RT1, INSTAR_VHDX_TABLE_LEN);
	if (!rt) {
		need(in, ret, INSTAR_VHDX_RT1, INSTAR_VHDX_TABLE_LEN);
		return;
	}
	n = get_le32(rt + 8);
	if (!bytes_eq(rt, "regi", 4) || n > INSTAR_VHDX_TABLE_MAX)
		return;
	for (i = 0; i < n; i++) {
		const uint8_t *e = rt + INSTAR_VHDX_RT_ENTRY(i);

		if (instar_vhdx_guid_eq(e, instar_vhdx_guid_metadata)) {
			md_off = get_le64(e + 16);
			md_len = get_le32(e + 24);
		}
	}
	if (md_len < INSTAR_VHDX_TABLE_LEN)
		return;
	mt = win(in, md_off, INSTAR_VHDX_TABLE_LEN);
	if (!mt) {
		need(in, ret, md_off, INSTAR_VHDX_TABLE_LEN);
		return;
	}
	n = get_le16(mt + 10);
	if (!bytes_eq(mt, "metadata", 8) || n > INSTAR_VHDX_TABLE_MAX)
		return;
	for (i = 0; i < n; i++) {
		const uint8_t *e = mt + INSTAR_VHDX_MD_ENTRY(i);
		uint32_t off = get_le32(e + 16), len = get_le32(e + 20);

		if (off < INSTAR_VHDX_TABLE_LEN || len < 8 || off > md_len || md_len - off < 8)
			continue;
		if (instar_vhdx_guid_eq(e, instar_vhdx_guid_disk_size)) {
			vds = true;
			vds_off = md_off + off;
		} else if (instar_vhdx_guid_eq(e, instar_vhdx_guid_file_params)) {
			fp = true;
			fp_off = md_off + off;
		}
	}
	if (fp) {
		item = win(in, fp_off, 8);
		if (item) {
			uint32_t flags = get_le32(item + 4);

			ret->cluster_size = get_le32(item);
			ret->has_backing = flags & 2;
			if (flags & 2)
				set_sub(ret, "differencing", 12);
			else if (flags & 1)
				set_sub(ret, "fixed", 5);
			else
				set_sub(ret, "dynamic", 7);
		} else {
			need(in, ret, fp_off, 8);
		}
	}
	if (vds) {
		item = win(in, vds_off, 8);
		if (item)
			ret->virtual_size = get_le64(item);
		else
			need(in, ret, vds_off, 8);
	}
}

/* ---- the formats qemu 7.2 knows but instar does not resize: their size ---- */

/* qcow (v1): size, BE64 @24 */
static void probe_qcow(const struct instar_probe_input *in, const uint8_t *b,
		       struct instar_probe_info *ret)
{
	(void)in;
	ret->version = 1;
	ret->virtual_size = get_be64(b + 24);
}

_Static_assert(INSTAR_QED_NAME_MAX - 1 == INSTAR_PROBE_BACKING_MAX,
	       "the probe holds every qed backing name qemu reads");

/* qed: image_size, LE64 @48; cluster_size LE32 @4; features LE64 @16; the
 * backing name at LE32 @56 (offset) and LE32 @60 (length). */
static void probe_qed(const struct instar_probe_input *in, const uint8_t *b,
		      struct instar_probe_info *ret)
{
	uint64_t features = get_le64(b + 16);
	uint32_t boff = get_le32(b + INSTAR_QED_OFF_BACKING_NAME);
	uint32_t blen = get_le32(b + INSTAR_QED_OFF_BACKING_LEN);
	const uint8_t *p;

	/* The guest checks every field; these are for `instar info`, the
	 * sizes the resize starts from and the backing file the host opens. */
	ret->virtual_size = get_le64(b + 48);
	ret->cluster_size = get_le32(b + 4);
	ret->has_backing = (features & INSTAR_QED_F_BACKING_FILE) != 0;
	if (ret->has_backing) {
		/* qemu reads a name shorter than 4 KiB (its open refuses a
		 * longer one, and one past the header: the guest checks) and
		 * takes the text before its first NUL; an empty one is no
		 * backing file at all (measured: qemu-img resizes the image
		 * alone). The planner takes the same bytes (guest/plan/qed.c). */
		if (blen >= INSTAR_QED_NAME_MAX)
			return;
		p = blen ? win(in, boff, blen) : b;
		if (!p) {
			need(in, ret, boff, blen);
			return;
		}
		ret->backing_len =
		    copy_name(ret->backing, sizeof(ret->backing), p, instar_qed_name_len(p, blen));
		ret->has_backing = ret->backing_len != 0;
		if (ret->has_backing && (features & INSTAR_QED_F_BACKING_FORMAT_NO_PROBE))
			ret->backing_fmt_len = copy_name(ret->backing_fmt, sizeof(ret->backing_fmt),
							 (const uint8_t *)"raw", 3);
	}
	ret->names_known = true;
}

/* luks (LUKS1): the virtual disk is the payload, from the payload offset
 * (u32 BE @104, sectors) to the end of the file, in whole sectors as qemu
 * reports it; the guest checks the rest of the header. A file shorter than
 * the 592-byte header has no size (qemu cannot read its header). */
#define LUKS_HEADER_LEN 592u
static void probe_luks(const struct instar_probe_input *in, const uint8_t *b,
		       struct instar_probe_info *ret)
{
	uint64_t payload = (uint64_t)get_be32(b + 104) * 512;

	ret->version = get_be16(b + 6);
	if (in->file_size >= LUKS_HEADER_LEN && payload <= in->file_size)
		ret->virtual_size = instar_probe_raw_size(in->file_size - payload);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* vdi (b: the first 512 bytes, the whole header qemu reads): type, parent
 * and block size for `instar info`; the size qemu 7.2 reports (the disk
 * size rounded up to 512) only when the header is one qemu opens as far as
 * the header alone tells: version 1.1, 512-byte sectors, 1 MiB blocks, at
 * most qemu's number of blocks and a block map large enough for the disk.
 * The guest's planner checks everything again. */
static void probe_vdi(const struct instar_probe_input *in, const uint8_t *b,
		      struct instar_probe_info *ret)
{
	uint32_t type = get_le32(b + INSTAR_VDI_H_TYPE), blocks = get_le32(b + INSTAR_VDI_H_BLOCKS);
	uint64_t size = get_le64(b + INSTAR_VDI_H_DISK_SIZE);

	(void)in;
	set_sub(ret,
		type == INSTAR_VDI_TYPE_DYNAMIC	 ? "dynamic"
		: type == INSTAR_VDI_TYPE_STATIC ? "static"
						 : "other",
		8);
	ret->has_backing = !all_zero(b + INSTAR_VDI_H_UUID_PARENT, 16);
	ret->cluster_size = get_le32(b + INSTAR_VDI_H_BLOCK_SIZE);
	if (get_le32(b + INSTAR_VDI_H_VERSION) != INSTAR_VDI_VERSION_1_1 ||
	    get_le32(b + INSTAR_VDI_H_SECTOR_SIZE) != SECTOR ||
	    ret->cluster_size != INSTAR_VDI_BLOCK_SIZE || size > INSTAR_VDI_SIZE_MAX)
		return;
	size = (size + SECTOR - 1) & ~(uint64_t)(SECTOR - 1); /* qemu rounds odd sizes up */
	if (blocks > INSTAR_VDI_BLOCKS_MAX || size > (uint64_t)blocks * INSTAR_VDI_BLOCK_SIZE)
		return;
	ret->virtual_size = size;
}

/* parallels: nb_sectors, LE64 @36 */
static void probe_parallels(const struct instar_probe_input *in, const uint8_t *b,
			    struct instar_probe_info *ret)
{
	uint64_t sectors = get_le64(b + 36);

	(void)in;
	if (sectors <= UINT64_MAX / SECTOR)
		ret->virtual_size = sectors * SECTOR;
}

/* ---- qemu 7.2's probe rules ---- */

/* Each block driver's bdrv_probe as qemu 7.2 has it, over the first 512
 * bytes of the file (zero past its end, as qemu reads them) and the name
 * the image was opened by: a score, 0 = not this format. */

/* bochs: NUL-terminated magic, type and subtype (C strings in fixed
 * fields), version 1 or 2 */
static int score_bochs(const uint8_t *b, const char *name)
{
	uint32_t v = get_le32(b + 64);

	(void)name;
	return bytes_eq(b, "Bochs Virtual HD Image", 23) && bytes_eq(b + 32, "Redolog", 8) &&
		       bytes_eq(b + 48, "Growing", 8) && (v == 0x20000 || v == 0x10000)
		   ? 100
		   : 0;
}

/* cloop: the V2.0 shell header, the whole line */
static const char cloop_magic[] = "#!/bin/sh\n"
				  "#V2.0 Format\n"
				  "modprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n";

static int score_cloop(const uint8_t *b, const char *name)
{
	(void)name;
	return bytes_eq(b, cloop_magic, sizeof(cloop_magic) - 1) ? 2 : 0;
}

/* dmg: only the name, "*.dmg" (more than the suffix) */
static int score_dmg(const uint8_t *b, const char *name)
{
	size_t n = 0;

	(void)b;
	if (!name)
		return 0;
	while (name[n])
		n++;
	return n > 4 && bytes_eq((const uint8_t *)name + n - 4, ".dmg", 4) ? 2 : 0;
}

static int score_parallels(const uint8_t *b, const char *name)
{
	(void)name;
	return (bytes_eq(b, "WithoutFreeSpace", 16) || bytes_eq(b, "WithouFreSpacExt", 16)) &&
		       get_le32(b + 16) == 2
		   ? 100
		   : 0;
}

static int score_qcow(const uint8_t *b, const char *name)
{
	(void)name;
	return get_be32(b) == 0x514649fb && get_be32(b + 4) == 1 ? 100 : 0;
}

static int score_qcow2(const uint8_t *b, const char *name)
{
	(void)name;
	return get_be32(b) == 0x514649fb && get_be32(b + 4) >= 2 ? 100 : 0;
}

static int score_qed(const uint8_t *b, const char *name)
{
	(void)name;
	return get_le32(b) == 0x00444551 ? 100 : 0; /* "QED\0" */
}

static int score_vdi(const uint8_t *b, const char *name)
{
	(void)name;
	return get_le32(b + INSTAR_VDI_H_SIGNATURE) == INSTAR_VDI_SIGNATURE ? 100 : 0;
}

/* luks: magic and version 1 (a LUKS2 header is raw to qemu 7.2) */
static int score_luks(const uint8_t *b, const char *name)
{
	(void)name;
	return bytes_eq(b, "LUKS\xba\xbe", 6) && (b[6] << 8 | b[7]) == 1 ? 100 : 0;
}

static bool vmdk_text_probe(const uint8_t *b);

static int score_vmdk(const uint8_t *b, const char *name)
{
	(void)name;
	if (bytes_eq(b, "KDMV", 4) || bytes_eq(b, "COWD", 4))
		return 100;
	return vmdk_text_probe(b) ? 100 : 0;
}

static int score_vpc(const uint8_t *b, const char *name)
{
	(void)name;
	return bytes_eq(b, "conectix", 8) ? 100 : 0;
}

static int score_vhdx(const uint8_t *b, const char *name)
{
	(void)name;
	return bytes_eq(b, "vhdxfile", 8) ? 100 : 0;
}

static void details_qcow2(const struct instar_probe_input *in, const uint8_t *b,
			  struct instar_probe_info *ret);
static void details_vmdk(const struct instar_probe_input *in, const uint8_t *b,
			 struct instar_probe_info *ret);
static void details_vpc(const struct instar_probe_input *in, const uint8_t *b,
			struct instar_probe_info *ret);
static void details_vhdx(const struct instar_probe_input *in, const uint8_t *b,
			 struct instar_probe_info *ret);

/* qemu 7.2's drivers with a probe, in the order qemu asks them: the highest
 * score wins and, among equal scores, the first (measured with qemu-img
 * 7.2: a header that is both vdi and qcow2 opens as vdi, both parallels
 * and vdi as parallels, a cloop named *.dmg as dmg). Whether instar
 * resizes a format is instar_format_from_name(name), nothing here; details
 * reads what `instar info` and the resize need (NULL: nothing). */
static const struct probe_driver {
	const char *name;
	int (*score)(const uint8_t *b, const char *name);
	void (*details)(const struct instar_probe_input *in, const uint8_t *b,
			struct instar_probe_info *ret);
} probe_drivers[] = {
    {"parallels", score_parallels, probe_parallels},
    {"qed", score_qed, probe_qed},
    {"vdi", score_vdi, probe_vdi},
    {"bochs", score_bochs, NULL},
    {"qcow", score_qcow, probe_qcow},
    {"qcow2", score_qcow2, details_qcow2},
    {"luks", score_luks, probe_luks},
    {"vmdk", score_vmdk, details_vmdk},
    {"vpc", score_vpc, details_vpc},
    {"vhdx", score_vhdx, details_vhdx},
    {"dmg", score_dmg, NULL},
    {"cloop", score_cloop, NULL},
};

const char *const *instar_probe_driver_names(size_t *ret_n)
{
	static const char *names[sizeof(probe_drivers) / sizeof(probe_drivers[0])];

	for (size_t i = 0; i < sizeof(probe_drivers) / sizeof(probe_drivers[0]); i++)
		names[i] = probe_drivers[i].name;
	*ret_n = sizeof(probe_drivers) / sizeof(probe_drivers[0]);
	return names;
}

static void details_qcow2(const struct instar_probe_input *in, const uint8_t *h,
			  struct instar_probe_info *ret)
{
	uint32_t bits = get_be32(h + 20);

	ret->version = get_be32(h + 4);
	ret->virtual_size = get_be64(h + 24);
	ret->crypt_method = get_be32(h + 32);
	ret->encrypted = ret->crypt_method != 0;
	if (bits >= 9 && bits <= 21)
		ret->cluster_size = 1u << bits;
	ret->has_backing = get_be64(h + 8) != 0;
	probe_qcow2_names(in, h, ret);
}

static void details_vmdk(const struct instar_probe_input *in, const uint8_t *h,
			 struct instar_probe_info *ret)
{
	if (bytes_eq(h, "KDMV", 4)) {
		probe_vmdk_sparse(in, h, ret);
		ret->names_known = probe_vmdk_parent(in, INSTAR_VMDKQ_DESC_AT, ret);
	} else if (!bytes_eq(h, "COWD", 4)) {
		/* A whole descriptor file that we hold gives the size. */
		const uint8_t *d =
		    in->file_size <= INSTAR_PROBE_HEAD_LEN ? win(in, 0, in->file_size) : NULL;

		if (d) {
			vmdk_descriptor(d, (size_t)in->file_size, ret, true);
			/* the names count only with the extents' */
			if (ret->names_known)
				ret->names_known = probe_vmdk_parent(in, 0, ret);
		}
	}
}

static void details_vpc(const struct instar_probe_input *in, const uint8_t *h,
			struct instar_probe_info *ret)
{
	probe_vhd(in, h, ret);
}

static void details_vhdx(const struct instar_probe_input *in, const uint8_t *h,
			 struct instar_probe_info *ret)
{
	(void)h;
	probe_vhdx(in, ret);
}

/* ---- what qemu 7.2's driver says when it cannot open the file ---- */

/* qemu's vmdk_parse_description(desc, "createType"): the text up to its
 * first NUL holds "createType", two characters, then a value closed by '"'
 * (shorter than 128). -1 when the bytes to tell are not in the windows. */
static int vmdk_has_create_type(const struct instar_probe_input *in)
{
	static const char key[] = "createType";
	uint64_t max = in->file_size < (1u << 20) - 1 ? in->file_size : (1u << 20) - 1, n = 0;
	const uint8_t *d;

	while (n < max && (d = win(in, n, 1)) && *d)
		n++;
	if (n < max && !win(in, n, 1))
		return -1; /* the text goes on past what we hold */
	d = n ? win(in, 0, n) : NULL;
	for (uint64_t i = 0; d && i + sizeof(key) - 1 <= n; i++) {
		uint64_t v, e;

		if (!bytes_eq(d + i, key, sizeof(key) - 1))
			continue;
		v = i + sizeof(key) - 1 + 2;
		if (v >= n)
			return 0;
		for (e = v; e < n && d[e] != '"'; e++)
			;
		return e < n && e - v + 1 <= 128;
	}
	return 0;
}

/* qemu 7.2's vmdk_open(), as far as the probe's windows tell, in its
 * order: an empty file; a sparse header's footer (a stream with the GD at
 * the end; not for a capacity-0 header with a descriptor offset, which qemu
 * opens as a descriptor file); a descriptor file's createType and a line of
 * it qemu refuses before any extent it opens (shared/vmdk_qemu.h). The
 * rest is the guest's (guest/plan/vmdk.c). */
static void vmdk_open_error(const struct instar_probe_input *in, const uint8_t *b,
			    struct instar_msgbuf *m)
{
	const char *d, *ct;
	size_t n, ctn, ls, le;

	if (in->file_size == 0) {
		instar_msg_str(m, "File is too small, not a valid image");
		return;
	}
	if (bytes_eq(b, "KDMV", 4)) {
		const uint8_t *t = NULL;

		if ((get_le64(b + 12) == 0 && get_le64(b + 28) != 0) ||
		    get_le64(b + 56) != UINT64_MAX || in->file_size % SECTOR ||
		    in->file_size < 3 * SECTOR)
			return;
		/* the last three sectors: marker, footer, end-of-stream; the
		 * first may lie outside the windows */
		t = win(in, in->file_size - 3 * SECTOR, 3 * SECTOR);
		if (t && (get_le32(t + 8) != 0 || get_le32(t + 12) != 3))
			instar_msg_str(m, "Invalid footer");
		else if ((t = win(in, in->file_size - 2 * SECTOR, 2 * SECTOR)) &&
			 (!bytes_eq(t, "KDMV", 4) || get_le64(t + SECTOR) != 0 ||
			  get_le32(t + SECTOR + 8) != 0 || get_le32(t + SECTOR + 12) != 0))
			instar_msg_str(m, "Invalid footer");
		return;
	}
	if (bytes_eq(b, "COWD", 4))
		return;
	switch (vmdk_has_create_type(in)) {
	case 0:
		instar_msg_str(m, "invalid VMDK image descriptor");
		return;
	case -1:
		return; /* the text goes on past what we hold */
	default:
		break;
	}
	for (n = 0; n < in->file_size && win(in, n, 1) && *win(in, n, 1);)
		n++;
	d = (const char *)win(in, 0, n);
	if (!d || !instar_vmdkq_ct(d, n, &ct, &ctn))
		return;
	if (!instar_vmdkq_ct_known(ct, ctn)) {
		instar_msg_str(m, "Unsupported image type '");
		instar_msg_bytes(m, ct, ctn);
		instar_msg_str(m, "'");
		return;
	}
	if (instar_vmdkq_bad_line(d, n, &ls, &le)) {
		instar_msg_str(m, "Invalid extent line: ");
		instar_msg_bytes(m, d + ls, le - ls);
	}
}

/* The message (without qemu's "Could not open 'NAME': ") with which qemu
 * 7.2's driver drv fails to open the file read-write, when the probe can
 * tell; "" when it opens (or only the guest can tell). A second line, if
 * any, is a hint. Secrets (luks, encrypted qcow2) are the caller's. */
static void open_error(const struct instar_probe_input *in, const uint8_t *b, const char *drv,
		       struct instar_probe_info *ret)
{
	struct instar_msgbuf m = {.b = ret->open_error, .cap = sizeof(ret->open_error), .n = 0};
	const uint8_t *t;

	ret->open_error[0] = '\0';
	if (str_eq(drv, "bochs") || str_eq(drv, "cloop") || str_eq(drv, "dmg")) {
		instar_msg_str(&m, "Image is read-only"); /* read-only drivers */
	} else if (str_eq(drv, "qcow2")) {
		if (get_be32(b) != 0x514649fb) {
			instar_msg_str(&m, "Image is not in qcow2 format");
		} else if (get_be32(b + 4) < 2 || get_be32(b + 4) > 3) {
			instar_msg_str(&m, "Unsupported qcow2 version ");
			instar_msg_num(&m, get_be32(b + 4), 10, 0);
		}
	} else if (str_eq(drv, "qcow")) {
		if (get_be32(b) != 0x514649fb) {
			instar_msg_str(&m, "Image not in qcow format");
		} else if (get_be32(b + 4) != 1) {
			instar_msg_str(&m, "qcow (v1) does not support qcow version ");
			instar_msg_num(&m, get_be32(b + 4), 10, 0);
			instar_msg_str(&m, "\nTry the 'qcow2' driver instead.");
		} else if (get_be64(b + 24) <= 1) {
			instar_msg_str(&m, "Image size is too small (must be at least 2 bytes)");
		}
	} else if (str_eq(drv, "vmdk")) {
		vmdk_open_error(in, b, &m);
	} else if (str_eq(drv, "vpc")) {
		/* the footer qemu reads, its checksum and size (vhd_size.h); the
		 * rest is the guest's */
		const char *msg;
		uint8_t last[SECTOR] = {0};
		uint64_t lo = (in->file_size + SECTOR - 1) / SECTOR * SECTOR - SECTOR;

		/* qemu's file length is in whole sectors, zeros past the end */
		t = in->file_size ? win(in, lo, in->file_size - lo) : NULL;
		for (uint64_t i = 0; t && i < in->file_size - lo; i++)
			last[i] = t[i];
		if (!in->file_size || t) {
			switch (instar_vhd_footer_open(b, t ? last : NULL, &msg)) {
			case INSTAR_VHD_FOOTER_REFUSED:
				instar_msg_str(&m, msg);
				break;
			case INSTAR_VHD_FOOTER_TOO_LARGE:
				/* -EFBIG without a message: the block layer's */
				instar_msg_str(&m, "Could not open '");
				instar_msg_str(&m, in->name ? in->name : "");
				instar_msg_str(&m, "': File too large");
				break;
			default:
				break;
			}
		}
	} else if (str_eq(drv, "vhdx")) {
		if (!bytes_eq(b, "vhdxfile", 8)) {
			/* the driver fails without a message: the block layer's */
			instar_msg_str(&m, "Could not open '");
			instar_msg_str(&m, in->name ? in->name : "");
			instar_msg_str(&m, "': Invalid argument");
		}
	} else if (str_eq(drv, "qed")) {
		/* qemu 7.2's bdrv_qed_do_open over the header and the file's
		 * length (shared/open_check.c); the guest's planner checks the
		 * same, and the rest */
		instar_qed_open_check(b, in->file_size, m.b, m.cap);
	} else if (str_eq(drv, "parallels")) {
		if (!score_parallels(b, NULL))
			instar_msg_str(&m, "Image not in Parallels format");
	} else if (str_eq(drv, "vdi")) {
		/* qemu 7.2's vdi_open over the 512-byte header */
		instar_vdi_open_check(b, m.b, m.cap);
	}
}

/* ---- entry ---- */

uint64_t instar_probe_raw_size(uint64_t file_size)
{
	if (file_size > UINT64_MAX - (SECTOR - 1))
		return UINT64_MAX & ~(uint64_t)(SECTOR - 1);
	return (file_size + SECTOR - 1) & ~(uint64_t)(SECTOR - 1);
}

static void set_raw(const struct instar_probe_input *in, struct instar_probe_info *ret)
{
	ret->format = INSTAR_FMT_RAW;
	ret->driver = "raw";
	ret->virtual_size = instar_probe_raw_size(in->file_size);
}

static void probe_pick(const struct instar_probe_input *in, const uint8_t *b,
		       const struct probe_driver *best, struct instar_probe_info *ret);

int instar_probe(const struct instar_probe_input *in, struct instar_probe_info *ret)
{
	uint8_t b[INSTAR_PROBE_QEMU_LEN] = {0};
	const struct probe_driver *best = NULL;
	const uint8_t *h = NULL;
	uint64_t n;
	int best_score = 1; /* raw's: any other driver must score more */

	*ret = (struct instar_probe_info){0};
	ret->format = INSTAR_FMT_UNKNOWN;
	ret->virtual_size = INSTAR_PROBE_UNKNOWN;
	ret->file_size = in->file_size;
	if (in->nwindows > INSTAR_PROBE_MAX_WINDOWS)
		return -1;
	for (unsigned i = 0; i < in->nwindows; i++) {
		const struct instar_probe_window *w = &in->windows[i];

		if (w->len &&
		    (!w->data || w->offset > in->file_size || w->len > in->file_size - w->offset))
			return -1;
	}
	/* qemu: an empty file is raw; else the first 512 bytes, zero-padded */
	if (in->file_size == 0) {
		set_raw(in, ret);
		open_error(in, b, in->force ? in->force : ret->driver, ret);
		return 0;
	}
	/* the bytes the windows hold from 0 on (a file that shrank while it
	 * was read holds fewer): zeros beyond, as qemu reads past the end */
	n = in->file_size < sizeof(b) ? in->file_size : sizeof(b);
	while (n && !(h = win(in, 0, n)))
		n--;
	for (uint64_t i = 0; i < n; i++)
		b[i] = h[i];
	for (size_t i = 0; i < sizeof(probe_drivers) / sizeof(probe_drivers[0]); i++) {
		int score = probe_drivers[i].score(b, in->name);

		if (score > best_score) {
			best_score = score;
			best = &probe_drivers[i];
		}
	}
	probe_pick(in, b, best, ret);
	open_error(in, b, in->force ? in->force : ret->driver, ret);
	return 0;
}

static void probe_pick(const struct instar_probe_input *in, const uint8_t *b,
		       const struct probe_driver *best, struct instar_probe_info *ret)
{
	const uint8_t *h;

	if (!best) {
		/* instar's own rule beyond qemu's: a fixed VHD has its only footer
		 * in the last sector; resizing it as raw would cut the footer. */
		if (in->file_size >= SECTOR) {
			h = win(in, in->file_size - SECTOR, SECTOR);
			if (h && bytes_eq(h, "conectix", 8)) {
				ret->format = INSTAR_FMT_VHD;
				ret->driver = "vpc";
				probe_vhd(in, h, ret);
				return;
			}
		}
		set_raw(in, ret);
		return;
	}
	ret->driver = best->name;
	{
		int f = instar_format_from_name(best->name);

		if (f > 0)
			ret->format = (uint32_t)f;
		else
			ret->other = best->name;
	}
	if (best->details)
		best->details(in, b, ret);
}
