/* tests/kvm/ops/garbage.c — raw bytes that are not a frame at all. */
#include "testop.h"

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	static const char junk[] = "not a frame, just text\n";

	testop_outsb(INSTAR_COM1_PORT, junk, sizeof(junk) - 1);
	return testop_ok(ct, testop_cfg(ct)->file_size, 0);
}
