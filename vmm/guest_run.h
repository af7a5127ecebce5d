/* vmm/guest_run.h — run one resize operation in a guest and commit it. */
#ifndef VMM_GUEST_RUN_H
#define VMM_GUEST_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "abi.h"

/* Default bound on the bytes a guest may stage (--max-staged). */
#define VMM_OVERLAY_DEFAULT (1ull << 30)

struct vmm_guest_opts {
	const char *guest_dir;	/* NULL: $INSTAR_GUEST_DIR, build tree, libexecdir */
	uint32_t timeout_ms;	/* watchdog; 0 = default 30 s */
	uint64_t overlay_limit; /* staged-write bound in bytes; 0 = default */
	uint64_t ram_size;	/* guest RAM; 0 = default (32 MiB) */
	bool debug;		/* forward guest log text to stderr */
	int keep_fd;		/* > 2: one more fd the caller needs after the run
				   (an external data file); kept through the sandbox */
	bool verify;		/* check a success claim against the staged view
				   before the commit (vmm_guest_resize always does) */
};

/* Boots core.bin + resize.bin with fd as virtio-blk device 0 and runs the
 * resize cfg describes. When the guest reports success, the host checks the
 * claim against the staged view (verify.h; GUEST_MISBEHAVED if it fails),
 * checks the commit can finish within the time left and reserves the space
 * it needs (TIMEOUT, NO_SPACE, TOO_LARGE before anything is written), then
 * applies the staged writes to fd in the guest's order (fdatasync at each
 * guest flush), sets the file length to ret->file_size_after and syncs.
 * Returns 0 whenever ret is filled: ret->error is INSTAR_OK or the error
 * (guest-reported, or found by the host) with ret->detail set. An error found
 * before the commit leaves the file byte-identical. An I/O error during the
 * commit leaves the old image (its length put back) or the new one, and
 * ret->detail says which, with file_size_after the real length. Returns a
 * negative errno only when it could not even start (no KVM, guest binaries
 * missing), with ret->detail saying what. */
int vmm_guest_resize(int fd, const struct instar_resize_config *cfg, const struct vmm_guest_opts *o,
		     struct instar_resize_result *ret);

#endif
