/* guest/plan/vmdk.c — the VMDK resize planner (pure; guest and host library).
 * Handles a hosted sparse extent with an embedded descriptor: monolithicSparse,
 * the streamOptimized layout qemu creates (GD pre-allocated) and the one
 * VMware writes (GD at the end, footer and end-of-stream markers: layout,
 * readers and write order in docs/formats.md §2.4); a descriptor file
 * with one flat extent (monolithicFlat, ESXi's vmfs), whose extent the host
 * resizes; and descriptor files split into extents (twoGbMaxExtentFlat,
 * twoGbMaxExtentSparse), whose extent files the host creates and drops.
 * Other multi-file subformats are refused.
 *
 * Decisions (see docs/formats.md §2):
 * - The new size must be a multiple of 512 (capacity is in sectors); other
 *   sizes are refused with NOT_MULTIPLE_512, as qemu-img resize does for qcow2.
 *   Size 0 is refused: qemu cannot open a vmdk of capacity 0.
 * - Every GD entry inside the new capacity points to a real, zeroed grain
 *   table afterwards: qemu writes grain data at file offset 0 (over the
 *   header) when it meets a GD entry of 0. New GTs are appended at the
 *   grain-aligned end of file; if the GD no longer fits in its sectors both
 *   GD copies move there too. The old GD sectors are then leaked. The new
 *   GTs lie past the old end of file and are holes: the plan neither writes
 *   nor zeroes them, it only writes the last sector of the new end (so the
 *   file has its length before the commit) and the moved GDs.
 * - Shrink clears GT entries of grains past the new end (both copies) and
 *   zeroes the tail of a cut grain so a later grow cannot resurrect old data.
 *   File space is never reclaimed (the file does not get shorter).
 * - Compressed (stream) grains cannot be partly zeroed in place, and qemu
 *   fails reads past the end of a short compressed grain (EINVAL): a resize
 *   whose boundary (the new end of a shrink, the old end of a grow) cuts an
 *   allocated compressed grain writes it anew, whole: the kept bytes and
 *   zeros to the grain's end, a zlib stream of stored deflate blocks behind
 *   a grain marker (docs/formats.md §2.5). It is read as qemu reads it and
 *   refused as CORRUPT if it does not inflate, is shorter than the old image
 *   reads, or its marker names another grain; compressed images without
 *   markers are refused. qemu's layout appends it at the end of file (behind
 *   new GTs); VMware's puts it at the old footer marker and moves the GD
 *   behind it. Its GT entries (both copies) move to it before the commit on
 *   a grow (after a barrier behind the grain), after it on a shrink. The
 *   old grain's sectors are leaked. A whole grain already zero past the
 *   boundary is left as it is. Streams otherwise get the same GT/GD
 *   treatment; the appended GTs carry no stream markers, so only
 *   random-access readers (qemu) are known to see them.
 * - A descriptor file with one extent "RW N FLAT \"name\" 0" or "RW N VMFS
 *   \"name\"" (monolithicFlat, vmfs): one write of the new text (extent
 *   sectors, cylinders, CID), which keeps the file's length when shorter
 *   (NUL or comment padding); the host sizes the extent to the new size
 *   before that write's commit on a grow and after it on a shrink.
 *   Preallocation falloc/full is the host's, on the extent; metadata is
 *   refused.
 * - First, what qemu 7.2's vmdk_open refuses, in its order and words, as
 *   open failures (INSTAR_RESULT_OPEN; docs/qemu.md §3.8).
 * - Split descriptor files (twoGbMaxExtentFlat, twoGbMaxExtentSparse):
 *   one write of the new text (the extent lines by the split rule,
 *   cylinders, CID); twoGbMaxExtentSparse with no preallocation.
 * - Refused: other descriptor files (several extents, a FLAT offset other
 *   than 0, RDONLY/NOACCESS extents, split ones off the rule, over 64 KiB),
 *   sparse extents without a descriptor of their own, streams with the GD
 *   at the end and a redundant GD, unknown header flags; delta disks (a
 *   parentCID set, or a parentFileNameHint qemu opens: the host opened
 *   it, the name is checked) with qemu-img's "Image format driver does not
 *   support resize".
 * - Streams with the GD at the end: every field comes from the footer (as
 *   qemu reads it); no GT is added (a GD entry of 0 reads as zeros there);
 *   a GD that outgrows its sectors moves over the old footer once a copy of
 *   the footer sits at the new end; two commits, the footer and the header
 *   with the descriptor, the footer first on a grow and last on a shrink
 *   (docs/formats.md §2.4).
 * - A descriptor that outgrows descriptorSize is written without its free
 *   comment lines (not the first line, libvmdk's signature, nor the section
 *   headings); if it still does not fit, TOO_LARGE.
 * - The new CID is derived from the old CID and the new capacity (a planner
 *   has no entropy); it always differs from the old one.
 * - Order (every prefix of the plan is the old image or the new one):
 *   grow:   the new end's last sector (new GTs: holes before it), [a
 *           rewritten compressed grain -> FLUSH], moved GD copies, stale GT
 *           entries past the old end cleared, the cut grain's tail zeroed
 *           or its GT entries moved to the rewritten one -> FLUSH -> commit
 *           -> FLUSH
 *   shrink: GTs for GD holes inside the new capacity, [a rewritten
 *           compressed grain] -> FLUSH -> commit -> FLUSH -> GT entries past
 *           the new end cleared (both GD copies), the tail of the grain the
 *           new end cuts zeroed or its GT entries moved to the rewritten
 *           one -> FLUSH
 *   (VMware's layout: docs/formats.md §2.4 and §2.5.)
 *   A shrink's commit comes before any unmapping, so a crash before it
 *   leaves the old image whole, and one after it leaves the new image with
 *   grains mapped past its end (unreachable; file space is never reclaimed
 *   anyway). If the tail zeroing did not land, the cut grain's bytes past
 *   the new end are still there, as qemu leaves them: invisible until a
 *   grow, and a later grow by this planner zeroes them before the commit.
 * - The commit is the header sector (capacity, GD offsets: what qemu reads)
 *   and the descriptor (extent line, ddb.geometry.cylinders, new CID: what
 *   descriptor readers such as libvmdk and VMware use). When the descriptor
 *   starts at sector 1 (every qemu- and VMware-made image) both go in ONE
 *   write, one pwrite on the host, so at every syscall kill point both copies
 *   agree. Caveats: a power loss can tear that write at sector granularity,
 *   and a fatal signal during the syscall can cut it short at a page
 *   boundary; then the header may hold the new capacity and the descriptor
 *   the old one (or only some descriptor sectors are new). Since nothing is
 *   unmapped before the commit is flushed, a reader trusting either copy
 *   still sees a whole image: the new one (header) or the old one
 *   (descriptor), never lost data. A descriptor elsewhere is written after
 *   the header, in its own barrier step, with the same outcome in between.
 *   A reader that cross-checks the two copies refuses the image only there. */
#include "inflate.h"
#include "plan.h"
#include "size.h"
#include "vmdk_qemu.h"
#include "vmdk_split.h"

#define VMDK_MAGIC 0x564d444bu /* "KDMV" little-endian */
#define VMDK_COWD_MAGIC 0x44574f43u
#define VMDK_SEC 512u

#define VMDK_FLAG_NL_TEST (1u << 0)
#define VMDK_FLAG_RGD (1u << 1)
#define VMDK_FLAG_ZERO_GRAIN (1u << 2)
#define VMDK_FLAG_COMPRESSED (1u << 16)
#define VMDK_FLAG_MARKERS (1u << 17)
#define VMDK_FLAGS_KNOWN                                                                           \
	(VMDK_FLAG_NL_TEST | VMDK_FLAG_RGD | VMDK_FLAG_ZERO_GRAIN | VMDK_FLAG_COMPRESSED |         \
	 VMDK_FLAG_MARKERS)
#define VMDK_GD_AT_END UINT64_MAX

#define VMDK_MAX_GTES 512u	       /* qemu refuses more */
#define VMDK_MAX_GRAIN 0x200000u       /* sectors; qemu's granularity limit */
#define VMDK_MAX_DESC_SECTORS 2048u    /* 1 MiB of descriptor text */
#define VMDK_MAX_CAP (1ull << 37)      /* sectors: 64 TiB virtual */
#define VMDK_MAX_FILE_SEC (1ull << 32) /* offsets are u32 sectors: 2 TiB */
#define VMDK_IO_CHUNK (1u << 20)
#define VMDK_PROBE_LEN 4096u

struct vmdk {
	const struct plan_opts *o;
	const struct plan_io *io;
	struct plan_scratch *s;
	struct plan *p;
	struct instar_resize_result *ret;
	uint8_t *hdr; /* sector 0 as read */
	uint32_t version, flags;
	uint64_t cap, grain, doff, dsz;
	uint32_t ngte, gt_sec;
	uint64_t gt_cov;    /* sectors one GT maps */
	uint64_t file_sec;  /* file length in sectors, rounded up */
	uint32_t ncopies;   /* 1, or 2 with a redundant GD */
	uint64_t gd_off[2]; /* [0] = GD (qemu reads it), [1] = RGD */
	uint64_t old_n, old_gd_sec;
	bool compressed, zgrain;
	/* A stream with the GD at the end (VMware's layout): the header's
	 * gdOffset is GD_AT_END and the last three sectors are the footer
	 * marker, the footer (a copy of the header with the real gdOffset:
	 * qemu and libvmdk read the footer instead of the header) and the
	 * end-of-stream marker. */
	bool footer;
	uint8_t *trio; /* the last three sectors as read */
	/* descriptor */
	char *desc;
	size_t desc_len;
	bool flat_file; /* a descriptor file with one FLAT/VMFS extent */
	/* twoGbMaxExtentFlat/Sparse: the extents the new text has (split_new) and
	 * the first extent's name (the rule names the others after it). */
	bool split;
	struct instar_vmdk_split split_new;
	const char *split_first;
	size_t split_first_len;
	const char *create_type;
	size_t create_type_len;
	/* a parentFileNameHint qemu opens as the backing file (a delta disk;
	 * the host opened it): refused as qemu-img refuses every vmdk */
	bool parent;
};

/* ---- small string builder (details and the descriptor) ---- */

struct vmdk_str {
	char *buf;
	size_t cap, len;
	bool over;
};

static void vmdk_put(struct vmdk_str *s, const char *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s->len + 1 >= s->cap) {
			s->over = true;
			return;
		}
		s->buf[s->len++] = t[i];
	}
	s->buf[s->len] = '\0';
}

static size_t vmdk_strlen(const char *t)
{
	size_t n = 0;

	while (t[n])
		n++;
	return n;
}

static void vmdk_puts(struct vmdk_str *s, const char *t)
{
	vmdk_put(s, t, vmdk_strlen(t));
}

