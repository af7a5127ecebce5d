/* vmm/kvm.c — KVM VM + vCPU setup straight into 64-bit long mode at CPL3, and
 * the exit loop. No firmware: the host builds the GDT, the TSS, the IDT (from
 * core.bin's header) and the identity page tables the guest core starts on,
 * all of them supervisor-only. User mode because KVM nested without VMX
 * emulates every CPL0 instruction but runs CPL3 natively. */
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
#define X86_CR4_UMIP (1ull << 11)
#define X86_CR4_SMEP (1ull << 20)
#define X86_CR4_SMAP (1ull << 21)
#define X86_EFER_LME (1ull << 8)
#define X86_EFER_LMA (1ull << 10)
#define X86_EFER_NXE (1ull << 11)

/* CPUID bits the guest may see (SDM Vol. 2A, CPUID). */
#define CPUID_1_EDX_FPU (1u << 0)
#define CPUID_1_EDX_PSE (1u << 3)
#define CPUID_1_EDX_MSR (1u << 5)
#define CPUID_1_EDX_PAE (1u << 6)
#define CPUID_1_EDX_MTRR (1u << 12)
#define CPUID_7_EBX_SMEP (1u << 7)
#define CPUID_7_EBX_SMAP (1u << 20)
#define CPUID_7_ECX_UMIP (1u << 2)
#define CPUID_X1_EDX_NX (1u << 20)
#define CPUID_X1_EDX_LM (1u << 29)

#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_US (1ull << 2)
#define PTE_PS (1ull << 7)
#define PTE_NX (1ull << 63)

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

int vmm_kvm_walls_missing(const struct vmm_kvm *k, char *buf, size_t len)
{
	static const char *const names[] = {"SMEP", "SMAP", "UMIP", "NX"};
	size_t at = 0;
	int n = 0;

	if (len)
		buf[0] = '\0';
	for (unsigned int i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (k->walls & (1u << i))
			continue;
		if (at < len)
			at += (size_t)snprintf(buf + at, len - at, "%s%s", n ? " " : "", names[i]);
		n++;
	}
	return n;
}

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
 * failed (E2BIG) query. */
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

static struct kvm_cpuid_entry2 *vmm_kvm_cpuid_find(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	return NULL;
}

/* Cuts KVM's supported CPUID in c down, in place, to what the guest needs:
 * the vendor and family (leaves 0, 1), the paging features it runs on (PAE,
 * long mode, NX), the MSRs the host sets (MTRR), and SMEP, SMAP and UMIP,
 * which the host turns on (KVM refuses CR4 bits the guest's CPUID lacks).
 * No hypervisor leaves, no cache or topology leaves, no vector extensions.
 * Returns the VMM_WALL_* bits the CPU offers, or -ENOTSUP without long mode. */
static int vmm_kvm_cpuid_min(struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 out[6],
	    *e0 = vmm_kvm_cpuid_find(c, 0, 0), *e1 = vmm_kvm_cpuid_find(c, 1, 0),
	    *e7 = vmm_kvm_cpuid_find(c, 7, 0), *x0 = vmm_kvm_cpuid_find(c, 0x80000000u, 0),
	    *x1 = vmm_kvm_cpuid_find(c, 0x80000001u, 0),
	    *x8 = vmm_kvm_cpuid_find(c, 0x80000008u, 0);
	uint32_t n = 0;
	int walls = 0;

	if (!e0 || !e1 || !x0 || !x1 || !(x1->edx & CPUID_X1_EDX_LM))
		return -ENOTSUP;
	memset(out, 0, sizeof(out));
	out[n] = *e0;
	out[n++].eax = e7 ? 7 : 1;
	out[n] = *e1;
	out[n].ebx &= 0xff00; /* CLFLUSH line size only; APIC ID 0 */
	out[n].ecx = 0;
	out[n++].edx &= CPUID_1_EDX_FPU | CPUID_1_EDX_PSE | CPUID_1_EDX_MSR | CPUID_1_EDX_PAE |
			CPUID_1_EDX_MTRR;
	if (e7) {
		out[n] = *e7;
		out[n].eax = 0; /* no further subleaves */
		out[n].ebx &= CPUID_7_EBX_SMEP | CPUID_7_EBX_SMAP;
		out[n].ecx &= CPUID_7_ECX_UMIP;
		out[n].edx = 0;
		walls |= out[n].ebx & CPUID_7_EBX_SMEP ? VMM_WALL_SMEP : 0;
		walls |= out[n].ebx & CPUID_7_EBX_SMAP ? VMM_WALL_SMAP : 0;
		walls |= out[n].ecx & CPUID_7_ECX_UMIP ? VMM_WALL_UMIP : 0;
		n++;
	}
	out[n] = *x0;
	out[n++].eax = x8 ? 0x80000008u : 0x80000001u;
	out[n] = *x1;
	out[n].eax = out[n].ebx = out[n].ecx = 0;
	out[n++].edx &= CPUID_X1_EDX_LM | CPUID_X1_EDX_NX;
	walls |= x1->edx & CPUID_X1_EDX_NX ? VMM_WALL_NX : 0;
	if (x8) {
		out[n] = *x8;
		out[n].eax &= 0xffff; /* physical and linear address widths */
		out[n].ebx = out[n].ecx = out[n].edx = 0;
		n++;
	}
	memcpy(c->entries, out, n * sizeof(out[0]));
	c->nent = n;
	return walls;
}

