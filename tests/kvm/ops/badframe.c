/* tests/kvm/ops/badframe.c — a frame whose CRC does not match its payload,
 * sent before a valid result: the host must reject the run. */
#include "testop.h"

static struct testop_frame f;

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	f.h = (struct instar_frame_hdr){
	    .magic = INSTAR_FRAME_MAGIC,
	    .type = INSTAR_FRAME_LOG,
	    .len = 6,
	    .crc32 = 0x12345678u,
	};
	memcpy(f.payload, "hello", 6);
	testop_doorbell((uint64_t)(uintptr_t)&f);
	return testop_ok(ct, testop_cfg(ct)->file_size, 0);
}
