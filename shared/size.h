/* shared/size.h — the SIZE grammar of `qemu-img resize` (qemu 7.2): an
 * optional single leading '+'/'-' and then qemu_strtosz. Pure, freestanding
 * (no libc), so the host CLI, instarfs and fuzzers share one parser. */
#ifndef INSTAR_SIZE_H
#define INSTAR_SIZE_H

#include <stdbool.h>
#include <stdint.h>

/* qemu's BDRV_MAX_LENGTH, INT64_MAX aligned down to 1 GiB: the largest
 * image length and request end its block layer takes ("offset(N) exceeds
 * maximum(M)", "Could not refresh total sector count: File too large"). */
#define INSTAR_QEMU_MAX_LENGTH 0x7fffffffc0000000ull

enum instar_size_status {
	INSTAR_SIZE_OK = 0,
	INSTAR_SIZE_INVALID = -1,      /* "Parameter 'size' expects a non-negative ..." */
	INSTAR_SIZE_OUT_OF_RANGE = -2, /* "Value '<number>' is out of range ..." */
};

struct instar_size {
	int relative;	    /* 0 absolute, +1 grow by, -1 shrink by */
	uint64_t value;	    /* the magnitude; valid only with INSTAR_SIZE_OK */
	const char *number; /* the text after the +/- strip (points into the input) */
	bool hex_suffix;    /* hex with a multiplier suffix: qemu 7.2 prints
			       "warning: Using a multiplier suffix on hex numbers
			       is deprecated: <number>", whatever the outcome */
};

/* qemu 7.2 qemu_strtosz() on the whole of s (default suffix B, unit 1024):
 * leading whitespace and '+', decimal or 0x hex, fractions rounded half up,
 * suffixes bkmgtpe (any case), anything left over is INVALID, a value past
 * 2^64-1 is OUT_OF_RANGE. *ret_value is set only on INSTAR_SIZE_OK;
 * *ret_hex_suffix (may be NULL) is always set. */
int instar_strtosz(const char *s, uint64_t *ret_value, bool *ret_hex_suffix);

/* Parses a resize SIZE argument: strips one leading '+' or '-', then
 * instar_strtosz(). ret is always filled (number, relative, hex_suffix). */
int instar_size_parse(const char *s, struct instar_size *ret);

/* The new size as qemu-img computes it: current (already rounded up to 512)
 * plus/minus value, or value, in wrapping int64 arithmetic. Values of 2^63 and
 * more come out negative, which the caller reports as "New image size must be
 * positive". */
int64_t instar_size_resolve(const struct instar_size *s, uint64_t current);

#endif
