/* tests/kvm/ops/spin.c — spins forever (interrupts are off from the start;
 * cli itself would fault at CPL3): only the watchdog can end it. */
#include "testop.h"

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	for (;;)
		__asm__ volatile("pause");
}
