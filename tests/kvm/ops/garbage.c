/* tests/kvm/ops/garbage.c — the doorbell names bytes that are not a frame. */
#include "testop.h"

static const char junk[] = "not a frame, just text\n";

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	testop_doorbell((uint64_t)(uintptr_t)junk);
	return testop_ok(ct, testop_cfg(ct)->file_size, 0);
}
