/* tests/kvm/ops/spin.c — spins forever with interrupts off: only the
 * watchdog can end it. */
#include "testop.h"

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	for (;;)
		__asm__ volatile("cli; pause");
}
