/* tests/kvm/ops/doorbell_oob.c — the doorbell names an address above guest
 * RAM (unbacked, below the MMIO windows). */
#include "testop.h"

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	testop_doorbell(0x08000000ull);
	return testop_ok(ct, testop_cfg(ct)->file_size, 0);
}