static void vmdk_putu(struct vmdk_str *s, uint64_t v)
{
	char d[20];
	int n = 0;

	do {
		d[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		vmdk_put(s, &d[--n], 1);
}

static void vmdk_putx8(struct vmdk_str *s, uint32_t v)
{
	static const char hx[] = "0123456789abcdef";

	for (int sh = 28; sh >= 0; sh -= 4)
		vmdk_put(s, &hx[(v >> sh) & 0xf], 1);
}

static int vmdk_fail(struct vmdk *v, int err, const char *msg)
{
	plan_set_detail(v->ret, msg);
	v->ret->error = (uint32_t)err;
	return err;
}

/* Detail "<a><num><b>". */
static int vmdk_failu(struct vmdk *v, int err, const char *a, uint64_t num, const char *b)
{
	char tmp[INSTAR_DETAIL_MAX];
	struct vmdk_str s = {.buf = tmp, .cap = sizeof(tmp)};

	tmp[0] = '\0';
	vmdk_puts(&s, a);
	vmdk_putu(&s, num);
	vmdk_puts(&s, b);
	return vmdk_fail(v, err, tmp);
}

/* Detail "<a><printable part of t, at most 40 chars><b>". */
static int vmdk_failt(struct vmdk *v, int err, const char *a, const char *t, size_t n,
		      const char *b)
{
	char tmp[INSTAR_DETAIL_MAX];
	struct vmdk_str s = {.buf = tmp, .cap = sizeof(tmp)};

	tmp[0] = '\0';
	vmdk_puts(&s, a);
	for (size_t i = 0; i < n && i < 40; i++)
		vmdk_put(&s, (t[i] >= 0x20 && t[i] < 0x7f) ? &t[i] : "?", 1);
	vmdk_puts(&s, b);
	return vmdk_fail(v, err, tmp);
}

/* A failure of the image's open, with the words of qemu 7.2's vmdk driver
 * (INSTAR_RESULT_OPEN: qemu-img prints "Could not open 'NAME': MSG"). */
static int vmdk_open_fail(struct vmdk *v, int err, const char *msg)
{
	v->ret->flags |= INSTAR_RESULT_OPEN;
	return vmdk_fail(v, err, msg);
}

/* Open failure "<a><num><b>"; num printed signed when neg. */
static int vmdk_open_failu(struct vmdk *v, int err, const char *a, uint64_t num, bool neg,
			   const char *b)
{
	char tmp[INSTAR_DETAIL_MAX];
	struct vmdk_str s = {.buf = tmp, .cap = sizeof(tmp)};

	tmp[0] = '\0';
	vmdk_puts(&s, a);
	if (neg && (int64_t)num < 0) {
		vmdk_puts(&s, "-");
		num = 0 - num;
	}
	vmdk_putu(&s, num);
	vmdk_puts(&s, b);
	return vmdk_open_fail(v, err, tmp);
}

/* Open failure "<a><t[0..n)><b>", the bytes as qemu prints them (a NUL
 * ends them; the detail is cut at INSTAR_DETAIL_MAX - 1 bytes). */
static int vmdk_open_failt(struct vmdk *v, int err, const char *a, const char *t, size_t n,
			   const char *b)
{
	char tmp[INSTAR_DETAIL_MAX];
	struct vmdk_str s = {.buf = tmp, .cap = sizeof(tmp)};
	size_t k = 0;

	tmp[0] = '\0';
	vmdk_puts(&s, a);
	while (k < n && t[k])
		k++;
	vmdk_put(&s, t, k);
	vmdk_puts(&s, b);
	return vmdk_open_fail(v, err, tmp);
}

/* ---- I/O in bounded chunks ---- */

static int vmdk_read(struct vmdk *v, uint64_t off, void *buf, uint64_t len)
{
	uint8_t *b = buf;

	while (len) {
		uint32_t n = len > VMDK_IO_CHUNK ? VMDK_IO_CHUNK : (uint32_t)len;

		if (plan_read(v->io, off, b, n) != 0)
			return vmdk_failu(v, INSTAR_ERR_READ_FAILED, "vmdk: read failed at offset ",
					  off, "");
		off += n;
		b += n;
		len -= n;
	}
	return 0;
}

static int vmdk_emit(struct vmdk *v, int r)
{
	if (r == 0)
		return 0;
	return vmdk_fail(v, r,
			 r == INSTAR_ERR_SCRATCH_TOO_SMALL ? "vmdk: too many plan operations"
							   : "vmdk: plan sink failed");
}

static void *vmdk_alloc(struct vmdk *v, uint64_t len)
{
	if (len > SIZE_MAX)
		return NULL;
	return plan_alloc(v->s, (size_t)len, 8);
}

/* ---- layout checks ---- */

static uint64_t vmdk_div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

static bool vmdk_ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	if (alen == 0 || blen == 0)
		return false;
	return a < b + blen && b < a + alen;
}

/* Does [start, start+len) (sectors) touch the header, descriptor, GD or RGD?
 * Callers have checked start+len <= file_sec, so nothing overflows. */
static bool vmdk_hits_meta(const struct vmdk *v, uint64_t start, uint64_t len)
{
	if (vmdk_ranges_overlap(start, len, 0, 1) ||
	    vmdk_ranges_overlap(start, len, v->doff, v->dsz))
		return true;
	for (uint32_t c = 0; c < v->ncopies; c++)
		if (vmdk_ranges_overlap(start, len, v->gd_off[c], v->old_gd_sec))
			return true;
	return v->footer && vmdk_ranges_overlap(start, len, v->file_sec - 3, 3);
}

/* A GT or grain at sector off of len sectors must lie inside the file and
 * clear of the fixed metadata, or writing into it could destroy the header. */
static bool vmdk_region_ok(const struct vmdk *v, uint64_t off, uint64_t len)
{
	return off != 0 && off <= v->file_sec && len <= v->file_sec - off &&
	       !vmdk_hits_meta(v, off, len);
}

/* ---- header ---- */

#define VMDK_MARKER_EOS 0u
#define VMDK_MARKER_GD 2u
#define VMDK_MARKER_FOOTER 3u

/* A marker sector: u64 val (sectors that follow, 0 for end-of-stream), u32
 * size (0: not a grain), u32 type. */
static void vmdk_put_marker(uint8_t *b, uint64_t val, uint32_t type)
{
	plan_memset(b, 0, VMDK_SEC);
	put_le64(b, val);
	put_le32(b + 12, type);
}

/* ---- the checks of qemu 7.2's vmdk_open, in its order ----
 *
 * Every condition qemu's driver refuses when it opens the image and the
 * planner meets fails with qemu's message as an open failure (docs/qemu.md,
 * "Open-time messages"); the planner's own refusals come after them. */

static bool vmdk_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* qemu's vmdk_open_desc_file(): the createType, as an open failure. */
static int vmdk_qemu_desc_type(struct vmdk *v, const char *d, size_t n)
{
	const char *ct;
	size_t ctn;

	if (!instar_vmdkq_ct(d, n, &ct, &ctn))
		return vmdk_open_fail(v, INSTAR_ERR_PARSE_FAILED, "invalid VMDK image descriptor");
	if (!instar_vmdkq_ct_known(ct, ctn))
		return vmdk_open_failt(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
				       "Unsupported image type '", ct, ctn, "'");
	return 0;
}

/* qemu's extent walk: a line it refuses before any extent it opens. */
static int vmdk_qemu_extents(struct vmdk *v, const char *d, size_t n)
{
	size_t ls, le;

	if (!instar_vmdkq_bad_line(d, n, &ls, &le))
		return 0;
	return vmdk_open_failt(v, INSTAR_ERR_PARSE_FAILED, "Invalid extent line: ", d + ls, le - ls,
			       "");
}

/* A sparse header of capacity 0 with a descriptor offset: qemu opens the
 * text there (up to the file's length, at most 1 MiB - 1 bytes, to its
 * first NUL) as a descriptor file. Its createType checks are qemu's; a
 * createType it accepts is refused here (no such image is resized). */
static int vmdk_qemu_embedded(struct vmdk *v, uint64_t doff)
{
	uint64_t len = 0, max = (1u << 20) - 1;
	char *d;
	size_t n;
	int r;

	if (doff > (uint64_t)INT64_MAX / VMDK_SEC)
		return vmdk_fail(v, INSTAR_ERR_PARSE_FAILED,
				 "vmdk capacity 0 with a descriptor offset past 2^63");
	if (doff * VMDK_SEC < v->io->file_size)
		len = v->io->file_size - doff * VMDK_SEC;
	if (len > max)
		len = max;
	d = vmdk_alloc(v, len + 1);
	if (!d)
		return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL,
				 "vmdk: no scratch for descriptor");
	r = len ? vmdk_read(v, doff * VMDK_SEC, d, len) : 0;
	if (r)
		return r;
	d[len] = '\0';
	n = vmdk_strlen(d);
	r = vmdk_qemu_desc_type(v, d, n);
	if (!r)
		r = vmdk_qemu_extents(v, d, n);
	if (r)
		return r;
	return vmdk_fail(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
			 "vmdk sparse header of capacity 0 (a descriptor file in a sparse "
			 "header) is not supported");
}

/* qemu's vmdk_open_vmdk4() and vmdk_add_extent() on the header h (the
 * footer's in a stream with the GD at the end): version, L2 table size, L1
 * entry size (a 32-bit product), grain offset, granularity, L1 size (a
 * 32-bit quotient). */
static int vmdk_qemu_sparse(struct vmdk *v, const uint8_t *h)
{
	uint32_t ver = get_le32(h + 4), ngte = get_le32(h + 44), l1e, l1n;
	uint64_t cap = get_le64(h + 12), grain = get_le64(h + 20), goff = get_le64(h + 64);

	if (ver > 3)
		return vmdk_open_failu(v, INSTAR_ERR_UNSUPPORTED_FEATURE,
				       "Unsupported VMDK version ", ver, false, "");
	/* qemu-img resize opens read-write; compressed images are exempt */
	if (ver == 3 && get_le16(h + 77) != 1)
		return vmdk_open_fail(v, INSTAR_ERR_UNSUPPORTED_FEATURE,
				      "VMDK version 3 must be read only");
	if (ngte > VMDK_MAX_GTES)
		return vmdk_open_fail(v, INSTAR_ERR_PARSE_FAILED, "L2 table size too big");
	l1e = (uint32_t)((uint64_t)ngte * grain);
	if (l1e == 0)
		return vmdk_open_fail(v, INSTAR_ERR_PARSE_FAILED, "L1 entry size is invalid");
	if (vmdk_div_up(v->io->file_size, VMDK_SEC) < goff)
		return vmdk_open_failu(v, INSTAR_ERR_CORRUPT, "File truncated, expecting at least ",
				       goff * VMDK_SEC, true, " bytes");
	if (grain > VMDK_MAX_GRAIN)
		return vmdk_open_fail(v, INSTAR_ERR_PARSE_FAILED,
				      "Invalid granularity, image may be corrupt");
	l1n = (uint32_t)((cap + l1e - 1) / l1e);
	if (l1n > 32u * 1024 * 1024)
		return vmdk_open_fail(v, INSTAR_ERR_PARSE_FAILED, "L1 size too big");
	return 0;
}

/* The footer of a stream whose header says GD_AT_END, checked as qemu 7.2
 * does: the last three sectors are a footer marker (size 0, type 3), a
 * sparse header (magic KDMV; its gdOffset is the real one) and an
 * end-of-stream marker (val, size and type 0). libvmdk reads the footer at
 * the same place (1024 bytes from the end). */
static int vmdk_read_footer(struct vmdk *v)
{
	uint64_t fsec = vmdk_div_up(v->io->file_size, VMDK_SEC), at, got;
	const uint8_t *t;
	int r;

	/* qemu reads the three sectors before the end of the file (whole
	 * sectors; zeros past its end) and checks them first */
	if (fsec < 3)
		return vmdk_fail(v, INSTAR_ERR_CORRUPT,
				 "vmdk stream with the grain directory at the end: the file is "
				 "shorter than a footer");
	v->trio = vmdk_alloc(v, 3 * VMDK_SEC);
	if (!v->trio)
		return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL, "vmdk: no scratch");
	at = (fsec - 3) * VMDK_SEC;
	got = v->io->file_size - at;
	for (uint64_t i = got; i < 3 * VMDK_SEC; i++)
		v->trio[i] = 0;
	r = vmdk_read(v, at, v->trio, got);
	if (r)
		return r;
	t = v->trio;
	if (get_le32(t + 8) != 0 || get_le32(t + 12) != VMDK_MARKER_FOOTER ||
	    get_le32(t + VMDK_SEC) != VMDK_MAGIC || get_le64(t + 2 * VMDK_SEC) != 0 ||
	    get_le32(t + 2 * VMDK_SEC + 8) != 0 ||
	    get_le32(t + 2 * VMDK_SEC + 12) != VMDK_MARKER_EOS)
		return vmdk_open_fail(v, INSTAR_ERR_CORRUPT, "Invalid footer");
	if (v->io->file_size % VMDK_SEC || fsec < 4)
		return vmdk_fail(v, INSTAR_ERR_CORRUPT,
				 "vmdk stream with the grain directory at the end: the file is "
				 "not whole sectors ending in a footer");
	return 0;
}

