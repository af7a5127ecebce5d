/* vmm/lock.h — QEMU-compatible image locks: OFD byte-range locks on bytes
 * 100+i ("I hold permission i") and 200+i ("I do not share permission i"),
 * as block/file-posix.c takes them (docs/qemu.md §4). */
#ifndef VMM_LOCK_H
#define VMM_LOCK_H

#include <stdbool.h>

enum vmm_lock_failure {
	VMM_LOCK_FAIL_NONE = 0,
	VMM_LOCK_FAIL_BYTE,   /* "Failed to lock byte N" (no hint line) */
	VMM_LOCK_FAIL_PERM,   /* "Failed to get \"<perm>\" lock" */
	VMM_LOCK_FAIL_SHARED, /* "Failed to get shared \"<perm>\" lock" */
};

struct vmm_lock_error {
	enum vmm_lock_failure kind;
	unsigned byte;	  /* the byte that failed */
	const char *perm; /* "consistent read", "write", "write unchanged", "resize" */
	int err;	  /* 0 for a conflict, else the fcntl errno (appended as
			     ": <strerror>" like qemu) */
};

/* Takes the locks `qemu-img resize` takes on fd: F_RDLCK on 100, 101, 103
 * (and 201, 203 when metadata_format: a format driver unshares write and
 * resize), then tests that nobody else holds 200, 201, 203 (and 101, 103).
 * The locks stay until fd is closed. Returns 0, or -EBUSY/-errno with ret
 * filled and every byte it took released. Without OFD lock support it does
 * nothing and returns 0, as qemu's locking=auto. */
int vmm_image_lock(int fd, bool metadata_format, struct vmm_lock_error *ret);

#endif
