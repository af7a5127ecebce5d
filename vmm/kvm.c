/* vmm/kvm.c — KVM VM + vCPU setup straight into 64-bit long mode at CPL3, and
 * the exit loop. No firmware: the host builds the GDT, the TSS and the
 * identity page tables the guest core starts on, and points IDTR at the page
 * whose gates the core fills. User mode because nested KVM without VMX
 * (kvm_pvm) emulates every CPL0 instruction but runs CPL3 natively. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "abi.h"
#include "kvm.h"
#include "sandbox.h"

#define KVM_API_EXPECTED 12

struct vmm_kvm_ext {
	int cap;
	const char *name;
};

/* What the run loop relies on; a host missing one is named, not guessed at. */
static const struct vmm_kvm_ext vmm_kvm_required[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_NR_MEMSLOTS, "KVM_CAP_NR_MEMSLOTS"},
};

#define X86_CR0_PE (1ull << 0)
#define X86_CR0_MP (1ull << 1)
#define X86_CR0_ET (1ull << 4)
#define X86_CR0_NE (1ull << 5)
#define X86_CR0_WP (1ull << 16)
#define X86_CR0_PG (1ull << 31)
#define X86_CR4_PAE (1ull << 5)
#define X86_EFER_LME (1ull << 8)
#define X86_EFER_LMA (1ull << 10)

#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_US (1ull << 2)
#define PTE_PS (1ull << 7)

#define MSR_MTRR_DEF_TYPE 0x2ff
#define MTRR_DEF_ENABLE (1ull << 11)
#define MTRR_TYPE_WB 6ull

#define SEG_TYPE_CODE 0xb /* execute/read, accessed */
#define SEG_TYPE_DATA 0x3 /* read/write, accessed */
#define SEG_TYPE_TSS_BUSY 0xb
#define TSS_LIMIT 0x67u /* 104-byte 64-bit TSS, no I/O bitmap */
#define TSS_OFF_RSP0 4u
#define TSS_OFF_IOMAP 0x66u

static const char *const vmm_kvm_exit_names[] = {
    [KVM_EXIT_UNKNOWN] = "UNKNOWN",
    [KVM_EXIT_EXCEPTION] = "EXCEPTION",
    [KVM_EXIT_IO] = "IO",
    [KVM_EXIT_HYPERCALL] = "HYPERCALL",
    [KVM_EXIT_DEBUG] = "DEBUG",
    [KVM_EXIT_HLT] = "HLT",
    [KVM_EXIT_MMIO] = "MMIO",
    [KVM_EXIT_IRQ_WINDOW_OPEN] = "IRQ_WINDOW_OPEN",
    [KVM_EXIT_SHUTDOWN] = "SHUTDOWN",
    [KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY",
    [KVM_EXIT_INTR] = "INTR",
    [KVM_EXIT_SET_TPR] = "SET_TPR",
    [KVM_EXIT_TPR_ACCESS] = "TPR_ACCESS",
    [KVM_EXIT_S390_SIEIC] = "S390_SIEIC",
    [KVM_EXIT_S390_RESET] = "S390_RESET",
    [KVM_EXIT_DCR] = "DCR",
    [KVM_EXIT_NMI] = "NMI",
    [KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
    [KVM_EXIT_OSI] = "OSI",
    [KVM_EXIT_PAPR_HCALL] = "PAPR_HCALL",
    [KVM_EXIT_S390_UCONTROL] = "S390_UCONTROL",
    [KVM_EXIT_WATCHDOG] = "WATCHDOG",
    [KVM_EXIT_S390_TSCH] = "S390_TSCH",
    [KVM_EXIT_EPR] = "EPR",
    [KVM_EXIT_SYSTEM_EVENT] = "SYSTEM_EVENT",
    [KVM_EXIT_S390_STSI] = "S390_STSI",
    [KVM_EXIT_IOAPIC_EOI] = "IOAPIC_EOI",
    [KVM_EXIT_HYPERV] = "HYPERV",
};

const char *vmm_kvm_exit_name(uint32_t reason)
{
	if (reason < sizeof(vmm_kvm_exit_names) / sizeof(vmm_kvm_exit_names[0]) &&
	    vmm_kvm_exit_names[reason])
		return vmm_kvm_exit_names[reason];
	return "unknown exit";
}

static int vmm_kvm_check(struct vmm_kvm *k, char *err, size_t errlen)
{
	int v = ioctl(k->sys_fd, KVM_GET_API_VERSION, 0);

	if (v < 0) {
		int r = -errno;
		snprintf(err, errlen, "KVM_GET_API_VERSION: %s", strerror(-r));
		return r;
	}
	if (v != KVM_API_EXPECTED) {
		snprintf(err, errlen, "KVM API version %d, need %d", v, KVM_API_EXPECTED);
		return -ENOTSUP;
	}
	for (size_t i = 0; i < sizeof(vmm_kvm_required) / sizeof(vmm_kvm_required[0]); i++) {
		if (ioctl(k->sys_fd, KVM_CHECK_EXTENSION, vmm_kvm_required[i].cap) <= 0) {
			snprintf(err, errlen, "KVM lacks required extension %s",
				 vmm_kvm_required[i].name);
			return -ENOTSUP;
		}
	}
	return 0;
}

/* The host's supported CPUID as is: the core uses nothing model-specific,
 * but a guest with no CPUID set would see no long mode at all. The first
 * query gets room for KVM_MAX_CPUID_ENTRIES: a smaller guess costs a whole
 * failed (E2BIG) query, ~0.3 ms here. */
#define VMM_KVM_CPUID_NENT 256

static struct kvm_cpuid2 *vmm_kvm_cpuid_alloc(uint32_t nent)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (size_t)nent * sizeof(c->entries[0]));

	if (c)
		c->nent = nent;
	return c;
}