static int vmdk_parse_header(struct vmdk *v)
{
	const uint8_t *h = v->hdr;
	uint64_t gd, rgd, end;
	static const uint8_t nl[4] = {0x0a, 0x20, 0x0d, 0x0a};

	int r;

	/* qemu opens a header of capacity 0 with a descriptor offset as a
	 * descriptor file */
	if (get_le64(h + 12) == 0 && get_le64(h + 28) != 0)
		return vmdk_qemu_embedded(v, get_le64(h + 28));
	/* qemu: "The footer takes precedence over the header": every field
	 * comes from the footer then. */
	if (get_le64(h + 56) == VMDK_GD_AT_END) {
		r = vmdk_read_footer(v);
		if (r)
			return r;
		h = v->trio + VMDK_SEC;
	}
	r = vmdk_qemu_sparse(v, h);
	if (r)
		return r;
	if (get_le64(h + 56) == VMDK_GD_AT_END)
		return vmdk_fail(v, INSTAR_ERR_CORRUPT,
				 "vmdk stream footer has no grain directory offset");
	v->footer = h != v->hdr;
	v->version = get_le32(h + 4);
	v->flags = get_le32(h + 8);
	v->cap = get_le64(h + 12);
	v->grain = get_le64(h + 20);
	v->doff = get_le64(h + 28);
	v->dsz = get_le64(h + 36);
	v->ngte = get_le32(h + 44);
	rgd = get_le64(h + 48);
	gd = get_le64(h + 56);

	if (v->version < 1 || v->version > 3)
		return vmdk_failu(v, INSTAR_ERR_UNSUPPORTED_FEATURE, "vmdk sparse version ",
				  v->version, " is not supported");
	if (v->flags & ~VMDK_FLAGS_KNOWN)
		return vmdk_failu(v, INSTAR_ERR_UNSUPPORTED_FEATURE, "vmdk: unknown header flags (",
				  v->flags, ")");
	if ((v->flags & VMDK_FLAG_NL_TEST) && plan_memcmp(h + 73, nl, sizeof(nl)) != 0)
		return vmdk_fail(v, INSTAR_ERR_CORRUPT,
				 "vmdk: newline check bytes damaged (text-mode transfer?)");
	if (v->footer && (v->flags & VMDK_FLAG_RGD))
		return vmdk_fail(v, INSTAR_ERR_UNSUPPORTED_FEATURE,
				 "vmdk stream with the grain directory at the end and a "
				 "redundant grain directory is not supported");
	v->compressed = (v->flags & VMDK_FLAG_COMPRESSED) != 0;
	v->zgrain = (v->flags & VMDK_FLAG_ZERO_GRAIN) != 0;
	if (v->compressed && get_le16(h + 77) != 1)
		return vmdk_failu(v, INSTAR_ERR_UNSUPPORTED_FEATURE, "vmdk compression algorithm ",
				  get_le16(h + 77), " is not supported");
	if (v->grain == 0 || v->grain > VMDK_MAX_GRAIN || (v->grain & (v->grain - 1)) != 0)
		return vmdk_failu(v, INSTAR_ERR_PARSE_FAILED, "vmdk grainSize ", v->grain,
				  " is not a power of two up to 2097152 sectors");
	if (v->ngte == 0 || v->ngte > VMDK_MAX_GTES)
		return vmdk_failu(v, INSTAR_ERR_PARSE_FAILED, "vmdk numGTEsPerGT ", v->ngte,
				  " is not in 1..512");
	/* qemu's block layer once its driver has opened the image: the size
	 * in bytes (an unsigned product) past BDRV_MAX_LENGTH fails the open;
	 * one past INT64_MAX bytes opens, and qemu-img cannot read its length */
	if (v->cap * VMDK_SEC > INSTAR_QEMU_MAX_LENGTH)
		return vmdk_open_fail(v, INSTAR_ERR_PARSE_FAILED,
				      "Could not refresh total sector count: File too large");
	if (v->cap > (uint64_t)INT64_MAX / VMDK_SEC)
		return vmdk_fail(v, INSTAR_ERR_TOO_LARGE,
				 "Failed to inquire current image length: File too large");
	/* a size qemu opens, past what instar resizes: not damage */
	if (v->cap > VMDK_MAX_CAP)
		return vmdk_failu(v, INSTAR_ERR_TOO_LARGE, "vmdk capacity ", v->cap,
				  " sectors is over 64 TiB, which instar does not resize");
	v->gt_sec = (uint32_t)vmdk_div_up((uint64_t)v->ngte * 4, VMDK_SEC);
	v->gt_cov = (uint64_t)v->ngte * v->grain; /* <= 2^30 */
	v->old_n = vmdk_div_up(v->cap, v->gt_cov);
	v->old_gd_sec = vmdk_div_up(v->old_n * 4, VMDK_SEC);
	v->file_sec = vmdk_div_up(v->io->file_size, VMDK_SEC);

	if (v->doff == 0)
		return vmdk_fail(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
				 "vmdk sparse extent without an embedded descriptor "
				 "(part of a multi-file image) is not supported");
	if (v->dsz == 0 || v->dsz > VMDK_MAX_DESC_SECTORS)
		return vmdk_failu(v, INSTAR_ERR_PARSE_FAILED, "vmdk descriptorSize ", v->dsz,
				  " sectors is out of range");
	if (__builtin_add_overflow(v->doff, v->dsz, &end) || end > v->file_sec)
		return vmdk_fail(v, INSTAR_ERR_CORRUPT, "vmdk descriptor lies beyond end of file");

	v->ncopies = 1;
	v->gd_off[0] = gd;
	if (v->flags & VMDK_FLAG_RGD) {
		v->ncopies = 2;
		v->gd_off[1] = rgd;
	}
	for (uint32_t c = 0; c < v->ncopies; c++) {
		const char *what = c ? "vmdk redundant grain directory" : "vmdk grain directory";
		uint64_t o = v->gd_off[c];

		if (o == 0 || __builtin_add_overflow(o, v->old_gd_sec, &end) ||
		    end > v->file_sec - (v->footer ? 3 : 0))
			return vmdk_failt(v, INSTAR_ERR_CORRUPT, what, "", 0,
					  v->footer ? " lies beyond the footer"
						    : " lies beyond end of file");
		if (vmdk_ranges_overlap(o, v->old_gd_sec, 0, 1) ||
		    vmdk_ranges_overlap(o, v->old_gd_sec, v->doff, v->dsz))
			return vmdk_failt(v, INSTAR_ERR_CORRUPT, what, "", 0,
					  " overlaps the header or descriptor");
	}
	if (v->ncopies == 2 &&
	    vmdk_ranges_overlap(v->gd_off[0], v->old_gd_sec, v->gd_off[1], v->old_gd_sec))
		return vmdk_fail(v, INSTAR_ERR_CORRUPT,
				 "vmdk grain directory overlaps the redundant one");
	return 0;
}

/* ---- descriptor ---- */

static bool vmdk_is_space(char c)
{
	return c == ' ' || c == '\t';
}

static int vmdk_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One "key = value" line: the key after leading blanks, and the span of the
 * value with blanks and one pair of double quotes stripped. */
struct vmdk_kv {
	const char *key;
	size_t key_len;
	size_t val, val_end; /* offsets into the descriptor */
};

static bool vmdk_line_kv(const char *d, size_t ls, size_t le, struct vmdk_kv *kv)
{
	size_t i = ls, k0, k1;

	while (i < le && vmdk_is_space(d[i]))
		i++;
	k0 = i;
	while (i < le && d[i] != '=' && !vmdk_is_space(d[i]))
		i++;
	k1 = i;
	while (i < le && vmdk_is_space(d[i]))
		i++;
	if (k1 == k0 || i >= le || d[i] != '=')
		return false;
	i++;
	while (i < le && vmdk_is_space(d[i]))
		i++;
	kv->key = d + k0;
	kv->key_len = k1 - k0;
	le = le > i && d[le - 1] == '\r' ? le - 1 : le;
	while (le > i && vmdk_is_space(d[le - 1]))
		le--;
	if (le - i >= 2 && d[i] == '"' && d[le - 1] == '"') {
		i++;
		le--;
	}
	kv->val = i;
	kv->val_end = le;
	return true;
}

static bool vmdk_key_is(const struct vmdk_kv *kv, const char *key)
{
	size_t n = vmdk_strlen(key);

	return kv->key_len == n && plan_memcmp(kv->key, key, n) == 0;
}

/* Decimal value of d[a..b), 0 digits or overflow -> false. */
static bool vmdk_parse_dec(const char *d, size_t a, size_t b, uint64_t *ret)
{
	uint64_t x = 0;

	if (a >= b)
		return false;
	for (size_t i = a; i < b; i++) {
		if (!vmdk_is_digit(d[i]) || __builtin_mul_overflow(x, 10, &x) ||
		    __builtin_add_overflow(x, (uint64_t)(d[i] - '0'), &x))
			return false;
	}
	*ret = x;
	return true;
}

/* An extent line: ACCESS SECTORS TYPE "FILE" [OFFSET]. Sets the span of
 * SECTORS and of TYPE. */
struct vmdk_extent {
	size_t sec, sec_end, type, type_end;
};

static bool vmdk_line_extent(const char *d, size_t ls, size_t le, struct vmdk_extent *e)
{
	static const char *const access[] = {"RW", "RDONLY", "NOACCESS"};
	size_t i = ls;
	bool ok = false;

	while (i < le && vmdk_is_space(d[i]))
		i++;
	for (unsigned a = 0; a < 3 && !ok; a++) {
		size_t n = vmdk_strlen(access[a]);

		if (le - i > n && plan_memcmp(d + i, access[a], n) == 0 &&
		    vmdk_is_space(d[i + n])) {
			i += n;
			ok = true;
		}
	}
	if (!ok)
		return false;
	while (i < le && vmdk_is_space(d[i]))
		i++;
	e->sec = i;
	while (i < le && vmdk_is_digit(d[i]))
		i++;
	e->sec_end = i;
	if (e->sec_end == e->sec || i >= le || !vmdk_is_space(d[i]))
		return false;
	while (i < le && vmdk_is_space(d[i]))
		i++;
	e->type = i;
	while (i < le && !vmdk_is_space(d[i]) && d[i] != '\r')
		i++;
	e->type_end = i;
	return e->type_end > e->type;
}

/* qemu 7.2's vmdk_read_cid, after its open (the extents and the parent
 * opened): DESC_SIZE bytes at off (0x200 for a sparse header, whatever its
 * descriptor offset says; 0 for a descriptor file), zeros past the end of
 * the file, the last byte made a NUL; strstr finds KEY ("CID" also inside
 * "parentCID") before the first NUL, and sscanf("%x") reads the value from
 * one character past the key: white space, a sign, a "0x", then at least
 * one hex digit. Without one, qemu's open fails with EINVAL and no message
 * of the driver's own ("Could not open 'FILE': Invalid argument"). */

static bool vmdk_q_cid_found(const char *t, const char *key)
{
	size_t kn = vmdk_strlen(key), i, p;

	for (i = 0; t[i]; i++) {
		size_t k = 0;

		while (k < kn && t[i + k] == key[k])
			k++;
		if (k == kn)
			break;
	}
	if (!t[i])
		return false;
	p = i + kn + 1; /* qemu's p_name += sizeof(key) */
	if (p >= INSTAR_VMDKQ_DESC_SIZE)
		return false;
	while (p < INSTAR_VMDKQ_DESC_SIZE && (t[p] == ' ' || (t[p] >= '\t' && t[p] <= '\r')))
		p++;
	if (p < INSTAR_VMDKQ_DESC_SIZE && (t[p] == '+' || t[p] == '-'))
		p++;
	if (p + 2 < INSTAR_VMDKQ_DESC_SIZE && t[p] == '0' && (t[p + 1] == 'x' || t[p + 1] == 'X') &&
	    vmdk_hexval(t[p + 2]) >= 0)
		p += 2;
	return p < INSTAR_VMDKQ_DESC_SIZE && vmdk_hexval(t[p]) >= 0;
}

/* qemu's vmdk_parent_open, then its vmdk_read_cid, on the same bytes: a
 * parentFileNameHint (shared/vmdk_qemu.h) is the backing file, which the
 * host must have opened by exactly that name; a hint qemu cannot read fails
 * the open with EINVAL, as a missing CID does. */
static int vmdk_q_read_cid(struct vmdk *v, uint64_t off)
{
	char *t = vmdk_alloc(v, INSTAR_VMDKQ_DESC_SIZE);
	size_t po = 0, pl = 0;
	int r, hint;

	if (!t)
		return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL, "vmdk: no scratch");
	r = plan_read_z(v->io, off, (uint8_t *)t, INSTAR_VMDKQ_DESC_SIZE);
	if (r)
		return r;
	hint = instar_vmdkq_parent(t, INSTAR_VMDKQ_DESC_SIZE, &po, &pl);
	if (hint >= 0) {
		v->parent = hint == 1 && pl > 0;
		if (!plan_host_named(v->o, INSTAR_RESIZE_BACKING, v->parent, t + po, (uint32_t)pl))
			return vmdk_fail(v, INSTAR_ERR_HEADER_MISMATCH,
					 "vmdk: parent file name differs from the host's probe");
		t[INSTAR_VMDKQ_DESC_SIZE - 1] = '\0';
		if (vmdk_q_cid_found(t, "CID") && vmdk_q_cid_found(t, "parentCID"))
			return 0;
	}
	v->ret->flags |= INSTAR_RESULT_OPEN | INSTAR_RESULT_OPEN_ERRNO;
	return vmdk_fail(v, INSTAR_ERR_PARSE_FAILED, "Invalid argument");
}

