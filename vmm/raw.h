/* vmm/raw.h — resizing a raw image on the host (raw never boots a guest):
 * file-posix semantics of qemu 7.2 (docs/qemu.md §1.5, §2). */
#ifndef VMM_RAW_H
#define VMM_RAW_H

#include <stdint.h>

struct vmm_raw_result {
	uint64_t file_size_before; /* st_size before */
	uint64_t file_size_after;  /* st_size after (also on failure) */
	const char *what;	   /* on failure: qemu's message before ": <strerror>",
				      e.g. "Could not resize file" */
};

/* Sets fd's length to new_size with prealloc (enum instar_prealloc; metadata
 * is refused with -ENOTSUP and what = NULL: "Unsupported preallocation mode:
 * metadata"). falloc reserves the new range with posix_fallocate, full
 * writes zeros over it. Growing an empty file also writes zeros over its
 * first 512 bytes (4096 from a new size of 4096 on), as qemu does. On a
 * failed preallocation the old length is restored. Ends with fsync.
 * Returns 0 or a negative errno. */
int vmm_raw_resize(int fd, uint64_t new_size, uint32_t prealloc, struct vmm_raw_result *ret);

#endif
