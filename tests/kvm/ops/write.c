/* tests/kvm/ops/write.c — writes sector 2 with 0xab, flushes, reads it back,
 * and asks the host to grow the file by 4096 bytes. */
#include "testop.h"

static uint8_t buf[512], back[512];

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	memset(buf, 0xab, sizeof(buf));
	if (ct->write_sectors(2, buf, 1) || ct->flush())
		return -1;
	if (ct->read_sectors(2, back, 1) || memcmp(buf, back, sizeof(buf)))
		return -1; /* staged writes must be visible to guest reads */
	return testop_ok(ct, testop_cfg(ct)->file_size + 4096, 0);
}
