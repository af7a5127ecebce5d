/* vmm/virtio_blk.h — host side: the virtio-mmio (version 2) block device the
 * guest sees its image through. Writes are staged, never applied during the
 * run; vmm_blk_commit() applies them once the guest reported success. */
#ifndef VMM_VIRTIO_BLK_H
#define VMM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli_limits.h"
#include "guestmem.h"
#include "overlay.h"

/* Device limits the guest can rely on (and INSTAR_BLK_MAX_REQ_BYTES, in
 * virtio_mmio.h). */
#define VMM_BLK_QUEUE_MAX 256u		    /* QueueNumMax; also max chain length */
#define VMM_BLK_MAX_SEGS 16u		    /* discard / write-zeroes segments */
#define VMM_BLK_MAX_ZERO_SECTORS (1u << 31) /* per discard / write-zeroes segment */
#define VMM_BLK_OVERLAY_MAX_OPS 32768u	    /* staged ops (incl. barriers) */

struct vmm_blk;

struct vmm_blk_opts {
	int fd;			 /* the image; only read (pread) until commit */
	uint64_t file_size;	 /* bytes of fd the guest sees; beyond reads as zeros */
	uint64_t capacity_bytes; /* device size, rounded up to whole 512-byte sectors */
	uint64_t overlay_limit;	 /* staged data bytes; 0 = INSTAR_MAX_STAGED_DEFAULT */
	uint64_t prealloc_limit; /* zero bytes past the end of file that may be
				    preallocated; 0 = no preallocation asked for
				    (such ranges only extend the length) */
	bool read_only;		 /* a backing file: VIRTIO_BLK_F_RO, no discard
				    or write-zeroes; a write, write-zeroes or
				    discard request fails with IOERR, stages
				    nothing and sets vmm_blk_write_refused() */
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

/* A range of the device's MMIO window, as offsets from its base. */
struct vmm_blk_mmio_range {
	uint64_t off, len;
};

/* The registers whose writes change only state the guest can observe
 * through a later MMIO read or QueueNotify, both of which exit: every one
 * but QueueNotify, below the config space. KVM may queue writes to them
 * without an exit (vmm_kvm_coalesce), as long as the queued writes reach
 * vmm_blk_mmio_write() in order before the next exit is handled. Sets
 * *ret to the ranges and returns how many. */
size_t vmm_blk_coalescable(const struct vmm_blk_mmio_range **ret);

/* Completes every request the driver made available (what QueueNotify does).
 * Exposed for fuzz targets: set a device up over a memory buffer and call this
 * after writing a hostile ring. 0, or -EPROTO when the ring was malformed and
 * the device went to DEVICE_NEEDS_RESET. */
int vmm_blk_process_queue(struct vmm_blk *b);

/* A read-only device was asked to write, write zeroes or discard: the run
 * must be refused (GUEST_MISBEHAVED). Sticky. */
bool vmm_blk_write_refused(const struct vmm_blk *b);

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
 * Test builds only (instar-test, never the installed instar): the commit
 * may stop early as a crash would (vmm_hook_commit_stop_after(),
 * test_hooks.h); fault-injection tests then check the image is the old or
 * the new one. */
int vmm_blk_commit(struct vmm_blk *b, struct vmm_ovl_where *ret_where);

/* After a commit that failed with an error: the old file back (see
 * vmm_overlay_rollback). */
int vmm_blk_rollback(struct vmm_blk *b);

/* Before the commit: reserve what it needs (see vmm_overlay_reserve). */
int vmm_blk_reserve(struct vmm_blk *b, uint64_t final_size, struct vmm_ovl_where *ret_where);

/* The staged view the guest saw (the file, zeros past its length, the
 * staged ops on top): what the image will be after the commit, up to its
 * final length. For the host's check before the commit. 0 or -errno. */
int vmm_blk_view_read(struct vmm_blk *b, uint64_t off, void *buf, uint64_t len);

/* What the guest staged, for the checks before the commit. */
struct vmm_blk_staged {
	uint64_t write_end;	 /* end of the furthest staged write; 0: none */
	uint64_t eof;		 /* end of file after every staged op */
	uint64_t data_bytes;	 /* bytes written or zeroed inside the file */
	uint64_t prealloc_bytes; /* bytes preallocated past the end of file */
	size_t nops, nflush;
};
void vmm_blk_staged(const struct vmm_blk *b, struct vmm_blk_staged *ret);

/* The first host read of the image that failed while the guest ran:
 * -errno and its offset, or 0 if none did. The guest only saw an I/O error
 * status; the host reports the real cause. */
int vmm_blk_read_error(const struct vmm_blk *b, uint64_t *ret_off);

/* After vmm_blk_commit(): were ops applied after its last fdatasync (or did
 * it fail midway)? Then the caller's final sync is needed. */
bool vmm_blk_commit_unsynced(const struct vmm_blk *b);

#endif
