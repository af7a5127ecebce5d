/* vmm/verify.h — the host's check of a guest's success claim, made on the
 * staged view before the first staged byte reaches the file. */
#ifndef VMM_VERIFY_H
#define VMM_VERIFY_H

#include <stddef.h>

#include "abi.h"
#include "probe.h"
#include "virtio_blk.h"

/* The most a format may round a requested virtual size up (VHD: to the CHS
 * geometry, at most one cylinder of 16 x 255 sectors; VHDX: to its logical
 * sector; LUKS: to whole 512-byte sectors). qcow2 and vmdk resize to the
 * exact request. */
uint64_t vmm_verify_max_rounding(uint32_t format);

/* What a preallocating grow of cfg may allocate or add to the length past
 * what its staged ops reach: the new range, 1/16 of it for the tables that
 * map it (L2 tables of 512-byte clusters) and 256 MiB for whole blocks (a
 * vhdx block is at most 256 MiB). Saturates. */
uint64_t vmm_verify_prealloc_allowance(const struct instar_resize_config *cfg);

/* Requires of a guest that reported success (g->error == INSTAR_OK) on the
 * resize cfg describes, with before the host's probe of the image before the
 * run: the old size it was given and the new size asked for (or the format's
 * rounding of it), an action that matches them and the shrink permission, a
 * final file length at or past every staged write, to the sector (a shrink's
 * writes may end past it, but not past the old length), below the old length only
 * for a permitted shrink (or, for LUKS with --shrink, by less than a sector
 * while its rounded size stays) and above what the staged ops reach only by what
 * preallocation justifies; and the staged view, probed by the host as the
 * file will be after the commit, in the same format and subformat, as
 * encrypted as before, with that
 * virtual size and the same backing and data-file names. 0, or -EPROTO with
 * why set. */
/* The final-length part of vmm_verify_resize, on the staged ops' summary s. A
 * final length that ends inside the last sector written cuts off none of the
 * writes (the device writes whole sectors; a vmdk descriptor's text ends
 * mid-sector). */
int vmm_verify_length(const struct instar_resize_config *cfg, const struct instar_resize_result *g,
		      const struct vmm_blk_staged *s, char *why, size_t whylen);

int vmm_verify_resize(struct vmm_blk *b, const struct instar_resize_config *cfg,
		      const struct instar_probe_info *before, const struct instar_resize_result *g,
		      char *why, size_t whylen);

/* The extents a twoGbMaxExtentFlat descriptor (before: the host's probe of
 * it, vmdk_split_ok) has at new_size: 0 and *ret, or -1 when there is no
 * such layout (not split, a size not a multiple of 512, 0, too many
 * extents, preallocation=metadata). The host sizes the files and verify
 * checks the staged descriptor by this one answer. */
int vmm_verify_split_target(const struct instar_probe_info *before, uint64_t new_size,
			    uint32_t prealloc, struct instar_vmdk_split *ret);

#endif
