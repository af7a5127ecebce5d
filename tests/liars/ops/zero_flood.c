/* tests/liars/ops/zero_flood.c — write-zeroes over the whole device, in the
 * largest pieces the device takes, then an honest header and result: only
 * the budget may stop it. */
#include "liar.h"

static uint8_t sec[512];

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	const struct instar_resize_config *cfg = testop_cfg(ct);
	uint64_t cap = ct->capacity_sectors(), s = 1;

	while (s < cap) {
		uint64_t n = cap - s > (1ull << 22) ? (1ull << 22) : cap - s;

		if (ct->write_zeroes(s, n))
			break; /* over the budget: the host fails the run */
		s += n;
	}
	if (liar_qcow2_size(ct, sec, cfg->new_virtual_size))
		return -1;
	return liar_ok(ct, cfg->new_virtual_size, cfg->file_size);
}
