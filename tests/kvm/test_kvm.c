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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

struct scenario {
	const char *name;
	const char *op; /* file in OPS_DIR; NULL: the real resize.bin */
	uint32_t format;
	uint32_t timeout_ms;
	int want_rc;
	uint32_t want_err;
	const char *want_detail; /* substring */
	enum check check;
	bool after_forbidden; /* child tries open() after the run: must die by SIGSYS */
	bool debug;	      /* opts->debug: guest text must reach stderr, else must not */
	bool timing;	      /* run with INSTAR_TIMING=1 (meson sets it): phase lines */
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
    {.name = "resize-unsupported",
     .op = NULL,
     .format = INSTAR_FMT_RAW,
     .want_err = INSTAR_ERR_UNSUPPORTED_FORMAT},
    {.name = "missing-binary",
     .op = "does-not-exist.bin",
     .format = Q2,
     .want_rc = -ENOENT,
     .want_detail = "does-not-exist.bin"},
    {.name = "sandbox", .op = "ok.bin", .format = Q2, .check = CHECK_NONE, .after_forbidden = true},
    {.name = "timing", .op = "write.bin", .format = Q2, .check = CHECK_WRITE, .timing = true},
};

struct child_report {
	int rc;
	int extra_fd_closed;
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
	fprintf(stderr, "/dev/kvm: %s\n", strerror(errno));
	if (!getenv("CI") || !*getenv("CI"))
		return 77;
	fprintf(stderr, "CI is set: a missing /dev/kvm is a failure\n");
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
static int run_child(int fd, const struct instar_resize_config *cfg, const struct vmm_guest_opts *o,
		     const char *op_path, bool forbidden, int errfd, struct child_report *rep,
		     int *ret_status)
{
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
		r.rc = vmm_guest_run_op(fd, cfg, o, op_path, &r.ret);
		r.elapsed_ms = now_ms() - t0;
		r.extra_fd_closed = fcntl(extra, F_GETFD) < 0 && errno == EBADF;
		fprintf(stderr, "child: rc=%d error=%s detail=%s elapsed=%" PRIu64 "ms\n", r.rc,
			instar_err_name(r.ret.error), r.ret.detail, r.elapsed_ms);
		if (write(STDOUT_FILENO, &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(4);
		if (forbidden)
			open("/dev/null", O_RDONLY); /* the filter kills us here */
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

static int run_scenario(const struct scenario *s, const char *ops_dir)
{
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
	fd = make_image(path, sizeof(path), orig);
	if (fd < 0) {
		perror("image");
		return 1;
	}
	if (s->op)
		snprintf(op_path, sizeof(op_path), "%s/%s", ops_dir, s->op);
	if (run_child(fd, &cfg, &o, s->op ? op_path : NULL, s->after_forbidden, fileno(err), &rep,
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
	    s->debug != (strstr(errtext, "instar: guest log: ok op ran") != NULL)) {
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

	if (s->after_forbidden) {
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
	if (!strstr(rep.ret.detail, s->want_detail ? s->want_detail : "")) {
		fprintf(stderr, "FAIL: detail \"%s\" lacks \"%s\"\n", rep.ret.detail,
			s->want_detail);
		fail = 1;
	}
	if (rep.rc == 0 && !rep.extra_fd_closed) {
		fprintf(stderr, "FAIL: an unneeded fd survived the sandbox\n");
		fail = 1;
	}
	if (s->timeout_ms &&
	    (rep.elapsed_ms < s->timeout_ms || rep.elapsed_ms > s->timeout_ms + 2000)) {
		fprintf(stderr, "FAIL: watchdog fired after %" PRIu64 " ms, limit %u ms\n",
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
	if (run_child(fd, &cfg, &o, NULL, false, -1, &rep, &status))
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
