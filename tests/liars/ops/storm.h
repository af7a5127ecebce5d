/* tests/liars/ops/storm.h — LIAR_FLUSHES barriers, each after a one-sector
 * write (so none is merged away), then an honest header and result.
 * Included by flush_storm.c (past the barrier bound) and slow_commit.c
 * (below it, but too many to sync within a short --timeout). */
#include "liar.h"

static uint8_t sec[512];

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	const struct instar_resize_config *cfg = testop_cfg(ct);

	for (int i = 0; i < LIAR_FLUSHES; i++) {
		if (ct->read_sectors(0, sec, 1) || ct->write_sectors(0, sec, 1))
			return -1;
		if (ct->flush())
			break; /* over the bound: the host fails the run */
	}
	if (liar_qcow2_size(ct, sec, cfg->new_virtual_size))
		return -1;
	return liar_ok(ct, cfg->new_virtual_size, cfg->file_size);
}
