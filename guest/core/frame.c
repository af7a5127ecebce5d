/* guest/core/frame.c — guest core: the COM1 frame writer. */
#include "crc32.h"
#include "frame.h"

int guest_frame_send(uint16_t type, const void *buf, uint32_t len)
{
	struct instar_frame_hdr h = {
	    .magic = INSTAR_FRAME_MAGIC,
	    .type = type,
	    .reserved = 0,
	    .len = len,
	};

	if (len > INSTAR_FRAME_MAX_PAYLOAD)
		return -22;
	h.crc32 = instar_crc32(0, buf, len);
	guest_outsb(INSTAR_COM1_PORT, &h, sizeof(h));
	if (len)
		guest_outsb(INSTAR_COM1_PORT, buf, len);
	return 0;
}

void guest_debug_write(const char *s, uint32_t len)
{
	guest_outsb(INSTAR_DEBUG_PORT, s, len);
}
