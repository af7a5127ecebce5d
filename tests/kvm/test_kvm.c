/* tests/kvm/test_kvm.c — the kvm suite's driver: runs one scenario (a small
 * operation binary or resize.bin) through vmm_guest_run_op() in a child
 * process, since the sandbox is for life, and checks the result and the image
 * from the unsandboxed parent.
 *
 *   test-kvm SCENARIO OPS_DIR           scenarios below; guest dir from env
 *   test-kvm resize FILE FMT OLD NEW [shrink]   real resize of FILE
 *
 * Exit: 0 pass, 1 fail, 77 skip (no /dev/kvm and CI unset). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "abi_names.h"
#include "guest_op.h"

#define IMG_SIZE (1u << 20)

enum check {
	CHECK_UNCHANGED = 0,
	CHECK_WRITE = 1, /* sector 2 = 0xab, length + 4096 */
	CHECK_NONE = 2,
};

/* What the sandboxed child tries after its run; each must kill it (SIGSYS). */
enum forbid {
	FORBID_NONE = 0,
	FORBID_OPEN,	     /* open("/dev/null") */
	FORBID_TGKILL_OTHER, /* tgkill to another process (which must not get the signal) */
	FORBID_FCNTL_SETOWN, /* fcntl(F_SETOWN) on stdout */
	FORBID_STAT_PATH,    /* newfstatat(AT_FDCWD, "/", st, 0) */
	FORBID_STAT_CWD,     /* newfstatat(AT_FDCWD, "", st, AT_EMPTY_PATH): the cwd */
};

struct scenario {
	const char *name;
	const char *op; /* file in OPS_DIR; NULL: the real resize.bin */
	uint32_t format;
	uint32_t timeout_ms;
	int want_rc;
	uint32_t want_err;
	const char *want_detail; /* substring */
	enum check check;
	enum forbid forbid;	 /* child tries this after the run: must die by SIGSYS */
	bool exact;		 /* want_detail is the whole detail */
	const char *want_stderr; /* substring of stderr (with .debug: the exception line) */
	bool pre_filter; /* a seccomp filter before the run: the helper's strict mode fails */
	bool umip;	 /* want_* hold only where KVM offers UMIP */
	bool debug;	 /* opts->debug: guest text must reach stderr, else must not */
	bool timing;	 /* run with INSTAR_TIMING=1 (meson sets it): phase lines */
};

