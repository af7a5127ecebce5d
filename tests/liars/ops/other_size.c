/* tests/liars/ops/other_size.c — writes a 1 PiB virtual size and reports
 * it, whatever was asked. */
#include "liar.h"

static uint8_t sec[512];

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	const uint64_t pib = 1ull << 50;

	if (liar_qcow2_size(ct, sec, pib) || ct->flush())
		return -1;
	return liar_ok(ct, pib, testop_cfg(ct)->file_size);
}
