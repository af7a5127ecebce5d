/* shared/probe.c — bounded host-side format probe (see probe.h). Every read
 * goes through win(), which hands out a pointer only when the whole range
 * lies inside one window the caller supplied. */
#include "crc32.h"
#include "byteorder.h"
#include "probe.h"
#include "vhd_size.h"
#include "vhdx_layout.h"

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
		if (bsize == 0 || bsize > sizeof(ret->backing) || boff >= cs || bsize > cs - boff)
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

/* The first 512 bytes as qemu's probe sees them: zero-padded. */
static uint8_t probe_byte(const struct instar_probe_input *in, uint64_t off)
{
	const uint8_t *p = win(in, off, 1);

	return p ? *p : 0;
}

/* qemu's text-descriptor rule: comment lines and blank lines, then a line
 * "version=1|2|3" (with \n or \r\n), all within the first 512 bytes. */
static bool vmdk_text_probe(const struct instar_probe_input *in)
{
	uint64_t p = 0, end = SECTOR;

	while (p < end) {
		uint8_t c = probe_byte(in, p);

		if (c == '#') {
			while (p < end && probe_byte(in, p) != '\n')
				p++;
			p++;
			continue;
		}
		if (c == ' ') {
			while (p < end && probe_byte(in, p) == ' ')
				p++;
			if (p < end && probe_byte(in, p) == '\r')
				p++;
			if (p == end || probe_byte(in, p) != '\n')
				return false;
			p++;
			continue;
		}
		if (end - p >= 10 && probe_byte(in, p) == 'v') {
			static const char v[] = "version=";
			uint64_t i;

			for (i = 0; i < 8; i++)
				if (probe_byte(in, p + i) != (uint8_t)v[i])
					return false;
			c = probe_byte(in, p + 8);
			if (c < '1' || c > '3')
				return false;
			if (probe_byte(in, p + 9) == '\n')
				return true;
			return end - p >= 11 && probe_byte(in, p + 9) == '\r' &&
			       probe_byte(in, p + 10) == '\n';
		}
		return false;
	}
	return false;
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Walks a descriptor text: createType="..." and the sum of the extent sizes
 * (lines "RW|RDONLY|NOACCESS <sectors> <type> ..."). */
static void vmdk_descriptor(const uint8_t *d, size_t n, struct instar_probe_info *ret,
			    bool want_size)
{
	uint64_t sectors = 0;
	bool any_extent = false, bad = false;
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
		size_t k = ls, kw;

		if (le - ls >= 3 && bytes_eq(d + ls, "RW ", 3))
			kw = 3;
		else if (le - ls >= 7 && bytes_eq(d + ls, "RDONLY ", 7))
			kw = 7;
		else if (le - ls >= 9 && bytes_eq(d + ls, "NOACCESS ", 9))
			kw = 9;
		else
			continue;
		k += kw;
		uint64_t v = 0;

		if (k >= le || !is_digit(d[k])) {
			bad = true;
			continue;
		}
		for (; k < le && is_digit(d[k]); k++) {
			if (v > (UINT64_MAX - 9) / 10) {
				bad = true;
				break;
			}
			v = v * 10 + (d[k] - '0');
		}
		if (sectors + v < sectors)
			bad = true;
		sectors += v;
		any_extent = true;
	}
	if (want_size && any_extent && !bad && sectors <= UINT64_MAX / SECTOR)
		ret->virtual_size = sectors * SECTOR;
}

static void probe_vmdk_sparse(const struct instar_probe_input *in, const uint8_t *h,
			      struct instar_probe_info *ret)
{
	uint64_t cap = get_le64(h + 12), grain = get_le64(h + 20);
	uint64_t doff = get_le64(h + 28), dsize = get_le64(h + 36);
	const uint8_t *d;

