/* shared/open_check.c — qemu 7.2's open-time checks of QED and VDI headers
 * (see open_check.h). */
#include "open_check.h"
#include "abi.h"
#include "byteorder.h"
#include "msgbuf.h"
#include "vdi_layout.h"

/* ---- the message ---- */

static int oc_fail(struct instar_msgbuf *m, int err, const char *s)
{
	instar_msg_str(m, s);
	return err;
}

/* ---- QED ---- */

#define QED_OFF_CLUSTER_SIZE 4
#define QED_OFF_TABLE_SIZE 8
#define QED_OFF_HEADER_SIZE 12
#define QED_OFF_FEATURES 16
#define QED_OFF_L1 40
#define QED_OFF_IMAGE_SIZE 48
#define QED_F_KNOWN                                                                                \
	(INSTAR_QED_F_BACKING_FILE | INSTAR_QED_F_NEED_CHECK | INSTAR_QED_F_BACKING_FORMAT_NO_PROBE)
#define QED_MIN_CLUSTER (4u * 1024)
#define QED_MAX_CLUSTER (64u * 1024 * 1024)
#define QED_MAX_TABLE 16u /* clusters; at least 1 */

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

bool instar_qed_size_valid(uint64_t size, uint32_t cluster_size, uint32_t table_size)
{
	return size % 512 == 0 && size <= qed_max_size(cluster_size, table_size);
}

/* qemu's test of a table's place: cluster aligned, past the header, and its
 * last cluster starts before the file's end rounded down to a cluster. */
static bool qed_table_ok(uint64_t l1, uint32_t cluster_size, uint32_t table_size,
			 uint32_t header_size, uint64_t file_size)
{
	uint64_t cs = cluster_size, end = l1 + (uint64_t)(table_size - 1) * cs;
	uint64_t hdr_bytes = (uint64_t)header_size * cs;
	uint64_t file_clusters_end = file_size & ~(cs - 1);

	/* qemu's overflow test, kept as it is: it also refuses table_size 1
	 * (end == l1), which qemu can create but not open. */
	if (end <= l1)
		return false;
	return !(l1 & (cs - 1)) && l1 >= hdr_bytes && end >= hdr_bytes && end < file_clusters_end;
}

int instar_qed_open_check(const uint8_t *h, uint64_t file_size, char *mb, size_t cap)
{
	struct instar_msgbuf m = {.b = mb, .cap = cap, .n = 0};
	uint32_t cs = get_le32(h + QED_OFF_CLUSTER_SIZE), ts = get_le32(h + QED_OFF_TABLE_SIZE);
	uint32_t hs = get_le32(h + QED_OFF_HEADER_SIZE);
	uint64_t features = get_le64(h + QED_OFF_FEATURES);

	instar_msg_str(&m, "");
	if (get_le32(h) != INSTAR_QED_MAGIC)
		return oc_fail(&m, INSTAR_ERR_PARSE_FAILED, "Image not in QED format");
	if (features & ~QED_F_KNOWN) {
		instar_msg_str(&m, "Unsupported QED features: ");
		instar_msg_num(&m, features & ~QED_F_KNOWN, 16, 0);
		return INSTAR_ERR_UNSUPPORTED_FEATURE;
	}
	if (cs < QED_MIN_CLUSTER || cs > QED_MAX_CLUSTER || !qed_pow2(cs))
		return oc_fail(&m, INSTAR_ERR_PARSE_FAILED, "QED cluster size is invalid");
	if (ts < 1 || ts > QED_MAX_TABLE || !qed_pow2(ts))
		return oc_fail(&m, INSTAR_ERR_PARSE_FAILED, "QED table size is invalid");
	if (!instar_qed_size_valid(get_le64(h + QED_OFF_IMAGE_SIZE), cs, ts))
		return oc_fail(&m, INSTAR_ERR_PARSE_FAILED, "QED image size is invalid");
	if (!qed_table_ok(get_le64(h + QED_OFF_L1), cs, ts, hs, file_size))
		return oc_fail(&m, INSTAR_ERR_PARSE_FAILED, "QED table offset is invalid");
	if (hs > UINT32_MAX / cs)
		return oc_fail(&m, INSTAR_ERR_PARSE_FAILED, "QED header size is too large");
	if ((features & INSTAR_QED_F_BACKING_FILE) &&
	    (uint64_t)get_le32(h + INSTAR_QED_OFF_BACKING_NAME) +
		    get_le32(h + INSTAR_QED_OFF_BACKING_LEN) >
		(uint64_t)cs * hs)
		return oc_fail(&m, INSTAR_ERR_PARSE_FAILED,
			       "QED backing filename offset is invalid");
	if ((features & INSTAR_QED_F_BACKING_FILE) &&
	    get_le32(h + INSTAR_QED_OFF_BACKING_LEN) >= INSTAR_QED_NAME_MAX)
		return oc_fail(&m, INSTAR_ERR_PARSE_FAILED, "Failed to read backing filename");
	return 0;
}

