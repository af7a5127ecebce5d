/* vmm/guest_run.c — one resize in a guest: VM + device + binaries, watchdog,
 * sandbox, run loop, result frame, and the commit that only a successful guest
 * earns. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guest_op.h"
#include "guest_run.h"
#include "kvm.h"
#include "loader.h"
#include "probe_read.h"
#include "sandbox.h"
#include "serial.h"
#include "timing.h"
#include "verify.h"
#include "virtio_blk.h"

#define VMM_TIMEOUT_DEFAULT_MS 30000u
#define VMM_CAPACITY_SLACK (256ull << 20)
#define VMM_WATCHDOG_SIGNAL SIGALRM
#define VMM_VIRTIO_NOTIFY_OFF 0x050u /* virtio-mmio QueueNotify: must exit */
#define VMM_VIRTIO_CONFIG_OFF 0x100u /* device config: read-only here */

struct vmm_run {
	struct vmm_kvm kvm;
	struct vmm_blk *blk;
	struct vmm_frame_decoder dec;
	bool debug;
	uint32_t nresults;
	struct instar_resize_result result;
	char fault[INSTAR_DETAIL_MAX];	 /* first reason to call the run a guest fault */
	struct instar_probe_info before; /* the host's probe of the image (verify) */
	uint64_t deadline_ns;		 /* CLOCK_MONOTONIC end of --timeout */
};

/* The watchdog signal handler reaches the vCPU through these. */
static struct vmm_kvm *vmm_watchdog_kvm;
static volatile sig_atomic_t vmm_watchdog_fired;

static void vmm_watchdog_handler(int sig)
{
	(void)sig;
	vmm_watchdog_fired = 1;
	if (vmm_watchdog_kvm)
		vmm_kvm_kick(vmm_watchdog_kvm);
}