static int vmdk_read_desc(struct vmdk *v)
{
	uint64_t len = v->dsz * VMDK_SEC;
	size_t n;
	int r;

	v->desc = vmdk_alloc(v, len + 1);
	if (!v->desc)
		return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL,
				 "vmdk: no scratch for descriptor");
	r = vmdk_read(v, v->doff * VMDK_SEC, v->desc, len);
	if (r)
		return r;
	v->desc[len] = '\0';
	for (n = 0; n < len && v->desc[n]; n++) {
		unsigned char c = (unsigned char)v->desc[n];

		/* Bytes >= 0x80 pass: VMware writes encoding="UTF-8" and may
		 * store non-ASCII file names; only control bytes are refused. */
		if ((c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c == 0x7f)
			return vmdk_fail(v, INSTAR_ERR_PARSE_FAILED, "vmdk descriptor is not text");
	}
	v->desc_len = n;
	return 0;
}

/* Finds createType in text d[0..len). */
static bool vmdk_find_create_type(const char *d, size_t len, const char **ret, size_t *ret_len)
{
	size_t ls = 0;

	while (ls < len) {
		size_t le = ls;
		struct vmdk_kv kv;

		while (le < len && d[le] != '\n')
			le++;
		if (vmdk_line_kv(d, ls, le, &kv) && vmdk_key_is(&kv, "createType")) {
			*ret = d + kv.val;
			*ret_len = kv.val_end - kv.val;
			return true;
		}
		ls = le + 1;
	}
	return false;
}

static bool vmdk_span_is(const char *t, size_t n, const char *s)
{
	return n == vmdk_strlen(s) && plan_memcmp(t, s, n) == 0;
}

static int vmdk_check_desc(struct vmdk *v)
{
	const char *ct;
	size_t ctn;

	/* qemu's twoGbMaxExtent* extents carry an all-zero descriptor. */
	if (v->desc_len == 0)
		return vmdk_fail(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
				 "vmdk sparse extent with an empty descriptor (part of a "
				 "multi-file image) is not supported");
	if (!vmdk_find_create_type(v->desc, v->desc_len, &ct, &ctn))
		return vmdk_fail(v, INSTAR_ERR_PARSE_FAILED, "vmdk descriptor has no createType");
	v->create_type = ct;
	v->create_type_len = ctn;
	if (vmdk_span_is(ct, ctn, "monolithicSparse") || vmdk_span_is(ct, ctn, "streamOptimized"))
		return 0;
	return vmdk_failt(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "vmdk subformat ", ct, ctn,
			  " is not supported");
}

/* 32-bit mixer (murmur3 finaliser): the planner has no entropy source, so the
 * new CID is derived from the old one and the new capacity. */
static uint32_t vmdk_mix(uint64_t x)
{
	uint32_t h = (uint32_t)x ^ (uint32_t)(x >> 32) * 0x9e3779b9u;

	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* A comment line a descriptor can do without: not the first line (the
 * signature libvmdk checks) and not a section heading ("# Extent
 * description", "# The Disk Data Base", "#DDB"). */
static bool vmdk_free_comment(const char *d, size_t ls, size_t le)
{
	static const char *const keep[] = {"# Extent description", "# The Disk Data Base", "#DDB"};
	size_t i = ls;

	while (i < le && vmdk_is_space(d[i]))
		i++;
	if (ls == 0 || i >= le || d[i] != '#')
		return false;
	for (unsigned k = 0; k < 3; k++) {
		size_t n = vmdk_strlen(keep[k]);

		if (le - i >= n && plan_memcmp(d + i, keep[k], n) == 0)
			return false;
	}
	return true;
}

/* The extent lines of a split descriptor after the resize: RW <sectors>
 * FLAT "<name>" 0 (twoGbMaxExtentFlat) or RW <sectors> SPARSE "<name>"
 * (twoGbMaxExtentSparse), one a line, named by the split rule. */
static void vmdk_put_split(const struct vmdk *v, struct vmdk_str *o)
{
	char name[INSTAR_VMDK_SPLIT_NAME_MAX + 1];
	bool sparse = v->split_new.sparse;

	for (uint32_t i = 1; i <= v->split_new.count; i++) {
		if (instar_vmdk_split_ext_name(&v->split_new, (const uint8_t *)v->split_first,
					       v->split_first_len, i, name, sizeof(name)) < 0) {
			o->over = true; /* checked before: cannot happen */
			return;
		}
		vmdk_puts(o, "RW ");
		vmdk_putu(o, instar_vmdk_split_extent_sectors(&v->split_new, i));
		vmdk_puts(o, sparse ? " SPARSE \"" : " FLAT \"");
		vmdk_puts(o, name);
		vmdk_puts(o, sparse ? "\"\n" : "\" 0\n");
	}
}

/* Copies the descriptor into o with the extent's sectors, the cylinders
 * (when heads and sectors are known: cyl != UINT64_MAX) and the CID
 * replaced; lean drops the free comment lines. */
static void vmdk_copy_desc(struct vmdk *v, uint64_t new_cap, uint64_t cyl, uint32_t new_cid,
			   bool lean, struct vmdk_str *o)
{
	const char *d = v->desc;
	size_t len = v->desc_len;
	bool split_done = false;

	o->buf[0] = '\0';
	for (size_t ls = 0; ls < len;) {
		size_t le = ls, vs = 0, ve = 0;
		struct vmdk_kv kv;
		struct vmdk_extent e;
		int which = 0; /* 1 sectors, 2 cylinders, 3 CID */

		while (le < len && d[le] != '\n')
			le++;
		if (lean && vmdk_free_comment(d, ls, le)) {
			ls = le + 1;
			continue;
		}
		if (v->split && vmdk_line_extent(d, ls, le, &e)) {
			/* the first extent line becomes all the new ones */
			if (!split_done)
				vmdk_put_split(v, o);
			split_done = true;
			ls = le + 1;
			continue;
		}
		if (vmdk_line_extent(d, ls, le, &e)) {
			which = 1;
			vs = e.sec;
			ve = e.sec_end;
		} else if (vmdk_line_kv(d, ls, le, &kv)) {
			vs = kv.val;
			ve = kv.val_end;
			if (vmdk_key_is(&kv, "ddb.geometry.cylinders") && cyl != UINT64_MAX)
				which = 2;
			else if (vmdk_key_is(&kv, "CID"))
				which = 3;
		}
		if (which) {
			vmdk_put(o, d + ls, vs - ls);
			if (which == 1)
				vmdk_putu(o, new_cap);
			else if (which == 2)
				vmdk_putu(o, cyl);
			else
				vmdk_putx8(o, new_cid);
			vmdk_put(o, d + ve, le - ve);
		} else {
			vmdk_put(o, d + ls, le - ls);
		}
		if (le < len)
			vmdk_put(o, "\n", 1);
		ls = le + 1;
	}
}

/* Builds the new descriptor into out (cap bytes, NUL included). */
static int vmdk_build_desc(struct vmdk *v, uint64_t new_cap, char *out, size_t cap, size_t *ret_len)
{
	const char *d = v->desc;
	size_t len = v->desc_len, ls;
	struct vmdk_str o = {.buf = out, .cap = cap};
	uint64_t heads = 0, secs = 0, cyl;
	uint32_t old_cid = 0, new_cid;
	unsigned extents = 0;
	bool have_cid = false, have_parent = false;

	/* Pass 1: geometry, CID, extent lines. */
	for (ls = 0; ls < len;) {
		size_t le = ls;
		struct vmdk_kv kv;
		struct vmdk_extent e;

		while (le < len && d[le] != '\n')
			le++;
		if (vmdk_line_extent(d, ls, le, &e)) {
			extents++;
			if (!v->flat_file &&
			    !vmdk_span_is(d + e.type, e.type_end - e.type, "SPARSE"))
				return vmdk_failt(v, INSTAR_ERR_PARSE_FAILED,
						  "vmdk embedded descriptor has a ", d + e.type,
						  e.type_end - e.type, " extent");
		} else if (vmdk_line_kv(d, ls, le, &kv)) {
			if (vmdk_key_is(&kv, "CID")) {
				have_cid = true;
				if (kv.val_end == kv.val || kv.val_end - kv.val > 8)
					return vmdk_fail(v, INSTAR_ERR_PARSE_FAILED,
							 "vmdk descriptor CID is not a 32-bit hex");
				old_cid = 0;
				for (size_t i = kv.val; i < kv.val_end; i++) {
					int x = vmdk_hexval(d[i]);

					if (x < 0)
						return vmdk_fail(
						    v, INSTAR_ERR_PARSE_FAILED,
						    "vmdk descriptor CID is not a 32-bit hex");
					old_cid = old_cid << 4 | (uint32_t)x;
				}
			} else if (vmdk_key_is(&kv, "parentCID")) {
				have_parent = true;
				/* A delta disk reads unallocated grains from its parent:
				 * the grown tail would not read as zeros. */
				if (!vmdk_span_is(d + kv.val, kv.val_end - kv.val, "ffffffff"))
					return vmdk_fail(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
							 ""); /* as above */
			} else if (vmdk_key_is(&kv, "ddb.geometry.heads")) {
				if (!vmdk_parse_dec(d, kv.val, kv.val_end, &heads) || heads == 0 ||
				    heads > 256)
					return vmdk_fail(v, INSTAR_ERR_PARSE_FAILED,
							 "vmdk ddb.geometry.heads is invalid");
			} else if (vmdk_key_is(&kv, "ddb.geometry.sectors")) {
				if (!vmdk_parse_dec(d, kv.val, kv.val_end, &secs) || secs == 0 ||
				    secs > 255)
					return vmdk_fail(v, INSTAR_ERR_PARSE_FAILED,
							 "vmdk ddb.geometry.sectors is invalid");
			}
		}
		ls = le + 1;
	}
	if (extents != 1 && !v->split)
		return vmdk_failu(v, INSTAR_ERR_PARSE_FAILED, "vmdk embedded descriptor has ",
				  extents, " extent lines, expected 1");
	/* qemu opens a descriptor file only with both (vmdk_read_cid) */
	if (v->flat_file && (!have_cid || !have_parent))
		return vmdk_fail(
		    v, INSTAR_ERR_PARSE_FAILED,
		    "vmdk descriptor has no CID or no parentCID (qemu cannot open it)");

	/* qemu's formula: whole cylinders of heads*sectors, no cap. */
	cyl = heads && secs ? new_cap / (heads * secs) : UINT64_MAX;
	new_cid = vmdk_mix((uint64_t)old_cid << 32 ^ new_cap);
	if (new_cid == old_cid || new_cid == 0xffffffffu)
		new_cid = vmdk_mix(new_cid + 1u) & 0x7fffffffu;
	if (new_cid == old_cid)
		new_cid ^= 1u;

	/* Pass 2: copy, replacing three values; if the text outgrows
	 * descriptorSize, again without the free comment lines. */
	vmdk_copy_desc(v, new_cap, cyl, new_cid, false, &o);
	if (o.over) {
		o = (struct vmdk_str){.buf = out, .cap = cap};
		vmdk_copy_desc(v, new_cap, cyl, new_cid, true, &o);
	}
	if (o.over)
		return vmdk_failu(v, INSTAR_ERR_TOO_LARGE,
				  "new vmdk descriptor does not fit in descriptorSize (", v->dsz,
				  " sectors)");
	*ret_len = o.len;
	return 0;
}

/* ---- plan ---- */

struct vmdk_tail {
	uint64_t sec[2]; /* grain sectors whose tail to zero (0 = none) */
	/* A compressed grain the boundary cuts is written anew, whole: */
	uint8_t *cbuf; /* its marker and zlib stream, whole sectors (NULL: none) */
	uint64_t csec; /* its length in sectors */
	uint64_t cg;   /* its grain number */
	uint64_t cnew; /* where it goes (sector; set by the placement) */
	bool cflip[2]; /* the GD copies whose GT entry moves to it */
};

/* Grain-table entry of grain g in copy c, or 0 if that GT is absent. */
static int vmdk_gte(struct vmdk *v, uint8_t *const gd[2], uint32_t c, uint64_t g, uint32_t *ret)
{
	uint64_t i = g / v->ngte;
	uint32_t gt;
	uint8_t b[4];
	int r;

	*ret = 0;
	if (i >= v->old_n)
		return 0;
	gt = get_le32(gd[c] + i * 4);
	if (gt == 0)
		return 0;
	r = vmdk_read(v, (uint64_t)gt * VMDK_SEC + (g % v->ngte) * 4, b, 4);
	if (r)
		return r;
	*ret = get_le32(b);
	return 0;
}

/* ---- a compressed grain the boundary cuts ----
 * It cannot be partly zeroed in place, and qemu fails reads past the end of
 * a grain that decompresses short (EINVAL): the kept part is written anew as
 * a whole grain, the kept bytes and zeros up to the grain size, in a zlib
 * stream (RFC 1950) of stored deflate blocks, behind a grain marker. */

#define VMDK_ZLIB_BLOCK 65535u /* a stored block's longest payload */

/* Adler-32 (RFC 1950 §8.2) of n bytes. */
static uint32_t vmdk_adler32(const uint8_t *b, size_t n)
{
	uint32_t a = 1, c = 0;

	while (n) {
		size_t k = n < 5552 ? n : 5552; /* no overflow before the modulo */

		n -= k;
		while (k--) {
			a += *b++;
			c += a;
		}
		a %= 65521u;
		c %= 65521u;
	}
	return c << 16 | a;
}

/* Bytes of the zlib stream of n > 0 bytes in stored blocks. */
static uint64_t vmdk_zlib_len(uint64_t n)
{
	return 2 + n + 5 * vmdk_div_up(n, VMDK_ZLIB_BLOCK) + 4;
}

/* Writes the zlib stream of data[0..n) (n > 0) to out: header 78 01 (deflate,
 * 32 KiB window, no dictionary, check bits), stored blocks of at most 65535
 * bytes (the last one final), the Adler-32 big-endian. */
static void vmdk_zlib_stored(uint8_t *out, const uint8_t *data, size_t n)
{
	uint32_t ad = vmdk_adler32(data, n);
	size_t o = 2;

	out[0] = 0x78;
	out[1] = 0x01;
	for (size_t at = 0; at < n;) {
		size_t k = n - at > VMDK_ZLIB_BLOCK ? VMDK_ZLIB_BLOCK : n - at;

		out[o] = at + k == n ? 1 : 0; /* BFINAL, BTYPE 00 */
		put_le16(out + o + 1, (uint16_t)k);
		put_le16(out + o + 3, (uint16_t)~k);
		plan_memcpy(out + o + 5, data + at, k);
		o += 5 + k;
		at += k;
	}
	put_be32(out + o, ad);
}

/* Reads the compressed grain g at sector sec, checked as qemu reads it (a
 * marker with the compressed length, at most two grains with the marker; a
 * zlib stream whose Adler-32 matches; no more than a grain of data) and
 * with its marker's LBA; its first need bytes (what the old image reads
 * from it) must be there. Builds the new grain into t: marker, the first
 * keep bytes, zeros to the grain size. */
static int vmdk_rewrite_cgrain(struct vmdk *v, uint64_t sec, uint64_t g, uint64_t need,
			       uint64_t keep, struct vmdk_tail *t)
{
	uint64_t gb = v->grain * VMDK_SEC, clen, zlen, nsec;
	uint8_t mk[12], *in, *out, *work;
	size_t got = 0, used = 0;

	if (gb > SIZE_MAX / 4)
		return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL,
				 "vmdk: no scratch for the cut compressed grain");
	if (!vmdk_region_ok(v, sec, 1))
		return vmdk_failu(v, INSTAR_ERR_CORRUPT, "vmdk compressed grain at sector ", sec,
				  " is out of range");
	if (vmdk_read(v, sec * VMDK_SEC, mk, sizeof(mk)))
		return INSTAR_ERR_READ_FAILED;
	clen = get_le32(mk + 8);
	nsec = vmdk_div_up(sizeof(mk) + clen, VMDK_SEC);
	if (clen < 6 || clen + sizeof(mk) > 2 * gb || !vmdk_region_ok(v, sec, nsec))
		return vmdk_failu(v, INSTAR_ERR_CORRUPT, "vmdk compressed grain at sector ", sec,
				  " has an invalid length");
	if (get_le64(mk) != g * v->grain)
		return vmdk_failu(v, INSTAR_ERR_CORRUPT, "vmdk compressed grain at sector ", sec,
				  " has a marker for another grain");
	in = vmdk_alloc(v, clen);
	out = vmdk_alloc(v, gb);
	work = vmdk_alloc(v, PLAN_INFLATE_WORK_SIZE);
	zlen = vmdk_zlib_len(gb);
	t->csec = vmdk_div_up(sizeof(mk) + zlen, VMDK_SEC);
	t->cbuf = vmdk_alloc(v, t->csec * VMDK_SEC);
	if (!in || !out || !work || !t->cbuf)
		return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL,
				 "vmdk: no scratch for the cut compressed grain");
	if (vmdk_read(v, sec * VMDK_SEC + sizeof(mk), in, clen))
		return INSTAR_ERR_READ_FAILED;
	/* RFC 1950: CM 8, a window zlib accepts, the check bits, no dictionary */
	if ((in[0] & 0x0f) != 8 || in[0] >> 4 > 7 || (in[0] << 8 | in[1]) % 31 != 0 ||
	    (in[1] & 0x20) ||
	    plan_inflate_whole(in + 2, (size_t)clen - 2, out, (size_t)gb, work, &got, &used) != 0 ||
	    clen - 2 - used < 4 || get_be32(in + 2 + used) != vmdk_adler32(out, got))
		return vmdk_failu(v, INSTAR_ERR_CORRUPT, "vmdk compressed grain at sector ", sec,
				  " does not inflate");
	if (got < need)
		return vmdk_failu(v, INSTAR_ERR_CORRUPT, "vmdk compressed grain at sector ", sec,
				  " is shorter than the image reads from it");
	/* A whole grain already zero past keep stays as it is. */
	if (got == gb) {
		size_t z = (size_t)keep;

		while (z < got && out[z] == 0)
			z++;
		if (z == got) {
			t->cbuf = NULL;
			return 0;
		}
	}
	plan_memset(out + keep, 0, (size_t)(gb - keep));
	put_le64(t->cbuf, g * v->grain);
	put_le32(t->cbuf + 8, (uint32_t)zlen);
	vmdk_zlib_stored(t->cbuf + sizeof(mk), out, (size_t)gb);
	t->cg = g;
	return 0;
}