#define Q2 INSTAR_FMT_QCOW2
#define FAULT INSTAR_ERR_GUEST_FAULT
static const struct scenario scenarios[] = {
    {.name = "boot-halt", .op = "ok.bin", .format = Q2},
    {.name = "debug-log", .op = "ok.bin", .format = Q2, .debug = true},
    {.name = "write-commit", .op = "write.bin", .format = Q2, .check = CHECK_WRITE},
    {.name = "exception",
     .op = "fault.bin",
     .format = Q2,
     .want_err = FAULT,
     .want_detail = "guest exception vector 6 at RIP 0x2"},
    {.name = "pagefault",
     .op = "pagefault.bin",
     .format = Q2,
     .want_err = FAULT,
     .want_detail = "guest exception vector 14 at RIP 0x"},
    {.name = "spin-timeout",
     .op = "spin.bin",
     .format = Q2,
     .timeout_ms = 1000,
     .want_err = INSTAR_ERR_TIMEOUT,
     .want_detail = "1000 ms"},
    {.name = "bad-crc",
     .op = "badframe.bin",
     .format = Q2,
     .want_err = FAULT,
     .want_detail = "malformed guest frame: frame CRC mismatch"},
    {.name = "garbage-frame",
     .op = "garbage.bin",
     .format = Q2,
     .want_err = FAULT,
     .want_detail = "malformed guest frame: bad frame magic"},
    {.name = "no-result",
     .op = "noresult.bin",
     .format = Q2,
     .want_err = FAULT,
     .want_detail = "without a result"},
    {.name = "two-results",
     .op = "tworesults.bin",
     .format = Q2,
     .want_err = FAULT,
     .want_detail = "more than one result"},
    /* Ops run at CPL3 with IOPL 0: port I/O faults before any exit. */
    {.name = "bad-port",
     .op = "badport.bin",
     .format = Q2,
     .want_err = FAULT,
     .want_detail = "guest exception vector 13 at RIP 0x2"},
    {.name = "cpl3-exception",
     .op = "cpl3.bin",
     .format = Q2,
     .want_err = FAULT,
     .want_detail = "guest exception vector 6 at RIP 0x20000a"},
    {.name = "privileged",
     .op = "priv.bin",
     .format = Q2,
     .want_err = FAULT,
     .want_detail = "guest exception vector 13 at RIP 0x2"},
    {.name = "doorbell-outside",
     .op = "doorbell_oob.bin",
     .format = Q2,
     .want_err = FAULT,
     .want_detail = "frame doorbell address 0x8000000 outside guest RAM"},
    {.name = "doorbell-wrap",
     .op = "doorbell_wrap.bin",
     .format = Q2,
     .want_err = FAULT,
     .want_detail = "frame doorbell address 0xfffffffffffffff8 outside guest RAM"},
    {.name = "doorbell-tail",
     .op = "doorbell_tail.bin",
     .format = Q2,
     .want_err = FAULT,
     .want_detail = "runs past guest RAM"},
    {.name = "bad-mmio",
     .op = "badmmio.bin",
     .format = Q2,
     .want_err = FAULT,
     .want_detail = "MMIO rejected: write of 4 bytes at 0x20000000"},
    {.name = "lying-result",
     .op = "bigresult.bin",
     .format = Q2,
     .want_err = FAULT,
     .want_detail = "result out of range"},
    {.name = "result-flags",
     .op = "badflags.bin",
     .format = Q2,
     .want_err = FAULT,
     .want_detail = "result out of range"},
    {.name = "resize-unsupported",
     .op = NULL,
     .format = INSTAR_FMT_RAW,
     .want_err = INSTAR_ERR_UNSUPPORTED_FORMAT},
    {.name = "missing-binary",
     .op = "does-not-exist.bin",
     .format = Q2,
     .want_rc = -ENOENT,
     .want_detail = "does-not-exist.bin"},
    {.name = "sandbox", .op = "ok.bin", .format = Q2, .check = CHECK_NONE, .forbid = FORBID_OPEN},
    {.name = "sandbox-tgkill",
     .op = "ok.bin",
     .format = Q2,
     .check = CHECK_NONE,
     .forbid = FORBID_TGKILL_OTHER},
    {.name = "sandbox-fcntl",
     .op = "ok.bin",
     .format = Q2,
     .check = CHECK_NONE,
     .forbid = FORBID_FCNTL_SETOWN},
    {.name = "sandbox-stat-path",
     .op = "ok.bin",
     .format = Q2,
     .check = CHECK_NONE,
     .forbid = FORBID_STAT_PATH},
    {.name = "sandbox-stat-cwd",
     .op = "ok.bin",
     .format = Q2,
     .check = CHECK_NONE,
     .forbid = FORBID_STAT_CWD},
    /* The teardown helper cannot enter strict mode under an existing
     * filter: no guest may run (write.bin's write would be committed). */
    {.name = "helper-strict",
     .op = "write.bin",
     .format = Q2,
     .pre_filter = true,
     .want_rc = -EINVAL,
     .exact = true,
     .want_detail = "teardown helper could not enter seccomp strict mode: Invalid argument"},
    /* Hostile ops against the guest's own walls: each stage a write, then
     * attack; the first store to a system structure must fault, as a
     * protection violation (error code 7: present, write, user) at the
     * poke's address, and nothing may be committed. */
    {.name = "wall-idt",
     .op = "idtgate.bin",
     .format = Q2,
     .debug = true,
     .want_err = FAULT,
     .exact = true,
     .want_detail = "guest exception vector 14 at RIP 0x200010",
     .want_stderr = "guest exception vector 14 error 0x7 rip 0x200010 cr2 0x6030\n"},
    {.name = "wall-pagetable",
     .op = "pagetable.bin",
     .format = Q2,
     .debug = true,
     .want_err = FAULT,
     .exact = true,
     .want_detail = "guest exception vector 14 at RIP 0x200010",
     .want_stderr = "guest exception vector 14 error 0x7 rip 0x200010 cr2 0xafa0\n"},
    {.name = "wall-gdt",
     .op = "gdtgate.bin",
     .format = Q2,
     .debug = true,
     .want_err = FAULT,
     .exact = true,
     .want_detail = "guest exception vector 14 at RIP 0x200010",
     .want_stderr = "guest exception vector 14 error 0x7 rip 0x200010 cr2 0x1028\n"},
    {.name = "wall-umip",
     .op = "umip.bin",
     .format = Q2,
     .debug = true,
     .umip = true,
     .want_err = FAULT,
     .exact = true,
     .want_detail = "guest exception vector 13 at RIP 0x200010",
     .want_stderr = "guest exception vector 13 error 0x0 rip 0x200010 cr2 0x0\n"},
    {.name = "timing", .op = "write.bin", .format = Q2, .check = CHECK_WRITE, .timing = true},
};