/* A 16-byte 64-bit system descriptor for the TSS (SDM Vol. 3, 8.2.3). */
static void vmm_kvm_tss_desc(uint64_t *d, uint64_t base, uint32_t limit)
{
	d[0] = (limit & 0xffffull) | (base & 0xffffffull) << 16 |
	       (0x80ull | SEG_TYPE_TSS_BUSY) << 40 | (uint64_t)(limit >> 16 & 0xf) << 48 |
	       (base >> 24 & 0xff) << 56;
	d[1] = base >> 32;
}

/* Reads core.bin's header (shared/abi.h) from guest RAM and checks that its
 * bounds are ordered, page-aligned and inside the core window, and that
 * every stub lies in the exception path's code. */
static const struct instar_core_header *vmm_kvm_core_header(const struct vmm_guestmem *m)
{
	const struct instar_core_header *h = vmm_gpa(m, INSTAR_CORE_HEADER_ADDR, sizeof(*h));
	const uint64_t end = INSTAR_CORE_ADDR + INSTAR_CORE_MAX;

	if (!h || h->magic != INSTAR_CORE_MAGIC || h->size != sizeof(*h))
		return NULL;
	if (h->ktext < INSTAR_CORE_ADDR || h->ktext > h->kdata || h->kdata > h->rodata ||
	    h->rodata > h->data || h->data > end ||
	    (h->ktext | h->kdata | h->rodata | h->data) % 4096)
		return NULL;
	for (uint32_t v = 0; v < INSTAR_IDT_VECTORS; v++)
		if (h->exc_stubs[v] < h->ktext || h->exc_stubs[v] >= h->kdata)
			return NULL;
	return h;
}

/* A 64-bit interrupt gate, DPL 0 (SDM Vol. 3, 6.14.1): only the CPU's own
 * exceptions enter it; an int n from CPL3 is a #GP. */
static void vmm_kvm_gate(uint64_t *g, uint64_t off)
{
	g[0] = (off & 0xffff) | (uint64_t)INSTAR_SEL_KERNEL_CS << 16 | 0x8eull << 40 |
	       (off >> 16 & 0xffff) << 48;
	g[1] = off >> 32;
}

static void vmm_kvm_map4k(uint64_t *pt, uint64_t from, uint64_t to, uint64_t flags)
{
	for (uint64_t a = from; a < to; a += 4096)
		pt[a >> 12] = a | flags;
}

_Static_assert(INSTAR_PAGETABLE_SIZE >= 0x4000, "PML4, PDPT, PD and one PT");
_Static_assert(sizeof(struct instar_calltab) <= 0x1000, "call table in one page");
_Static_assert(INSTAR_CORE_ADDR + INSTAR_CORE_MAX <= 2ull << 20, "core in the 4 KiB-mapped 2 MiB");
_Static_assert(INSTAR_OP_ADDR == 2ull << 20 && INSTAR_OP_MAX == 2ull << 20,
	       "the operation window is the second 2 MiB page");

