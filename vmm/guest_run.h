/* vmm/guest_run.h — run one resize operation in a guest and commit it. */
#ifndef VMM_GUEST_RUN_H
#define VMM_GUEST_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "abi.h"
#include "cli_limits.h"

struct vmm_guest_opts {
	const char *guest_dir;	/* NULL: $INSTAR_GUEST_DIR, build tree, libexecdir */
	uint32_t timeout_ms;	/* watchdog; 0 = INSTAR_TIMEOUT_DEFAULT_S */
	uint64_t overlay_limit; /* staged-write bound in bytes; 0 =
				   INSTAR_MAX_STAGED_DEFAULT */
	uint64_t ram_size;	/* guest RAM; 0 = default (32 MiB) */
	bool debug;		/* forward guest log text to stderr */
	int keep_fd;		/* > 2: one more fd the caller needs after the run
				   (an external data file); kept through the sandbox */
	/* The backing chain (cfg->backing_devs files, read-only fds; format
	 * in cfg->backing_fmt): read-only virtio-blk devices 1..n. Their
	 * lengths are taken from the fds. Kept through the sandbox, only read. */
	int backing_fd[INSTAR_BACKING_MAX_DEVS];
	bool verify;	/* check a success claim against the staged view
			   before the commit (vmm_guest_resize always does) */
	bool open_only; /* the guest's verdict alone: nothing is verified
			   or committed, the staged writes are dropped (the
			   CLI asks whether the image's open fails first) */
};

/* Boots core.bin + resize.bin with fd as virtio-blk device 0 and runs the
 * resize cfg describes. When the guest reports success, the host checks the
 * claim against the staged view (verify.h; GUEST_MISBEHAVED if it fails),
 * checks the commit can finish within the time left and reserves the space
 * it needs (TIMEOUT, NO_SPACE, TOO_LARGE before anything is written), then
 * applies the staged writes to fd in the guest's order (fdatasync at each
 * guest flush), sets the file length to ret->file_size_after and syncs.
 * Returns 0 whenever ret is filled: ret->error is INSTAR_OK or the error
 * (guest-reported, or found by the host) with ret->detail set, and
 * file_size_after the file's real length. An error found before the commit
 * leaves the file's bytes and length as they were. An error during the
 * commit: the host writes back the old bytes it overwrote and the old length
 * (ret->detail ends "the image is unchanged"); where it cannot (a discard
 * came first, a shrink already cut the tail, the rollback failed too, or
 * the commit was stopped as by a crash) the plan's order should have left
 * the old image or the new one, and ret->detail says which size the host's
 * probe found, or that the image may be damaged when it finds neither.
 * Returns a negative errno only when it could not even start (no KVM, guest
 * binaries missing), with ret->detail saying what. */
int vmm_guest_resize(int fd, const struct instar_resize_config *cfg, const struct vmm_guest_opts *o,
		     struct instar_resize_result *ret);

#endif
