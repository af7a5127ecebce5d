/* tests/kvm/ops/umip.c — reads privileged state at CPL3: sgdt, which UMIP
 * turns into a #GP (vector 13) at TESTOP_POKE_RIP. Without UMIP it reads the
 * GDT base (INSTAR_GDT_ADDR) and reports it (as old_virtual_size) with
 * success over a staged write, so the test sees which happened. */
#include "testop.h"

static struct {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed)) gdtr;

void umip_sgdt(void *dst);
/* Placed at TESTOP_POKE_RIP: the entry block below has no poke of its own. */
__asm__(".section .text.entry, \"ax\"\n"
	".globl _start\n"
	"_start: jmp attack_main\n"
	".balign 16\n"
	"umip_sgdt: sgdt (%rdi)\n"
	"	ret\n"
	".text\n");

int attack_main(const struct instar_calltab *ct);
int attack_main(const struct instar_calltab *ct)
{
	if (testop_stage_write(ct))
		return -1;
	umip_sgdt(&gdtr);
	return testop_ok(ct, testop_cfg(ct)->file_size + 4096, gdtr.base);
}