/* Finds the allocated grain holding sector bound (not grain-aligned) whose
 * bytes from bound to the grain's end must read as zero afterwards: an
 * uncompressed one gets that tail zeroed; a compressed one is rewritten
 * (vmdk_rewrite_cgrain), built from the grain the GD maps (or the RGD, if
 * only it maps one); both copies must map the same grain. */
static int vmdk_find_tail(struct vmdk *v, uint8_t *const gd[2], uint64_t bound, bool shrink,
			  struct vmdk_tail *t)
{
	uint64_t g = bound / v->grain, src = 0, gstart = g * v->grain, need;

	*t = (struct vmdk_tail){0};
	if (bound % v->grain == 0)
		return 0;
	for (uint32_t c = 0; c < v->ncopies; c++) {
		uint32_t gte;
		int r = vmdk_gte(v, gd, c, g, &gte);

		if (r)
			return r;
		if (gte == 0 || (gte == 1 && v->zgrain))
			continue;
		if (v->compressed) {
			if (src && gte != src)
				return vmdk_failu(v, INSTAR_ERR_CORRUPT, "vmdk: grain ", g,
						  " maps to different sectors in the grain "
						  "directory and the redundant one");
			src = gte;
			t->cflip[c] = true;
			continue;
		}
		if (!vmdk_region_ok(v, gte, v->grain))
			return vmdk_failu(v, INSTAR_ERR_CORRUPT, "vmdk grain at sector ", gte,
					  " is out of range");
		if (c == 1 && gte == t->sec[0])
			continue;
		t->sec[c] = gte;
	}
	if (!src)
		return 0;
	/* Without markers the compressed length is unknown and a stored
	 * grain would not fit in the grain qemu reads. */
	if (!(v->flags & VMDK_FLAG_MARKERS))
		return vmdk_fail(
		    v, shrink ? INSTAR_ERR_UNSUPPORTED_SHRINK : INSTAR_ERR_UNSUPPORTED_FEATURE,
		    "vmdk: the boundary cuts a compressed grain of an image "
		    "without grain markers");
	need = (v->cap < gstart + v->grain ? v->cap - gstart : v->grain) * VMDK_SEC;
	return vmdk_rewrite_cgrain(v, src, g, need, (bound - gstart) * VMDK_SEC, t);
}

/* Clears, in every existing GT of both copies, the entries of grains >= first
 * (grains at or past the smaller end), and points the entries of a rewritten
 * compressed grain (tail->cbuf) at its new place, in the same GT writes. */
static int vmdk_clear_gts(struct vmdk *v, uint8_t *const gd[2], uint64_t first,
			  const struct vmdk_tail *tail)
{
	uint64_t gt_bytes = (uint64_t)v->gt_sec * VMDK_SEC, from = first / v->ngte;
	uint8_t *buf = vmdk_alloc(v, gt_bytes);

	if (!buf)
		return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL, "vmdk: no scratch for a GT");
	if (tail->cbuf && tail->cg / v->ngte < from)
		from = tail->cg / v->ngte;
	for (uint32_t c = 0; c < v->ncopies; c++) {
		for (uint64_t i = from; i < v->old_n; i++) {
			uint32_t gt = get_le32(gd[c] + i * 4);
			bool dirty = false;
			int r;

			if (gt == 0)
				continue;
			r = vmdk_read(v, (uint64_t)gt * VMDK_SEC, buf, gt_bytes);
			if (r)
				return r;
			for (uint32_t j = 0; j < v->ngte; j++) {
				uint64_t g = i * v->ngte + j;

				if (tail->cbuf && tail->cflip[c] && g == tail->cg) {
					put_le32(buf + j * 4, (uint32_t)tail->cnew);
					dirty = true;
				}
				if (g < first || get_le32(buf + j * 4) == 0)
					continue;
				put_le32(buf + j * 4, 0);
				dirty = true;
			}
			if (dirty) {
				r = vmdk_emit(
				    v, plan_write(v->p, (uint64_t)gt * VMDK_SEC, buf, gt_bytes));
				if (r)
					return r;
			}
		}
	}
	return 0;
}

/* Unmaps grains at or past bound (both GD copies), zeroes the tail of the
 * allocated grain that bound cuts, or points its GT entries at the rewritten
 * grain when it is compressed. */
static int vmdk_unmap(struct vmdk *v, uint8_t *const gd[2], uint64_t bound,
		      const struct vmdk_tail *tail)
{
	uint64_t in = bound % v->grain;
	int r = vmdk_clear_gts(v, gd, vmdk_div_up(bound, v->grain), tail);

	for (uint32_t c = 0; c < v->ncopies && !r; c++) {
		if (tail->sec[c] == 0)
			continue;
		r = vmdk_emit(
		    v, plan_zero(v->p, (tail->sec[c] + in) * VMDK_SEC, (v->grain - in) * VMDK_SEC));
	}
	return r;
}

/* Where a resize puts the grain tables and directories (sectors). */
struct vmdk_layout {
	uint64_t new_n;	     /* GD entries for the new capacity */
	uint64_t new_gd_sec; /* sectors of one new GD */
	bool reloc;	     /* the GDs move (they grow) */
	bool changed;	     /* GD entries were added */
	uint8_t *gd[2];	     /* the GDs as they become */
	uint64_t base, next, end, new_gd_off[2];
};

/* Reads each GD copy into a buffer as large as the old or new one, and
 * checks every grain table it points to. */
