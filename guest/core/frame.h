/* guest/core/frame.h — guest core: frames to the host through the control
 * page's FRAME doorbell (one MMIO exit per frame, usable at CPL3) and the EXIT
 * register. */
#ifndef GUEST_FRAME_H
#define GUEST_FRAME_H

#include <stdint.h>

#include "abi.h"

/* Sends one frame of type with len <= INSTAR_FRAME_MAX_PAYLOAD bytes via the
 * doorbell. Returns 0 or -EINVAL for an oversized payload. */
int guest_frame_send(uint16_t type, const void *buf, uint32_t len);

/* Writes the EXIT register: the host ends the run. */
void guest_exit(void) __attribute__((noreturn));

/* Stores v to a control register; the clobber keeps earlier stores (the
 * frame the doorbell names) before it. */
static inline void guest_ctrl_write64(uint32_t off, uint64_t v)
{
	volatile uint64_t *reg = (volatile uint64_t *)(uintptr_t)(INSTAR_CTRL_MMIO_BASE + off);

	__asm__ volatile("movq %1, %0" : "=m"(*reg) : "r"(v) : "memory");
}

#endif