/* ---- VDI ---- */

static bool oc_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void vdi_unsupported(struct instar_msgbuf *m, const char *what)
{
	instar_msg_str(m, "unsupported VDI image (");
	instar_msg_str(m, what);
}

int instar_vdi_open_check(const uint8_t *h, char *mb, size_t cap)
{
	struct instar_msgbuf m = {.b = mb, .cap = cap, .n = 0};
	uint64_t size = get_le64(h + INSTAR_VDI_H_DISK_SIZE);
	uint32_t version = get_le32(h + INSTAR_VDI_H_VERSION);
	uint32_t bmap = get_le32(h + INSTAR_VDI_H_OFFSET_BMAP);
	uint32_t data = get_le32(h + INSTAR_VDI_H_OFFSET_DATA);
	uint32_t sector = get_le32(h + INSTAR_VDI_H_SECTOR_SIZE);
	uint32_t block = get_le32(h + INSTAR_VDI_H_BLOCK_SIZE);
	uint32_t blocks = get_le32(h + INSTAR_VDI_H_BLOCKS);

	instar_msg_str(&m, "");
	if (size > INSTAR_VDI_SIZE_MAX) {
		instar_msg_str(&m, "Unsupported VDI image size (size is 0x");
		instar_msg_num(&m, size, 16, 0);
		instar_msg_str(&m, ", max supported is 0x");
		instar_msg_num(&m, INSTAR_VDI_SIZE_MAX, 16, 0);
		return oc_fail(&m, INSTAR_ERR_UNSUPPORTED_FEATURE, ")");
	}
	size = (size + 511) & ~(uint64_t)511; /* qemu rounds odd sizes up */
	if (get_le32(h + INSTAR_VDI_H_SIGNATURE) != INSTAR_VDI_SIGNATURE) {
		instar_msg_str(&m, "Image not in VDI format (bad signature ");
		instar_msg_num(&m, get_le32(h + INSTAR_VDI_H_SIGNATURE), 16, 8);
		return oc_fail(&m, INSTAR_ERR_PARSE_FAILED, ")");
	}
	if (version != INSTAR_VDI_VERSION_1_1) {
		vdi_unsupported(&m, "version ");
		instar_msg_num(&m, version >> 16, 10, 0);
		instar_msg_str(&m, ".");
		instar_msg_num(&m, version & 0xffff, 10, 0);
		return oc_fail(&m, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, ")");
	}
	if (bmap % 512) {
		vdi_unsupported(&m, "unaligned block map offset 0x");
		instar_msg_num(&m, bmap, 16, 0);
		return oc_fail(&m, INSTAR_ERR_CORRUPT, ")");
	}
	if (data % 512) {
		vdi_unsupported(&m, "unaligned data offset 0x");
		instar_msg_num(&m, data, 16, 0);
		return oc_fail(&m, INSTAR_ERR_CORRUPT, ")");
	}
	if (sector != 512) {
		vdi_unsupported(&m, "sector size ");
		instar_msg_num(&m, sector, 10, 0);
		return oc_fail(&m, INSTAR_ERR_UNSUPPORTED_FEATURE, " is not 512)");
	}
	if (block != INSTAR_VDI_BLOCK_SIZE) {
		vdi_unsupported(&m, "block size ");
		instar_msg_num(&m, block, 10, 0);
		return oc_fail(&m, INSTAR_ERR_UNSUPPORTED_FEATURE, " is not 1048576)");
	}
	if (size > (uint64_t)blocks * block) {
		vdi_unsupported(&m, "disk size ");
		instar_msg_num(&m, size, 10, 0);
		instar_msg_str(&m, ", image bitmap has room for ");
		instar_msg_num(&m, (uint64_t)blocks * block, 10, 0);
		return oc_fail(&m, INSTAR_ERR_CORRUPT, ")");
	}
	if (!oc_zero(h + INSTAR_VDI_H_UUID_LINK, 16))
		return oc_fail(&m, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
			       "unsupported VDI image (non-NULL link UUID)");
	if (!oc_zero(h + INSTAR_VDI_H_UUID_PARENT, 16))
		return oc_fail(&m, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
			       "unsupported VDI image (non-NULL parent UUID)");
	if (blocks > INSTAR_VDI_BLOCKS_MAX) {
		vdi_unsupported(&m, "too many blocks ");
		instar_msg_num(&m, blocks, 10, 0);
		instar_msg_str(&m, ", max is ");
		instar_msg_num(&m, INSTAR_VDI_BLOCKS_MAX, 10, 0);
		return oc_fail(&m, INSTAR_ERR_CORRUPT, ")");
	}
	return 0;
}