static int vmdk_load_gds(struct vmdk *v, struct vmdk_layout *l)
{
	uint64_t buf_sec = l->new_gd_sec > v->old_gd_sec ? l->new_gd_sec : v->old_gd_sec;
	int r;

	for (uint32_t c = 0; c < v->ncopies; c++) {
		l->gd[c] = vmdk_alloc(v, buf_sec * VMDK_SEC);
		if (!l->gd[c])
			return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL,
					 "vmdk: no scratch for the grain directory");
		r = vmdk_read(v, v->gd_off[c] * VMDK_SEC, l->gd[c], v->old_n * 4);
		if (r)
			return r;
		for (uint64_t i = 0; i < v->old_n; i++) {
			uint32_t gt = get_le32(l->gd[c] + i * 4);

			if (gt && !vmdk_region_ok(v, gt, v->gt_sec))
				return vmdk_failu(v, INSTAR_ERR_CORRUPT, "vmdk grain table ", i,
						  " points outside the file or into metadata");
		}
	}
	return 0;
}

/* A stream with a footer: no new GTs (a GD entry of 0 reads as zeros, as in
 * VMware's own streams); a GD that grows out of its sectors moves to where
 * the footer was: a GD marker and the GD at the old footer marker's sector,
 * then the three footer sectors (the end of file moves past them). A
 * rewritten compressed grain goes there first, and the GD moves behind it
 * (grains before the GD and the footer, as a stream has them). */
static int vmdk_place_footer(struct vmdk *v, struct vmdk_layout *l, struct vmdk_tail *tail)
{
	uint64_t at = v->file_sec - 3;

	l->base = l->next = l->end = v->file_sec;
	l->new_gd_off[0] = v->gd_off[0];
	if (tail->cbuf) {
		l->reloc = true;
		tail->cnew = at;
		at += tail->csec;
	}
	if (!l->reloc)
		return 0;
	l->new_gd_off[0] = at + 1;
	l->end = at + 1 + l->new_gd_sec + 3;
	if (l->end > VMDK_MAX_FILE_SEC)
		return vmdk_fail(v, INSTAR_ERR_TOO_LARGE,
				 "vmdk grain directory would lie beyond the "
				 "2 TiB extent offset limit");
	return 0;
}

/* New GTs (and moved GDs) go to the grain-aligned end of file, a rewritten
 * compressed grain behind them (or at the end of file if there are none):
 * where qemu appends the grains it writes. */
static int vmdk_place(struct vmdk *v, struct vmdk_layout *l, struct vmdk_tail *tail)
{
	if (v->footer)
		return vmdk_place_footer(v, l, tail);
	l->base = vmdk_div_up(v->file_sec, v->grain) * v->grain;
	l->next = l->base;
	for (uint32_t c = 0; c < v->ncopies; c++) {
		for (uint64_t i = 0; i < l->new_n; i++) {
			if (i < v->old_n && get_le32(l->gd[c] + i * 4) != 0)
				continue;
			if (l->next + v->gt_sec >= VMDK_MAX_FILE_SEC)
				return vmdk_fail(v, INSTAR_ERR_TOO_LARGE,
						 "vmdk grain tables would lie beyond the "
						 "2 TiB extent offset limit");
			put_le32(l->gd[c] + i * 4, (uint32_t)l->next);
			l->next += v->gt_sec;
			l->changed = true;
		}
	}
	/* Entries past new_n in the GD sectors stay as read (zero on a grow:
	 * the buffer beyond old_n is fresh scratch). */
	for (uint32_t c = 0; c < v->ncopies; c++) {
		l->new_gd_off[c] = v->gd_off[c];
		if (!l->reloc)
			continue;
		if (l->next + l->new_gd_sec >= VMDK_MAX_FILE_SEC)
			return vmdk_fail(v, INSTAR_ERR_TOO_LARGE,
					 "vmdk grain directory would lie beyond the "
					 "2 TiB extent offset limit");
		l->new_gd_off[c] = l->next;
		l->next += l->new_gd_sec;
	}
	l->end = l->next > l->base ? vmdk_div_up(l->next, v->grain) * v->grain : v->file_sec;
	if (l->end + (tail->cbuf ? tail->csec : 0) > VMDK_MAX_FILE_SEC)
		return vmdk_fail(v, INSTAR_ERR_TOO_LARGE,
				 "vmdk metadata would lie beyond the 2 TiB extent offset limit");
	tail->cnew = l->end;
	return 0;
}

/* Prepare a stream with a footer. A moved GD: first a copy of the old
 * footer sectors at the new end (the file is then longer and still the old
 * image: both readers take the footer from the end), a barrier, then the GD
 * marker and the new GD where the old footer was (no reader looks there
 * any more). A GD that stays and grows gets its entries past the old ones
 * zeroed in place (no reader of the old image reads them). A grow clears
 * stale GT entries past the old end, as for the other layouts. */
static int vmdk_prepare_footer(struct vmdk *v, struct vmdk_layout *l, uint64_t min_cap, bool shrink,
			       struct vmdk_tail *tail)
{
	uint64_t gd_bytes = l->new_gd_sec * VMDK_SEC, old_bytes = v->old_gd_sec * VMDK_SEC;
	uint32_t mark;
	uint8_t *buf;
	int r = 0;

	if (l->reloc) {
		r = vmdk_emit(v, plan_write(v->p, (l->end - 3) * VMDK_SEC, v->trio, 3 * VMDK_SEC));
		if (!r)
			r = vmdk_emit(v, plan_flush(v->p));
		if (r)
			return r;
	}
	mark = v->p->nops;
	if (l->reloc) {
		/* [the rewritten grain] GD marker, GD: one write */
		uint64_t cb = tail->cbuf ? tail->csec * VMDK_SEC : 0;

		buf = vmdk_alloc(v, cb + VMDK_SEC + gd_bytes);
		if (!buf)
			return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL,
					 "vmdk: no scratch for the grain directory");
		if (cb)
			plan_memcpy(buf, tail->cbuf, cb);
		vmdk_put_marker(buf + cb, l->new_gd_sec, VMDK_MARKER_GD);
		plan_memcpy(buf + cb + VMDK_SEC, l->gd[0], gd_bytes);
		r = vmdk_emit(v, plan_write(v->p, (l->new_gd_off[0] - 1) * VMDK_SEC - cb, buf,
					    cb + VMDK_SEC + gd_bytes));
		/* the grain is durable before a GT entry points at it */
		if (!r && cb && !shrink)
			r = vmdk_emit(v, plan_flush(v->p));
	} else if (!shrink && l->new_n > v->old_n) {
		buf = vmdk_alloc(v, old_bytes);
		if (!buf)
			return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL,
					 "vmdk: no scratch for the grain directory");
		r = vmdk_read(v, v->gd_off[0] * VMDK_SEC, buf, old_bytes);
		if (!r && plan_memcmp(buf, l->gd[0], old_bytes) != 0)
			r = vmdk_emit(
			    v, plan_write(v->p, v->gd_off[0] * VMDK_SEC, l->gd[0], old_bytes));
	}
	if (!r && !shrink)
		r = vmdk_unmap(v, l->gd, min_cap, tail);
	if (!r && v->p->nops != mark)
		r = vmdk_emit(v, plan_flush(v->p));
	return r;
}

/* Prepare: the new GTs lie past the old end of file (base >= file_sec),
 * where the file reads as zeros once it is long enough, so they are left as
 * holes: no zero op, no write (a 64 TiB grow has 8 GiB of them). Only the
 * last sector of the grain-aligned end is written, so the file really
 * reaches its new length before anything points there: qemu allocates new
 * grains at the end of file, which must lie past the new GTs. A grow clears
 * stale entries past the old end (and a cut grain's tail) before the new
 * size makes them visible. Then the GDs, and a barrier. */
static int vmdk_prepare(struct vmdk *v, struct vmdk_layout *l, uint64_t min_cap, bool shrink,
			struct vmdk_tail *tail)
{
	uint8_t *zero_sec;
	int r;

	if (l->next > l->base) {
		zero_sec = vmdk_alloc(v, VMDK_SEC);
		if (!zero_sec)
			return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL, "vmdk: no scratch");
		r = vmdk_emit(v, plan_write(v->p, (l->end - 1) * VMDK_SEC, zero_sec, VMDK_SEC));
		if (r)
			return r;
	}
	/* A rewritten compressed grain, appended; on a grow, a barrier before
	 * its GT entries point at it (a shrink moves them after the commit). */
	if (tail->cbuf) {
		r = vmdk_emit(
		    v, plan_write(v->p, tail->cnew * VMDK_SEC, tail->cbuf, tail->csec * VMDK_SEC));
		if (!r && !shrink)
			r = vmdk_emit(v, plan_flush(v->p));
		if (r)
			return r;
	}
	if (!shrink) {
		r = vmdk_unmap(v, l->gd, min_cap, tail);
		if (r)
			return r;
	}
	for (uint32_t c = 0; c < v->ncopies && (l->changed || l->reloc); c++) {
		r = vmdk_emit(v, plan_write(v->p, l->new_gd_off[c] * VMDK_SEC, l->gd[c],
					    l->new_gd_sec * VMDK_SEC));
		if (r)
			return r;
	}
	return v->p->nops ? vmdk_emit(v, plan_flush(v->p)) : 0;
}

/* The header sector (capacity, GD offsets) and, when the descriptor follows
 * the header directly (every image qemu or VMware creates), the descriptor
 * (extent sectors, geometry, CID) in one write, then a barrier; a descriptor
 * elsewhere in its own write and barrier after it. A stream with a footer
 * keeps GD_AT_END in its header. */
static int vmdk_commit_header(struct vmdk *v, const struct vmdk_layout *l, uint64_t new_cap,
			      const char *nd, size_t nd_len)
{
	size_t wlen = nd_len > v->desc_len ? nd_len : v->desc_len;
	bool joined = v->doff == 1;
	uint8_t *hdr;
	int r;

	wlen = (size_t)vmdk_div_up(wlen + 1, VMDK_SEC) * VMDK_SEC;
	if (wlen > v->dsz * VMDK_SEC)
		wlen = (size_t)(v->dsz * VMDK_SEC);
	hdr = vmdk_alloc(v, VMDK_SEC + (joined ? wlen : 0));
	if (!hdr)
		return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL, "vmdk: no scratch");
	plan_memcpy(hdr, v->hdr, VMDK_SEC);
	put_le64(hdr + 12, new_cap);
	if (!v->footer)
		put_le64(hdr + 56, l->new_gd_off[0]);
	if (v->ncopies == 2)
		put_le64(hdr + 48, l->new_gd_off[1]);
	if (joined)
		plan_memcpy(hdr + VMDK_SEC, nd, wlen);
	r = vmdk_emit(v, plan_write(v->p, 0, hdr, VMDK_SEC + (joined ? wlen : 0)));
	if (!r)
		r = vmdk_emit(v, plan_flush(v->p));
	if (!r && !joined) {
		r = vmdk_emit(v, plan_write(v->p, v->doff * VMDK_SEC, nd, wlen));
		if (!r)
			r = vmdk_emit(v, plan_flush(v->p));
	}
	return r;
}

/* The footer sector of a stream (what qemu reads: capacity and gdOffset),
 * one sector, then a barrier. */
static int vmdk_commit_footer(struct vmdk *v, const struct vmdk_layout *l, uint64_t new_cap)
{
	uint8_t *f = vmdk_alloc(v, VMDK_SEC);
	int r;

	if (!f)
		return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL, "vmdk: no scratch");
	plan_memcpy(f, v->trio + VMDK_SEC, VMDK_SEC);
	put_le64(f + 12, new_cap);
	put_le64(f + 56, l->new_gd_off[0]);
	r = vmdk_emit(v, plan_write(v->p, (l->end - 2) * VMDK_SEC, f, VMDK_SEC));
	return r ? r : vmdk_emit(v, plan_flush(v->p));
}

/* Commit. A stream with a footer has two: the footer (qemu takes the size
 * and the GD from it; libvmdk the GD and, from its capacity, the GD's
 * length) and the header with the descriptor (libvmdk takes the size from
 * the descriptor's extent line). The one with the larger size goes first,
 * so a reader that takes the GD from the footer and the size from the
 * descriptor never reads past the GD it was given: a grow writes the
 * footer first, a shrink the header and descriptor first. */
static int vmdk_commit(struct vmdk *v, const struct vmdk_layout *l, uint64_t new_cap,
		       const char *nd, size_t nd_len, bool shrink)
{
	int r;

	if (!v->footer)
		return vmdk_commit_header(v, l, new_cap, nd, nd_len);
	if (shrink) {
		r = vmdk_commit_header(v, l, new_cap, nd, nd_len);
		return r ? r : vmdk_commit_footer(v, l, new_cap);
	}
	r = vmdk_commit_footer(v, l, new_cap);
	return r ? r : vmdk_commit_header(v, l, new_cap, nd, nd_len);
}

