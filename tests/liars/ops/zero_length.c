/* tests/liars/ops/zero_length.c — writes the new size into the header (as
 * an honest grow would) but asks for a 0-byte file. */
#include "liar.h"

static uint8_t sec[512];

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	const struct instar_resize_config *cfg = testop_cfg(ct);

	if (liar_qcow2_size(ct, sec, cfg->new_virtual_size) || ct->flush())
		return -1;
	return liar_ok(ct, cfg->new_virtual_size, 0);
}
