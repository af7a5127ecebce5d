/* tests/kvm/ops/pagefault.c — reads an address outside the identity map
 * (#PF, vector 14, CR2 set). */
#include "testop.h"

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)0x8000000000ull;

	return (int)*p;
}
