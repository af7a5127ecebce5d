/* vmm/guest_run.c — one resize in a guest, step by step: the image and the
 * binaries found, the VM and its block device made, the guest run under the
 * sandbox and the watchdog, then the verdict (outcome.c) and the commit that
 * only a successful guest earns (commit.c). What each guest exit does is in
 * exits.c, the timer in watchdog.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "guest_op.h"
#include "guest_run.h"
#include "loader.h"
#include "probe_read.h"
#include "run.h"
#include "sandbox.h"
#include "test_hooks.h"
#include "timing.h"
#include "verify.h"
#include "watchdog.h"

#define VMM_CAPACITY_SLACK (256ull << 20)

uint64_t vmm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The guest's disk: what the plan can need. The file, rounded to sectors;
 * room to append tables (1/16 of the new size covers qcow2 L2 tables of
 * 512-byte clusters, the largest per byte of any format) and 256 MiB for
 * whole blocks and table copies; and the whole new size only where the data
 * itself lives in the file past the old end: a preallocating grow, or a
 * fixed VHD/VHDX. */
static uint64_t vmm_run_capacity(uint64_t file_size, uint64_t new_size, bool data_in_file)
{
	const uint64_t cap = (uint64_t)INT64_MAX & ~511ull;
	uint64_t c = file_size;

	if (__builtin_add_overflow(c, 511, &c))
		return cap;
	c &= ~511ull;
	if ((data_in_file && __builtin_add_overflow(c, new_size, &c)) ||
	    __builtin_add_overflow(c, new_size / 16, &c) ||
	    __builtin_add_overflow(c, VMM_CAPACITY_SLACK, &c) || c > cap)
		return cap;
	return (c + 511) & ~511ull;
}

static int vmm_run_load(void *ctx, const struct vmm_guestmem *mem, char *err, size_t errlen)
{
	return vmm_loader_setup(mem, ctx, err, errlen);
}

/* The image's length, the binaries' paths, and the host's own probe of the
 * image (for the check of the guest's claim). ret->detail says what failed. */
static int vmm_run_new(struct vmm_run **ret_r, int fd, const struct instar_resize_config *cfg,
		       const struct vmm_guest_opts *o, const char *op_path, uint64_t t0,
		       struct instar_resize_result *ret)
{
	char dir[PATH_MAX];
	struct vmm_run *r;
	struct stat st;
	int e;

	if (fstat(fd, &st) < 0) {
		e = -errno;
		snprintf(ret->detail, sizeof(ret->detail), "cannot stat the image: %s",
			 strerror(-e));
		return e;
	}
	e = vmm_loader_find_dir(o->guest_dir, dir, sizeof(dir));
	if (e) {
		snprintf(ret->detail, sizeof(ret->detail), "guest directory path too long");
		return e;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(ret->detail, sizeof(ret->detail), "out of memory");
		return -ENOMEM;
	}
	snprintf(r->core_path, sizeof(r->core_path), "%s/core.bin", dir);
	if (!op_path) {
		snprintf(r->op_buf, sizeof(r->op_buf), "%s/resize.bin", dir);
		op_path = r->op_buf;
	}
	r->op_path = op_path;
	/* The guest sees the real length, whatever the caller believed. */
	r->gcfg = *cfg;
	r->gcfg.file_size = (uint64_t)st.st_size;
	if (cfg->backing_devs > INSTAR_BACKING_MAX_DEVS) {
		snprintf(ret->detail, sizeof(ret->detail), "too many backing devices");
		return -EINVAL;
	}
	for (uint32_t i = 0; i < cfg->backing_devs; i++) {
		struct stat bst;

		if (cfg->backing_fmt[i] != INSTAR_FMT_RAW &&
		    cfg->backing_fmt[i] != INSTAR_FMT_QCOW2) {
			snprintf(ret->detail, sizeof(ret->detail), "backing device %u: bad format",
				 i + 1);
			return -EINVAL;
		}
		if (o->backing_fd[i] < 0 || fstat(o->backing_fd[i], &bst) < 0 ||
		    !S_ISREG(bst.st_mode)) {
			snprintf(ret->detail, sizeof(ret->detail),
				 "backing device %u: not a regular file", i + 1);
			return -EBADF;
		}
		/* the guest sees the real length, as for the image */
		r->gcfg.backing_dev_len[i] = (uint64_t)bst.st_size;
	}
	r->debug = o->debug;
	r->t0 = t0;
	r->timeout_ms = o->timeout_ms ? o->timeout_ms : INSTAR_TIMEOUT_DEFAULT_S * 1000u;
	r->deadline_ns = t0 + (uint64_t)r->timeout_ms * 1000000ull;
	vmm_frame_decoder_init(&r->dec);
	*ret_r = r;
	if (o->verify) {
		/* what the image says now, for the check of the guest's claim */
		e = vmm_probe_fd(fd, r->gcfg.file_size, &r->before);
		if (e) {
			snprintf(ret->detail, sizeof(ret->detail), "reading the image failed: %s",
				 strerror(-e));
			return e;
		}
	}
	return 0;
}

