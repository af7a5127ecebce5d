/* tests/kvm/ops/testop.h — helpers for the kvm suite's small operation
 * binaries (guest side, freestanding): each op provokes one host path. */
#ifndef TESTOP_H
#define TESTOP_H

#include "abi.h"
#include "lib.h"

#define TESTOP_ENTRY                                                                               \
	int _start(const struct instar_calltab *ct) __attribute__((section(".text.entry")))

static inline const struct instar_resize_config *testop_cfg(const struct instar_calltab *ct)
{
	uint32_t len;

	return ct->get_config(&len);
}

/* A result that leaves the file as it was: the host commits nothing. */
static inline int testop_ok(const struct instar_calltab *ct, uint64_t file_size_after, uint64_t tag)
{
	struct instar_resize_result res;

	memset(&res, 0, sizeof(res));
	res.error = INSTAR_OK;
	res.file_size_before = testop_cfg(ct)->file_size;
	res.file_size_after = file_size_after;
	res.old_virtual_size = tag;
	return ct->send_result(&res, sizeof(res));
}

/* Rings the FRAME doorbell with any address, as a hostile op would. */
static inline void testop_doorbell(uint64_t gpa)
{
	volatile uint64_t *reg =
	    (volatile uint64_t *)(uintptr_t)(INSTAR_CTRL_MMIO_BASE + INSTAR_CTRL_FRAME);

	__asm__ volatile("movq %1, %0" : "=m"(*reg) : "r"(gpa) : "memory");
}

/* A frame laid out as the doorbell expects: header, then payload. */
struct testop_frame {
	struct instar_frame_hdr h;
	uint8_t payload[64];
};

#endif
