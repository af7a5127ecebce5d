/* tests/liars/ops/garbage_header.c — overwrites the header with garbage and
 * claims the resize it was asked for. */
#include "liar.h"

static uint8_t sec[512];

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	const struct instar_resize_config *cfg = testop_cfg(ct);

	memset(sec, 0xee, sizeof(sec));
	if (ct->write_sectors(0, sec, 1))
		return -1;
	return liar_ok(ct, cfg->new_virtual_size, cfg->file_size);
}
