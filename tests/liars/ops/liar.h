/* tests/liars/ops/liar.h — helpers for the lying resize guests: each one
 * stands in for resize.bin, stages something, and claims success. */
#ifndef LIAR_H
#define LIAR_H

/* The kvm suite's op helpers: TESTOP_ENTRY, testop_cfg(). */
#include "../../kvm/ops/testop.h"

/* Claims success for new_size with a file of file_size_after bytes. */
static inline int liar_ok(const struct instar_calltab *ct, uint64_t new_size,
			  uint64_t file_size_after)
{
	const struct instar_resize_config *cfg = testop_cfg(ct);
	struct instar_resize_result res;
	uint64_t old = cfg->expected_old_virtual_size;

	memset(&res, 0, sizeof(res));
	res.error = INSTAR_OK;
	res.action = new_size > old   ? INSTAR_ACTION_GROW
		     : new_size < old ? INSTAR_ACTION_SHRINK
				      : INSTAR_ACTION_NOOP;
	res.old_virtual_size = old;
	res.new_virtual_size = new_size;
	res.file_size_before = cfg->file_size;
	res.file_size_after = file_size_after;
	return ct->send_result(&res, sizeof(res));
}

/* Writes text (len bytes, NUL-padded to a sector) as sector 0, flushes,
 * and claims success for the size asked, with a 512-byte file: a lying
 * vmdk descriptor. */
static inline int liar_descriptor(const struct instar_calltab *ct, const char *text, size_t len)
{
	static uint8_t sec[512];

	memset(sec, 0, sizeof(sec));
	memcpy(sec, text, len < sizeof(sec) ? len : sizeof(sec));
	if (ct->write_sectors(0, sec, 1) || ct->flush())
		return -1;
	return liar_ok(ct, testop_cfg(ct)->new_virtual_size, 512);
}

/* Sets the big-endian qcow2 size field (header byte 24) in sector 0. */
static inline int liar_qcow2_size(const struct instar_calltab *ct, uint8_t *sec, uint64_t size)
{
	if (ct->read_sectors(0, sec, 1))
		return -1;
	for (int i = 0; i < 8; i++)
		sec[24 + i] = (uint8_t)(size >> (56 - 8 * i));
	return ct->write_sectors(0, sec, 1);
}

#endif
