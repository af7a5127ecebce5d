/* tests/fuzz/fuzz_frame.c — libFuzzer target for the COM1 frame decoder
 * (vmm/serial.c): the stream arrives in chunks whose sizes come from the
 * input; every delivered frame must respect the header's bounds. */
#include <stdint.h>
#include <stdlib.h>

#include "serial.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every payload byte is read (so ASan sees an out-of-bounds payload) and the
 * result stored where the compiler cannot drop the loop. */
static volatile uint8_t frame_sink;

static int check_frame(void *ctx, const struct vmm_frame *f)
{
	uint8_t sum = 0;

	(void)ctx;
	if (f->len > INSTAR_FRAME_MAX_PAYLOAD || (f->len && !f->payload))
		abort();
	if (f->type < INSTAR_FRAME_RESULT || f->type > INSTAR_FRAME_PANIC)
		abort();
	for (uint32_t i = 0; i < f->len; i++)
		sum ^= f->payload[i];
	frame_sink = sum;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vmm_frame_decoder d;
	size_t pos = 1;
	int last = 0;

	if (size < 1)
		return 0;
	vmm_frame_decoder_init(&d);
	while (pos < size) {
		size_t chunk = (size_t)(data[0] % 37) + 1;
		int rc;

		if (chunk > size - pos)
			chunk = size - pos;
		rc = vmm_frame_feed(&d, data + pos, chunk, check_frame, NULL);
		/* Errors are sticky. */
		if (last && rc != last)
			abort();
		last = rc;
		pos += chunk;
	}
	return 0;
}
