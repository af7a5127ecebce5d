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

/* For the hostile ops that attack the guest's own walls: _start jumps to
 * attack_main(ct) in C, and testop_poke(addr, value), a single 8-byte store,
 * sits at INSTAR_OP_ADDR + 16 (TESTOP_POKE_RIP), so the RIP of the fault
 * that must stop the attack is known exactly. The staged write before the
 * attack would be committed if the attack went unnoticed. */
#define TESTOP_POKE_RIP (INSTAR_OP_ADDR + 16)
#define TESTOP_ATTACK_ENTRY                                                                        \
	__asm__(".section .text.entry, \"ax\"\n"                                                   \
		".globl _start\n"                                                                  \
		"_start: jmp attack_main\n"                                                        \
		".balign 16\n"                                                                     \
		"testop_poke: movq %rsi, (%rdi)\n"                                                 \
		"	ret\n"                                                                           \
		".text\n");                                                                        \
	void testop_poke(uint64_t addr, uint64_t value);                                           \
	int attack_main(const struct instar_calltab *ct)

static inline int testop_stage_write(const struct instar_calltab *ct)
{
	static uint8_t sector[512];

	memset(sector, 0xab, sizeof(sector));
	return ct->write_sectors(2, sector, 1) || ct->flush() ? -1 : 0;
}

/* A 64-bit gate of the given type (0xe interrupt, 0xc call gate), DPL 3,
 * to selector sel:off, as two quadwords. */
static inline void testop_gate(uint64_t g[2], uint64_t off, uint16_t sel, uint8_t type)
{
	g[0] = (off & 0xffff) | (uint64_t)sel << 16 | (uint64_t)(0x80 | 3 << 5 | type) << 40 |
	       (off >> 16 & 0xffff) << 48;
	g[1] = off >> 32;
}

#endif
