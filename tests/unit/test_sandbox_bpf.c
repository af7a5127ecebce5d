/* tests/unit/test_sandbox_bpf.c — the hand-built seccomp filter of
 * vmm/sandbox.c against the same policy compiled by libseccomp: both BPF
 * programs run (in a small classic-BPF interpreter here) over every syscall
 * number 0..511, the x32 numbers and a foreign architecture, with the
 * argument-checked calls (ioctl, tgkill, fcntl, newfstatat) over every
 * combination of interesting argument values; every verdict must be the
 * same. The policy is written twice on purpose: the allow-list table is
 * vmm/sandbox.c's own, the four argument rules are written here in
 * libseccomp's terms from vmm/sandbox.h's contract.
 * Exit: 0 same verdicts, 1 a difference (the first ones printed). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

/* The hand-built program is static in vmm/sandbox.c: compile it in here. */
#include "../../vmm/sandbox.c"

#define VCPU_FD 7
#define TGID 4242

/* Classic BPF over a seccomp_data, as the kernel runs it. Returns the
 * action, or 0xdead0000 | pc for a program the kernel would refuse. */
static uint32_t bpf_run(const struct sock_filter *f, size_t n, const struct seccomp_data *d)
{
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};
	const uint8_t *data = (const uint8_t *)d;

	for (size_t pc = 0; pc < n; pc++) {
		const struct sock_filter *i = &f[pc];
		uint32_t src = BPF_SRC(i->code) == BPF_X ? x : i->k;

		switch (BPF_CLASS(i->code)) {
		case BPF_LD:
			if (i->code == (BPF_LD | BPF_W | BPF_ABS) && i->k % 4 == 0 &&
			    i->k + 4 <= sizeof(*d))
				memcpy(&a, data + i->k, 4);
			else if (i->code == (BPF_LD | BPF_IMM))
				a = i->k;
			else if (i->code == (BPF_LD | BPF_MEM) && i->k < BPF_MEMWORDS)
				a = mem[i->k];
			else
				return 0xdead0000u | (uint32_t)pc;
			break;
		case BPF_LDX:
			if (i->code == (BPF_LDX | BPF_IMM))
				x = i->k;
			else if (i->code == (BPF_LDX | BPF_MEM) && i->k < BPF_MEMWORDS)
				x = mem[i->k];
			else
				return 0xdead0000u | (uint32_t)pc;
			break;
		case BPF_ST:
		case BPF_STX:
			if (i->k >= BPF_MEMWORDS)
				return 0xdead0000u | (uint32_t)pc;
			mem[i->k] = BPF_CLASS(i->code) == BPF_ST ? a : x;
			break;
		case BPF_ALU:
			switch (BPF_OP(i->code)) {
			case BPF_ADD:
				a += src;
				break;
			case BPF_SUB:
				a -= src;
				break;
			case BPF_AND:
				a &= src;
				break;
			case BPF_OR:
				a |= src;
				break;
			case BPF_XOR:
				a ^= src;
				break;
			case BPF_LSH:
				a = src < 32 ? a << src : 0;
				break;
			case BPF_RSH:
				a = src < 32 ? a >> src : 0;
				break;
			case BPF_NEG:
				a = -a;
				break;
			default:
				return 0xdead0000u | (uint32_t)pc;
			}
			break;
		case BPF_JMP: {
			int t;

			switch (BPF_OP(i->code)) {
			case BPF_JA:
				pc += i->k;
				continue;
			case BPF_JEQ:
				t = a == src;
				break;
			case BPF_JGT:
				t = a > src;
				break;
			case BPF_JGE:
				t = a >= src;
				break;
			case BPF_JSET:
				t = (a & src) != 0;
				break;
			default:
				return 0xdead0000u | (uint32_t)pc;
			}
			pc += t ? i->jt : i->jf;
			break;
		}
		case BPF_RET:
			return BPF_RVAL(i->code) == BPF_A ? a : i->k;
		case BPF_MISC:
			if (BPF_MISCOP(i->code) == BPF_TAX)
				x = a;
			else
				a = x;
			break;
		default:
			return 0xdead0000u | (uint32_t)pc;
		}
	}
	return 0xdead0000u | 0xffffu; /* fell off the end */
}

/* The policy in libseccomp's terms: default kill, the plain list allowed,
 * the argument rules of vmm/sandbox.h (whole 64-bit values: the filter
 * wants a zero upper half of every checked int). */
