/* guest/plan/qed.c — the QED (qemu enhanced disk) resize planner.
 *
 * The layout and the rules are in docs/formats.md, "QED". In short: a 64-byte
 * little-endian header at offset 0 holds the virtual size; the L1 table, the
 * L2 tables and the data clusters do not depend on it (the L1 table covers
 * the largest size the cluster and table sizes allow). So a grow is one write
 * of the header's size field, as qemu 7.2 does it; qemu's driver cannot shrink
 * a QED image, and neither do we.
 *
 * Like qemu when it opens an image for writing, the planner checks every
 * header field it relies on and refuses with qemu's message: unknown feature
 * bits, cluster and table sizes, the current size, the L1 table's place, the
 * header size, the backing name's place. It also clears the autoclear feature
 * bits, which qemu (knowing none) clears on every writable open. An image
 * whose "needs check" bit is set (not closed cleanly) is refused
 * (REQUIRES_CHECK); qemu would run a repair first. An image with a backing
 * file is refused: the grown range would read the backing file's bytes there,
 * which instar does not let an image expose (qemu 7.2 does). */
#include "plan.h"

#define QED_MAGIC 0x00444551u /* "QED\0" */
#define QED_HDR_LEN 64u
/* Field offsets in the header. */
#define QED_OFF_CLUSTER_SIZE 4
#define QED_OFF_TABLE_SIZE 8
#define QED_OFF_HEADER_SIZE 12
#define QED_OFF_FEATURES 16
#define QED_OFF_AUTOCLEAR 32
#define QED_OFF_L1 40
#define QED_OFF_IMAGE_SIZE 48
#define QED_OFF_BACKING_NAME 56
#define QED_OFF_BACKING_LEN 60

#define QED_F_BACKING_FILE 0x1ull
#define QED_F_NEED_CHECK 0x2ull
#define QED_F_BACKING_FORMAT_NO_PROBE 0x4ull
#define QED_F_KNOWN (QED_F_BACKING_FILE | QED_F_NEED_CHECK | QED_F_BACKING_FORMAT_NO_PROBE)

#define QED_MIN_CLUSTER (4u * 1024)
#define QED_MAX_CLUSTER (64u * 1024 * 1024)
#define QED_MAX_TABLE 16u /* clusters; at least 1 */

struct qed_hdr {
	uint8_t raw[QED_HDR_LEN];
	uint32_t cluster_size, table_size, header_size;
	uint64_t features, autoclear, l1, image_size;
	uint32_t backing_off, backing_len;
};

static int qed_fail(struct instar_resize_result *ret, uint32_t err, const char *msg)
{
	ret->error = err;
	if (msg)
		plan_set_detail(ret, msg);
	return (int)err;
}

static bool qed_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* The largest virtual size the cluster and table sizes can map (valid sizes
 * only: at most (16 * 64 MiB / 8)^2 * 64 MiB = 2^75 would overflow, so it is
 * computed saturating). */
static uint64_t qed_max_size(uint32_t cluster_size, uint32_t table_size)
{
	uint64_t entries = (uint64_t)table_size * cluster_size / 8;
	uint64_t l2_span = entries * cluster_size;

	if (l2_span && entries > UINT64_MAX / l2_span)
		return UINT64_MAX;
	return l2_span * entries;
}

static bool qed_size_valid(uint64_t size, const struct qed_hdr *h)
{
	return size % 512 == 0 && size <= qed_max_size(h->cluster_size, h->table_size);
}

/* qemu's test of a table's place: cluster aligned, past the header, and its
 * last cluster starts before the file's end rounded down to a cluster. */
static bool qed_table_ok(const struct qed_hdr *h, uint64_t file_size)
{
	uint64_t cs = h->cluster_size, end = h->l1 + (uint64_t)(h->table_size - 1) * cs;
	uint64_t hdr_bytes = (uint64_t)h->header_size * cs;
	uint64_t file_clusters_end = file_size & ~(cs - 1);

	/* qemu's overflow test, kept as it is: it also refuses table_size 1
	 * (end == l1), which qemu can create but not open. */
	if (end <= h->l1)
		return false;
	return !(h->l1 & (cs - 1)) && h->l1 >= hdr_bytes && end >= hdr_bytes &&
	       end < file_clusters_end;
}