static void vmm_run_fault(struct vmm_run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void vmm_run_fault(struct vmm_run *r, const char *fmt, ...)
{
	va_list ap;

	if (r->fault[0])
		return;
	va_start(ap, fmt);
	vsnprintf(r->fault, sizeof(r->fault), fmt, ap);
	va_end(ap);
}

/* Guest text is shown only in debug mode, with control bytes masked. */
static void vmm_run_print_guest(const char *what, const uint8_t *s, size_t len)
{
	fprintf(stderr, "instar: guest %s: ", what);
	for (size_t i = 0; i < len; i++)
		fputc(s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?', stderr);
	fputc('\n', stderr);
}

static int vmm_run_frame(void *ctx, const struct vmm_frame *f)
{
	struct vmm_run *r = ctx;

	switch (f->type) {
	case INSTAR_FRAME_RESULT:
		if (r->nresults++) {
			vmm_run_fault(r, "guest sent more than one result");
			return -EPROTO;
		}
		if (f->len != sizeof(r->result)) {
			vmm_run_fault(r, "guest result frame of %u bytes", f->len);
			return -EPROTO;
		}
		memcpy(&r->result, f->payload, sizeof(r->result));
		vmm_timing_mark("guest_result");
		return 0;
	case INSTAR_FRAME_LOG:
		if (r->debug)
			vmm_run_print_guest("log", f->payload, f->len);
		return 0;
	case INSTAR_FRAME_EXCEPTION: {
		struct instar_exception e;

		if (f->len != sizeof(e)) {
			vmm_run_fault(r, "guest exception frame of %u bytes", f->len);
			return -EPROTO;
		}
		memcpy(&e, f->payload, sizeof(e));
		vmm_run_fault(r, "guest exception vector %llu at RIP 0x%llx",
			      (unsigned long long)e.vector, (unsigned long long)e.rip);
		if (r->debug)
			fprintf(stderr,
				"instar: guest exception vector %llu error 0x%llx rip 0x%llx cr2 "
				"0x%llx\n",
				(unsigned long long)e.vector, (unsigned long long)e.error_code,
				(unsigned long long)e.rip, (unsigned long long)e.cr2);
		return -EFAULT;
	}
	case INSTAR_FRAME_PANIC: {
		char msg[96];
		size_t n = f->len < sizeof(msg) - 1 ? f->len : sizeof(msg) - 1;

		for (size_t i = 0; i < n; i++)
			msg[i] = f->payload[i] >= 0x20 && f->payload[i] < 0x7f ? (char)f->payload[i]
									       : '?';
		msg[n] = '\0';
		vmm_run_fault(r, "guest panic: %s", msg);
		return -EFAULT;
	}
	default:
		vmm_run_fault(r, "guest frame of unknown type %u", f->type);
		return -EPROTO;
	}
}

/* COM1 is left for the CPL0 exception path (port I/O faults at CPL3). */
static int vmm_run_io(void *ctx, uint16_t port, bool is_out, uint32_t size, uint32_t count,
		      uint8_t *data)
{
	struct vmm_run *r = ctx;
	int e;

	if (!is_out || size != 1 || port != INSTAR_COM1_PORT)
		return -EINVAL;
	e = vmm_frame_feed(&r->dec, data, count, vmm_run_frame, r);
	if (e == -EBADMSG)
		vmm_run_fault(r, "malformed guest frame: %s", r->dec.what);
	return e;
}

/* FRAME doorbell: gpa names a whole frame in guest RAM. The header is checked
 * by the decoder before its length is trusted; the payload range is then
 * checked once and fed from guest memory (the vCPU is stopped meanwhile). */
static int vmm_run_doorbell(struct vmm_run *r, uint64_t gpa)
{
	struct instar_frame_hdr h;
	const void *p;
	int e;

	if (!vmm_frame_decoder_idle(&r->dec)) {
		vmm_run_fault(r, "frame doorbell inside a COM1 frame");
		return -EPROTO;
	}
	p = vmm_gpa(&r->kvm.mem, gpa, sizeof(h));
	if (!p) {
		vmm_run_fault(r, "frame doorbell address 0x%llx outside guest RAM",
			      (unsigned long long)gpa);
		return -EFAULT;
	}
	memcpy(&h, p, sizeof(h));
	e = vmm_frame_feed(&r->dec, &h, sizeof(h), vmm_run_frame, r);
	if (e == 0) {
		/* The decoder accepted h.len (<= INSTAR_FRAME_MAX_PAYLOAD). gpa +
		 * sizeof(h) cannot wrap: that range was inside RAM. */
		p = vmm_gpa(&r->kvm.mem, gpa + sizeof(h), h.len);
		if (!p) {
			vmm_run_fault(r, "frame at 0x%llx runs past guest RAM",
				      (unsigned long long)gpa);
			return -EFAULT;
		}
		if (h.len)
			e = vmm_frame_feed(&r->dec, p, h.len, vmm_run_frame, r);
	}
	if (e == -EBADMSG)
		vmm_run_fault(r, "malformed guest frame: %s", r->dec.what);
	return e;
}

static int vmm_run_ctrl(struct vmm_run *r, uint64_t off, bool is_write, uint32_t len,
			const uint8_t *data)
{
	uint64_t v = 0;

	if (!is_write)
		return -EINVAL; /* write-only page */
	if (off == INSTAR_CTRL_FRAME && len == 8) {
		memcpy(&v, data, 8); /* x86 host: little-endian like the guest */
		return vmm_run_doorbell(r, v);
	}
	if (off >= INSTAR_CTRL_EXIT && off < INSTAR_CTRL_EXIT + 8 &&
	    len <= INSTAR_CTRL_EXIT + 8 - off)
		return VMM_EXIT_DONE;
	return -EINVAL;
}

/* Each window is bounds-checked for the whole access before dispatch. */
static bool vmm_run_in(uint64_t gpa, uint32_t len, uint64_t base, uint64_t size, uint64_t *ret_off)
{
	uint64_t off = gpa - base;

	if (gpa < base || off >= size || len > size - off)
		return false;
	*ret_off = off;
	return true;
}

static int vmm_run_mmio(void *ctx, uint64_t gpa, bool is_write, uint32_t len, uint8_t *data)
{
	struct vmm_run *r = ctx;
	uint64_t off;

	if (vmm_run_in(gpa, len, INSTAR_CTRL_MMIO_BASE, INSTAR_CTRL_MMIO_SIZE, &off))
		return vmm_run_ctrl(r, off, is_write, len, data);
	if (!vmm_run_in(gpa, len, INSTAR_VIRTIO_MMIO_BASE, INSTAR_VIRTIO_MMIO_SIZE, &off))
		return -EFAULT;
	if (is_write)
		vmm_blk_mmio_write(r->blk, off, data, len);
	else
		vmm_blk_mmio_read(r->blk, off, data, len);
	return 0;
}

static const struct vmm_exit_ops vmm_run_exit_ops = {
    .io = vmm_run_io,
    .mmio = vmm_run_mmio,
};

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

static uint32_t vmm_run_err_of(int e)
{
	return e == -ENOSPC || e == -EDQUOT ? INSTAR_ERR_NO_SPACE
	       : e == -EFBIG		    ? INSTAR_ERR_TOO_LARGE
					    : INSTAR_ERR_IO;
}

static uint64_t vmm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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

/* Before the first write: the commit must fit in the time left and in the
 * file system (space, size limit). A refusal here leaves the file as it was
 * (a reservation may have allocated blocks; putting the length back frees
 * those past the end). */
static int vmm_run_precommit(struct vmm_run *r, int fd, uint64_t orig_size,
			     struct instar_resize_result *ret)
{
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
static void vmm_run_after_failure(struct vmm_run *r, int fd, const struct instar_resize_config *cfg,
				  uint64_t orig_size, bool crashed,
				  struct instar_resize_result *ret)
{
	struct instar_probe_info now;
	struct stat st;
	const char *state = "; the image may be damaged: check it";
	size_t n = strlen(ret->detail);

	if (!crashed && vmm_blk_rollback(r->blk) == 0) {
		state = "; the image is unchanged";
	} else if (fstat(fd, &st) == 0 && vmm_probe_fd(fd, (uint64_t)st.st_size, &now) == 0 &&
		   now.format == cfg->format) {
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
static void vmm_run_commit(struct vmm_run *r, int fd, const struct instar_resize_config *cfg,
			   uint64_t orig_size, struct instar_resize_result *ret)
{
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
		vmm_run_after_failure(r, fd, cfg, orig_size, crashed, ret);
	}
}

/* Decides the outcome of a finished run. */
static void vmm_run_outcome(struct vmm_run *r, enum vmm_stop stop, const char *stopdetail,
			    uint32_t timeout_ms, uint64_t capacity,
			    struct instar_resize_result *ret)
{
	struct instar_resize_result *g = &r->result;

	memset(ret, 0, sizeof(*ret));
	if (stop == VMM_STOP_TIMEOUT) {
		ret->error = INSTAR_ERR_TIMEOUT;
		snprintf(ret->detail, sizeof(ret->detail), "guest did not finish within %u ms",
			 timeout_ms);
		return;
	}
	if (!r->fault[0] && stop != VMM_STOP_HLT)
		vmm_run_fault(r, "%s", stopdetail);
	if (!r->fault[0] && !vmm_frame_decoder_idle(&r->dec))
		vmm_run_fault(r, "guest halted inside a frame");
	if (!r->fault[0] && vmm_blk_needs_reset(r->blk))
		vmm_run_fault(r, "guest left the virtio-blk queue malformed");
	if (r->fault[0]) {
		ret->error = INSTAR_ERR_GUEST_FAULT;
		snprintf(ret->detail, sizeof(ret->detail), "%s", r->fault);
		return;
	}
	if (vmm_blk_overlay_exceeded(r->blk)) {
		ret->error = INSTAR_ERR_OVERLAY_LIMIT;
		snprintf(ret->detail, sizeof(ret->detail), "staged writes exceeded the limit");
		return;
	}
	if (!r->nresults) {
		ret->error = INSTAR_ERR_GUEST_FAULT;
		snprintf(ret->detail, sizeof(ret->detail), "guest halted without a result");
		return;
	}
	g->detail[sizeof(g->detail) - 1] = '\0';
	if (g->error >= INSTAR_ERR_COUNT || g->action > INSTAR_ACTION_SHRINK ||
	    (g->error == INSTAR_OK && g->file_size_after > capacity)) {
		ret->error = INSTAR_ERR_GUEST_FAULT;
		snprintf(ret->detail, sizeof(ret->detail), "guest result out of range");
		return;
	}
	*ret = *g;
	if (g->error != INSTAR_OK) {
		/* The guest saw only an I/O error status; the host knows why. */
		uint64_t off;
		int e = vmm_blk_read_error(r->blk, &off);

		if (e) {
			ret->error = INSTAR_ERR_IO;
			snprintf(ret->detail, sizeof(ret->detail),
				 "reading the image at offset %llu failed: %s",
				 (unsigned long long)off, strerror(-e));
		}
	}
}

/* The claim of a guest that reported success, checked before the commit. */
static void vmm_run_verify(struct vmm_run *r, const struct instar_resize_config *cfg,
			   struct instar_resize_result *ret)
{
	char why[INSTAR_DETAIL_MAX - 24];

	if (vmm_verify_resize(r->blk, cfg, &r->before, ret, why, sizeof(why)) == 0)
		return;
	memset(ret, 0, sizeof(*ret));
	ret->error = INSTAR_ERR_GUEST_MISBEHAVED;
	snprintf(ret->detail, sizeof(ret->detail), "guest result refused: %s", why);
}

/* Created before the sandbox (timer_create is not allowed in it), started
 * after it by vmm_watchdog_start(). */
static int vmm_watchdog_create(timer_t *ret_timer, struct sigaction *old)
{
	struct sigevent sev;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = vmm_watchdog_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(VMM_WATCHDOG_SIGNAL, &sa, old) < 0)
		return -errno;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = VMM_WATCHDOG_SIGNAL;
	sev._sigev_un._tid = gettid(); /* the vCPU thread, not any thread */
	if (timer_create(CLOCK_MONOTONIC, &sev, ret_timer) < 0) {
		int e = -errno;
		sigaction(VMM_WATCHDOG_SIGNAL, old, NULL);
		return e;
	}
	return 0;
}

static int vmm_watchdog_start(timer_t t, uint32_t ms)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = ms / 1000;
	its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
	return timer_settime(t, 0, &its, NULL) < 0 ? -errno : 0;
}

static void vmm_watchdog_disarm(timer_t t, const struct sigaction *old)
{
	timer_delete(t);
	sigaction(VMM_WATCHDOG_SIGNAL, old, NULL);
	vmm_watchdog_kvm = NULL;
}

static int vmm_run_load(void *ctx, const struct vmm_guestmem *mem, char *err, size_t errlen)
{
	return vmm_loader_setup(mem, ctx, err, errlen);
}

#ifdef INSTAR_TEST_HOOKS
/* Test builds only (instar-test): INSTAR_TEST_GUEST_DELAY_MS=N holds the run
 * (image locked, sandbox on, watchdog not yet armed) for N ms, so tests can
 * observe a resize in progress now that the guest itself is too fast to
 * catch. */
static void vmm_run_test_delay(void)
{
	const char *s = getenv("INSTAR_TEST_GUEST_DELAY_MS");
	unsigned long ms;
	struct timespec ts;
	char *end;

	if (!s || !*s)
		return;
	errno = 0;
	ms = strtoul(s, &end, 10);
	if (errno || *end || ms > 600000)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
#else
static void vmm_run_test_delay(void)
{
}
#endif

int vmm_guest_run_op(int fd, const struct instar_resize_config *cfg, const struct vmm_guest_opts *o,
		     const char *op_path, struct instar_resize_result *ret)
{
	static const struct vmm_guest_opts defaults;
	char dir[PATH_MAX], core_path[PATH_MAX + 16], op_buf[PATH_MAX + 16];
	char stopdetail[INSTAR_DETAIL_MAX] = "";
	uint32_t timeout_ms;
	struct instar_resize_config gcfg;
	struct vmm_blk_opts bo;
	struct vmm_load_spec ls;
	struct sigaction old_sa;
	struct vmm_run *r;
	enum vmm_stop stop;
	struct stat st;
	timer_t timer;
	uint64_t t0, left;
	int e, kerr;

	vmm_timing_mark("guest_run");
	t0 = vmm_now_ns();
	if (!o)
		o = &defaults;
	memset(ret, 0, sizeof(*ret));
	timeout_ms = o->timeout_ms ? o->timeout_ms : VMM_TIMEOUT_DEFAULT_MS;
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
	snprintf(core_path, sizeof(core_path), "%s/core.bin", dir);
	if (!op_path) {
		snprintf(op_buf, sizeof(op_buf), "%s/resize.bin", dir);
		op_path = op_buf;
	}

	/* The guest sees the real length, whatever the caller believed. */
	gcfg = *cfg;
	gcfg.file_size = (uint64_t)st.st_size;

	r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(ret->detail, sizeof(ret->detail), "out of memory");
		return -ENOMEM;
	}
	r->debug = o->debug;
	r->deadline_ns = t0 + (uint64_t)timeout_ms * 1000000ull;
	vmm_frame_decoder_init(&r->dec);
	if (o->verify) {
		/* what the image says now, for the check of the guest's claim */
		e = vmm_probe_fd(fd, gcfg.file_size, &r->before);
		if (e) {
			snprintf(ret->detail, sizeof(ret->detail), "reading the image failed: %s",
				 strerror(-e));
			goto err_free;
		}
	}

	ls = (struct vmm_load_spec){
	    .core_path = core_path,
	    .op_path = op_path,
	    .config = &gcfg,
	    .config_len = sizeof(gcfg),
	    .boot_flags = o->debug ? INSTAR_BOOT_DEBUG : 0,
	    .mmio_base = INSTAR_VIRTIO_MMIO_BASE,
	};
	/* The binaries are loaded while a second thread sets up the vCPU. */
	e = vmm_kvm_create(&r->kvm, o->ram_size ? o->ram_size : INSTAR_RAM_DEFAULT, vmm_run_load,
			   &ls, ret->detail, sizeof(ret->detail));
	if (e)
		goto err_free;
	vmm_timing_mark("vm_created");
	vmm_timing_mark("guest_loaded");

	bo = (struct vmm_blk_opts){
	    .fd = fd,
	    .file_size = gcfg.file_size,
	    .capacity_bytes = vmm_run_capacity(gcfg.file_size, gcfg.new_virtual_size,
					       !o->verify || gcfg.prealloc != INSTAR_PREALLOC_OFF ||
						   strcmp(r->before.subformat, "fixed") == 0),
	    .overlay_limit = o->overlay_limit ? o->overlay_limit : VMM_OVERLAY_DEFAULT,
	    .prealloc_limit =
		gcfg.prealloc == INSTAR_PREALLOC_FALLOC || gcfg.prealloc == INSTAR_PREALLOC_FULL
		    ? vmm_verify_prealloc_allowance(&gcfg)
		    : 0,
	};
	e = vmm_blk_create(&r->blk, &r->kvm.mem, &bo);
	if (e) {
		snprintf(ret->detail, sizeof(ret->detail), "cannot create the block device: %s",
			 strerror(-e));
		goto err_kvm;
	}

	/* Every virtio register write but QueueNotify only changes device state
	 * that the guest can observe by a later MMIO read or notify, both of
	 * which exit and see the queued writes first: ~20 exits fewer per run
	 * (each one costs ~20 us on emulating hosts). Optional: failure only
	 * loses the speed-up. */
	vmm_kvm_coalesce(&r->kvm, INSTAR_VIRTIO_MMIO_BASE, VMM_VIRTIO_NOTIFY_OFF);
	vmm_kvm_coalesce(&r->kvm, INSTAR_VIRTIO_MMIO_BASE + VMM_VIRTIO_NOTIFY_OFF + 4,
			 VMM_VIRTIO_CONFIG_OFF - VMM_VIRTIO_NOTIFY_OFF - 4);

	vmm_watchdog_fired = 0;
	vmm_watchdog_kvm = &r->kvm;
	e = vmm_watchdog_create(&timer, &old_sa);
	if (e) {
		snprintf(ret->detail, sizeof(ret->detail), "cannot create the watchdog: %s",
			 strerror(-e));
		goto err_blk;
	}
	{
		const int keep[] = {fd, r->kvm.vm_fd, r->kvm.vcpu_fd, r->kvm.reaper_fd,
				    o->keep_fd > 2 ? o->keep_fd : -1};

		e = vmm_sandbox_enter(keep, sizeof(keep) / sizeof(keep[0]), r->kvm.vcpu_fd);
	}
	if (e) {
		snprintf(ret->detail, sizeof(ret->detail), "cannot enter the sandbox: %s",
			 strerror(-e));
		goto err_timer;
	}
	vmm_timing_mark("sandboxed");
	vmm_run_test_delay();
	/* --timeout bounds the whole resize: the guest gets what setup left of
	 * it, and the commit must fit in what the guest leaves (vmm_run_precommit). */
	left = vmm_now_ns() - t0;
	/* rounded up: the guest is stopped at the deadline, not before it */
	left = left >= r->deadline_ns - t0 ? 1 : (r->deadline_ns - t0 - left + 999999) / 1000000;
	e = vmm_watchdog_start(timer, (uint32_t)left);
	if (e) {
		snprintf(ret->detail, sizeof(ret->detail), "cannot arm the watchdog: %s",
			 strerror(-e));
		goto err_timer;
	}

	stop = vmm_kvm_run(&r->kvm, &vmm_run_exit_ops, r, &vmm_watchdog_fired, &kerr, stopdetail,
			   sizeof(stopdetail));
	vmm_watchdog_disarm(timer, &old_sa);
	vmm_timing_mark("guest_done");

	vmm_run_outcome(r, stop, stopdetail, timeout_ms, bo.capacity_bytes, ret);
	if (ret->error == INSTAR_OK && o->verify)
		vmm_run_verify(r, &gcfg, ret);
	if (ret->error == INSTAR_OK && vmm_run_precommit(r, fd, gcfg.file_size, ret) == 0)
		vmm_run_commit(r, fd, &gcfg, gcfg.file_size, ret);
	if (ret->error != INSTAR_OK) {
		/* the real lengths, not what a failed guest claimed */
		ret->file_size_before = gcfg.file_size;
		ret->file_size_after = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : gcfg.file_size;
	}

	vmm_blk_destroy(r->blk);
	vmm_kvm_destroy(&r->kvm);
	vmm_timing_mark("vm_destroyed");
	free(r);
	return 0;

err_timer:
	vmm_watchdog_disarm(timer, &old_sa);
err_blk:
	vmm_watchdog_kvm = NULL;
	vmm_blk_destroy(r->blk);
err_kvm:
	vmm_kvm_destroy(&r->kvm);
err_free:
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
