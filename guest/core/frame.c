/* guest/core/frame.c — guest core: the doorbell frame writer and the EXIT
 * register (the CPL0 exception path has its own COM1 writer, in idt.c). */
#include <errno.h>

#include "crc32.h"
#include "frame.h"
#include "lib.h"

/* The doorbell's frame: header and payload contiguous, as the host reads it. */
static struct {
	struct instar_frame_hdr h;
	uint8_t payload[INSTAR_FRAME_MAX_PAYLOAD];
} guest_frame __attribute__((aligned(16)));

int guest_frame_send(uint16_t type, const void *buf, uint32_t len)
{
	if (len > INSTAR_FRAME_MAX_PAYLOAD)
		return -EINVAL;
	guest_frame.h = (struct instar_frame_hdr){
	    .magic = INSTAR_FRAME_MAGIC,
	    .type = type,
	    .reserved = 0,
	    .len = len,
	    .crc32 = instar_crc32(0, buf, len),
	};
	memcpy(guest_frame.payload, buf, len);
	/* Identity-mapped: the pointer is the guest-physical address. */
	guest_ctrl_write64(INSTAR_CTRL_FRAME, (uint64_t)(uintptr_t)&guest_frame);
	return 0;
}

void guest_exit(void)
{
	/* The host never resumes after EXIT; spin (pause is unprivileged) in
	 * case it does, until the watchdog ends it. */
	for (;;) {
		guest_ctrl_write64(INSTAR_CTRL_EXIT, 0);
		__asm__ volatile("pause");
	}
}
