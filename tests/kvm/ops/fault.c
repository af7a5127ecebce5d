/* tests/kvm/ops/fault.c — stages a write, then executes ud2 (#UD, vector 6):
 * the host must report GUEST_FAULT and leave the file untouched. */
#include "testop.h"

static uint8_t buf[512];

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	memset(buf, 0xcd, sizeof(buf));
	ct->write_sectors(0, buf, 1);
	ct->flush();
	__asm__ volatile("ud2");
	return 0;
}
