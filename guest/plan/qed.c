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
 * header field it relies on (shared/open_check.c, shared with the host
 * probe: the magic, unknown feature bits, cluster and table sizes, the
 * current size, the L1 table's place, the header size, the backing name's
 * place and length) and refuses in qemu's order and words, as a failed open
 * (INSTAR_RESULT_OPEN: "Could not open 'NAME': DETAIL"). It also clears the
 * autoclear feature bits, which qemu (knowing none) clears on every
 * writable open. An image whose "needs check" bit is set (not closed
 * cleanly) is refused (REQUIRES_CHECK); qemu would run a repair first.
 *
 * A backing file is the host's to open (vmm/external.c, under its name
 * policy): the name the host resolved must be the one this header holds
 * (its CRC-32), and the host gives its length. qemu's block layer grows an
 * image over a backing file only when that file is not longer than the
 * image (it would otherwise need zero writes, which the QED driver does not
 * take: "Block driver does not support requested flags"); the grown range
 * then reads zeros past the backing file's end, and the grow is the same
 * one header write. Without the length (a backing format the host does not
 * read) the grow is refused. */
#include "open_check.h"
#include "plan.h"

/* Field offsets in the header. */
#define QED_OFF_CLUSTER_SIZE 4
#define QED_OFF_TABLE_SIZE 8
#define QED_OFF_FEATURES 16
#define QED_OFF_AUTOCLEAR 32
#define QED_OFF_IMAGE_SIZE 48

struct qed_hdr {
	uint8_t raw[INSTAR_QED_HEADER_LEN];
	uint32_t cluster_size, table_size;
	uint64_t features, autoclear, image_size;
	/* the backing name as qemu takes it (before its first NUL); 0: none */
	uint32_t name_len;
	uint8_t name[INSTAR_QED_NAME_MAX];
};

static int qed_fail(struct instar_resize_result *ret, uint32_t err, const char *msg)
{
	ret->error = err;
	if (msg)
		plan_set_detail(ret, msg);
	return (int)err;
}

/* The header as qemu's open reads it (zeros past the file's end) and its
 * checks (shared/open_check.c): a failure is the open's
 * (INSTAR_RESULT_OPEN), in qemu's words. */
static int qed_parse(const struct plan_io *io, struct qed_hdr *h, struct instar_resize_result *ret)
{
	uint32_t n =
	    io->file_size < INSTAR_QED_HEADER_LEN ? (uint32_t)io->file_size : INSTAR_QED_HEADER_LEN;
	char msg[INSTAR_DETAIL_MAX];
	int r;

	plan_memset(h->raw, 0, sizeof(h->raw));
	r = n ? plan_read(io, 0, h->raw, n) : 0;
	if (r)
		return qed_fail(ret, (uint32_t)r, NULL);
	r = instar_qed_open_check(h->raw, io->file_size, msg, sizeof(msg));
	if (r) {
		ret->flags |= INSTAR_RESULT_OPEN;
		return qed_fail(ret, (uint32_t)r, msg);
	}
	h->cluster_size = get_le32(h->raw + QED_OFF_CLUSTER_SIZE);
	h->table_size = get_le32(h->raw + QED_OFF_TABLE_SIZE);
	h->features = get_le64(h->raw + QED_OFF_FEATURES);
	h->autoclear = get_le64(h->raw + QED_OFF_AUTOCLEAR);
	h->image_size = get_le64(h->raw + QED_OFF_IMAGE_SIZE);
	h->name_len = 0;
	if (h->features & INSTAR_QED_F_BACKING_FILE) {
		/* inside the header clusters, shorter than INSTAR_QED_NAME_MAX
		 * (the open check), so inside the file (the L1 table is past
		 * the header) */
		uint32_t len = get_le32(h->raw + INSTAR_QED_OFF_BACKING_LEN);

		r = len ? plan_read_z(io, get_le32(h->raw + INSTAR_QED_OFF_BACKING_NAME), h->name,
				      len)
			: 0;
		if (r)
			return qed_fail(ret, (uint32_t)r, NULL);
		h->name_len = instar_qed_name_len(h->name, len);
	}
	/* Refused beyond qemu (which repairs an image that needs a check,
	 * then resizes it). */
	if (h->features & INSTAR_QED_F_NEED_CHECK)
		return qed_fail(ret, INSTAR_ERR_REQUIRES_CHECK,
				"qed: image needs repair; run 'qemu-img check -r all'");
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
	if (!plan_host_named(o, INSTAR_RESIZE_BACKING, h.name_len != 0, h.name, h.name_len))
		return qed_fail(ret, INSTAR_ERR_HEADER_MISMATCH,
				"qed: backing file name differs from the host's probe");
	/* qemu-img's order: --shrink first; then the block layer's zero
	 * writes over a longer backing file; then the driver's:
	 * preallocation, the size, the direction. */
	if (o->new_size < h.image_size && !(o->flags & INSTAR_RESIZE_SHRINK_ALLOWED))
		return qed_fail(ret, INSTAR_ERR_SHRINK_WITHOUT_FLAG, NULL);
	/* QED's driver writes no zeros: where they are needed it cannot grow */
	if (o->new_size > h.image_size &&
	    plan_backing_needs_zeros(o, h.name_len != 0, h.image_size))
		return qed_fail(ret, INSTAR_ERR_UNSUPPORTED_FEATURE,
				(o->flags & INSTAR_RESIZE_BACKING_LEN)
				    ? "Block driver does not support requested flags"
				    : "instar cannot tell the length of this QED image's "
				      "backing file (a format it does not read)");
	if (o->prealloc != INSTAR_PREALLOC_OFF)
		return qed_fail(ret, INSTAR_ERR_PREALLOCATION_UNSUPPORTED, NULL);
	if (!instar_qed_size_valid(o->new_size, h.cluster_size, h.table_size))
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
