/* vmm/sandbox.c — fd hygiene, no_new_privs and a libseccomp allow-list for
 * the host process while it runs a guest on an untrusted image. */
#include <errno.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <termios.h>
#include <unistd.h>

#include "sandbox.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

static int vmm_int_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

int vmm_sandbox_close_fds(const int *keep, size_t nkeep)
{
	int sorted[16];
	unsigned int next = 3;

	if (nkeep > sizeof(sorted) / sizeof(sorted[0]))
		return -EINVAL;
	memcpy(sorted, keep, nkeep * sizeof(int));
	qsort(sorted, nkeep, sizeof(int), vmm_int_cmp);
	for (size_t i = 0; i < nkeep; i++) {
		if (sorted[i] < (int)next)
			continue;
		if ((unsigned int)sorted[i] > next &&
		    close_range(next, (unsigned int)sorted[i] - 1, 0))
			return -errno;
		next = (unsigned int)sorted[i] + 1;
	}
	if (close_range(next, ~0u, 0))
		return -errno;
	return 0;
}

/* Plain syscalls the run loop, the commit, malloc, stdio, the watchdog signal
 * and process exit need. */
static const int vmm_sandbox_allowed[] = {
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(readv),
    SCMP_SYS(writev),
    SCMP_SYS(pread64),
    SCMP_SYS(pwrite64),
    SCMP_SYS(preadv),
    SCMP_SYS(pwritev),
    SCMP_SYS(lseek),
    SCMP_SYS(fsync),
    SCMP_SYS(fdatasync),
    SCMP_SYS(ftruncate),
    SCMP_SYS(fallocate),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(fcntl),
    SCMP_SYS(close),
    SCMP_SYS(mmap),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),
    SCMP_SYS(mprotect),
    SCMP_SYS(madvise),
    SCMP_SYS(brk),
    SCMP_SYS(futex),
    SCMP_SYS(getrandom),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_getres),
    SCMP_SYS(gettimeofday),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep),
    SCMP_SYS(sched_yield),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(sigaltstack),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(timer_settime),
    SCMP_SYS(timer_gettime),
    SCMP_SYS(timer_delete),
    SCMP_SYS(getpid),
    SCMP_SYS(gettid),
    SCMP_SYS(tgkill),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
};

int vmm_sandbox_enter(const int *keep, size_t nkeep, int vcpu_fd)
{
	scmp_filter_ctx ctx;
	int r;

	r = vmm_sandbox_close_fds(keep, nkeep);
	if (r)
		return r;
#if defined(__SANITIZE_ADDRESS__)
	/* LeakSanitizer's exit-time check traces the process from a helper
	 * thread, which the filter rightly forbids: check now, and never again. */
	__lsan_do_leak_check();
#endif
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;

	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(vmm_sandbox_allowed) / sizeof(vmm_sandbox_allowed[0]); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, vmm_sandbox_allowed[i], 0);
		if (r)
			goto out;
	}
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 2,
			     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)vcpu_fd),
			     SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)KVM_RUN));
	if (r)
		goto out;
	/* isatty() from stdio's first use of a stream. */
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
			     SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)TCGETS));
	if (r)
		goto out;
	r = seccomp_load(ctx);
out:
	seccomp_release(ctx);
	return r;
}