static int vmdk_plan(struct vmdk *v, uint64_t new_cap, bool shrink)
{
	uint64_t min_cap = shrink ? new_cap : v->cap;
	struct vmdk_layout l = {0};
	struct vmdk_tail tail;
	char *nd;
	size_t nd_len = 0;
	int r;

	l.new_n = vmdk_div_up(new_cap, v->gt_cov);
	l.new_gd_sec = vmdk_div_up(l.new_n * 4, VMDK_SEC);
	l.reloc = l.new_gd_sec > v->old_gd_sec;
	/* The new descriptor first: one that cannot be written must stop the
	 * plan before any op is emitted. */
	nd = vmdk_alloc(v, v->dsz * VMDK_SEC);
	if (!nd)
		return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL,
				 "vmdk: no scratch for descriptor");
	r = vmdk_build_desc(v, new_cap, nd, v->dsz * VMDK_SEC, &nd_len);
	if (!r)
		r = vmdk_load_gds(v, &l);
	if (!r)
		r = vmdk_find_tail(v, l.gd, min_cap, shrink, &tail);
	if (!r)
		r = vmdk_place(v, &l, &tail);
	if (!r)
		r = v->footer ? vmdk_prepare_footer(v, &l, min_cap, shrink, &tail)
			      : vmdk_prepare(v, &l, min_cap, shrink, &tail);
	if (!r)
		r = vmdk_commit(v, &l, new_cap, nd, nd_len, shrink);
	if (r)
		return r;

	/* A shrink unmaps the cut range only now that it lies past the
	 * capacity every reader sees. */
	if (shrink) {
		uint32_t before = v->p->nops;

		r = vmdk_unmap(v, l.gd, min_cap, &tail);
		if (!r && v->p->nops != before)
			r = vmdk_emit(v, plan_flush(v->p));
		if (r)
			return r;
	}

	if (v->footer)
		v->p->file_size_after = l.end * VMDK_SEC;
	else if (tail.cbuf)
		v->p->file_size_after = (tail.cnew + tail.csec) * VMDK_SEC;
	else
		v->p->file_size_after = l.next > l.base ? l.end * VMDK_SEC : v->io->file_size;
	return 0;
}

/* Not a sparse extent: a text descriptor names the subformat. */
/* ---- descriptor files with one flat extent (monolithicFlat, vmfs) ----
 *
 * The image the guest sees is the descriptor; the extent it names is a raw
 * file the host opened under its name policy and resizes itself (as a qcow2
 * data file: INSTAR_RESIZE_DATA_FILE, the name's CRC-32 in
 * data_file_name_crc) — before the descriptor's commit on a grow, after it
 * on a shrink. The plan rewrites the extent's sectors, the geometry's
 * cylinders and the CID, in one write (docs/formats.md §2). */

#define VMDK_DESC_FILE_MAX (64u * 1024) /* what the host probe reads whole */

/* The one extent line a flat descriptor may have: RW <sectors> FLAT
 * "<name>" 0, or RW <sectors> VMFS "<name>". Sets the name's span. */
static bool vmdk_flat_line(const char *d, size_t ls, size_t le, const struct vmdk_extent *e,
			   bool sparse, size_t *ret_name, size_t *ret_name_end)
{
	bool flat = !sparse && vmdk_span_is(d + e->type, e->type_end - e->type, "FLAT");
	size_t i = ls;

	while (i < le && vmdk_is_space(d[i]))
		i++;
	if (le - i < 3 || d[i] != 'R' || d[i + 1] != 'W' || !vmdk_is_space(d[i + 2]))
		return false;
	if (sparse ? !vmdk_span_is(d + e->type, e->type_end - e->type, "SPARSE")
		   : !flat && !vmdk_span_is(d + e->type, e->type_end - e->type, "VMFS"))
		return false;
	i = e->type_end;
	while (i < le && vmdk_is_space(d[i]))
		i++;
	if (i >= le || d[i] != '"')
		return false;
	*ret_name = ++i;
	while (i < le && d[i] != '"' && d[i] != '\r')
		i++;
	*ret_name_end = i;
	if (i >= le || d[i] != '"' || *ret_name_end == *ret_name || i - *ret_name > 511)
		return false;
	i++;
	while (i < le && vmdk_is_space(d[i]))
		i++;
	if (flat) { /* offset 0: the extent is the disk from its first byte */
		if (i >= le || d[i] != '0')
			return false;
		while (i < le && d[i] == '0')
			i++;
		if (i < le && !vmdk_is_space(d[i]) && d[i] != '\r')
			return false;
		while (i < le && vmdk_is_space(d[i]))
			i++;
	}
	return i == le || (i + 1 == le && d[i] == '\r');
}

/* Finds the descriptor's one extent: its sectors and its name's span. */
static int vmdk_flat_extent(struct vmdk *v, uint64_t *ret_sectors, size_t *ret_name,
			    size_t *ret_name_end)
{
	const char *d = v->desc;
	unsigned extents = 0;
	bool ok = false;

	for (size_t ls = 0; ls < v->desc_len;) {
		size_t le = ls;
		struct vmdk_extent e;

		while (le < v->desc_len && d[le] != '\n')
			le++;
		if (vmdk_line_extent(d, ls, le, &e)) {
			extents++;
			ok = vmdk_flat_line(d, ls, le, &e, false, ret_name, ret_name_end) &&
			     vmdk_parse_dec(d, e.sec, e.sec_end, ret_sectors);
		}
		ls = le + 1;
	}
	if (extents != 1)
		return vmdk_failu(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "vmdk descriptor with ",
				  extents, " extents is not supported (one flat extent only)");
	if (!ok)
		return vmdk_fail(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
				 "vmdk extent line is not RW FLAT \"name\" 0 or RW VMFS \"name\"");
	if (*ret_sectors == 0 || *ret_sectors > VMDK_MAX_CAP)
		return vmdk_failu(v, INSTAR_ERR_PARSE_FAILED, "vmdk flat extent of ", *ret_sectors,
				  " sectors is not supported");
	return 0;
}

/* Reads the whole descriptor file (NUL-terminated in scratch). */
static int vmdk_flat_read(struct vmdk *v)
{
	uint64_t len = v->io->file_size;
	size_t n;
	int r;

	if (len > VMDK_DESC_FILE_MAX)
		return vmdk_failu(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "vmdk descriptor file over ",
				  VMDK_DESC_FILE_MAX, " bytes is not supported");
	v->desc = vmdk_alloc(v, len + 1);
	if (!v->desc)
		return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL,
				 "vmdk: no scratch for descriptor");
	r = vmdk_read(v, 0, v->desc, len);
	if (r)
		return r;
	v->desc[len] = '\0';
	/* The text ends at the first NUL, as qemu reads it. What follows is
	 * ignored: NUL padding, or the stale tail qemu's vmdk_write_cid leaves
	 * when a new CID has fewer hex digits than the old one (its write keeps
	 * the old bytes past the new NUL). The rewrite pads over it with NULs. */
	for (n = 0; n < len && v->desc[n]; n++)
		;
	v->desc_len = n;
	v->flat_file = true;
	return 0;
}

/* The checks of a new size both layouts make; *ret_cap in sectors. */
static int vmdk_check_new_size(struct vmdk *v, const struct plan_opts *o, uint64_t cap,
			       uint64_t *ret_cap)
{
	if (o->new_size % VMDK_SEC)
		return vmdk_fail(v, INSTAR_ERR_NOT_MULTIPLE_512,
				 "The new size must be a multiple of 512");
	if (o->new_size == 0)
		return vmdk_fail(v, INSTAR_ERR_INVALID_NEW_SIZE,
				 "vmdk capacity 0 is not allowed (qemu cannot open it)");
	*ret_cap = o->new_size / VMDK_SEC;
	if (*ret_cap > VMDK_MAX_CAP)
		return vmdk_fail(v, INSTAR_ERR_TOO_LARGE,
				 "vmdk virtual size above 64 TiB is not supported");
	if (*ret_cap < cap && !(o->flags & INSTAR_RESIZE_SHRINK_ALLOWED))
		return vmdk_fail(v, INSTAR_ERR_SHRINK_WITHOUT_FLAG,
				 "Use the --shrink option to perform a shrink operation.");
	/* A delta disk (its parent opened): qemu-img's answer for every vmdk,
	 * "Image format driver does not support resize" (no detail). */
	if (v->parent)
		return vmdk_fail(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "");
	return 0;
}

/* The new text keeps the file's length when it is shorter, so no byte of
 * the old text is left past it: NULs where the file had NUL padding (as
 * qemu pads), else a comment line of blanks. */
static void vmdk_flat_pad(const struct vmdk *v, char *nd, size_t *len)
{
	size_t n = *len, pad;

	if (n >= v->io->file_size)
		return;
	pad = (size_t)v->io->file_size - n;
	if (v->desc_len < v->io->file_size) {
		while (pad--)
			nd[n++] = '\0';
	} else {
		if (n && nd[n - 1] != '\n') {
			nd[n++] = '\n';
			pad--;
		}
		if (pad) {
			nd[n++] = '#';
			for (size_t i = 1; i < pad; i++)
				nd[n++] = i + 1 == pad ? '\n' : ' ';
		}
	}
	*len = n;
}

/* A descriptor file's sizes: the old one (sectors, from its extent lines)
 * against the host's probe, then the new capacity; a resize that changes it
 * refuses metadata preallocation with prealloc_msg (the host sizes flat
 * extents). The caller stops when r != 0 or *new_cap == sectors. */
static int vmdk_desc_sizes(struct vmdk *v, const struct plan_opts *o, uint64_t sectors,
			   const char *prealloc_msg, uint64_t *new_cap)
{
	int r;

	v->ret->old_virtual_size = sectors * VMDK_SEC;
	if (o->expected_old_size != UINT64_MAX && o->expected_old_size != sectors * VMDK_SEC)
		return vmdk_failu(v, INSTAR_ERR_HEADER_MISMATCH, "vmdk descriptor says ",
				  sectors * VMDK_SEC, " bytes");
	r = vmdk_check_new_size(v, o, sectors, new_cap);
	if (r || *new_cap == sectors)
		return r;
	if (o->prealloc == INSTAR_PREALLOC_METADATA)
		return vmdk_fail(v, INSTAR_ERR_PREALLOCATION_UNSUPPORTED, prealloc_msg);
	return 0;
}

/* The new descriptor text (built in at most cap bytes, refused past max
 * bytes) in one write, then a flush; the file keeps at least its length. */
static int vmdk_desc_rewrite(struct vmdk *v, uint64_t sectors, uint64_t new_cap, size_t cap,
			     size_t max)
{
	size_t nd_len;
	char *nd = vmdk_alloc(v, cap);
	int r;

	if (!nd)
		return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL,
				 "vmdk: no scratch for descriptor");
	r = vmdk_build_desc(v, new_cap, nd, cap, &nd_len);
	if (r)
		return r;
	vmdk_flat_pad(v, nd, &nd_len);
	if (nd_len > max)
		return vmdk_failu(v, INSTAR_ERR_TOO_LARGE, "new vmdk descriptor file over ", max,
				  " bytes is not supported");
	v->ret->action = new_cap < sectors ? INSTAR_ACTION_SHRINK : INSTAR_ACTION_GROW;
	r = vmdk_emit(v, plan_write(v->p, 0, nd, nd_len));
	if (!r)
		r = vmdk_emit(v, plan_flush(v->p));
	if (r)
		return r;
	v->p->file_size_after = nd_len > v->io->file_size ? nd_len : v->io->file_size;
	v->ret->file_size_after = v->p->file_size_after;
	return 0;
}

static int vmdk_plan_flat(struct vmdk *v, const struct plan_opts *o)
{
	uint64_t sectors = 0, new_cap;
	size_t name = 0, name_end = 0;
	int r;

	r = vmdk_flat_read(v);
	if (!r)
		r = vmdk_flat_extent(v, &sectors, &name, &name_end);
	if (r)
		return r;
	if (!plan_host_named(o, INSTAR_RESIZE_DATA_FILE, true, v->desc + name,
			     (uint32_t)(name_end - name)))
		return vmdk_fail(v, INSTAR_ERR_HEADER_MISMATCH,
				 "vmdk: extent file name differs from the host's probe");
	r = vmdk_desc_sizes(v, o, sectors,
			    "vmdk: preallocation=metadata is not supported for a flat extent",
			    &new_cap);
	if (r || new_cap == sectors)
		return r;
	return vmdk_desc_rewrite(v, sectors, new_cap, (size_t)v->io->file_size + 128, SIZE_MAX);
}