static int qed_parse(const struct plan_io *io, struct qed_hdr *h, struct instar_resize_result *ret)
{
	int r = plan_read(io, 0, h->raw, QED_HDR_LEN);

	if (r)
		return qed_fail(ret, (uint32_t)r, NULL);
	if (io->file_size < QED_HDR_LEN || get_le32(h->raw) != QED_MAGIC)
		return qed_fail(ret, INSTAR_ERR_PARSE_FAILED, "Image not in QED format");
	h->cluster_size = get_le32(h->raw + QED_OFF_CLUSTER_SIZE);
	h->table_size = get_le32(h->raw + QED_OFF_TABLE_SIZE);
	h->header_size = get_le32(h->raw + QED_OFF_HEADER_SIZE);
	h->features = get_le64(h->raw + QED_OFF_FEATURES);
	h->autoclear = get_le64(h->raw + QED_OFF_AUTOCLEAR);
	h->l1 = get_le64(h->raw + QED_OFF_L1);
	h->image_size = get_le64(h->raw + QED_OFF_IMAGE_SIZE);
	h->backing_off = get_le32(h->raw + QED_OFF_BACKING_NAME);
	h->backing_len = get_le32(h->raw + QED_OFF_BACKING_LEN);

	if (h->features & ~QED_F_KNOWN) {
		struct plan_msg m = {.n = 0};

		plan_msg_str(&m, "Unsupported QED features: ");
		plan_msg_hex(&m, h->features & ~QED_F_KNOWN);
		return qed_fail(ret, INSTAR_ERR_UNSUPPORTED_FEATURE, m.b);
	}
	if (h->cluster_size < QED_MIN_CLUSTER || h->cluster_size > QED_MAX_CLUSTER ||
	    !qed_pow2(h->cluster_size))
		return qed_fail(ret, INSTAR_ERR_PARSE_FAILED, "QED cluster size is invalid");
	if (h->table_size < 1 || h->table_size > QED_MAX_TABLE || !qed_pow2(h->table_size))
		return qed_fail(ret, INSTAR_ERR_PARSE_FAILED, "QED table size is invalid");
	if (!qed_size_valid(h->image_size, h))
		return qed_fail(ret, INSTAR_ERR_PARSE_FAILED, "QED image size is invalid");
	if (!qed_table_ok(h, io->file_size))
		return qed_fail(ret, INSTAR_ERR_PARSE_FAILED, "QED table offset is invalid");
	if (h->header_size > UINT32_MAX / h->cluster_size)
		return qed_fail(ret, INSTAR_ERR_PARSE_FAILED, "QED header size is too large");
	if (h->features & QED_F_BACKING_FILE) {
		if ((uint64_t)h->backing_off + h->backing_len >
		    (uint64_t)h->cluster_size * h->header_size)
			return qed_fail(ret, INSTAR_ERR_PARSE_FAILED,
					"QED backing filename offset is invalid");
		return qed_fail(ret, INSTAR_ERR_UNSUPPORTED_FEATURE,
				"QED images with a backing file cannot be resized by instar");
	}
	if (h->features & QED_F_NEED_CHECK)
		return qed_fail(ret, INSTAR_ERR_REQUIRES_CHECK, NULL);
	return 0;
}

int plan_resize_qed(const struct plan_opts *o, const struct plan_io *io, struct plan_scratch *s,
		    struct plan *p, struct instar_resize_result *ret)
{
	struct qed_hdr h;
	int r;

	(void)s;
	plan_result_init(ret, p, o, io);
	r = qed_parse(io, &h, ret);
	if (r)
		return r;
	ret->old_virtual_size = h.image_size;
	if (o->expected_old_size != UINT64_MAX && h.image_size != o->expected_old_size)
		return qed_fail(ret, INSTAR_ERR_HEADER_MISMATCH, NULL);
	/* qemu-img's order: --shrink first; then the driver's: preallocation,
	 * the size, the direction. */
	if (o->new_size < h.image_size && !(o->flags & INSTAR_RESIZE_SHRINK_ALLOWED))
		return qed_fail(ret, INSTAR_ERR_SHRINK_WITHOUT_FLAG, NULL);
	if (o->prealloc != INSTAR_PREALLOC_OFF)
		return qed_fail(ret, INSTAR_ERR_PREALLOCATION_UNSUPPORTED, NULL);
	if (!qed_size_valid(o->new_size, &h))
		return qed_fail(ret, INSTAR_ERR_INVALID_NEW_SIZE, "Invalid image size specified");
	if (o->new_size < h.image_size)
		return qed_fail(ret, INSTAR_ERR_UNSUPPORTED_SHRINK,
				"Shrinking images is currently not supported");
	if (o->new_size == h.image_size && !h.autoclear)
		return 0; /* NOOP: nothing to write */
	ret->action = o->new_size == h.image_size ? INSTAR_ACTION_NOOP : INSTAR_ACTION_GROW;
	/* One write covering autoclear..image_size, then a barrier. */
	put_le64(h.raw + QED_OFF_AUTOCLEAR, 0);
	put_le64(h.raw + QED_OFF_IMAGE_SIZE, o->new_size);
	r = plan_write(p, QED_OFF_AUTOCLEAR, h.raw + QED_OFF_AUTOCLEAR,
		       QED_OFF_IMAGE_SIZE + 8 - QED_OFF_AUTOCLEAR);
	if (!r)
		r = plan_flush(p);
	if (r)
		return qed_fail(ret, (uint32_t)r, NULL);
	return 0;
}
