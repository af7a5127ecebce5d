/* tests/fuzz/fuzz_unzstd.c — libFuzzer target for the zstd decoder
 * (guest/plan/unzstd.c), through the shared decoder harness
 * (fuzz_decoder.h). */
#include "fuzz_decoder.h"
#include "unzstd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_decoder(data, size, SIZE_MAX, plan_unzstd, PLAN_UNZSTD_WORK_SIZE);
}