/* The VM with both binaries loaded, and the guest's disk over fd. */
static int vmm_run_boot(struct vmm_run *r, int fd, const struct vmm_guest_opts *o,
			struct instar_resize_result *ret)
{
	const struct instar_resize_config *g = &r->gcfg;
	struct vmm_load_spec ls = {
	    .core_path = r->core_path,
	    .op_path = r->op_path,
	    .config = g,
	    .config_len = sizeof(*g),
	    .boot_flags = o->debug ? INSTAR_BOOT_DEBUG : 0,
	    .mmio_base = INSTAR_VIRTIO_MMIO_BASE,
	    .blk_devices = 1 + g->backing_devs,
	};
	struct vmm_blk_opts bo;
	int e;

	/* The binaries are loaded while a second thread sets up the vCPU. */
	e = vmm_kvm_create(&r->kvm, o->ram_size ? o->ram_size : INSTAR_RAM_DEFAULT, vmm_run_load,
			   &ls, ret->detail, sizeof(ret->detail));
	if (e)
		return e;
	r->kvm_up = true;
	vmm_timing_mark("vm_created");
	vmm_timing_mark("guest_loaded");

	r->capacity = vmm_run_capacity(g->file_size, g->new_virtual_size,
				       !o->verify || g->prealloc != INSTAR_PREALLOC_OFF ||
					   strcmp(r->before.subformat, "fixed") == 0);
	bo = (struct vmm_blk_opts){
	    .fd = fd,
	    .file_size = g->file_size,
	    .capacity_bytes = r->capacity,
	    .overlay_limit = o->overlay_limit,
	    .prealloc_limit =
		g->prealloc == INSTAR_PREALLOC_FALLOC || g->prealloc == INSTAR_PREALLOC_FULL
		    ? vmm_verify_prealloc_allowance(g)
		    : 0,
	};
	e = vmm_blk_create(&r->blk, &r->kvm.mem, &bo);
	if (e) {
		snprintf(ret->detail, sizeof(ret->detail), "cannot create the block device: %s",
			 strerror(-e));
		return e;
	}
	/* The backing chain: read-only, reads only, never committed. */
	for (uint32_t i = 0; i < g->backing_devs; i++) {
		bo = (struct vmm_blk_opts){
		    .fd = o->backing_fd[i],
		    .file_size = g->backing_dev_len[i],
		    .capacity_bytes = g->backing_dev_len[i],
		    .overlay_limit = 1,
		    .read_only = true,
		};
		e = vmm_blk_create(&r->bblk[i], &r->kvm.mem, &bo);
		if (e) {
			snprintf(ret->detail, sizeof(ret->detail),
				 "cannot create backing device %u: %s", i + 1, strerror(-e));
			return e;
		}
		r->nbacking = i + 1;
	}
	vmm_run_coalesce(r);
	return 0;
}

/* --timeout bounds the whole resize: the guest gets what setup left of it,
 * in ms rounded up (it is stopped at the deadline, not before it), and the
 * commit must fit in what the guest leaves (vmm_run_precommit). */
static uint32_t vmm_run_guest_ms(const struct vmm_run *r)
{
	uint64_t used = vmm_now_ns() - r->t0;

	return used >= r->deadline_ns - r->t0
		   ? 1
		   : (uint32_t)((r->deadline_ns - r->t0 - used + 999999) / 1000000);
}

/* Runs the guest to its end (hlt, fault or timeout) inside the sandbox,
 * under the watchdog; r->stop says how it ended. */
