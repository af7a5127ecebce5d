/* tests/fuzz/fuzz_unzstd.c — libFuzzer target for the zstd decoder
 * (guest/plan/unzstd.c). The first two bytes are the output length (LE, so
 * < 64 KiB), the rest is the input. Exact-size heap buffers let the sanitizers
 * see any access out of bounds; the result must be 0 or PARSE_FAILED, and 0
 * must mean every output byte was written: two runs over outputs pre-filled
 * differently must agree byte for byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "unzstd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n, len;
	uint8_t *in, *a, *b;
	void *work;
	int ra, rb;

	if (size < 2)
		return 0;
	n = (size_t)data[0] | (size_t)data[1] << 8;
	len = size - 2;
	in = malloc(len ? len : 1);
	a = malloc(n ? n : 1);
	b = malloc(n ? n : 1);
	work = aligned_alloc(8, PLAN_UNZSTD_WORK_SIZE);
	if (!in || !a || !b || !work)
		abort();
	if (len)
		memcpy(in, data + 2, len);
	memset(a, 0x00, n);
	memset(b, 0xff, n);
	ra = plan_unzstd(in, len, a, n, work);
	rb = plan_unzstd(in, len, b, n, work);
	if (ra != rb || (ra != 0 && ra != INSTAR_ERR_PARSE_FAILED))
		abort();
	if (ra == 0 && memcmp(a, b, n) != 0)
		abort();
	free(work);
	free(b);
	free(a);
	free(in);
	return 0;
}
