/* tests/unit/plan_testlib.h — what the planner unit tests share: an image
 * held in memory behind a plan_io read callback, a sink that counts the ops,
 * and one planner run over a fixed scratch. */
#ifndef INSTAR_PLAN_TESTLIB_H
#define INSTAR_PLAN_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plan.h"

struct ptl_img {
	uint8_t *b;
	size_t len;	/* file length: reads past it give zeros */
	bool fail_read; /* every read fails */
};

/* plan_read_fn over a struct ptl_img: -5 (EIO) when fail_read is set. */
int ptl_img_read(void *ctx, uint64_t off, void *buf, uint32_t len);

/* plan_sink_fn that counts the ops into the int at ctx. */
int ptl_count_sink(void *ctx, const struct plan_op *op);

typedef int (*ptl_planner_fn)(const struct plan_opts *o, const struct plan_io *io,
			      struct plan_scratch *s, struct plan *p,
			      struct instar_resize_result *ret);

/* Stores v as a width-byte (1, 2, 4 or 8) field at b + off, big- or
 * little-endian: the hostile-header tables of the planner tests. */
void ptl_put_field(uint8_t *b, size_t off, int width, bool big_endian, uint64_t v);

/* Runs planner on the len bytes at img, to new_size with flags and no
 * expected old size, over 1 MiB of scratch, counting the ops. Returns what
 * the planner returns; res is cleared first. */
int ptl_run(ptl_planner_fn planner, uint8_t *img, size_t len, uint64_t new_size, uint32_t flags,
	    struct instar_resize_result *res);

/* A LUKS1 header at h (592 bytes written; the rest untouched): aes,
 * xts-plain64, sha256, the payload at payload_sect sectors, a master key
 * of key_bytes, slot 0 enabled, slot i's key material at sector
 * 8 + slot_step * i, 4000 stripes each. */
void ptl_luks_header(uint8_t *h, uint32_t payload_sect, uint32_t key_bytes, uint32_t slot_step);

#endif
