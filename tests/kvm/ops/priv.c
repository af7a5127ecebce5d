/* tests/kvm/ops/priv.c — a privileged instruction (hlt) in an op: #GP at
 * CPL3 (vector 13), never a silent end of the run. */
#include "testop.h"

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	__asm__ volatile("hlt");
	return testop_ok(ct, testop_cfg(ct)->file_size, 0);
}
