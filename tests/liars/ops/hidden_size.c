/* tests/liars/ops/hidden_size.c — writes a 1 PiB virtual size but reports
 * exactly the size it was asked for. */
#include "liar.h"

static uint8_t sec[512];

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	const struct instar_resize_config *cfg = testop_cfg(ct);

	if (liar_qcow2_size(ct, sec, 1ull << 50) || ct->flush())
		return -1;
	return liar_ok(ct, cfg->new_virtual_size, cfg->file_size);
}