	ret->version = get_le32(h + 4);
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

/* ---- entry ---- */

uint64_t instar_probe_raw_size(uint64_t file_size)
{
	if (file_size > UINT64_MAX - (SECTOR - 1))
		return UINT64_MAX & ~(uint64_t)(SECTOR - 1);
	return (file_size + SECTOR - 1) & ~(uint64_t)(SECTOR - 1);
}

int instar_probe(const struct instar_probe_input *in, struct instar_probe_info *ret)
{
	const uint8_t *h;
	uint32_t magic;

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

	h = win(in, 0, 8);
	magic = h ? get_be32(h) : 0;

	if (magic == 0x514649fb) { /* "QFI\xfb" */
		h = win(in, 0, 104);
		if (h && get_be32(h + 4) >= 2) {
			uint32_t bits = get_be32(h + 20);

			ret->format = INSTAR_FMT_QCOW2;
			ret->version = get_be32(h + 4);
			ret->virtual_size = get_be64(h + 24);
			if (bits >= 9 && bits <= 21)
				ret->cluster_size = 1u << bits;
			ret->has_backing = get_be64(h + 8) != 0;
			probe_qcow2_names(in, h, ret);
			return 0;
		}
		if (h && get_be32(h + 4) == 1) {
			ret->other = "qcow";
			return 0;
		}
	} else if (h && (bytes_eq(h, "KDMV", 4) || bytes_eq(h, "COWD", 4))) {
		ret->format = INSTAR_FMT_VMDK;
		h = win(in, 0, 512);
		if (h && bytes_eq(h, "KDMV", 4))
			probe_vmdk_sparse(in, h, ret);
		return 0;
	} else if (h && bytes_eq(h, "conectix", 8)) {
		h = win(in, 0, 512);
		ret->format = INSTAR_FMT_VHD;
		if (h)
			probe_vhd(in, h, ret);
		return 0;
	} else if (h && bytes_eq(h, "vhdxfile", 8)) {
		ret->format = INSTAR_FMT_VHDX;
		probe_vhdx(in, ret);
		return 0;
	} else if (h && bytes_eq(h, "QED\0", 4)) {
		/* The guest checks every field; these are for `instar info`. */
		h = win(in, 0, 64);
		ret->format = INSTAR_FMT_QED;
		if (h) {
			ret->cluster_size = get_le32(h + 4);
			ret->virtual_size = get_le64(h + 48);
			ret->has_backing = (get_le64(h + 16) & 1) != 0;
		}
		return 0;
	} else if (h && bytes_eq(h, "LUKS\xba\xbe", 6)) {
		/* LUKS1: the virtual disk is the payload, from the payload
		 * offset (u32 BE, sectors) to the end of the file. */
		h = win(in, 0, 108);
		ret->format = INSTAR_FMT_LUKS;
		if (h) {
			uint64_t payload = (uint64_t)get_be32(h + 104) * 512;

			ret->version = get_be16(h + 6);
			if (ret->version == 1 && payload <= in->file_size)
				ret->virtual_size = instar_probe_raw_size(in->file_size - payload);
		}
		return 0;
	}
	h = win(in, 0, 68);
	if (h && get_le32(h + 0x40) == 0xbeda107f) {
		ret->other = "vdi";
		return 0;
	}
	h = win(in, 0, 20);
	if (h && (bytes_eq(h, "WithoutFreeSpace", 16) || bytes_eq(h, "WithouFreSpacExt", 16)) &&
	    get_le32(h + 16) == 2) {
		ret->other = "parallels";
		return 0;
	}
	h = win(in, 0, 22);
	if (h && bytes_eq(h, "Bochs Virtual HD Image", 22)) {
		ret->other = "bochs";
		return 0;
	}
	if (in->file_size && vmdk_text_probe(in)) {
		ret->format = INSTAR_FMT_VMDK;
		set_sub(ret, "", 0);
		/* A whole descriptor file that we hold gives the size. */
		h = in->file_size <= INSTAR_PROBE_HEAD_LEN ? win(in, 0, in->file_size) : NULL;
		if (h)
			vmdk_descriptor(h, (size_t)in->file_size, ret, true);
		return 0;
	}
	/* A fixed VHD has its only footer in the last sector. */
	if (in->file_size >= SECTOR) {
		h = win(in, in->file_size - SECTOR, SECTOR);
		if (h && bytes_eq(h, "conectix", 8)) {
			ret->format = INSTAR_FMT_VHD;
			probe_vhd(in, h, ret);
			return 0;
		}
	}
	ret->format = INSTAR_FMT_RAW;
	ret->virtual_size = instar_probe_raw_size(in->file_size);
	return 0;
}
