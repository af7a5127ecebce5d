/* tests/liars/ops/backing_write.c — grows the header as an honest grow
 * would, but also writes to the read-only backing device 1 through its own
 * copy of the core's driver (a guest is not bound to the call table), then
 * claims success. The host must refuse the run (and the write never reaches
 * the backing file). */
#include "liar.h"

/* The core's driver, compiled into this op: its static functions give
 * direct access to device 1's queue. */
#include "../../../guest/core/virtio_blk.c"

static uint8_t sec[512];
static uint8_t junk[512];

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	const struct instar_resize_config *cfg = testop_cfg(ct);
	struct gblk *b;

	if (liar_qcow2_size(ct, sec, cfg->new_virtual_size) || ct->flush())
		return -1;
	/* set up device 1 (read-only) the way the core does, then write */
	guest_blk_set_count(2);
	b = backing_dev(1);
	if (!b)
		return -1;
	memset(junk, 0xee, sizeof(junk));
	(void)rw(b, VIRTIO_T_OUT, 0, junk, 1);
	return liar_ok(ct, cfg->new_virtual_size, cfg->file_size);
}
