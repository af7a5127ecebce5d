/* vmm/virtio_blk.h — host side: the virtio-mmio (version 2) block device the
 * guest sees its image through. Writes are staged, never applied during the
 * run; vmm_blk_commit() applies them once the guest reported success. */
#ifndef VMM_VIRTIO_BLK_H
#define VMM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "guestmem.h"

/* Device limits the guest can rely on. */
#define VMM_BLK_QUEUE_MAX 256u		       /* QueueNumMax; also max chain length */
#define VMM_BLK_MAX_REQ_BYTES (4u << 20)       /* data bytes of one read/write request */
#define VMM_BLK_MAX_SEGS 16u		       /* discard / write-zeroes segments */
#define VMM_BLK_MAX_ZERO_SECTORS (1u << 31)    /* per discard / write-zeroes segment */
#define VMM_BLK_OVERLAY_DEFAULT (256ull << 20) /* overlay_limit 0 means this */
#define VMM_BLK_OVERLAY_MAX_OPS 32768u	       /* staged ops (incl. barriers) */

struct vmm_blk;

struct vmm_blk_opts {
	int fd;			 /* the image; only read (pread) until commit */
	uint64_t file_size;	 /* bytes of fd the guest sees; beyond reads as zeros */
	uint64_t capacity_bytes; /* device size, rounded up to whole 512-byte sectors */
	uint64_t overlay_limit;	 /* staged data bytes; 0 = VMM_BLK_OVERLAY_DEFAULT */
};

/* mem is copied; the mapping it describes must outlive the device. */
int vmm_blk_create(struct vmm_blk **ret, const struct vmm_guestmem *mem,
		   const struct vmm_blk_opts *o);
void vmm_blk_destroy(struct vmm_blk *b);

/* MMIO accesses at off within INSTAR_VIRTIO_MMIO_SIZE. Registers take aligned
 * 32-bit accesses, the config space 1/2/4/8-byte ones; anything else reads as
 * 0 or is ignored. A write to QueueNotify processes every available request
 * before it returns. */
void vmm_blk_mmio_read(struct vmm_blk *b, uint64_t off, void *data, uint32_t len);
void vmm_blk_mmio_write(struct vmm_blk *b, uint64_t off, const void *data, uint32_t len);

/* Completes every request the driver made available (what QueueNotify does).
 * Exposed for fuzz targets: set a device up over a memory buffer and call this
 * after writing a hostile ring. 0, or -EPROTO when the ring was malformed and
 * the device went to DEVICE_NEEDS_RESET. */
int vmm_blk_process_queue(struct vmm_blk *b);

/* Status register bit DEVICE_NEEDS_RESET is set (the ring was malformed). */
bool vmm_blk_needs_reset(const struct vmm_blk *b);

/* Reads see the file (zeros past file_size) with the staged ops on top; a
 * discarded range reads as zeros, though after commit it may keep its old
 * bytes where the file system has no holes, so a guest must not rely on it. */

/* A write hit the overlay bound and was failed with IOERR: the run must fail
 * with INSTAR_ERR_OVERLAY_LIMIT. Sticky. */
bool vmm_blk_overlay_exceeded(const struct vmm_blk *b);

/* Apply the staged ops to fd in the guest's order: writes (pwrite), write-zeroes
 * (allocated zeros, extending the file where needed), discards (holes, inside
 * the file only, best effort), fdatasync at each guest flush that follows writes. Does not set the
 * final file length nor fsync at the end: the caller does. 0 or -errno;
 * -ENOSPC without touching fd when the overlay had been exceeded.
 *
 * TEST BUILDS ONLY (compiled with INSTAR_TEST_HOOKS, i.e. instar-test, never
 * the installed instar): with INSTAR_TEST_COMMIT_STOP_AFTER=K in the
 * environment, commit stops with -ECANCELED right after applying K
 * write/zero/discard ops, as a crash would; fault-injection tests then check
 * the image is the old or the new one. */
int vmm_blk_commit(struct vmm_blk *b);

/* After vmm_blk_commit(): were ops applied after its last fdatasync (or did
 * it fail midway)? Then the caller's final sync is needed. */
bool vmm_blk_commit_unsynced(const struct vmm_blk *b);

#endif
