/* guest/core/frame.h — guest core: framed messages on COM1 and raw text on
 * the debug port, both with `rep outsb` so a frame costs few exits. */
#ifndef GUEST_FRAME_H
#define GUEST_FRAME_H

#include <stdint.h>

#include "abi.h"

/* Sends one frame of type with len <= INSTAR_FRAME_MAX_PAYLOAD bytes.
 * Returns 0 or -EINVAL (22) for an oversized payload. */
int guest_frame_send(uint16_t type, const void *buf, uint32_t len);

/* Writes text to the debug port (the host shows it only in debug mode). */
void guest_debug_write(const char *s, uint32_t len);

static inline void guest_outsb(uint16_t port, const void *buf, uint64_t n)
{
	__asm__ volatile("rep outsb" : "+S"(buf), "+c"(n) : "d"(port) : "memory");
}

static inline void __attribute__((noreturn)) guest_halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

#endif