/* Fills *io_cpuid, replacing it by a larger buffer if KVM needs one. */
static int vmm_kvm_get_cpuid(struct vmm_kvm *k, struct kvm_cpuid2 **io_cpuid)
{
	for (;;) {
		uint32_t nent = (*io_cpuid)->nent;
		struct kvm_cpuid2 *c;
		int r;

		if (ioctl(k->sys_fd, KVM_GET_SUPPORTED_CPUID, *io_cpuid) == 0)
			return 0;
		r = -errno;
		if (r != -E2BIG || nent >= 4096)
			return r;
		c = vmm_kvm_cpuid_alloc(nent * 2);
		if (!c)
			return -ENOMEM;
		free(*io_cpuid);
		*io_cpuid = c;
	}
}

/* A 16-byte 64-bit system descriptor for the TSS (SDM Vol. 3, 8.2.3). */
static void vmm_kvm_tss_desc(uint64_t *d, uint64_t base, uint32_t limit)
{
	d[0] = (limit & 0xffffull) | (base & 0xffffffull) << 16 |
	       (0x80ull | SEG_TYPE_TSS_BUSY) << 40 | (uint64_t)(limit >> 16 & 0xf) << 48 |
	       (base >> 24 & 0xff) << 56;
	d[1] = base >> 32;
}

static int vmm_kvm_build_tables(const struct vmm_guestmem *m)
{
	uint64_t *gdt = vmm_gpa(m, INSTAR_GDT_ADDR, 8 * INSTAR_GDT_ENTRIES);
	uint8_t *tss = vmm_gpa(m, INSTAR_TSS_ADDR, TSS_LIMIT + 1);
	uint64_t *pml4 = vmm_gpa(m, INSTAR_PAGETABLE_ADDR, 0x3000);
	uint64_t rsp0 = INSTAR_EXC_STACK_ADDR + INSTAR_EXC_STACK_SIZE;
	uint16_t iomap = TSS_LIMIT + 1;
	uint64_t *pdpt, *pd;

	if (!gdt || !tss || !pml4)
		return -EINVAL;
	pdpt = pml4 + 512;
	pd = pdpt + 512;
	/* RAM is fresh anonymous memory: zero already, only entries are set. */
	gdt[0] = 0;
	gdt[1] = 0x00af9b000000ffffull; /* kernel code 64, DPL0: IDT gates */
	gdt[2] = 0x00cf93000000ffffull; /* kernel data, DPL0 */
	gdt[3] = 0x00cff3000000ffffull; /* user data, DPL3 */
	gdt[4] = 0x00affb000000ffffull; /* user code 64, DPL3: everything else */
	gdt[5] = 0;
	vmm_kvm_tss_desc(&gdt[INSTAR_SEL_TSS / 8], INSTAR_TSS_ADDR, TSS_LIMIT);

	/* RSP0: the stack an exception from CPL3 switches to. An I/O map
	 * offset past the limit means no port is open to CPL3. */
	memcpy(tss + TSS_OFF_RSP0, &rsp0, sizeof(rsp0));
	memcpy(tss + TSS_OFF_IOMAP, &iomap, sizeof(iomap));

	/* 512 x 2 MiB = the first 1 GiB, which covers the MMIO windows. U/S on
	 * every level: the guest runs at CPL3. */
	pml4[0] = (INSTAR_PAGETABLE_ADDR + 0x1000) | PTE_P | PTE_RW | PTE_US;
	pdpt[0] = (INSTAR_PAGETABLE_ADDR + 0x2000) | PTE_P | PTE_RW | PTE_US;
	for (uint64_t i = 0; i < 512; i++)
		pd[i] = (i << 21) | PTE_P | PTE_RW | PTE_US | PTE_PS;
	return 0;
}

