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

/* What the budget charges (SECURITY.md, "Budgets"):
 * - a write: its bytes (they are held in memory);
 * - write-zeroes inside the staged end of file: its bytes (a file system
 *   without FALLOC_FL_ZERO_RANGE gets them written by hand);
 * - write-zeroes past the staged end of file: nothing when no preallocation
 *   was asked for (the commit only extends the length: a hole, never
 *   allocated, never written), else its bytes against prealloc_limit;
 * - a discard: nothing (it only punches holes inside the old file; its cost
 *   is one fallocate, bounded by max_ops);
 * - a flush barrier: one of max_flush (each costs an fdatasync). */
struct vmm_overlay {
	struct vmm_ovl_op *ops;
	size_t nops, cap_ops, max_ops;
	size_t nflush, max_flush;
	struct vmm_ovl_ext *ext;
	size_t next, cap_ext;
	uint64_t data_bytes, data_limit;
	uint64_t prealloc_bytes, prealloc_limit; /* limit 0: no preallocation */
	uint64_t eof;	    /* staged end of file: base length, extended by ops */
	uint64_t write_end; /* end of the furthest staged write (0: none) */
	bool exceeded;	    /* sticky: once a bound was hit, every later op fails */
	/* The commit's undo log: what it overwrote, so that a commit failing
	 * with an error (not a crash) can put the old file back. */
	struct vmm_ovl_undo *undo;
	size_t nundo, cap_undo;
	uint64_t undo_size; /* the file's length before the commit */
	bool undo_lost;	    /* a hole was punched: the old bytes are gone */
};

/* No stop: vmm_overlay_commit() applies every op. */
#define VMM_OVL_NO_STOP UINT64_MAX
/* Flush barriers one plan may stage (each costs an fdatasync at commit). */
#define VMM_OVL_MAX_FLUSH 64u

/* Where a commit or a reservation failed, for the message. */
struct vmm_ovl_where {
	const char *what; /* "writing", "zeroing", "punching a hole in",
			     "syncing", "extending", "reserving space in" */
	uint64_t off, len;
};

/* The old bytes of one range a commit overwrote inside the old file. */
struct vmm_ovl_undo {
	uint64_t off, len;
	uint8_t *old;
};

void vmm_overlay_init(struct vmm_overlay *o, uint64_t data_limit, size_t max_ops);
/* The base file's length (what lies past it is "past the end of file") and
 * the preallocation allowance (0: none asked for). Call before staging. */
void vmm_overlay_set_base(struct vmm_overlay *o, uint64_t file_size, uint64_t prealloc_limit);
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

/* Before the first byte is written: reserve the blocks the commit will need
 * (fallocate FALLOC_FL_KEEP_SIZE over every staged write, every preallocated
 * zero range and the last byte of final_size), so that a full disk or the
 * file system's size limit refuses the resize while the file is untouched
 * (its contents and length stay; only unwritten blocks may have been
 * allocated). Where the file system has no fallocate, the free space is
 * checked with fstatvfs instead. 0, -ENOSPC, -EFBIG or another -errno with
 * *ret_where set. */
int vmm_overlay_reserve(const struct vmm_overlay *o, int fd, uint64_t final_size,
			struct vmm_ovl_where *ret_where);

/* Apply the ops to fd in order: pwrite, zero range, punch hole (inside the
 * file only), fdatasync at each barrier that follows applied ops (a leading or
 * repeated barrier orders nothing and costs no sync). Zero ranges past the
 * end of file only extend it unless preallocation was asked for. Stops with
 * -ECANCELED once stop_after write/zero/discard ops have been applied (fault
 * injection; VMM_OVL_NO_STOP otherwise). *ret_unsynced tells whether ops were
 * applied after the last fdatasync, i.e. whether the caller still has to
 * sync. Before it overwrites bytes of the old file it keeps them in the undo
 * log (memory: at most what the budget let the guest stage). 0 or a negative
 * errno with *ret_where saying which operation. */
int vmm_overlay_commit(struct vmm_overlay *o, int fd, uint64_t stop_after, bool *ret_unsynced,
		       struct vmm_ovl_where *ret_where);

/* After a commit that failed with an error: write back the old bytes of
 * every range it overwrote (newest first), put the old length back and
 * sync. 0 when the file is as it was before the commit; -ESTALE when that is
 * impossible (a discard already punched old bytes away: plans discard only
 * after the new size is committed), or the error that stopped it. */
int vmm_overlay_rollback(struct vmm_overlay *o, int fd);

#endif
