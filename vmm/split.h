/* vmm/split.h — the extent files of a twoGbMaxExtentFlat or
 * twoGbMaxExtentSparse descriptor: the host decides them
 * (shared/vmdk_split.h's rule, the same answer verify checks the guest's
 * staged descriptor against) and creates, sizes and removes them itself,
 * under the policy of vmm/external.h. The guest only rewrites the
 * descriptor text.
 *
 * Order (crash safety): a grow sizes the last extent (flat) and creates the
 * new ones (sparse: header and directories as qemu-img writes them;
 * synced, directory included) before the descriptor's commit; a shrink
 * cuts the extent at the new end (flat) and removes the dropped ones after
 * it. A sparse split never changes an extent it keeps: qemu reads each
 * extent's size from its header, so the descriptor is the one commit. At every point the descriptor
 * on disk, old or new, names only files present at least as long as it says; a crash may leave
 * unreferenced extent files (a grow's new files before its commit, a shrink's dropped ones after
 * it). */
#ifndef VMM_SPLIT_H
#define VMM_SPLIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "external.h"
#include "probe.h"

struct vmm_split {
	const struct vmm_ext_policy *pol;
	int image_fd;
	const struct instar_probe_info *info; /* the descriptor's probe */
	struct instar_vmdk_split want;	      /* with target */
	bool target;			      /* the rule gave a layout and the host prepared it */
	bool grow;			      /* more sectors than before */
	int fd;	       /* flat grow: the old last extent; flat shrink: the one at
			  the cut; else -1 */
	off_t fd_len;  /* its length before */
	uint32_t nids; /* grow: files created; shrink: dropped files checked */
	struct stat *ids;
	uint32_t drop_from; /* shrink: the old index of the first dropped file */
	bool copied;	    /* sparse shrink inside an extent: its copy exists */
	struct stat copy_id;
};

/* Before the guest: opens every extent under the policy (as qemu does) and,
 * for a sparse split, checks that each is a sparse extent qemu opens with
 * the size its line gives (else ENOTSUP);
 * computes the layout at new_size and, for a grow, sizes the last extent
 * (flat) and creates the new ones (undone on failure); for a shrink, opens
 * the extent at the cut (flat) and checks every dropped one. A size the
 * rule has no layout for prepares nothing (the guest refuses it, and
 * verify refuses any success claim). 0, or -1 with err set (nothing
 * changed) and *ret_errno. */
int vmm_split_prepare(struct vmm_split *s, uint64_t new_size, uint32_t prealloc, int *ret_errno,
		      char *err, size_t errlen);

/* After a failed run whose descriptor did not take the new size: a grow's
 * files go back (the last extent's length, the created files removed). */
void vmm_split_undo(struct vmm_split *s);

/* After the commit, once the descriptor on disk has the new layout: a
 * shrink cuts the extent at the new end and removes the dropped files. 0,
 * or -1 with err set. */
int vmm_split_finish(struct vmm_split *s, char *err, size_t errlen);

void vmm_split_close(struct vmm_split *s);

/* Whether the descriptor fd now has the layout s prepared. */
bool vmm_split_committed(const struct vmm_split *s, int fd);

#endif
