/* tests/kvm/ops/doorbell_wrap.c — a doorbell address whose header range
 * wraps around 2^64. */
#include "testop.h"

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	testop_doorbell(~0ull - 7);
	return testop_ok(ct, testop_cfg(ct)->file_size, 0);
}
