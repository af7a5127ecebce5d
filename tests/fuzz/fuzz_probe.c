/* tests/fuzz/fuzz_probe.c — libFuzzer target for the host format probe
 * (shared/probe.c). Input: u64le file size, then the head window; the last
 * up-to-1 KiB of the input doubles as the tail window. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t zeros[INSTAR_PROBE_MAX_EXTRA];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct instar_probe_input in;
	struct instar_probe_info info;
	uint64_t fsz = 0;
	size_t body, tail;

	if (size < 8)
		return 0;
	for (int i = 0; i < 8; i++)
		fsz |= (uint64_t)data[i] << (8 * i);
	data += 8;
	size -= 8;
	body = size < INSTAR_PROBE_HEAD_LEN ? size : INSTAR_PROBE_HEAD_LEN;
	tail = size < INSTAR_PROBE_TAIL_LEN ? size : INSTAR_PROBE_TAIL_LEN;
	if (fsz < body)
		fsz = body;
	memset(&in, 0, sizeof(in));
	in.file_size = fsz;
	in.windows[0] = (struct instar_probe_window){.offset = 0, .data = data, .len = body};
	in.windows[1] = (struct instar_probe_window){
	    .offset = fsz - tail, .data = data + size - tail, .len = tail};
	in.nwindows = 2;
	/* Follow the probe's requests for more windows (zeros), as the CLI does. */
	for (int round = 0; round < INSTAR_PROBE_MAX_WINDOWS; round++) {
		memset(&info, 0, sizeof(info));
		if (instar_probe(&in, &info) != 0)
			abort();
		if (info.format >= INSTAR_FMT_COUNT)
			abort();
		if (memchr(info.subformat, '\0', sizeof(info.subformat)) == NULL)
			abort();
		if (info.other && strlen(info.other) > 64)
			abort();
		if (!info.need_offset || in.nwindows >= INSTAR_PROBE_MAX_WINDOWS)
			break;
		if (info.need_len > INSTAR_PROBE_MAX_EXTRA)
			abort();
		in.windows[in.nwindows++] = (struct instar_probe_window){
		    .offset = info.need_offset, .data = zeros, .len = info.need_len};
	}
	return 0;
}