/* ---- twoGbMaxExtentFlat / twoGbMaxExtentSparse: a descriptor file and
 * its extent files ----
 *
 * Flat: every extent "RW N FLAT \"name\" 0", named and sized by the split
 * rule (shared/vmdk_split.h): the extents but the last have the split size,
 * the names follow the first one's -f001. Sparse: every extent "RW N
 * SPARSE \"name\"", named as the first one with increasing numbers, each
 * at most 2 GiB; a grow appends extents, a shrink drops whole ones and
 * names the host's shorter copy of the one it ends in (qemu reads each
 * extent's size from its own header: docs/formats.md §2.3b). The plan
 * writes the new text in one write: the extent lines the rule gives for
 * the new size, the geometry's cylinders and a new CID. The host creates,
 * sizes and drops the extent files by the same rule and checks the staged
 * text against it (vmm/verify.c); the guest never touches them. */

/* The descriptor's extents as the split rule reads them (kind 'f' or
 * 's'). */
static int vmdk_split_extents(struct vmdk *v, char kind, struct instar_vmdk_split *ret)
{
	const char *sub = kind == 's' ? "twoGbMaxExtentSparse" : "twoGbMaxExtentFlat";
	char want[INSTAR_VMDK_SPLIT_NAME_MAX + 1];
	const char *d = v->desc;
	uint32_t count = 0;
	uint64_t first = 0, last = 0;

	for (size_t ls = 0; ls < v->desc_len;) {
		size_t le = ls, name = 0, name_end = 0;
		struct vmdk_extent e;
		uint64_t sec = 0;
		int n;

		while (le < v->desc_len && d[le] != '\n')
			le++;
		if (vmdk_line_extent(d, ls, le, &e)) {
			if (!vmdk_flat_line(d, ls, le, &e, kind == 's', &name, &name_end) ||
			    (kind == 'f' &&
			     !vmdk_span_is(d + e.type, e.type_end - e.type, "FLAT")) ||
			    !vmdk_parse_dec(d, e.sec, e.sec_end, &sec) || sec == 0)
				return vmdk_failt(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "vmdk ", sub,
						  vmdk_strlen(sub),
						  kind == 's'
						      ? " extent line is not RW N SPARSE \"name\""
						      : " extent line is not RW N FLAT \"name\" 0");
			if (count == INSTAR_VMDK_SPLIT_MAX_EXTENTS)
				return vmdk_failu(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
						  "vmdk descriptor with more than ",
						  INSTAR_VMDK_SPLIT_MAX_EXTENTS,
						  " extents is not supported");
			if (count++ == 0) {
				v->split_first = d + name;
				v->split_first_len = name_end - name;
				first = sec;
			} else if (kind == 'f' && last != first) {
				return vmdk_failu(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
						  "vmdk twoGbMaxExtentFlat extent ", count - 1,
						  " is not as long as the first");
			}
			if (kind == 's') {
				int64_t num = instar_vmdk_sparse_num(
				    (const uint8_t *)v->split_first, v->split_first_len,
				    (const uint8_t *)d + name, name_end - name);

				n = num > 0 && (count == 1 || (uint64_t)num > ret->num[count - 2])
					? 0
					: -1;
				ret->num[count - 1] = (uint32_t)num;
			} else {
				n = instar_vmdk_split_name((const uint8_t *)v->split_first,
							   v->split_first_len, count, want,
							   sizeof(want));
				if (n >= 0 && ((size_t)n != name_end - name ||
					       plan_memcmp(d + name, want, (size_t)n) != 0))
					n = -1;
			}
			if (n < 0)
				return vmdk_failu(
				    v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
				    kind == 's' ? "vmdk twoGbMaxExtentSparse extent "
						: "vmdk twoGbMaxExtentFlat extent ",
				    count,
				    kind == 's'
					? " is not named as the first with a higher number "
					  "(NAME-s001.vmdk, NAME-s002.vmdk, ...)"
					: " is not named NAME-f001.vmdk, NAME-f002.vmdk, ...");
			if (sec > INSTAR_VMDK_SPLIT_SECTORS)
				return vmdk_failu(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
						  kind == 's'
						      ? "vmdk twoGbMaxExtentSparse extents over "
							"2 GiB ("
						      : "vmdk twoGbMaxExtentFlat extents over "
							"2 GiB (",
						  sec, " sectors) are not supported");
			ret->ext[count - 1] = (uint32_t)sec;
			last = sec;
		}
		ls = le + 1;
	}
	if (count == 0)
		return vmdk_fail(v, INSTAR_ERR_PARSE_FAILED, "vmdk descriptor has no extent");
	if (kind == 's')
		return instar_vmdk_split_sparse(ret, count)
			   ? vmdk_fail(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
				       "vmdk twoGbMaxExtentSparse extents are off the split rule")
			   : 0;
	ret->sparse = false;
	ret->count = count;
	ret->split = count > 1 ? first : INSTAR_VMDK_SPLIT_SECTORS;
	ret->last = last;
	if (instar_vmdk_split_valid(ret))
		return vmdk_failu(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
				  "vmdk twoGbMaxExtentFlat extents over 2 GiB (",
				  ret->split > last ? ret->split : last,
				  " sectors) are not supported");
	return 0;
}

static int vmdk_plan_split(struct vmdk *v, const struct plan_opts *o, char kind)
{
	struct instar_vmdk_split old;
	uint64_t sectors, new_cap;
	int r;

	r = vmdk_flat_read(v);
	if (!r)
		r = vmdk_split_extents(v, kind, &old);
	if (r)
		return r;
	sectors = instar_vmdk_split_total(&old);
	r = vmdk_desc_sizes(v, o, sectors,
			    kind == 's'
				? "vmdk: preallocation is not supported"
				: "vmdk: preallocation=metadata is not supported for flat extents",
			    &new_cap);
	if (r || new_cap == sectors)
		return r;
	/* a sparse split's new extents are sparse: nothing to preallocate */
	if (kind == 's' && o->prealloc != INSTAR_PREALLOC_OFF)
		return vmdk_fail(v, INSTAR_ERR_PREALLOCATION_UNSUPPORTED,
				 "vmdk: preallocation is not supported");
	r = instar_vmdk_split_resize(&old, new_cap, &v->split_new);
	if (r && kind == 's')
		return vmdk_failu(v, INSTAR_ERR_TOO_LARGE, "vmdk twoGbMaxExtentSparse: more than ",
				  INSTAR_VMDK_SPLIT_MAX_EXTENTS,
				  " extents, or an extent number over 99999, are not supported");
	if (r)
		return vmdk_failu(v, INSTAR_ERR_TOO_LARGE, "vmdk twoGbMaxExtentFlat: more than ",
				  INSTAR_VMDK_SPLIT_MAX_EXTENTS, " extents are not supported");
	v->split = true;
	return vmdk_desc_rewrite(v, sectors, new_cap,
				 (size_t)v->io->file_size + 128 +
				     (size_t)v->split_new.count * (v->split_first_len + 48),
				 VMDK_DESC_FILE_MAX);
}

/* No sparse header: a descriptor file. One flat extent (monolithicFlat,
 * ESXi's vmfs) is resized; other multi-file layouts are refused. */
static int vmdk_plan_text(struct vmdk *v, const struct plan_opts *o)
{
	uint32_t len =
	    v->io->file_size < VMDK_DESC_FILE_MAX ? (uint32_t)v->io->file_size : VMDK_DESC_FILE_MAX;
	char *buf = vmdk_alloc(v, (uint64_t)len + 1);
	const char *ct;
	size_t n, ctn;
	int r;

	if (get_le32(v->hdr) == VMDK_COWD_MAGIC)
		return vmdk_fail(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
				 "vmdk subformat vmfsSparse (COWD extent) is not supported");
	if (!buf)
		return vmdk_fail(v, INSTAR_ERR_SCRATCH_TOO_SMALL, "vmdk: no scratch");
	r = vmdk_read(v, 0, buf, len);
	if (r)
		return r;
	buf[len] = '\0';
	n = vmdk_strlen(buf);
	/* qemu's checks of a descriptor file (its text read to the first NUL,
	 * up to 1 MiB - 1 bytes); one whose text goes on past what is read
	 * here is refused below (over 64 KiB) */
	if (n < len || len == v->io->file_size) {
		r = vmdk_qemu_desc_type(v, buf, n);
		if (!r)
			r = vmdk_qemu_extents(v, buf, n);
		if (!r)
			r = vmdk_q_read_cid(v, 0);
		if (r)
			return r;
	}
	if (!vmdk_find_create_type(buf, n, &ct, &ctn))
		return vmdk_fail(v, INSTAR_ERR_PARSE_FAILED,
				 "not a vmdk image: no sparse header and no descriptor");
	if (vmdk_span_is(ct, ctn, "monolithicFlat") || vmdk_span_is(ct, ctn, "vmfs"))
		return vmdk_plan_flat(v, o);
	if (vmdk_span_is(ct, ctn, "twoGbMaxExtentFlat"))
		return vmdk_plan_split(v, o, 'f');
	if (vmdk_span_is(ct, ctn, "twoGbMaxExtentSparse"))
		return vmdk_plan_split(v, o, 's');
	return vmdk_failt(v, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "vmdk subformat ", ct, ctn,
			  " is not supported (multi-file)");
}

int plan_resize_vmdk(const struct plan_opts *o, const struct plan_io *io, struct plan_scratch *s,
		     struct plan *p, struct instar_resize_result *ret)
{
	struct vmdk v = {.o = o, .io = io, .s = s, .p = p, .ret = ret};
	uint64_t new_cap;
	bool shrink;
	int r;

	plan_result_init(ret, p, o, io);

	/* qemu's file length is whole sectors: only an empty file is short */
	if (io->file_size == 0)
		return vmdk_open_fail(&v, INSTAR_ERR_PARSE_FAILED,
				      "File is too small, not a valid image");
	v.hdr = vmdk_alloc(&v, VMDK_SEC);
	if (!v.hdr)
		return vmdk_fail(&v, INSTAR_ERR_SCRATCH_TOO_SMALL, "vmdk: no scratch");
	/* A descriptor file may be shorter than a sector; past EOF reads 0. */
	r = vmdk_read(&v, 0, v.hdr, io->file_size < VMDK_SEC ? (uint32_t)io->file_size : VMDK_SEC);
	if (r)
		return r;
	if (get_le32(v.hdr) != VMDK_MAGIC)
		return vmdk_plan_text(&v, o);
	if (io->file_size < VMDK_SEC)
		return vmdk_open_fail(&v, INSTAR_ERR_PARSE_FAILED,
				      "vmdk: file shorter than a header");
	r = vmdk_parse_header(&v);
	/* Damage in the header or footer, or in the places of the descriptor
	 * and directories they name, is a failed open, also where qemu opens
	 * the image; a feature instar does not resize is not (docs/design.md
	 * §3.1). */
	if (r == INSTAR_ERR_CORRUPT || r == INSTAR_ERR_PARSE_FAILED)
		ret->flags |= INSTAR_RESULT_OPEN;
	if (!r)
		r = vmdk_q_read_cid(&v, INSTAR_VMDKQ_DESC_AT);
	if (r)
		return r;
	ret->old_virtual_size = v.cap * VMDK_SEC;
	r = vmdk_read_desc(&v);
	if (!r)
		r = vmdk_check_desc(&v);
	if (r)
		return r;

	if (o->expected_old_size != UINT64_MAX && o->expected_old_size != v.cap * VMDK_SEC)
		return vmdk_failu(&v, INSTAR_ERR_HEADER_MISMATCH, "vmdk header says ",
				  v.cap * VMDK_SEC, " bytes");
	r = vmdk_check_new_size(&v, o, v.cap, &new_cap);
	if (r)
		return r;
	shrink = new_cap < v.cap;
	if (o->prealloc != INSTAR_PREALLOC_OFF)
		return vmdk_fail(&v, INSTAR_ERR_PREALLOCATION_UNSUPPORTED,
				 "vmdk: preallocation is not supported");
	if (new_cap == v.cap)
		return 0;

	ret->action = shrink ? INSTAR_ACTION_SHRINK : INSTAR_ACTION_GROW;
	r = vmdk_plan(&v, new_cap, shrink);
	if (r)
		return r;
	ret->file_size_after = p->file_size_after;
	return 0;
}
