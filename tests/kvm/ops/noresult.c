/* tests/kvm/ops/noresult.c — stages a write and returns without a result. */
#include "testop.h"

static uint8_t buf[512];

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	memset(buf, 0x11, sizeof(buf));
	ct->write_sectors(1, buf, 1);
	return 0;
}
