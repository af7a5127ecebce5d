/* tests/kvm/ops/pagetable.c — a hostile op writes its page directory: a 2 MiB
 * user-writable alias of guest-physical 0 (GDT, IDT, page tables) at an
 * unused address, through which it turns the #BP gate into a DPL3 gate to
 * its own code and runs that at CPL0 (recording CS), then reports success
 * over a staged write. With the page tables supervisor-only the first store
 * is a #PF (error code P|W|U) at TESTOP_POKE_RIP. */
#include "testop.h"

#define ALIAS_SLOT 500ull /* PD entry: 0x3e800000, past RAM, never touched */
#define PD_ADDR (INSTAR_PAGETABLE_ADDR + 0x2000)

uint64_t cpl0_cs;
void pagetable_payload(void);
__asm__(".text\n"
	"pagetable_payload:\n"
	"	movl %cs, %eax\n"
	"	movq %rax, cpl0_cs(%rip)\n"
	"	iretq\n");

TESTOP_ATTACK_ENTRY;
int attack_main(const struct instar_calltab *ct)
{
	uint64_t g[2], alias = ALIAS_SLOT << 21, at = alias + INSTAR_IDT_ADDR + 16 * 3;

	if (testop_stage_write(ct))
		return -1;
	/* present, writable, user, 2 MiB page at physical 0 */
	testop_poke(PD_ADDR + 8 * ALIAS_SLOT, 0x87);
	testop_gate(g, (uint64_t)(uintptr_t)pagetable_payload, INSTAR_SEL_KERNEL_CS, 0xe);
	testop_poke(at, g[0]);
	testop_poke(at + 8, g[1]);
	__asm__ volatile("int3" ::: "memory");
	return testop_ok(ct, testop_cfg(ct)->file_size + 4096, cpl0_cs);
}
