/* tests/kvm/ops/badport.c — port I/O outside COM1 and the debug port. */
#include "testop.h"

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	__asm__ volatile("outb %%al, $0x80" : : "a"(0));
	return testop_ok(ct, testop_cfg(ct)->file_size, 0);
}
