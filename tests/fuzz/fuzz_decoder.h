/* tests/fuzz/fuzz_decoder.h — the libFuzzer harness both cluster decoders
 * (guest/plan/inflate.c, unzstd.c) share. Input: a 2-byte little-endian
 * output length (so < 64 KiB), then the compressed bytes. Exact-size heap
 * buffers let the sanitizers see any access out of bounds; the result must
 * be 0 or PARSE_FAILED; two runs over differently pre-filled outputs and
 * workspaces must agree (deterministic, and a success wrote every output
 * byte); the input is read-only. */
#ifndef INSTAR_FUZZ_DECODER_H
#define INSTAR_FUZZ_DECODER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"

typedef int (*fuzz_decoder_fn)(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len,
			       void *work);

static inline int fuzz_decoder(const uint8_t *data, size_t size, size_t max_in,
			       fuzz_decoder_fn decode, size_t work_size)
{
	size_t out_len, in_len;
	uint8_t *in, *a, *b;
	void *work;
	int ra, rb;

	if (size < 2 || size - 2 > max_in)
		return 0;
	out_len = (size_t)data[0] | (size_t)data[1] << 8;
	in_len = size - 2;
	in = malloc(in_len ? in_len : 1);
	a = malloc(out_len ? out_len : 1);
	b = malloc(out_len ? out_len : 1);
	work = aligned_alloc(8, work_size);
	if (!in || !a || !b || !work)
		abort();
	if (in_len)
		memcpy(in, data + 2, in_len);
	memset(a, 0x00, out_len);
	memset(b, 0xff, out_len);
	memset(work, 0xa5, work_size);
	ra = decode(in, in_len, a, out_len, work);
	memset(work, 0x5a, work_size);
	rb = decode(in, in_len, b, out_len, work);
	if (ra != 0 && ra != INSTAR_ERR_PARSE_FAILED)
		abort();
	if (ra != rb)
		abort(); /* deterministic, whatever the workspace held */
	if (ra == 0 && memcmp(a, b, out_len) != 0)
		abort(); /* success left output bytes unwritten */
	if (in_len && memcmp(in, data + 2, in_len) != 0)
		abort(); /* the input is read-only */
	free(work);
	free(b);
	free(a);
	free(in);
	return 0;
}

#endif
