/* vmm/sandbox.c — fd hygiene, no_new_privs and a seccomp allow-list (hand-built BPF) for
 * the host process while it runs a guest on an untrusted image. */
#include <errno.h>
#include <fcntl.h>
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
 * and process exit need. fstatfs: where the file system has no fallocate
 * (9p, NFSv3), the commit's reservation counts free space with fstatvfs. ioctl, tgkill, fcntl and
 * newfstatat are allowed only with the arguments vmm_sandbox_prog() checks. */
static const int vmm_sandbox_allowed[] = {
    __NR_read,	       __NR_write,	     __NR_readv,	   __NR_writev,
    __NR_pread64,      __NR_pwrite64,	     __NR_preadv,	   __NR_pwritev,
    __NR_lseek,	       __NR_fsync,	     __NR_fdatasync,	   __NR_ftruncate,
    __NR_fallocate,    __NR_fstat,	     __NR_close,	   __NR_mmap,
    __NR_munmap,       __NR_mremap,	     __NR_mprotect,	   __NR_madvise,
    __NR_brk,	       __NR_futex,	     __NR_getrandom,	   __NR_clock_gettime,
    __NR_clock_getres, __NR_gettimeofday,    __NR_clock_nanosleep, __NR_nanosleep,
    __NR_sched_yield,  __NR_rt_sigreturn,    __NR_rt_sigprocmask,  __NR_rt_sigaction,
    __NR_sigaltstack,  __NR_restart_syscall, __NR_timer_settime,   __NR_timer_gettime,
    __NR_timer_delete, __NR_getpid,	     __NR_gettid,	   __NR_exit,
    __NR_exit_group,   __NR_fstatfs,
};

#define N_ALLOWED (sizeof(vmm_sandbox_allowed) / sizeof(vmm_sandbox_allowed[0]))
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#define ARG_HI(i) (ARG_LO(i) + 4)
#define STMT(code, k) ((struct sock_filter)BPF_STMT(code, k))
#define JUMP(code, k, jt, jf) ((struct sock_filter)BPF_JUMP(code, k, jt, jf))
/* head (4) + one per plain syscall + the checked ones (4 heads, ioctl 9,
 * tgkill 4, fcntl 5, newfstatat 8) + two returns */
#define PROG_MAX (4 + N_ALLOWED + 4 + 9 + 4 + 5 + 8 + 2)

/* The allow-list as a classic BPF program, built by hand rather than by
 * libseccomp: that library probes the kernel with eight seccomp() calls and
 * compiles its rule tree on every run for what is a short list. Anything else kills the process, as
 * does a foreign architecture or the x32 ABI (its numbers carry __X32_SYSCALL_BIT, which nothing
 * matches).
 *
 * Jumps to the two final returns are emitted with placeholder offsets
 * (TO_ALLOW, TO_KILL) and resolved once the program's length is known;
 * jumps within a check use real offsets, all below the placeholders. */
#define TO_ALLOW 0xff
#define TO_KILL 0xfe

struct vmm_bpf {
	struct sock_filter *f;
	size_t n;
};

static void vmm_bpf_ld(struct vmm_bpf *b, uint32_t off)
{
	b->f[b->n++] = STMT(BPF_LD | BPF_W | BPF_ABS, off);
}

static void vmm_bpf_jeq(struct vmm_bpf *b, uint32_t k, uint8_t jt, uint8_t jf)
{
	b->f[b->n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, k, jt, jf);
}

/* Loads argument i's upper half and kills unless it is 0, then loads the
 * lower half: every argument checked here is a C int or unsigned int, which
 * the kernel truncates, so only an all-zero upper half is accepted. */
static void vmm_bpf_arg32(struct vmm_bpf *b, unsigned int i)
{
	vmm_bpf_ld(b, ARG_HI(i));
	vmm_bpf_jeq(b, 0, 0, TO_KILL);
	vmm_bpf_ld(b, ARG_LO(i));
}

/* Starts the check of syscall nr: the block that follows runs only for nr
 * and ends in allow or kill; vmm_bpf_end() makes the others skip it. */
static size_t vmm_bpf_begin(struct vmm_bpf *b, int nr)
{
	vmm_bpf_jeq(b, (uint32_t)nr, 0, 0);
	return b->n - 1;
}

