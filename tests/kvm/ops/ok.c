/* tests/kvm/ops/ok.c — boots, reads sector 0 through the call table and
 * reports success without changing the file; the first 8 bytes of the image
 * come back in old_virtual_size so the host can see the read worked. */
#include "testop.h"

static uint8_t buf[512];

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	uint64_t tag;

	if (ct->magic != INSTAR_CALLTAB_MAGIC || ct->size < sizeof(*ct))
		return -1;
	if (ct->read_sectors(0, buf, 1))
		return -1;
	memcpy(&tag, buf, sizeof(tag));
	ct->log("ok op ran", 9);
	return testop_ok(ct, testop_cfg(ct)->file_size, tag);
}
