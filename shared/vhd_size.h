/* shared/vhd_size.h — the VHD (vpc) size rule, in one place: which footer
 * field gives a disk's virtual size, and which size and geometry a resize
 * writes. The host probe (shared/probe.c) and the planner (guest/plan/vhd.c)
 * both call it, so they cannot disagree about an image. Freestanding C99.
 *
 * Reading is qemu 7.2's rule (checked with `qemu-img info -f vpc` on
 * hand-built footers: tests/unit/test_probe.c, tests/compat/vhd_plan.sh):
 * the size is C*H*S*512 from the geometry (footer @56..59) unless
 *   - the creator application (@28, 4 bytes, compared exactly) is one whose
 *     tools use current_size: "win " (Hyper-V), "qem2" (qemu-img create -o
 *     force_size), "d2v ", "CTXS" (XenConverter), "tap\0" (XenServer), or
 *   - the geometry is the maximum, C*H*S == 65535*16*255,
 * in which case it is current_size (@48) rounded down to 512. Everything else
 * ("vpc " Virtual PC, "vs  " Virtual Server, "qemu", unknown creators) reads
 * CHS. disk2vhd writes "d2v\0", with a NUL, which qemu 7.2 does not match
 * (older qemu matched "d2v" with strncmp, because "images created with
 * disk2vhd report a far higher virtual size than expected with the cyls *
 * heads * sectors_per_cyl formula": disk2vhd writes the maximum geometry even
 * for small disks); qemu 7.2 reads such an image from current_size through
 * its geometry, and so does this rule.
 *
 * Writing (a request of R bytes, ts = R rounded up to 512, in sectors):
 *   - creators whose tools use current_size (qemu's list above, and "d2v\0"
 *     when the image has the maximum geometry): the size is exact (ts*512);
 *     the geometry stays the maximum when the image has it, else it is the
 *     spec's geometry for ts (which only rounds down; nobody reads it as the
 *     size). A "d2v\0" image with the maximum geometry keeps it, so qemu
 *     still reads current_size.
 *   - every other image: the size is the smallest C*H*S >= ts that the spec's
 *     geometry algorithm yields, as `qemu-img create -f vpc` rounds, and
 *     current_size is set to it, so readers of either field agree; from
 *     65535*16*255 sectors up the geometry is the maximum and the size exact.
 *     This covers "d2v\0" without the maximum geometry, which qemu reads by
 *     CHS (and disk2vhd's readers by current_size: now the same number).
 * The round-up is below one cylinder of the largest geometry (16 heads * 255
 * sectors): new_size - request < INSTAR_VHD_MAX_ROUNDING, the slack the
 * host's verify allows a VHD (vmm/verify.c; proof in vhd_size.c). */
#ifndef INSTAR_VHD_SIZE_H
#define INSTAR_VHD_SIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INSTAR_VHD_SECTOR 512u
/* footer fields the rule reads or writes (big-endian) */
#define INSTAR_VHD_F_CREATOR 28
#define INSTAR_VHD_F_ORIG_SIZE 40
#define INSTAR_VHD_F_CUR_SIZE 48
#define INSTAR_VHD_F_CYL 56
#define INSTAR_VHD_F_HEADS 58
#define INSTAR_VHD_F_SPT 59
#define INSTAR_VHD_MAX_SECTORS 0xff000000ull	      /* qemu's limit: 2040 GiB */
#define INSTAR_VHD_MAX_GEOMETRY (65535ull * 16 * 255) /* sectors */
#define INSTAR_VHD_MAX_ROUNDING (16ull * 255 * 512)   /* bytes, exclusive */

struct instar_vhd_chs {
	uint32_t cyls, heads, spt;
};

/* True when readers take footer's size from current_size, not from CHS. */
bool instar_vhd_reads_current_size(const uint8_t *footer);

/* The virtual size readers (qemu 7.2, the probe, the planner) report for a
 * footer (512 bytes; the checksum is not checked here). */
uint64_t instar_vhd_virtual_size(const uint8_t *footer);

/* The VHD spec's geometry for a number of sectors (capped at the maximum);
 * C*H*S may be below it. */
void instar_vhd_geometry(uint64_t sectors, struct instar_vhd_chs *ret);

/* The size (bytes) and geometry a resize of the image with this footer to
 * request bytes writes (current_size and original_size both get the size).
 * 0; -1 when the request is above INSTAR_VHD_MAX_SECTORS sectors; -2 if
 * the geometry search failed (it cannot: see vhd_size.c). */
int instar_vhd_resize_size(const uint8_t *footer, uint64_t request, uint64_t *ret_size,
			   struct instar_vhd_chs *ret_chs);

/* The VHD checksum of len bytes: the one's complement of their byte sum,
 * the 4 bytes at csum_off left out (footer: 512 @64, dynamic header: 1024
 * @36). */
uint32_t instar_vhd_checksum(const uint8_t *b, uint32_t len, uint32_t csum_off);

#define INSTAR_VHD_TYPE_FIXED 2u
#define INSTAR_VHD_TYPE_DYNAMIC 3u
#define INSTAR_VHD_TYPE_DIFF 4u
#define INSTAR_VHD_F_TYPE 60
#define INSTAR_VHD_F_CSUM 64

/* Which footer opens the image: qemu 7.2's vpc_open (block/vpc.c) reads
 * the first sector when it begins with "conectix", else the last one, which
 * must then say "conectix" and type fixed; the footer it reads must have a
 * good checksum and a size of at most INSTAR_VHD_MAX_SECTORS sectors.
 * instar's one difference: a first sector with the cookie but a type other
 * than dynamic or differencing (a fixed disk whose data begins with a
 * footer) gives way to the last sector when that has the cookie.
 * first: the file's first 512 bytes (zeros past its end); last: its last
 * 512, NULL when the file is shorter. */
enum instar_vhd_footer_pick {
	INSTAR_VHD_FOOTER_FIRST,
	INSTAR_VHD_FOOTER_LAST,
	INSTAR_VHD_FOOTER_REFUSED,  /* *ret_msg: qemu's words */
	INSTAR_VHD_FOOTER_TOO_LARGE /* -EFBIG without a message: qemu says
				      "Could not open 'FILE': File too large" */
};
enum instar_vhd_footer_pick instar_vhd_footer_open(const uint8_t *first, const uint8_t *last,
						   const char **ret_msg);

#endif
