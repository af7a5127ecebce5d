/* vmm/commit.c — the commit a successful guest earns: the checks before the
 * first write (time left, space, size limit), the staged writes applied in
 * the guest's order with the final length and syncs, and after an error the
 * rollback and the report of what the image now is. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "probe_read.h"
#include "run.h"
#include "timing.h"

static uint32_t vmm_run_err_of(int e)
{
	return e == -ENOSPC || e == -EDQUOT ? INSTAR_ERR_NO_SPACE
	       : e == -EFBIG		    ? INSTAR_ERR_TOO_LARGE
					    : INSTAR_ERR_IO;
}

/* What the commit may cost, estimated high: every barrier an fdatasync of a
 * slow disk, every byte written at a slow disk's speed (fallocate of
 * preallocated ranges costs no data writes). The numbers are in SECURITY.md. */
#define VMM_COMMIT_SYNC_NS (50ull * 1000000)
#define VMM_COMMIT_BYTES_PER_S (64ull << 20)

static uint64_t vmm_run_commit_cost_ns(const struct vmm_blk_staged *s)
{
	/* the barriers, the final sync and the length */
	return (s->nflush + 2) * VMM_COMMIT_SYNC_NS +
	       s->data_bytes / VMM_COMMIT_BYTES_PER_S * 1000000000ull +
	       s->data_bytes % VMM_COMMIT_BYTES_PER_S * 1000000000ull / VMM_COMMIT_BYTES_PER_S;
}

static void vmm_run_where(char *dst, size_t cap, const struct vmm_ovl_where *w, int e)
{
	if (w->len)
		snprintf(dst, cap, "%s the image at offset %llu (%llu bytes) failed: %s", w->what,
			 (unsigned long long)w->off, (unsigned long long)w->len, strerror(-e));
	else
		snprintf(dst, cap, "%s the image failed: %s", w->what, strerror(-e));
}

/* A refusal here leaves the file as it was (a reservation may have allocated
 * blocks; putting the length back frees those past the end). */
int vmm_run_precommit(struct vmm_run *r, int fd, struct instar_resize_result *ret)
{
	const uint64_t orig_size = r->gcfg.file_size;
	struct vmm_blk_staged s;
	struct vmm_ovl_where w;
	uint64_t now = vmm_now_ns(), cost;
	int e;

	vmm_blk_staged(r->blk, &s);
	cost = vmm_run_commit_cost_ns(&s);
	if (now > r->deadline_ns || cost > r->deadline_ns - now) {
		ret->error = INSTAR_ERR_TIMEOUT;
		snprintf(ret->detail, sizeof(ret->detail),
			 "the commit (%zu barriers, %llu bytes) could take %llu ms, more than "
			 "the time left",
			 s.nflush, (unsigned long long)s.data_bytes,
			 (unsigned long long)(cost / 1000000));
		return -ETIMEDOUT;
	}
	e = vmm_blk_reserve(r->blk, ret->file_size_after, &w);
	if (e) {
		if (ftruncate(fd, (off_t)orig_size) < 0) {
			/* the length never changed: nothing to report */
		}
		ret->error = vmm_run_err_of(e);
		vmm_run_where(ret->detail, sizeof(ret->detail), &w, e);
		return e;
	}
	vmm_timing_mark("reserved");
	return 0;
}

/* After a commit that failed with an error: the host puts the old bytes it
 * overwrote back and the old length (vmm_blk_rollback). Where it cannot (a
 * discard came first: plans discard only after the new size is live; or the
 * disk fails the rollback too), the plan's order left the old image or the
 * new one, and the host's probe tells which. A crash has no rollback: there
 * the plan's order alone decides. */
static void vmm_run_after_failure(struct vmm_run *r, int fd, uint64_t orig_size, bool crashed,
				  struct instar_resize_result *ret)
{
	struct instar_probe_info now;
	struct stat st;
	const char *state = "; the image may be damaged: check it";
	size_t n = strlen(ret->detail);

	if (!crashed && vmm_blk_rollback(r->blk) == 0) {
		state = "; the image is unchanged";
	} else if (fstat(fd, &st) == 0 && vmm_probe_fd(fd, (uint64_t)st.st_size, &now) == 0 &&
		   now.format == r->gcfg.format) {
		if (now.virtual_size == r->result.old_virtual_size)
			state = "; the image keeps its old size";
		else if (now.virtual_size == r->result.new_virtual_size)
			state = "; the image has its new size";
	}
	snprintf(ret->detail + n, sizeof(ret->detail) - n, "%s", state);
	ret->file_size_after = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : orig_size;
}

/* Writes the staged plan and the final length; only after guest success.
 * Syncs: one fdatasync per guest barrier that follows writes (in the commit),
 * one before a shrinking truncate that follows unsynced writes (so the cut
 * cannot reach the disk before the metadata that freed the tail), and one at
 * the end only if something is still unsynced. fdatasync, as qemu-img: the
 * length is part of what it makes durable. */
void vmm_run_commit(struct vmm_run *r, int fd, struct instar_resize_result *ret)
{
	const uint64_t orig_size = r->gcfg.file_size;
	struct vmm_ovl_where w;
	int e = vmm_blk_commit(r->blk, &w);
	/* crashed: as after a crash, only the plan's order decides (no rollback) */
	bool dirty = vmm_blk_commit_unsynced(r->blk), crashed = e == -ECANCELED;
	struct stat st;

	if (!e && fstat(fd, &st) < 0) {
		e = -errno;
		w = (struct vmm_ovl_where){.what = "checking the length of", .off = 0, .len = 0};
	}
	if (!e && (uint64_t)st.st_size != ret->file_size_after) {
		if (dirty && (uint64_t)st.st_size > ret->file_size_after) {
			w = (struct vmm_ovl_where){.what = "syncing", .off = 0, .len = 0};
			if (fdatasync(fd) < 0)
				e = -errno;
			dirty = false;
		}
		w = (struct vmm_ovl_where){.what = "setting the length of", .off = 0, .len = 0};
		if (!e && ftruncate(fd, (off_t)ret->file_size_after) < 0)
			e = -errno;
		/* a cut tail is gone: no rollback can bring the old image back */
		if (ret->file_size_after < orig_size)
			crashed = true;
		dirty = true;
	}
	vmm_timing_mark("committed");
	if (!e && dirty && fdatasync(fd) < 0) {
		e = -errno;
		w = (struct vmm_ovl_where){.what = "syncing", .off = 0, .len = 0};
	}
	vmm_timing_mark("synced");
	if (e) {
		ret->error = vmm_run_err_of(e);
		vmm_run_where(ret->detail, sizeof(ret->detail), &w, e);
		vmm_run_after_failure(r, fd, orig_size, crashed, ret);
	}
}
