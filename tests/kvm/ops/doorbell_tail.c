/* tests/kvm/ops/doorbell_tail.c — a valid header in the last 16 bytes of
 * guest RAM whose payload would lie past its end. */
#include "testop.h"

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	struct instar_frame_hdr *h =
	    (struct instar_frame_hdr *)(uintptr_t)(ct->heap_end - sizeof(*h));

	*h = (struct instar_frame_hdr){
	    .magic = INSTAR_FRAME_MAGIC,
	    .type = INSTAR_FRAME_LOG,
	    .len = 64,
	};
	testop_doorbell((uint64_t)(uintptr_t)h);
	return testop_ok(ct, testop_cfg(ct)->file_size, 0);
}
