/* tests/kvm/ops/tworesults.c — a guest may report exactly one result. */
#include "testop.h"

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	testop_ok(ct, testop_cfg(ct)->file_size, 0);
	return testop_ok(ct, testop_cfg(ct)->file_size, 0);
}