struct child_report {
	int rc;
	int extra_fd_closed;
	int allowed_ok;
	uint64_t elapsed_ms;
	struct instar_resize_result ret;
};

static int kvm_available(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	/* tests/kvm_gate.sh's rule: no /dev/kvm at all is a machine where the
	 * guest cannot boot (skip, saying so, CI included); one that exists but
	 * cannot be opened is a setup error, a failure under CI. */
	if (errno == ENOENT) {
		printf("skip: this machine has no /dev/kvm (its kernel offers no KVM "
		       "device), so the guest cannot boot here\n");
		return 77;
	}
	fprintf(stderr, "/dev/kvm: %s\n", strerror(errno));
	if (!getenv("CI") || !*getenv("CI"))
		return 77;
	fprintf(stderr, "CI is set: a /dev/kvm that cannot be opened is a failure\n");
	return 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void fill_pattern(uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 7 + i / 512);
	memcpy(b, "INSTARv1", 8);
}

static int read_all(int fd, void *buf, size_t n)
{
	uint8_t *b = buf;

	while (n) {
		ssize_t r = read(fd, b, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Runs the guest in a child and returns how it ended; the child prints its
 * result with stdio and leaves with exit(), as the CLI will. */
/* An allow-all seccomp filter: afterwards no thread of ours, nor a child
 * cloned later, can switch to strict mode. */
static int allow_all_filter(void)
{
	struct sock_filter f = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = {.len = 1, .filter = &f};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* The calls the sandbox must still allow, with the arguments the run and
 * stdio use: fstat (newfstatat AT_EMPTY_PATH), fstatvfs (fstatfs: the
 * commit's free-space count where fallocate is missing), fcntl(F_GETFD),
 * tgkill to ourselves. Returns 1 if all worked (a kill ends the child
 * instead). */
static int allowed_calls_work(int fd)
{
	struct statvfs sv;
	struct stat st;

	return fstat(fd, &st) == 0 && fstatvfs(fd, &sv) == 0 && fcntl(fd, F_GETFD) >= 0 &&
	       syscall(SYS_tgkill, getpid(), gettid(), 0) == 0;
}

static void try_forbidden(enum forbid f, pid_t target)
{
	struct stat st;

	switch (f) {
	case FORBID_OPEN:
		open("/dev/null", O_RDONLY);
		break;
	case FORBID_TGKILL_OTHER:
		syscall(SYS_tgkill, target, target, SIGUSR1);
		break;
	case FORBID_FCNTL_SETOWN:
		fcntl(STDOUT_FILENO, F_SETOWN, getpid());
		break;
	case FORBID_STAT_PATH:
		syscall(SYS_newfstatat, AT_FDCWD, "/", &st, 0);
		break;
	case FORBID_STAT_CWD:
		syscall(SYS_newfstatat, AT_FDCWD, "", &st, AT_EMPTY_PATH);
		break;
	case FORBID_NONE:
		break;
	}
}

static int run_child(int fd, const struct instar_resize_config *cfg, const struct vmm_guest_opts *o,
		     const char *op_path, const struct scenario *s, pid_t target, int errfd,
		     struct child_report *rep, int *ret_status)
{
	enum forbid forbid = s ? s->forbid : FORBID_NONE;
	int p[2];
	pid_t pid;

	if (pipe(p))
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct child_report r = {0};
		int extra = open("/dev/null", O_RDONLY); /* must be closed by the sandbox */
		uint64_t t0 = now_ms();
		int keep_pipe = p[1];

		close(p[0]);
		if (errfd >= 0 && dup2(errfd, STDERR_FILENO) < 0)
			_exit(3);
		/* The sandbox closes every fd but 0-2 and the VM's: report via stdout. */
		if (dup2(keep_pipe, STDOUT_FILENO) < 0)
			_exit(3);
		close(keep_pipe);
		if (s && s->pre_filter && allow_all_filter())
			_exit(5);
		r.rc = vmm_guest_run_op(fd, cfg, o, op_path, &r.ret);
		r.elapsed_ms = now_ms() - t0;
		r.extra_fd_closed = fcntl(extra, F_GETFD) < 0 && errno == EBADF;
		r.allowed_ok = allowed_calls_work(fd);
		fprintf(stderr, "child: rc=%d error=%s detail=%s elapsed=%" PRIu64 "ms\n", r.rc,
			instar_err_name(r.ret.error), r.ret.detail, r.elapsed_ms);
		if (write(STDOUT_FILENO, &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(4);
		try_forbidden(forbid, target); /* the filter kills us here */
		exit(0);
	}
	close(p[1]);
	if (read_all(p[0], rep, sizeof(*rep)))
		memset(rep, 0xff, sizeof(*rep));
	close(p[0]);
	while (waitpid(pid, ret_status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

static int make_image(char *path, size_t pathlen, uint8_t *orig)
{
	const char *tmp = getenv("TMPDIR");
	int fd;

	snprintf(path, pathlen, "%s/instar-kvm-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	fill_pattern(orig, IMG_SIZE);
	if (pwrite(fd, orig, IMG_SIZE, 0) != IMG_SIZE) {
		close(fd);
		return -1;
	}
	return fd;
}

static int check_file(const char *path, const uint8_t *orig, enum check c)
{
	struct stat st;
	uint8_t *now = malloc(IMG_SIZE + 4096);
	uint64_t want_size = c == CHECK_WRITE ? IMG_SIZE + 4096 : IMG_SIZE;
	int fd = open(path, O_RDONLY), bad = 0;

	if (!now || fd < 0 || fstat(fd, &st)) {
		free(now);
		return 1;
	}
	if ((uint64_t)st.st_size != want_size) {
		fprintf(stderr, "FAIL: file size %lld, want %llu\n", (long long)st.st_size,
			(unsigned long long)want_size);
		bad = 1;
	} else if (pread(fd, now, want_size, 0) != (ssize_t)want_size) {
		bad = 1;
	} else if (c == CHECK_WRITE) {
		for (size_t i = 0; i < want_size && !bad; i++) {
			uint8_t want = i >= 1024 && i < 1536 ? 0xab : i >= IMG_SIZE ? 0 : orig[i];

			if (now[i] != want) {
				fprintf(stderr, "FAIL: byte %zu is 0x%02x, want 0x%02x\n", i,
					now[i], want);
				bad = 1;
			}
		}
	} else if (memcmp(now, orig, IMG_SIZE)) {
		fprintf(stderr, "FAIL: image changed\n");
		bad = 1;
	}
	close(fd);
	free(now);
	return bad;
}

/* Whether this host's KVM offers UMIP to guests (CPUID.7.0:ECX bit 2). */
static bool kvm_has_umip(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 256 * sizeof(c->entries[0]));
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	bool has = false;

	if (c && fd >= 0) {
		c->nent = 256;
		if (ioctl(fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			for (uint32_t i = 0; i < c->nent; i++)
				if (c->entries[i].function == 7 && c->entries[i].index == 0)
					has = c->entries[i].ecx & (1u << 2);
	}
	if (fd >= 0)
		close(fd);
	free(c);
	return has;
}

/* A process that blocks SIGUSR1 and waits: a signal sent to it stays
 * pending, visible in /proc, with no race against its death. */
static pid_t start_target(void)
{
	sigset_t usr1, old;
	pid_t pid;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		for (;;)
			pause();
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	return pid;
}

/* 1 if SIGUSR1 is pending for pid (thread or process), 0 if not, -1 if pid
 * is gone or unreadable. */
static int target_has_usr1(pid_t pid)
{
	char path[64], line[256];
	unsigned long long mask;
	int found = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "State:", 6) && strchr(line, 'Z'))
			break; /* a zombie: the signal killed it */
		if ((sscanf(line, "SigPnd: %llx", &mask) == 1 ||
		     sscanf(line, "ShdPnd: %llx", &mask) == 1)) {
			found = found < 0 ? 0 : found;
			if (mask & (1ull << (SIGUSR1 - 1)))
				found = 1;
		}
	}
	fclose(f);
	return found;
}

static int run_scenario(const struct scenario *scn, const char *ops_dir)
{
	struct scenario local = *scn;
	const struct scenario *s = &local;
	pid_t target = 0;
	struct instar_resize_config cfg = {
	    .magic = INSTAR_RESIZE_MAGIC,
	    .abi_version = INSTAR_ABI_VERSION,
	    .format = s->format,
	    .expected_old_virtual_size = IMG_SIZE,
	    .new_virtual_size = 2 * IMG_SIZE,
	    .file_size = IMG_SIZE,
	};
	struct vmm_guest_opts o = {.timeout_ms = s->timeout_ms, .debug = s->debug};
	char path[4096], op_path[4096], errtext[4096];
	struct child_report rep;
	uint8_t *orig = malloc(IMG_SIZE);
	FILE *err = tmpfile();
	int fd, status, fail = 0;
	size_t nerr;

	if (!orig || !err)
		return 1;
	if (s->umip && !kvm_has_umip()) {
		/* The wall is not built here: the attack must then be seen to
		 * succeed, so the scenario still checks something. */
		fprintf(stderr, "note: this host's KVM offers no UMIP: sgdt at CPL3 is allowed\n");
		local.want_err = INSTAR_OK;
		local.want_detail = NULL;
		local.exact = false;
		local.want_stderr = NULL;
		local.check = CHECK_WRITE;
	}
	if (s->forbid == FORBID_TGKILL_OTHER) {
		target = start_target();
		if (target < 0) {
			perror("target");
			return 1;
		}
	}
	fd = make_image(path, sizeof(path), orig);
	if (fd < 0) {
		perror("image");
		return 1;
	}
	if (s->op)
		snprintf(op_path, sizeof(op_path), "%s/%s", ops_dir, s->op);
	if (run_child(fd, &cfg, &o, s->op ? op_path : NULL, s, target, fileno(err), &rep,
		      &status)) {
		perror("child");
		return 1;
	}
	close(fd);
	rewind(err);
	nerr = fread(errtext, 1, sizeof(errtext) - 1, err);
	errtext[nerr] = '\0';
	fclose(err);
	fputs(errtext, stderr);
	/* Guest text reaches stderr with a prefix in debug mode, and only then. */
	if (s->debug != (strstr(errtext, "instar: guest log: core: up") != NULL) ||
	    (!strcmp(s->op ? s->op : "", "ok.bin") &&
	     s->debug != (strstr(errtext, "instar: guest log: ok op ran") != NULL))) {
		fprintf(stderr, "FAIL: guest text on stderr does not match debug=%d\n", s->debug);
		fail = 1;
	}

	/* INSTAR_TIMING=1 prints every phase, in order; unset prints nothing. */
	{
		static const char *const phases[] = {"vm_created", "guest_loaded", "guest_done",
						     "committed", "synced"};
		const char *e = getenv("INSTAR_TIMING"), *at = errtext;
		bool on = e && !strcmp(e, "1");
		char want[64];

		if (s->timing && !on) {
			fprintf(stderr,
				"FAIL: scenario needs INSTAR_TIMING=1 in its environment\n");
			fail = 1;
		}
		if (!on && strstr(errtext, "instar-timing:")) {
			fprintf(stderr, "FAIL: timing lines without INSTAR_TIMING=1\n");
			fail = 1;
		}
		for (size_t i = 0; s->timing && i < sizeof(phases) / sizeof(phases[0]); i++) {
			snprintf(want, sizeof(want), "instar-timing: %s ", phases[i]);
			at = at ? strstr(at, want) : NULL;
			if (!at) {
				fprintf(stderr, "FAIL: no timing line for %s (in order)\n",
					phases[i]);
				fail = 1;
			}
		}
	}

	if (s->want_stderr && !strstr(errtext, s->want_stderr)) {
		fprintf(stderr, "FAIL: stderr lacks \"%s\"\n", s->want_stderr);
		fail = 1;
	}
	if (target > 0) {
		int pending = target_has_usr1(target);

		if (pending != 0) {
			fprintf(stderr, "FAIL: the other process %s\n",
				pending > 0 ? "got the signal" : "is gone");
			fail = 1;
		}
		kill(target, SIGKILL);
		waitpid(target, NULL, 0);
	}
	if (rep.allowed_ok != 1) {
		fprintf(stderr, "FAIL: fstat, fcntl(F_GETFD) or tgkill to ourselves failed\n");
		fail = 1;
	}
	if (s->forbid) {
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS) {
			fprintf(stderr,
				"FAIL: forbidden syscall did not kill the child (status 0x%x)\n",
				status);
			fail = 1;
		}
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "FAIL: child ended with status 0x%x\n", status);
		fail = 1;
	}
	if (rep.rc != s->want_rc) {
		fprintf(stderr, "FAIL: rc %d, want %d\n", rep.rc, s->want_rc);
		fail = 1;
	}
	if (rep.rc == 0 && rep.ret.error != s->want_err) {
		fprintf(stderr, "FAIL: error %s, want %s (detail: %s)\n",
			instar_err_name(rep.ret.error), instar_err_name(s->want_err),
			rep.ret.detail);
		fail = 1;
	}
	if (s->exact ? strcmp(rep.ret.detail, s->want_detail)
		     : !strstr(rep.ret.detail, s->want_detail ? s->want_detail : "")) {
		fprintf(stderr, "FAIL: detail \"%s\" lacks \"%s\"\n", rep.ret.detail,
			s->want_detail);
		fail = 1;
	}
	if (rep.rc == 0 && !rep.extra_fd_closed) {
		fprintf(stderr, "FAIL: an unneeded fd survived the sandbox\n");
		fail = 1;
	}
	/* The watchdog must not fire before its deadline (an order of events
	 * on one monotonic clock, which load cannot reverse). How late it
	 * fires is no verdict: a loaded machine delays it; one that never
	 * fires hangs the spinning guest into meson's timeout, a failure. */
	if (s->timeout_ms && rep.elapsed_ms < s->timeout_ms) {
		fprintf(stderr, "FAIL: watchdog fired after %" PRIu64 " ms, before its %u ms\n",
			rep.elapsed_ms, s->timeout_ms);
		fail = 1;
	}
	if (!strcmp(s->op ? s->op : "", "ok.bin") &&
	    memcmp(&rep.ret.old_virtual_size, "INSTARv1", 8)) {
		fprintf(stderr, "FAIL: guest did not read sector 0 through virtio-blk\n");
		fail = 1;
	}
	if (s->check != CHECK_NONE)
		fail |= check_file(path, orig, s->check);
	unlink(path);
	free(orig);
	if (!fail)
		printf("PASS %s\n", s->name);
	return fail;
}

/* test-kvm resize FILE FMT OLD NEW [shrink]: prints the result. */
static int run_resize(int argc, char **argv)
{
	struct instar_resize_config cfg = {
	    .magic = INSTAR_RESIZE_MAGIC,
	    .abi_version = INSTAR_ABI_VERSION,
	};
	/* Hosts that emulate the guest (no VMX/SVM in nested setups) need longer. */
	const char *tmo = getenv("INSTAR_KVM_TIMEOUT_MS");
	struct vmm_guest_opts o = {
	    .debug = getenv("INSTAR_DEBUG") != NULL,
	    .timeout_ms = tmo ? (uint32_t)strtoul(tmo, NULL, 0) : 0,
	};
	struct child_report rep;
	int fd, fmt, status;

	if (argc < 6)
		return 1;
	fmt = instar_format_from_name(argv[3]);
	if (fmt < 0)
		return 1;
	cfg.format = (uint32_t)fmt;
	cfg.expected_old_virtual_size = strtoull(argv[4], NULL, 0);
	cfg.new_virtual_size = strtoull(argv[5], NULL, 0);
	if (argc > 6 && !strcmp(argv[6], "shrink"))
		cfg.flags |= INSTAR_RESIZE_SHRINK_ALLOWED;
	fd = open(argv[2], O_RDWR);
	if (fd < 0) {
		perror(argv[2]);
		return 1;
	}
	if (run_child(fd, &cfg, &o, NULL, NULL, 0, -1, &rep, &status))
		return 1;
	close(fd);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || rep.rc != 0) {
		fprintf(stderr, "FAIL: status 0x%x rc %d %s\n", status, rep.rc, rep.ret.detail);
		return 1;
	}
	printf("error=%s action=%s old=%" PRIu64 " new=%" PRIu64 " before=%" PRIu64
	       " after=%" PRIu64 " detail=%s\n",
	       instar_err_name(rep.ret.error), instar_action_name(rep.ret.action),
	       rep.ret.old_virtual_size, rep.ret.new_virtual_size, rep.ret.file_size_before,
	       rep.ret.file_size_after, rep.ret.detail);
	return rep.ret.error == INSTAR_OK ? 0 : 2;
}

int main(int argc, char **argv)
{
	int k;

	if (argc < 3) {
		fprintf(stderr, "usage: test-kvm SCENARIO OPS_DIR | resize FILE FMT OLD NEW\n");
		return 1;
	}
	k = kvm_available();
	if (k)
		return k;
	if (!strcmp(argv[1], "resize"))
		return run_resize(argc, argv);
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (!strcmp(scenarios[i].name, argv[1]))
			return run_scenario(&scenarios[i], argv[2]);
	fprintf(stderr, "unknown scenario %s\n", argv[1]);
	return 1;
}