static void vmm_bpf_end(struct vmm_bpf *b, size_t head)
{
	b->f[head].jf = (uint8_t)(b->n - head - 1);
}

static size_t vmm_sandbox_prog(struct sock_filter *f, int vcpu_fd, pid_t tgid)
{
	struct vmm_bpf b = {.f = f, .n = 0};
	size_t h, allow, kill;

	vmm_bpf_ld(&b, offsetof(struct seccomp_data, arch));
	vmm_bpf_jeq(&b, AUDIT_ARCH_X86_64, 0, TO_KILL);
	vmm_bpf_ld(&b, offsetof(struct seccomp_data, nr));
	for (size_t i = 0; i < N_ALLOWED; i++)
		vmm_bpf_jeq(&b, (uint32_t)vmm_sandbox_allowed[i], TO_ALLOW, 0);

	/* ioctl(vcpu_fd, KVM_RUN) and ioctl(any, TCGETS) (isatty() from
	 * stdio's first use of a stream). */
	h = vmm_bpf_begin(&b, __NR_ioctl);
	vmm_bpf_arg32(&b, 1);
	vmm_bpf_jeq(&b, TCGETS, TO_ALLOW, 0);
	vmm_bpf_jeq(&b, KVM_RUN, 0, TO_KILL);
	vmm_bpf_arg32(&b, 0);
	vmm_bpf_jeq(&b, (uint32_t)vcpu_fd, TO_ALLOW, TO_KILL);
	vmm_bpf_end(&b, h);

	/* tgkill(our tgid, ...): raise() and abort() signal this process;
	 * the kernel refuses a tid outside the tgid. Any other tgid could be
	 * an unrelated process of the same user. */
	h = vmm_bpf_begin(&b, __NR_tgkill);
	vmm_bpf_arg32(&b, 0);
	vmm_bpf_jeq(&b, (uint32_t)tgid, TO_ALLOW, TO_KILL);
	vmm_bpf_end(&b, h);

	/* fcntl: only the two queries of a descriptor's own flags. Nothing
	 * after the sandbox changes fd state (no F_SETFL on a description an
	 * instarfs parent shares, no F_SETOWN to aim signals elsewhere) or
	 * locks (F_OFD_* would drop the qemu-compatible image locks); the
	 * kvm suite checks closed fds with F_GETFD. */
	h = vmm_bpf_begin(&b, __NR_fcntl);
	vmm_bpf_arg32(&b, 1);
	vmm_bpf_jeq(&b, F_GETFD, TO_ALLOW, 0);
	vmm_bpf_jeq(&b, F_GETFL, TO_ALLOW, TO_KILL);
	vmm_bpf_end(&b, h);

	/* newfstatat(fd >= 0, "", st, AT_EMPTY_PATH): glibc's fstat(). The
	 * path itself is a pointer seccomp cannot read, so a non-empty
	 * absolute path with these flags still passes; AT_FDCWD and every
	 * other flag (plain stat, lstat) do not. */
	h = vmm_bpf_begin(&b, __NR_newfstatat);
	vmm_bpf_arg32(&b, 3);
	vmm_bpf_jeq(&b, AT_EMPTY_PATH, 0, TO_KILL);
	vmm_bpf_arg32(&b, 0);
	b.f[b.n++] = JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x80000000u, TO_KILL, TO_ALLOW);
	vmm_bpf_end(&b, h);

	/* A syscall no check claimed falls through to the kill. */
	kill = b.n;
	b.f[b.n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	allow = b.n;
	b.f[b.n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);

	for (size_t i = 0; i < kill; i++) {
		if (BPF_CLASS(f[i].code) != BPF_JMP)
			continue;
		if (f[i].jt == TO_ALLOW || f[i].jt == TO_KILL)
			f[i].jt = (uint8_t)((f[i].jt == TO_ALLOW ? allow : kill) - i - 1);
		if (f[i].jf == TO_ALLOW || f[i].jf == TO_KILL)
			f[i].jf = (uint8_t)((f[i].jf == TO_ALLOW ? allow : kill) - i - 1);
	}
	return b.n;
}

/* Every resolved offset stays below the placeholders. */
_Static_assert(PROG_MAX < TO_KILL, "BPF jumps are 8 bits");

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
	prog.len = (unsigned short)vmm_sandbox_prog(f, vcpu_fd, getpid());
	prog.filter = f;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return -errno;
	return 0;
}
