/* tests/fuzz/fuzz_inflate.c — libFuzzer target for the raw DEFLATE decoder
 * (guest/plan/inflate.c). Input: a 2-byte little-endian output length, then
 * the deflate stream. Checks memory safety (exact-size buffers for the
 * sanitizers), the return codes, and that a success wrote every output byte:
 * two runs over differently pre-filled outputs must give the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inflate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t out_len, in_len;
	uint8_t *in, *a, *b;
	void *work;
	int ra, rb;

	if (size < 2 || size > (1u << 20))
		return 0;
	out_len = (size_t)data[0] | (size_t)data[1] << 8; /* <= 64 KiB - 1 */
	in_len = size - 2;
	in = malloc(in_len ? in_len : 1);
	a = malloc(out_len ? out_len : 1);
	b = malloc(out_len ? out_len : 1);
	work = malloc(PLAN_INFLATE_WORK_SIZE);
	if (!in || !a || !b || !work)
		abort();
	memcpy(in, data + 2, in_len);
	memset(a, 0x00, out_len);
	memset(b, 0xff, out_len);
	memset(work, 0xa5, PLAN_INFLATE_WORK_SIZE);
	ra = plan_inflate(in, in_len, a, out_len, work);
	memset(work, 0x5a, PLAN_INFLATE_WORK_SIZE);
	rb = plan_inflate(in, in_len, b, out_len, work);
	if (ra != 0 && ra != INSTAR_ERR_PARSE_FAILED)
		abort();
	if (ra != rb)
		abort(); /* deterministic, whatever the workspace held */
	if (ra == 0 && memcmp(a, b, out_len) != 0)
		abort(); /* success left output bytes unwritten */
	if (memcmp(in, data + 2, in_len) != 0)
		abort(); /* the input is read-only */
	free(in);
	free(a);
	free(b);
	free(work);
	return 0;
}
