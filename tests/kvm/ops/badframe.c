/* tests/kvm/ops/badframe.c — a frame whose CRC does not match its payload,
 * sent before a valid result: the host must reject the run. */
#include "testop.h"

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	static const char payload[] = "hello";
	struct instar_frame_hdr h = {
	    .magic = INSTAR_FRAME_MAGIC,
	    .type = INSTAR_FRAME_LOG,
	    .len = sizeof(payload),
	    .crc32 = 0x12345678u,
	};

	testop_outsb(INSTAR_COM1_PORT, &h, sizeof(h));
	testop_outsb(INSTAR_COM1_PORT, payload, sizeof(payload));
	return testop_ok(ct, testop_cfg(ct)->file_size, 0);
}