static void vmm_kvm_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int code)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->dpl = 3;
	s->s = 1;
	s->g = 1;
	s->l = code ? 1 : 0;
	s->db = code ? 0 : 1;
}

/* At reset the MTRRs are off, which means all memory is uncacheable to any
 * KVM that honours the guest's memory types. Default everything to WB. */
static int vmm_kvm_set_mtrr(struct vmm_kvm *k)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[1];
	} m;

	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 1;
	m.e[0].index = MSR_MTRR_DEF_TYPE;
	m.e[0].data = MTRR_DEF_ENABLE | MTRR_TYPE_WB;
	if (ioctl(k->vcpu_fd, KVM_SET_MSRS, &m) != 1)
		return -EINVAL;
	return 0;
}

static int vmm_kvm_setup_vcpu(struct vmm_kvm *k)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(k->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	/* CPL is CS.DPL (= SS.DPL): the first instruction already runs in user
	 * mode, so the guest never needs iretq, lidt or ltr. */
	vmm_kvm_seg(&sregs.cs, INSTAR_SEL_USER_CS, SEG_TYPE_CODE, 1);
	vmm_kvm_seg(&sregs.ds, INSTAR_SEL_USER_DS, SEG_TYPE_DATA, 0);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.base = INSTAR_TSS_ADDR;
	sregs.tr.limit = TSS_LIMIT;
	sregs.tr.selector = INSTAR_SEL_TSS;
	sregs.tr.type = SEG_TYPE_TSS_BUSY;
	sregs.tr.present = 1;
	sregs.gdt.base = INSTAR_GDT_ADDR;
	sregs.gdt.limit = 8 * INSTAR_GDT_ENTRIES - 1;
	sregs.idt.base = INSTAR_IDT_ADDR;
	sregs.idt.limit = 16 * INSTAR_IDT_VECTORS - 1;
	sregs.cr3 = INSTAR_PAGETABLE_ADDR;
	sregs.cr4 = X86_CR4_PAE;
	sregs.cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP | X86_CR0_PG;
	sregs.efer = X86_EFER_LME | X86_EFER_LMA;
	if (ioctl(k->vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = INSTAR_CORE_ADDR;
	regs.rdi = INSTAR_BOOTINFO_ADDR;
	regs.rsp = INSTAR_CORE_ADDR; /* free low memory below core; core sets its own */
	/* IF=0 (no interrupts are ever injected) and IOPL=0: port I/O, cli and
	 * hlt fault at CPL3, which the exception path reports. */
	if (ioctl(k->vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

/* Guest RAM: fresh anonymous memory (already zero, never cleared again),
 * 2 MiB-aligned, and from INSTAR_HEAP_ADDR on backed by transparent huge
 * pages where the host allows, so that the guest's 2 MiB pages and the
 * host's line up. On hosts that shadow the guest's page tables (kvm_pvm)
 * every first touch of a 4 KiB page is a fault the hypervisor handles in
 * software, and the operation's scratch is hundreds of pages. Below the heap
 * the guest touches a few dozen scattered pages (tables, binaries, their
 * bss): a huge page each there would cost 2 MiB of zeroing apiece, and more
 * on a host whose hypervisor reclaims free memory (a fresh huge page
 * measured 2-25 ms here then). */
static void *vmm_kvm_map_ram(uint64_t ram_size)
{
	const uint64_t huge = 2ull << 20;
	uint8_t *m, *ram;
	uint64_t head;

	m = mmap(NULL, ram_size + huge, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return MAP_FAILED;
	head = (huge - (uint64_t)(uintptr_t)m % huge) % huge;
	ram = m + head;
	if (head)
		munmap(m, head);
	if (huge - head)
		munmap(ram + ram_size, huge - head);
	/* A hint: failure is harmless. */
	madvise(ram + INSTAR_HEAP_ADDR, ram_size - INSTAR_HEAP_ADDR, MADV_HUGEPAGE);
	return ram;
}

/* The coalesced-MMIO ring is a page of the vCPU mapping, if the host has it. */
static void vmm_kvm_find_ring(struct vmm_kvm *k)
{
	long page = sysconf(_SC_PAGESIZE);
	int off = ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_MMIO);

	if (off <= 0 || page <= 0 || ((size_t)off + 1) * (size_t)page > k->run_size)
		return;
	k->ring =
	    (struct kvm_coalesced_mmio_ring *)((uint8_t *)k->run + (size_t)off * (size_t)page);
	k->ring_max =
	    (uint32_t)(((size_t)page - sizeof(*k->ring)) / sizeof(k->ring->coalesced_mmio[0]));
}

int vmm_kvm_coalesce(struct vmm_kvm *k, uint64_t gpa, uint64_t size)
{
	struct kvm_coalesced_mmio_zone z = {.addr = gpa, .size = (uint32_t)size};

	if (!k->ring || size > UINT32_MAX)
		return -ENOTSUP;
	return ioctl(k->vm_fd, KVM_REGISTER_COALESCED_MMIO, &z) < 0 ? -errno : 0;
}

/* The VM and its memory slot. On failure what exists is left in k for
 * vmm_kvm_destroy(). */
static int vmm_kvm_setup_vm(struct vmm_kvm *k, char *err, size_t errlen)
{
	struct kvm_userspace_memory_region region;
	int r;

	k->vm_fd = ioctl(k->sys_fd, KVM_CREATE_VM, 0);
	if (k->vm_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(-r));
		return r;
	}
	region = (struct kvm_userspace_memory_region){
	    .slot = 0,
	    .guest_phys_addr = 0,
	    .memory_size = k->mem.size,
	    .userspace_addr = (uint64_t)(uintptr_t)k->mem.host,
	};
	if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		r = -errno;
		snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION: %s", strerror(-r));
		return r;
	}
	return 0;
}

/* The vCPU half of vmm_kvm_create(), run on a second thread: what needs only
 * /dev/kvm first, then, once the VM exists, the vCPU up to its first entry.
 * It writes only the vCPU's fields of k (vcpu_fd, run, run_size, ring,
 * ring_max) and reads k->vm_fd only after vm_ready. */
struct vmm_kvm_vcpu_job {
	struct vmm_kvm *k;
	/* Allocated by the caller: a first malloc() on the thread would cost
	 * a new arena (four syscalls). */
	struct kvm_cpuid2 *cpuid;
	int vm_ready; /* futex word: 1 once k->vm_fd is final (a VM, or -1) */
	int ret;
	char err[256];
};

static void vmm_kvm_vm_ready(struct vmm_kvm_vcpu_job *j)
{
	__atomic_store_n(&j->vm_ready, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &j->vm_ready, FUTEX_WAKE_PRIVATE, 1);
}

static int vmm_kvm_vcpu_job_do(struct vmm_kvm_vcpu_job *j)
{
	struct vmm_kvm *k = j->k;
	int r, mmap_size;

	r = vmm_kvm_get_cpuid(k, &j->cpuid);
	if (r) {
		snprintf(j->err, sizeof(j->err), "KVM_GET_SUPPORTED_CPUID: %s", strerror(-r));
		return r;
	}
	mmap_size = ioctl(k->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size < (int)sizeof(struct kvm_run)) {
		r = mmap_size < 0 ? -errno : -EINVAL;
		snprintf(j->err, sizeof(j->err), "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(-r));
		return r;
	}
	while (!__atomic_load_n(&j->vm_ready, __ATOMIC_ACQUIRE))
		syscall(SYS_futex, &j->vm_ready, FUTEX_WAIT_PRIVATE, 0, NULL);
	if (k->vm_fd < 0)
		return -ECANCELED; /* the VM's own error is the one reported */

	k->vcpu_fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, 0);
	if (k->vcpu_fd < 0) {
		r = -errno;
		snprintf(j->err, sizeof(j->err), "KVM_CREATE_VCPU: %s", strerror(-r));
		return r;
	}
	k->run = mmap(NULL, (size_t)mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, k->vcpu_fd, 0);
	if (k->run == MAP_FAILED) {
		r = -errno;
		k->run = NULL;
		snprintf(j->err, sizeof(j->err), "cannot map kvm_run: %s", strerror(-r));
		return r;
	}
	k->run_size = (size_t)mmap_size;
	vmm_kvm_find_ring(k);

	if (ioctl(k->vcpu_fd, KVM_SET_CPUID2, j->cpuid) < 0) {
		r = -errno;
		snprintf(j->err, sizeof(j->err), "KVM_SET_CPUID2: %s", strerror(-r));
		return r;
	}
	r = vmm_kvm_set_mtrr(k);
	if (r) {
		snprintf(j->err, sizeof(j->err), "KVM_SET_MSRS (MTRRdefType): %s", strerror(-r));
		return r;
	}
	r = vmm_kvm_setup_vcpu(k);
	if (r)
		snprintf(j->err, sizeof(j->err), "vCPU register setup: %s", strerror(-r));
	return r;
}

static void *vmm_kvm_vcpu_job_run(void *p)
{
	struct vmm_kvm_vcpu_job *j = p;

	j->ret = vmm_kvm_vcpu_job_do(j);
	return NULL;
}

/* Starts the job with every signal blocked (signals are this thread's
 * business). Returns 0, or a negative errno when the caller has to run it
 * itself. */
static int vmm_kvm_vcpu_job_start(struct vmm_kvm_vcpu_job *j, pthread_t *ret_thread)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(ret_thread, NULL, vmm_kvm_vcpu_job_run, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

/* Most of the setup is time in the kernel, in two independent chains: the
 * vCPU's (KVM_GET_SUPPORTED_CPUID, KVM_CREATE_VCPU, register setup) and guest
 * RAM's (the first touch of each page, the binaries). They run side by side:
 * the vCPU on a second thread, RAM on this one. Not the other way round: this
 * thread also unmaps RAM, and pages faulted in on another CPU do not come
 * back from that CPU's free lists hot (measured: the first touch of each
 * huge page then took ~5 ms instead of ~0.2, the hypervisor having reclaimed
 * it). RAM is touched only after KVM_SET_USER_MEMORY_REGION, which waits for
 * page faults in progress. The thread is joined before returning: the
 * caller, and its sandbox, see one thread as before. */
int vmm_kvm_create(struct vmm_kvm *k, uint64_t ram_size, vmm_kvm_fill_fn fill, void *ctx, char *err,
		   size_t errlen)
{
	struct vmm_kvm_vcpu_job job;
	pthread_t thread;
	bool threaded;
	void *ram;
	int r;

	memset(k, 0, sizeof(*k));
	k->sys_fd = k->vm_fd = k->vcpu_fd = k->reaper_fd = k->reaper_ready_fd = -1;
	if (ram_size < INSTAR_HEAP_ADDR + (1ull << 20) || ram_size > INSTAR_VIRTIO_MMIO_BASE ||
	    ram_size % 4096) {
		snprintf(err, errlen, "guest RAM size %llu out of range",
			 (unsigned long long)ram_size);
		return -EINVAL;
	}
	ram = vmm_kvm_map_ram(ram_size);
	if (ram == MAP_FAILED) {
		r = -errno;
		snprintf(err, errlen, "cannot map %llu bytes of guest RAM: %s",
			 (unsigned long long)ram_size, strerror(-r));
		return r;
	}
	k->mem.host = ram;
	k->mem.size = ram_size;

	k->sys_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->sys_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open /dev/kvm: %s", strerror(-r));
		goto out;
	}
	r = vmm_kvm_check(k, err, errlen);
	if (r)
		goto out;

	job = (struct vmm_kvm_vcpu_job){.k = k, .cpuid = vmm_kvm_cpuid_alloc(VMM_KVM_CPUID_NENT)};
	if (!job.cpuid) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	threaded = vmm_kvm_vcpu_job_start(&job, &thread) == 0;
	r = vmm_kvm_setup_vm(k, err, errlen);
	if (r && k->vm_fd >= 0) {
		close(k->vm_fd);
		k->vm_fd = -1;
	}
	vmm_kvm_vm_ready(&job);
	if (!threaded && !r)
		vmm_kvm_vcpu_job_run(&job);
	if (!r) {
		r = vmm_kvm_build_tables(&k->mem);
		if (r)
			snprintf(err, errlen, "guest RAM too small for the boot tables");
		else if (fill)
			r = fill(ctx, &k->mem, err, errlen);
	}
	/* Here, while the vCPU thread is still at work (it needs only the VM
	 * fd). Optional: it only saves time. */
	if (!r)
		vmm_kvm_defer_teardown(k);
	if (threaded)
		pthread_join(thread, NULL);
	free(job.cpuid);
	if (!r && job.ret) {
		r = job.ret;
		snprintf(err, errlen, "%s", job.err);
	}
	/* The helper holds the VM: no guest runs unless it is confined. */
	if (!r) {
		r = vmm_kvm_reaper_wait(k);
		if (r)
			snprintf(err, errlen,
				 "teardown helper could not enter seccomp strict mode: %s",
				 strerror(-r));
	}
	if (!r) {
		/* Only the VM and vCPU fds are needed from here on. */
		close(k->sys_fd);
		k->sys_fd = -1;
		return 0;
	}
out:
	vmm_kvm_destroy(k);
	return r;
}

int vmm_kvm_reaper_wait(struct vmm_kvm *k)
{
	unsigned char status = 0;
	ssize_t n;

	if (k->reaper_ready_fd < 0)
		return 0;
	/* By now the helper is normally long done with its few syscalls. */
	do
		n = read(k->reaper_ready_fd, &status, 1);
	while (n < 0 && errno == EINTR);
	close(k->reaper_ready_fd);
	k->reaper_ready_fd = -1;
	if (n != 1)
		return -ECHILD; /* it died without a word */
	return status ? -(int)status : 0;
}

/* The write end of the last deferred VM's helper pipe, left open for our
 * exit to close. */
static int vmm_kvm_reaper_last = -1;

void vmm_kvm_destroy(struct vmm_kvm *k)
{
	if (k->run)
		munmap(k->run, k->run_size);
	if (k->vcpu_fd >= 0)
		close(k->vcpu_fd);
	if (k->mem.host)
		munmap(k->mem.host, k->mem.size);
	if (k->vm_fd >= 0)
		close(k->vm_fd);
	if (k->sys_fd >= 0)
		close(k->sys_fd);
	/* The helper's EOF (it exits, KVM tears down) waits for our own exit:
	 * the teardown, run by a CLONE_VM child, works on the address space we
	 * share, and started here it held up our exit by 4-18 ms in about a
	 * third of the runs. A process with more VMs lets the previous one go
	 * now, so that at most one lingers. */
	if (k->reaper_fd >= 0) {
		if (vmm_kvm_reaper_last >= 0)
			close(vmm_kvm_reaper_last);
		vmm_kvm_reaper_last = k->reaper_fd;
	}
	vmm_kvm_reaper_wait(k);
	memset(k, 0, sizeof(*k));
	k->sys_fd = k->vm_fd = k->vcpu_fd = k->reaper_fd = k->reaper_ready_fd = -1;
}

/* Raw system calls for the teardown helper: it shares our memory but not our
 * TLS, so it must not touch errno or anything else of libc's. */
static long vmm_raw3(long nr, long a, long b, long c)
{
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

struct vmm_reaper_arg {
	int keep[3]; /* VM, pipe read end, ready pipe write end: sorted */
	int rfd;     /* the pipe's read end */
	int wfd;     /* the ready pipe's write end */
};

/* The helper, a CLONE_VM child with every signal blocked: drops every fd but
 * the VM's and its two pipe ends (the image above all, whose OFD locks must
 * die with us), enters seccomp strict mode, and only then reports, with one
 * byte on the ready pipe (write is one of strict mode's four syscalls; a
 * futex wake is not): 0, or the errno of the failed prctl, after which it
 * exits at once. Then it waits for the pipe's EOF; its exit does the VM
 * teardown, after we are gone. */
__attribute__((no_sanitize_address, noreturn)) static int vmm_kvm_reaper(void *p)
{
	struct vmm_reaper_arg *a = p;
	long next = 0, r;
	unsigned char status;
	char c;

	for (int i = 0; i < 3; i++) {
		if (a->keep[i] > next)
			vmm_raw3(SYS_close_range, next, a->keep[i] - 1, 0);
		next = a->keep[i] + 1;
	}
	vmm_raw3(SYS_close_range, next, ~0u, 0);
	vmm_raw3(SYS_chdir, (long)"/", 0, 0); /* pin no mount */
	r = vmm_raw3(SYS_prctl, PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0);
	/* Anything but 0 is a failure, reported as an errno that fits a byte. */
	status = r == 0 ? 0 : r < 0 && r > -256 ? (unsigned char)-r : EINVAL;
	while (vmm_raw3(SYS_write, a->wfd, (long)&status, 1) == -EINTR)
		;
	while (status == 0) {
		long n = vmm_raw3(SYS_read, a->rfd, (long)&c, 1);

		if (n == 0 || (n < 0 && n != -EINTR))
			break;
	}
	for (;;)
		vmm_raw3(SYS_exit, 0, 0, 0); /* exit_group is not allowed in strict mode */
}

#define VMM_REAPER_STACK (16u << 10)

static void vmm_sort3(int *v)
{
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2 - i; j++)
			if (v[j] > v[j + 1]) {
				int t = v[j];

				v[j] = v[j + 1];
				v[j + 1] = t;
			}
}

int vmm_kvm_defer_teardown(struct vmm_kvm *k)
{
	struct vmm_reaper_arg *a;
	sigset_t all, old;
	uint8_t *stack;
	int p[2], rp[2], r = 0;
	pid_t pid;

	if (k->reaper_fd >= 0 || k->vm_fd < 0)
		return -EINVAL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(rp, O_CLOEXEC) < 0) {
		r = -errno;
		close(p[0]);
		close(p[1]);
		return r;
	}
	/* The stack is the helper's for its whole life, which may outlast
	 * vmm_kvm_destroy(): never unmapped (16 KiB per deferred VM). */
	stack = mmap(NULL, VMM_REAPER_STACK, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED) {
		r = -errno;
		goto err;
	}
	a = (struct vmm_reaper_arg *)stack; /* bottom; the stack grows down from the top */
	/* The VM fd alone keeps the VM (vCPUs included) alive: a vCPU fd only
	 * holds a reference to it. */
	a->keep[0] = k->vm_fd;
	a->keep[1] = p[0];
	a->keep[2] = rp[1];
	vmm_sort3(a->keep);
	a->rfd = p[0];
	a->wfd = rp[1];
	/* CLONE_VM: no page tables copied, no copy-on-write faults afterwards
	 * (fork cost ~1 ms here). The helper holds our mm too, so the unmapping
	 * of this address space also happens after we exit. No exit signal: a
	 * wait(-1) elsewhere never reaps it by accident. No CLONE_FILES: its
	 * fds are its own copies, so once we close our ready write end, its
	 * death before reporting reads as EOF. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = clone(vmm_kvm_reaper, stack + VMM_REAPER_STACK, CLONE_VM, a);
	if (pid < 0)
		r = -errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		munmap(stack, VMM_REAPER_STACK);
		goto err;
	}
	close(p[0]);
	close(rp[1]);
	k->reaper_fd = p[1];
	k->reaper_ready_fd = rp[0];
	return 0;
err:
	close(p[0]);
	close(p[1]);
	close(rp[0]);
	close(rp[1]);
	return r;
}

void vmm_kvm_kick(struct vmm_kvm *k)
{
	if (k->run)
		__atomic_store_n(&k->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

static int vmm_kvm_exit_io(struct vmm_kvm *k, const struct vmm_exit_ops *ops, void *ctx)
{
	struct kvm_run *run = k->run;
	uint64_t bytes = (uint64_t)run->io.size * run->io.count;
	uint64_t end;

	if (run->io.size != 1 && run->io.size != 2 && run->io.size != 4)
		return -EINVAL;
	if (__builtin_add_overflow(run->io.data_offset, bytes, &end) || end > k->run_size)
		return -EINVAL;
	return ops->io(ctx, run->io.port, run->io.direction == KVM_EXIT_IO_OUT, run->io.size,
		       run->io.count, (uint8_t *)run + run->io.data_offset);
}

/* Hands the queued writes to the handler in guest order. The ring is written
 * by KVM, not the guest, but its indexes and lengths are checked anyway. */
static int vmm_kvm_drain(struct vmm_kvm *k, const struct vmm_exit_ops *ops, void *ctx,
			 uint64_t *ret_gpa)
{
	struct kvm_coalesced_mmio_ring *ring = k->ring;
	uint32_t first;

	if (!ring)
		return 0;
	for (first = __atomic_load_n(&ring->first, __ATOMIC_ACQUIRE);
	     first != __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE);
	     first = (first + 1) % k->ring_max) {
		struct kvm_coalesced_mmio *m;
		int r;

		if (first >= k->ring_max)
			return -EIO;
		m = &ring->coalesced_mmio[first];
		*ret_gpa = m->phys_addr;
		r = m->len == 0 || m->len > 8 ? -EINVAL
					      : ops->mmio(ctx, m->phys_addr, true, m->len, m->data);
		__atomic_store_n(&ring->first, (first + 1) % k->ring_max, __ATOMIC_RELEASE);
		if (r)
			return r < 0 ? r : -EPROTO; /* DONE is never coalesced */
	}
	return 0;
}

enum vmm_stop vmm_kvm_run(struct vmm_kvm *k, const struct vmm_exit_ops *ops, void *ctx,
			  volatile sig_atomic_t *timed_out, int *ret_err, char *detail,
			  size_t detaillen)
{
	struct kvm_run *run = k->run;
	uint64_t gpa = 0;
	int r;

	*ret_err = 0;
	for (;;) {
		if (*timed_out)
			return VMM_STOP_TIMEOUT;
		r = ioctl(k->vcpu_fd, KVM_RUN, 0) < 0 ? -errno : 0;
		*ret_err = vmm_kvm_drain(k, ops, ctx, &gpa);
		if (*ret_err) {
			snprintf(detail, detaillen, "guest MMIO rejected: queued write at 0x%llx",
				 (unsigned long long)gpa);
			return VMM_STOP_HANDLER;
		}
		if (r) {
			if (r == -EINTR || r == -EAGAIN) {
				/* Clear first: a kick landing after this is seen next round. */
				__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				continue;
			}
			*ret_err = r;
			snprintf(detail, detaillen, "KVM_RUN failed: %s", strerror(-r));
			return VMM_STOP_ERROR;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_HLT:
			return VMM_STOP_HLT;
		case KVM_EXIT_IO:
			r = vmm_kvm_exit_io(k, ops, ctx);
			if (r) {
				*ret_err = r;
				snprintf(detail, detaillen,
					 "guest port I/O rejected: port 0x%x %s size %u count %u",
					 run->io.port,
					 run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in",
					 run->io.size, run->io.count);
				return VMM_STOP_HANDLER;
			}
			break;
		case KVM_EXIT_MMIO:
			if (run->mmio.len == 0 || run->mmio.len > 8)
				r = -EINVAL;
			else
				r = ops->mmio(ctx, run->mmio.phys_addr, run->mmio.is_write,
					      run->mmio.len, run->mmio.data);
			if (r == VMM_EXIT_DONE)
				return VMM_STOP_HLT;
			if (r) {
				*ret_err = r;
				snprintf(detail, detaillen,
					 "guest MMIO rejected: %s of %u bytes at 0x%llx",
					 run->mmio.is_write ? "write" : "read", run->mmio.len,
					 (unsigned long long)run->mmio.phys_addr);
				return VMM_STOP_HANDLER;
			}
			break;
		case KVM_EXIT_SHUTDOWN:
			snprintf(detail, detaillen, "guest shut down (triple fault)");
			return VMM_STOP_EXIT;
		case KVM_EXIT_FAIL_ENTRY:
			snprintf(detail, detaillen, "VM entry failed: hardware reason 0x%llx",
				 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			return VMM_STOP_EXIT;
		case KVM_EXIT_INTERNAL_ERROR:
			snprintf(detail, detaillen, "KVM internal error, suberror %u",
				 run->internal.suberror);
			return VMM_STOP_EXIT;
		case KVM_EXIT_INTR:
			break;
		default:
			snprintf(detail, detaillen, "unexpected KVM exit %s (%u)",
				 vmm_kvm_exit_name(run->exit_reason), run->exit_reason);
			return VMM_STOP_EXIT;
		}
	}
}
