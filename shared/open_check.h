/* shared/open_check.h — qemu 7.2's open-time checks of a QED and a VDI
 * header (block/qed.c bdrv_qed_do_open, block/vdi.c vdi_open), in qemu's
 * order and with qemu's words, in one place: the host probe
 * (shared/probe.c, its message before any guest) and the planners
 * (guest/plan/qed.c, guest/plan/vdi.c, INSTAR_RESULT_OPEN) both call them,
 * so they cannot disagree about an image. Freestanding C99.
 *
 * Each takes the header as qemu reads it: the first bytes of the file, zero
 * past its end. Each returns 0 when qemu's driver opens the header (as far
 * as these checks go), else an INSTAR_ERR_* code and the DETAIL qemu-img
 * prints after "Could not open 'NAME': " in m (NUL-terminated, truncated to
 * cap). */
#ifndef INSTAR_OPEN_CHECK_H
#define INSTAR_OPEN_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INSTAR_QED_HEADER_LEN 64u
#define INSTAR_QED_MAGIC 0x00444551u /* "QED\0", le32 @0 */
#define INSTAR_QED_F_BACKING_FILE 0x1ull
#define INSTAR_QED_F_NEED_CHECK 0x2ull
#define INSTAR_QED_F_BACKING_FORMAT_NO_PROBE 0x4ull
/* qemu reads a backing name of fewer bytes (PATH_MAX, the size of its
 * BlockDriverState.backing_file; its open refuses more: "Failed to read
 * backing filename") and uses the text before its first NUL. */
#define INSTAR_QED_NAME_MAX 4096u
#define INSTAR_QED_OFF_BACKING_NAME 56
#define INSTAR_QED_OFF_BACKING_LEN 60
static inline uint32_t instar_qed_name_len(const uint8_t *name, uint32_t len)
{
	uint32_t n = 0;

	while (n < len && name[n])
		n++;
	return n;
}

/* QED, over the 64-byte header and the file's length: the magic, unknown
 * feature bits, cluster size, table size, image size, the L1 table's place
 * (against the file's length), the header size, and (backing file bit set)
 * the backing file name's place. Not checked here: the backing file itself
 * (qemu opens it), the "needs check" bit (qemu repairs the image). */
int instar_qed_open_check(const uint8_t *h, uint64_t file_size, char *m, size_t cap);

/* qemu's test of a QED virtual size: a multiple of 512, within what the
 * tables map (cluster_size and table_size valid). */
bool instar_qed_size_valid(uint64_t size, uint32_t cluster_size, uint32_t table_size);

/* VDI, over the 512-byte header: the disk size against qemu's limit, the
 * signature, version 1.1, sector-aligned block map and data offsets, sector
 * size 512, block size 1 MiB, a block map with room for the disk, null link
 * and parent UUIDs, at most qemu's number of blocks. */
int instar_vdi_open_check(const uint8_t *h, char *m, size_t cap);

#endif
