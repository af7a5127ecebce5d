/* guest/core/idt.c — guest core: the CPL0 exception path. The host builds the
 * IDT at INSTAR_IDT_ADDR from the core header's stub addresses and maps it,
 * this code (.ktext) and its data (.kdata) supervisor-only. Any CPU exception
 * enters a CPL0 stub on the TSS.RSP0 stack, sends one EXCEPTION frame
 * (vector, error code, RIP, CR2) on COM1 and halts; the host turns it into
 * GUEST_FAULT. Self-contained on purpose: with SMEP the CPU does not run a
 * user page at CPL0, with SMAP it does not touch one, so nothing here calls
 * out of .ktext or reads user memory (the CRC is computed bit by bit rather
 * than from the user-visible table of crc32.h). */
#include "abi.h"
#include "idt.h"

#define GUEST_KTEXT __attribute__((section(".ktext")))

static volatile int guest_in_exception __attribute__((section(".kdata")));

static inline void guest_k_outsb(uint16_t port, const void *buf, uint64_t n)
{
	__asm__ volatile("rep outsb" : "+S"(buf), "+c"(n) : "d"(port) : "memory");
}

static inline void __attribute__((noreturn)) guest_k_halt(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* CRC-32 as shared/crc32.h computes it (reflected 0xedb88320). */
static GUEST_KTEXT uint32_t guest_k_crc32(const uint8_t *p, uint32_t n)
{
	uint32_t c = 0xffffffffu;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? c >> 1 ^ 0xedb88320u : c >> 1;
	}
	return c ^ 0xffffffffu;
}

/* Runs at CPL0, so reading CR2, port I/O and hlt are allowed here. Header
 * and payload are on the exception stack, a supervisor page. */
GUEST_KTEXT void guest_exception(const uint64_t *frame)
{
	struct instar_exception e;
	struct instar_frame_hdr h;
	uint64_t cr2;

	/* A fault while reporting a fault: halting is all that is left. */
	if (guest_in_exception++)
		guest_k_halt();
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	e.vector = frame[0];
	e.error_code = frame[1];
	e.rip = frame[2];
	e.cr2 = cr2;
	h.magic = INSTAR_FRAME_MAGIC;
	h.type = INSTAR_FRAME_EXCEPTION;
	h.reserved = 0;
	h.len = sizeof(e);
	h.crc32 = guest_k_crc32((const uint8_t *)&e, sizeof(e));
	guest_k_outsb(INSTAR_COM1_PORT, &h, sizeof(h));
	guest_k_outsb(INSTAR_COM1_PORT, &e, sizeof(e));
	guest_k_halt();
}
