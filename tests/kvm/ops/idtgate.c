/* tests/kvm/ops/idtgate.c — a hostile op rewrites the IDT gate of #BP into a
 * DPL3 gate to its own code, then int3: on a guest whose IDT CPL3 can write,
 * its code runs at CPL0 (it records CS and returns) and it reports success
 * over a staged write. With the IDT supervisor-only the first store is a #PF
 * (error code P|W|U) at TESTOP_POKE_RIP. */
#include "testop.h"

uint64_t cpl0_cs;
void idtgate_payload(void);
__asm__(".text\n"
	"idtgate_payload:\n"
	"	movl %cs, %eax\n"
	"	movq %rax, cpl0_cs(%rip)\n"
	"	iretq\n");

TESTOP_ATTACK_ENTRY;
int attack_main(const struct instar_calltab *ct)
{
	uint64_t g[2], at = INSTAR_IDT_ADDR + 16 * 3;

	if (testop_stage_write(ct))
		return -1;
	testop_gate(g, (uint64_t)(uintptr_t)idtgate_payload, INSTAR_SEL_KERNEL_CS, 0xe);
	testop_poke(at, g[0]);
	testop_poke(at + 8, g[1]);
	__asm__ volatile("int3" ::: "memory");
	return testop_ok(ct, testop_cfg(ct)->file_size + 4096, cpl0_cs);
}