/* The GDT, TSS, IDT and page tables. Everything the CPU uses for privilege
 * (descriptor tables, TSS, page tables, the exception stack) and the core's
 * exception path are supervisor-only: CPL3 can neither change nor read them
 * (a user write to the IDT or a page table is a #PF, not a way to CPL0).
 * Below 2 MiB each page gets its own rights; what nothing uses is not
 * mapped (a null dereference faults). With NX (walls & VMM_WALL_NX) only
 * code is executable: core's user code, its exception path, the operation's
 * window. */
static int vmm_kvm_build_tables(const struct vmm_guestmem *m, uint32_t walls, char *err,
				size_t errlen)
{
	uint64_t *gdt = vmm_gpa(m, INSTAR_GDT_ADDR, 8 * INSTAR_GDT_ENTRIES);
	uint8_t *tss = vmm_gpa(m, INSTAR_TSS_ADDR, TSS_LIMIT + 1);
	uint64_t *idt = vmm_gpa(m, INSTAR_IDT_ADDR, 16 * INSTAR_IDT_VECTORS);
	uint64_t *pml4 = vmm_gpa(m, INSTAR_PAGETABLE_ADDR, INSTAR_PAGETABLE_SIZE);
	const struct instar_core_header *h = vmm_kvm_core_header(m);
	uint64_t rsp0 = INSTAR_EXC_STACK_ADDR + INSTAR_EXC_STACK_SIZE;
	uint64_t nx = walls & VMM_WALL_NX ? PTE_NX : 0;
	const uint64_t k_ro = PTE_P | nx, k_rw = PTE_P | PTE_RW | nx, k_x = PTE_P;
	const uint64_t u_ro = PTE_P | PTE_US | nx, u_rw = PTE_P | PTE_RW | PTE_US | nx,
		       u_x = PTE_P | PTE_US;
	const uint64_t dir = PTE_P | PTE_RW | PTE_US; /* the leaves decide */
	uint16_t iomap = TSS_LIMIT + 1;
	uint64_t *pdpt, *pd, *pt;

	if (!gdt || !tss || !idt || !pml4) {
		snprintf(err, errlen, "guest RAM too small for the boot tables");
		return -EINVAL;
	}
	if (!h) {
		snprintf(err, errlen, "core.bin has no valid core header (ABI %u expected)",
			 INSTAR_ABI_VERSION);
		return -ENOEXEC;
	}
	pdpt = pml4 + 512;
	pd = pdpt + 512;
	pt = pd + 512;
	/* RAM is fresh anonymous memory: zero already, only entries are set.
	 * Descriptors are marked accessed, so the CPU never writes to the
	 * read-only GDT page. */
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

	for (uint32_t v = 0; v < INSTAR_IDT_VECTORS; v++)
		vmm_kvm_gate(idt + 2 * v, h->exc_stubs[v]);

	pml4[0] = (INSTAR_PAGETABLE_ADDR + 0x1000) | dir;
	pdpt[0] = (INSTAR_PAGETABLE_ADDR + 0x2000) | dir;
	pd[0] = (INSTAR_PAGETABLE_ADDR + 0x3000) | dir;
	vmm_kvm_map4k(pt, INSTAR_GDT_ADDR, INSTAR_GDT_ADDR + 0x1000, k_ro); /* and TSS */
	vmm_kvm_map4k(pt, INSTAR_BOOTINFO_ADDR, INSTAR_BOOTINFO_ADDR + 0x1000, u_ro);
	vmm_kvm_map4k(pt, INSTAR_CONFIG_ADDR, INSTAR_CONFIG_ADDR + INSTAR_CONFIG_MAX, u_ro);
	vmm_kvm_map4k(pt, INSTAR_CALLTAB_ADDR, INSTAR_CALLTAB_ADDR + 0x1000, u_rw);
	vmm_kvm_map4k(pt, INSTAR_IDT_ADDR, INSTAR_IDT_ADDR + 0x1000, k_ro);
	vmm_kvm_map4k(pt, INSTAR_PAGETABLE_ADDR, INSTAR_PAGETABLE_ADDR + INSTAR_PAGETABLE_SIZE,
		      k_ro);
	vmm_kvm_map4k(pt, INSTAR_EXC_STACK_ADDR, INSTAR_EXC_STACK_ADDR + INSTAR_EXC_STACK_SIZE,
		      k_rw);
	vmm_kvm_map4k(pt, INSTAR_CORE_ADDR, h->ktext, u_x);
	vmm_kvm_map4k(pt, h->ktext, h->kdata, k_x);
	vmm_kvm_map4k(pt, h->kdata, h->rodata, k_rw);
	vmm_kvm_map4k(pt, h->rodata, h->data, u_ro);
	vmm_kvm_map4k(pt, h->data, INSTAR_CORE_ADDR + INSTAR_CORE_MAX, u_rw);
	/* The operation's window (its code and data), then 2 MiB pages of
	 * heap up to 1 GiB, which covers the MMIO windows. */
	pd[1] = INSTAR_OP_ADDR | PTE_P | PTE_RW | PTE_US | PTE_PS;
	for (uint64_t i = 2; i < 512; i++)
		pd[i] = (i << 21) | u_rw | PTE_PS;
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
	/* struct kvm_msrs ends in a flexible array: a union with a buffer
	 * sized for one entry gives it room without nesting it in a struct. */
	union {
		struct kvm_msrs hdr;
		unsigned char room[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
	} m;

	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 1;
	m.hdr.entries[0].index = MSR_MTRR_DEF_TYPE;
	m.hdr.entries[0].data = MTRR_DEF_ENABLE | MTRR_TYPE_WB;
	if (ioctl(k->vcpu_fd, KVM_SET_MSRS, &m.hdr) != 1)
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
	/* SMEP and SMAP: CPL0 (the exception path) neither runs nor touches
	 * a user page; UMIP: sgdt, sidt, sldt, smsw and str fault at CPL3. Each
	 * where the CPU offers it (k->walls). */
	sregs.cr4 = X86_CR4_PAE | (k->walls & VMM_WALL_SMEP ? X86_CR4_SMEP : 0) |
		    (k->walls & VMM_WALL_SMAP ? X86_CR4_SMAP : 0) |
		    (k->walls & VMM_WALL_UMIP ? X86_CR4_UMIP : 0);
	sregs.cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP | X86_CR0_PG;
	sregs.efer = X86_EFER_LME | X86_EFER_LMA | (k->walls & VMM_WALL_NX ? X86_EFER_NXE : 0);
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
 * host's line up. On hosts that shadow the guest's page tables every first
 * touch of a 4 KiB page is a fault the hypervisor handles in
 * software, and the operation's scratch is hundreds of pages. Below the heap
 * the guest touches a few dozen scattered pages (tables, binaries, their
 * bss): a huge page each there would cost 2 MiB of zeroing apiece, and more
 * on a host whose hypervisor reclaims free memory. */
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
	r = vmm_kvm_cpuid_min(j->cpuid);
	if (r < 0) {
		snprintf(j->err, sizeof(j->err), "KVM's CPUID offers no long mode");
		return r;
	}
	k->walls = (uint32_t)r;
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
 * back from that CPU's free lists hot (where the hypervisor reclaimed them,
 * each first touch of a huge page is then many times slower). RAM is touched only after
 * KVM_SET_USER_MEMORY_REGION, which waits for page faults in progress. The thread is joined before
 * returning: the caller, and its sandbox, see one thread as before. */
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
	if (!r && fill)
		r = fill(ctx, &k->mem, err, errlen);
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
	/* After the join: the tables depend on the CPU's features (NX), and
	 * the IDT on the core that fill loaded. */
	if (!r)
		r = vmm_kvm_build_tables(&k->mem, k->walls, err, errlen);
	/* The helper holds the VM: no guest runs unless it is confined. */
	if (!r) {
		r = vmm_kvm_reaper_wait(k);
		if (r)
			snprintf(err, errlen,
				 "teardown helper could not enter seccomp strict mode: %s",
				 strerror(-r));
	}
	if (!r) {
		char missing[32];

		/* Only the VM and vCPU fds are needed from here on. */
		close(k->sys_fd);
		k->sys_fd = -1;
		if (vmm_kvm_walls_missing(k, missing, sizeof(missing)) && getenv("INSTAR_DEBUG"))
			fprintf(stderr,
				"instar: debug: this host's KVM offers no %s: the guest runs "
				"without it\n",
				missing);
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
	 * (as a fork would cost). The helper holds our mm too, so the unmapping
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
