/* vmm/sandbox.c — fd hygiene, no_new_privs and a seccomp allow-list (hand-built BPF) for
 * the host process while it runs a guest on an untrusted image. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
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
    __NR_read,
    __NR_write,
    __NR_readv,
    __NR_writev,
    __NR_pread64,
    __NR_pwrite64,
    __NR_preadv,
    __NR_pwritev,
    __NR_lseek,
    __NR_fsync,
    __NR_fdatasync,
    __NR_ftruncate,
    __NR_fallocate,
    __NR_fstat,
    __NR_newfstatat,
    __NR_fcntl,
    __NR_close,
    __NR_mmap,
    __NR_munmap,
    __NR_mremap,
    __NR_mprotect,
    __NR_madvise,
    __NR_brk,
    __NR_futex,
    __NR_getrandom,
    __NR_clock_gettime,
    __NR_clock_getres,
    __NR_gettimeofday,
    __NR_clock_nanosleep,
    __NR_nanosleep,
    __NR_sched_yield,
    __NR_rt_sigreturn,
    __NR_rt_sigprocmask,
    __NR_rt_sigaction,
    __NR_sigaltstack,
    __NR_restart_syscall,
    __NR_timer_settime,
    __NR_timer_gettime,
    __NR_timer_delete,
    __NR_getpid,
    __NR_gettid,
    __NR_tgkill,
    __NR_exit,
    __NR_exit_group,
};

#define N_ALLOWED (sizeof(vmm_sandbox_allowed) / sizeof(vmm_sandbox_allowed[0]))
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#define ARG_HI(i) (ARG_LO(i) + 4)
#define STMT(code, k) ((struct sock_filter)BPF_STMT(code, k))
#define JUMP(code, k, jt, jf) ((struct sock_filter)BPF_JUMP(code, k, jt, jf))
/* head (4) + one per syscall + ioctl checks (10) + two returns */
#define PROG_MAX (4 + N_ALLOWED + 10 + 2)

/* The allow-list as a classic BPF program, built by hand rather than by
 * libseccomp: that library probes the kernel with eight seccomp() calls and
 * compiles its rule tree on every run (~0.3 ms here) for what is a linear
 * list. Anything else kills the process, as does a foreign architecture or
 * the x32 ABI. Both halves of a 64-bit argument are compared. */
static size_t vmm_sandbox_prog(struct sock_filter *f, int vcpu_fd)
{
	size_t n = 0, allow, kill;

	f[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	f[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	f[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	f[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	/* Jump targets are filled in once allow/kill are placed: the list,
	 * then ioctl, then the two returns. */
	allow = 4 + N_ALLOWED + 10;
	kill = allow + 1;
	for (size_t i = 0; i < N_ALLOWED; i++, n++)
		f[n] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)vmm_sandbox_allowed[i],
			    (uint8_t)(allow - n - 1), 0);
	/* ioctl(vcpu_fd, KVM_RUN) and ioctl(any, TCGETS) (isatty() from
	 * stdio's first use of a stream). */
	f[n] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, (uint8_t)(kill - n - 1));
	n++;
	f[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, ARG_HI(1));
	f[n] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, (uint8_t)(kill - n - 1));
	n++;
	f[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(1));
	f[n] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, TCGETS, (uint8_t)(allow - n - 1), 0);
	n++;
	f[n] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, KVM_RUN, 0, (uint8_t)(kill - n - 1));
	n++;
	f[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, ARG_HI(0));
	f[n] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, (uint8_t)(kill - n - 1));
	n++;
	f[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(0));
	f[n] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)vcpu_fd, (uint8_t)(allow - n - 1),
		    (uint8_t)(kill - n - 1));
	n++;
	f[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	f[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	return n;
}

_Static_assert(4 + N_ALLOWED + 10 < 250, "BPF jumps are 8 bits");

int vmm_sandbox_enter(const int *keep, size_t nkeep, int vcpu_fd)
{
	struct sock_filter f[PROG_MAX];
	struct sock_fprog prog;
	int r;

	if (vcpu_fd < 0)
		return -EINVAL;
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
	prog.len = (unsigned short)vmm_sandbox_prog(f, vcpu_fd);
	prog.filter = f;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return -errno;
	return 0;
}
