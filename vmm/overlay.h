/* vmm/overlay.h — host side: the bounded store of a guest's staged writes,
 * kept in the guest's order and applied to the image only by a commit. */
#ifndef VMM_OVERLAY_H
#define VMM_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vmm_ovl_kind {
	VMM_OVL_WRITE = 1,   /* data bytes */
	VMM_OVL_ZERO = 2,    /* write-zeroes: allocated zero bytes after commit */
	VMM_OVL_DISCARD = 3, /* reads as zeros now; hole punched at commit */
	VMM_OVL_FLUSH = 4,   /* barrier: fdatasync at commit */
};

struct vmm_ovl_op {
	uint64_t off;
	uint64_t len;
	uint8_t *data; /* VMM_OVL_WRITE only; owned by the overlay */
	enum vmm_ovl_kind kind;
};

/* One piece of the read view: [start, end) reads src, or zeros if src is NULL.
 * Extents are sorted and never overlap, so a read is a binary search. */
struct vmm_ovl_ext {
	uint64_t start;
	uint64_t end;
	const uint8_t *src;
};

struct vmm_overlay {
	struct vmm_ovl_op *ops;
	size_t nops, cap_ops, max_ops;
	struct vmm_ovl_ext *ext;
	size_t next, cap_ext;
	uint64_t data_bytes, data_limit;
	bool exceeded; /* sticky: once a bound was hit, every later op fails */
};

/* No stop: vmm_overlay_commit() applies every op. */
#define VMM_OVL_NO_STOP UINT64_MAX

void vmm_overlay_init(struct vmm_overlay *o, uint64_t data_limit, size_t max_ops);
void vmm_overlay_fini(struct vmm_overlay *o);

/* Stage a write of len bytes at off. On success the overlay owns data (a
 * malloc'd buffer); on failure the caller still owns it. -ENOSPC when a bound
 * is (or was already) exceeded, -ENOMEM. */
int vmm_overlay_write(struct vmm_overlay *o, uint64_t off, uint8_t *data, uint64_t len);
/* Stage write-zeroes / discard / a flush barrier. Same errors. */
int vmm_overlay_zero(struct vmm_overlay *o, uint64_t off, uint64_t len);
int vmm_overlay_discard(struct vmm_overlay *o, uint64_t off, uint64_t len);
int vmm_overlay_flush(struct vmm_overlay *o);

/* Lay the staged ops over buf, which holds the base contents of [off, off+len). */
void vmm_overlay_read(const struct vmm_overlay *o, uint64_t off, void *buf, uint64_t len);

/* Apply the ops to fd in order: pwrite, zero range, punch hole (inside the
 * file only), fdatasync at each barrier that follows applied ops (a leading or
 * repeated barrier orders nothing and costs no sync). Stops with -ECANCELED
 * once stop_after write/zero/discard ops have been applied (fault injection;
 * VMM_OVL_NO_STOP otherwise). *ret_unsynced tells whether ops were applied
 * after the last fdatasync, i.e. whether the caller still has to sync.
 * 0 or a negative errno. */
int vmm_overlay_commit(const struct vmm_overlay *o, int fd, uint64_t stop_after,
		       bool *ret_unsynced);

#endif
