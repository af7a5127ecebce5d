/* tests/kvm/ops/gdtgate.c — a hostile op writes a DPL3 call gate to the
 * kernel code segment into GDT slots 5-6 and far-calls it: on a guest whose
 * GDT CPL3 can write, its code runs at CPL0 (it records CS and returns with
 * lretq), then it reports success over a staged write. With the GDT
 * supervisor-only the first store is a #PF (error code P|W|U) at
 * TESTOP_POKE_RIP. */
#include "testop.h"

uint64_t cpl0_cs;
void gdtgate_payload(void);
__asm__(".text\n"
	"gdtgate_payload:\n"
	"	movl %cs, %eax\n"
	"	movq %rax, cpl0_cs(%rip)\n"
	"	lretq\n");

static struct {
	uint32_t off;
	uint16_t sel;
} __attribute__((packed)) far = {0, 5 * 8 | 3};

TESTOP_ATTACK_ENTRY;
int attack_main(const struct instar_calltab *ct)
{
	uint64_t g[2];

	if (testop_stage_write(ct))
		return -1;
	testop_gate(g, (uint64_t)(uintptr_t)gdtgate_payload, INSTAR_SEL_KERNEL_CS, 0xc);
	testop_poke(INSTAR_GDT_ADDR + 5 * 8, g[0]);
	testop_poke(INSTAR_GDT_ADDR + 6 * 8, g[1]);
	__asm__ volatile("lcall *%0" ::"m"(far) : "memory");
	return testop_ok(ct, testop_cfg(ct)->file_size + 4096, cpl0_cs);
}