static int vmm_run_guest(struct vmm_run *r, int fd, const struct vmm_guest_opts *o,
			 struct instar_resize_result *ret)
{
	int keep[5 + INSTAR_BACKING_MAX_DEVS] = {fd, r->kvm.vm_fd, r->kvm.vcpu_fd, r->kvm.reaper_fd,
						 o->keep_fd > 2 ? o->keep_fd : -1};
	struct vmm_watchdog wd;
	int e, kerr;

	for (uint32_t i = 0; i < INSTAR_BACKING_MAX_DEVS; i++)
		keep[5 + i] = i < r->nbacking ? o->backing_fd[i] : -1;
	e = vmm_watchdog_create(&wd, &r->kvm);
	if (e) {
		snprintf(ret->detail, sizeof(ret->detail), "cannot create the watchdog: %s",
			 strerror(-e));
		return e;
	}
	vmm_hook_guest_hold();
	e = vmm_sandbox_enter(keep, sizeof(keep) / sizeof(keep[0]), r->kvm.vcpu_fd);
	if (e) {
		snprintf(ret->detail, sizeof(ret->detail), "cannot enter the sandbox: %s",
			 strerror(-e));
		goto out;
	}
	vmm_timing_mark("sandboxed");
	e = vmm_watchdog_start(&wd, vmm_run_guest_ms(r));
	if (e) {
		snprintf(ret->detail, sizeof(ret->detail), "cannot arm the watchdog: %s",
			 strerror(-e));
		goto out;
	}
	r->stop = vmm_kvm_run(&r->kvm, &vmm_run_exit_ops, r, vmm_watchdog_fired(), &kerr,
			      r->stopdetail, sizeof(r->stopdetail));
out:
	vmm_watchdog_disarm(&wd);
	if (!e)
		vmm_timing_mark("guest_done");
	return e;
}

/* The verdict, the check of a success claim, and the commit it earns. */
static void vmm_run_finish(struct vmm_run *r, int fd, const struct vmm_guest_opts *o,
			   struct instar_resize_result *ret)
{
	struct stat st;

	vmm_run_outcome(r, ret);
	if (o->open_only) {
		ret->file_size_before = ret->file_size_after = r->gcfg.file_size;
		return;
	}
	if (ret->error == INSTAR_OK && o->verify)
		vmm_run_verify(r, ret);
	if (ret->error == INSTAR_OK && vmm_run_precommit(r, fd, ret) == 0)
		vmm_run_commit(r, fd, ret);
	if (ret->error != INSTAR_OK) {
		/* the real lengths, not what a failed guest claimed */
		ret->file_size_before = r->gcfg.file_size;
		ret->file_size_after =
		    fstat(fd, &st) == 0 ? (uint64_t)st.st_size : r->gcfg.file_size;
	}
}

int vmm_guest_run_op(int fd, const struct instar_resize_config *cfg, const struct vmm_guest_opts *o,
		     const char *op_path, struct instar_resize_result *ret)
{
	static const struct vmm_guest_opts defaults;
	struct vmm_run *r = NULL;
	uint64_t t0;
	int e;

	vmm_timing_mark("guest_run");
	t0 = vmm_now_ns();
	if (!o)
		o = &defaults;
	memset(ret, 0, sizeof(*ret));
	e = vmm_run_new(&r, fd, cfg, o, op_path, t0, ret);
	if (!e)
		e = vmm_run_boot(r, fd, o, ret);
	if (!e)
		e = vmm_run_guest(r, fd, o, ret);
	if (!e)
		vmm_run_finish(r, fd, o, ret);
	if (!r)
		return e;
	vmm_blk_destroy(r->blk);
	for (uint32_t i = 0; i < r->nbacking; i++)
		vmm_blk_destroy(r->bblk[i]);
	if (r->kvm_up)
		vmm_kvm_destroy(&r->kvm);
	if (!e)
		vmm_timing_mark("vm_destroyed");
	free(r);
	return e;
}

int vmm_guest_resize(int fd, const struct instar_resize_config *cfg, const struct vmm_guest_opts *o,
		     struct instar_resize_result *ret)
{
	struct vmm_guest_opts vo = {.keep_fd = -1};

	if (o)
		vo = *o;
	vo.verify = true; /* a resize is never committed on the guest's word alone */
	return vmm_guest_run_op(fd, cfg, &vo, NULL, ret);
}
