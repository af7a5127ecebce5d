/* tests/kvm/ops/bigresult.c — claims success with a file length beyond the
 * device capacity the host chose: a lie the host must refuse. */
#include "testop.h"

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	return testop_ok(ct, 1ull << 62, 0);
}
