/* tests/kvm/ops/badport.c — port I/O at CPL3 (IOPL 0, no I/O bitmap): #GP,
 * reported as vector 13 before the host ever sees the port. */
#include "testop.h"

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	__asm__ volatile("outb %%al, $0x80" : : "a"(0));
	return testop_ok(ct, testop_cfg(ct)->file_size, 0);
}