static size_t libseccomp_prog(struct sock_filter **out)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	FILE *tmp = tmpfile();
	long len;
	int rc = 0;

	if (!ctx || !tmp)
		return 0;
	rc |= seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	for (size_t i = 0; i < N_ALLOWED; i++)
		rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, vmm_sandbox_allowed[i], 0);
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, __NR_ioctl, 1,
			       SCMP_A1_64(SCMP_CMP_EQ, TCGETS, 0));
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, __NR_ioctl, 2,
			       SCMP_A0_64(SCMP_CMP_EQ, VCPU_FD, 0),
			       SCMP_A1_64(SCMP_CMP_EQ, KVM_RUN, 0));
	rc |=
	    seccomp_rule_add(ctx, SCMP_ACT_ALLOW, __NR_tgkill, 1, SCMP_A0_64(SCMP_CMP_EQ, TGID, 0));
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, __NR_fcntl, 1,
			       SCMP_A1_64(SCMP_CMP_EQ, F_GETFD, 0));
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, __NR_fcntl, 1,
			       SCMP_A1_64(SCMP_CMP_EQ, F_GETFL, 0));
	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, __NR_newfstatat, 2,
			       SCMP_A0_64(SCMP_CMP_LT, 0x80000000u, 0),
			       SCMP_A3_64(SCMP_CMP_EQ, AT_EMPTY_PATH, 0));
	if (rc || seccomp_export_bpf(ctx, fileno(tmp)) || fseek(tmp, 0, SEEK_END) ||
	    (len = ftell(tmp)) <= 0 || len % (long)sizeof(**out)) {
		fprintf(stderr, "libseccomp: cannot build the policy (rc %d)\n", rc);
		return 0;
	}
	*out = malloc((size_t)len);
	rewind(tmp);
	if (!*out || fread(*out, 1, (size_t)len, tmp) != (size_t)len)
		return 0;
	fclose(tmp);
	seccomp_release(ctx);
	return (size_t)len / sizeof(**out);
}

/* Each value as a C int would pass it and with a non-zero upper half (the
 * kernel truncates an int argument; the filter must not). */
static const uint64_t base_vals[] = {0,
				     1,
				     3,
				     VCPU_FD,
				     TGID,
				     TCGETS,
				     KVM_RUN,
				     F_GETFD,
				     F_GETFL,
				     F_SETFL,
				     F_SETOWN,
				     AT_EMPTY_PATH,
				     AT_SYMLINK_NOFOLLOW,
				     0xffffff9cu,
				     0x7fffffffu,
				     0x80000000u,
				     0xffffffffu};
#define NBASE (sizeof(base_vals) / sizeof(base_vals[0]))
static uint64_t vals[2 * NBASE + 1];
#define NVALS (sizeof(vals) / sizeof(vals[0]))

static struct sock_filter *hand, *lib;
static size_t nhand, nlib;
static unsigned long ncases, nallowed, ndiff;

static void compare(const struct seccomp_data *d)
{
	uint32_t h = bpf_run(hand, nhand, d), l = bpf_run(lib, nlib, d);

	ncases++;
	nallowed += h == SECCOMP_RET_ALLOW;
	if (h != l && ndiff++ < 10)
		fprintf(stderr,
			"DIFF arch %#x nr %d args %#" PRIx64 " %#" PRIx64 " %#" PRIx64 " %#" PRIx64
			": hand-built %#x, libseccomp %#x\n",
			d->arch, d->nr, (uint64_t)d->args[0], (uint64_t)d->args[1],
			(uint64_t)d->args[2], (uint64_t)d->args[3], h, l);
}

int main(void)
{
	static struct sock_filter f[PROG_MAX];
	static const int checked[] = {__NR_ioctl, __NR_tgkill, __NR_fcntl, __NR_newfstatat};
	struct seccomp_data d;

	for (size_t i = 0; i < NBASE; i++) {
		vals[2 * i] = base_vals[i];
		vals[2 * i + 1] = base_vals[i] | 1ull << 32;
	}
	vals[2 * NBASE] = 0xffffffffffffff9cull; /* AT_FDCWD sign-extended */
	hand = f;
	nhand = vmm_sandbox_prog(f, VCPU_FD, TGID);
	nlib = libseccomp_prog(&lib);
	if (!nlib)
		return 1;
	for (uint32_t arch = 0; arch < 2; arch++) {
		for (int nr = 0; nr < 512; nr++) {
			for (int x32 = 0; x32 < 2; x32++) {
				memset(&d, 0, sizeof(d));
				d.arch = arch ? AUDIT_ARCH_I386 : AUDIT_ARCH_X86_64;
				d.nr = nr | (x32 ? (int)__X32_SYSCALL_BIT : 0);
				compare(&d);
			}
		}
	}
	for (size_t c = 0; c < sizeof(checked) / sizeof(checked[0]); c++)
		for (size_t i = 0; i < NVALS; i++)
			for (size_t j = 0; j < NVALS; j++)
				for (size_t k = 0; k < NVALS; k++) {
					memset(&d, 0, sizeof(d));
					d.arch = AUDIT_ARCH_X86_64;
					d.nr = checked[c];
					d.args[0] = vals[i];
					d.args[1] = vals[j];
					d.args[3] = vals[k];
					compare(&d);
				}
	printf("%lu cases, %lu allowed, %lu verdicts differ (hand-built %zu insns, "
	       "libseccomp %zu)\n",
	       ncases, nallowed, ndiff, nhand, nlib);
	/* Both verdicts must occur: a program that allows or kills all is no
	 * cross-check. */
	return ndiff || nallowed == 0 || nallowed == ncases;
}
