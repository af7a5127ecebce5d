/* tests/fuzz/fuzz_inflate.c — libFuzzer target for the raw DEFLATE decoder
 * (guest/plan/inflate.c), through the shared decoder harness
 * (fuzz_decoder.h). Inputs over 1 MiB are skipped: slow, and no larger than
 * a compressed 2 MiB cluster needs. */
#include "fuzz_decoder.h"
#include "inflate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_decoder(data, size, 1u << 20, plan_inflate, PLAN_INFLATE_WORK_SIZE);
}
