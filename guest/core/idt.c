/* guest/core/idt.c — guest core: the IDT gates. The host points IDTR at
 * INSTAR_IDT_ADDR (lidt faults at CPL3); the core fills the gates with plain
 * stores. Any CPU exception enters a CPL0 stub on the TSS.RSP0 stack, sends
 * one EXCEPTION frame (vector, error code, RIP, CR2) on COM1 and halts; the
 * host turns it into GUEST_FAULT. */
#include "abi.h"
#include "frame.h"
#include "idt.h"

#define GUEST_GATE_INTR 0x8e /* present, DPL 0, 64-bit interrupt gate */

struct guest_idt_gate {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t type_attr;
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t zero;
} __attribute__((packed));
_Static_assert(sizeof(struct guest_idt_gate) == 16, "IDT gate layout");

extern const uint64_t guest_exc_stubs[INSTAR_IDT_VECTORS];

static volatile int guest_in_exception;

void guest_idt_init(void)
{
	volatile struct guest_idt_gate *idt =
	    (volatile struct guest_idt_gate *)(uintptr_t)INSTAR_IDT_ADDR;

	for (uint32_t i = 0; i < INSTAR_IDT_VECTORS; i++) {
		uint64_t a = guest_exc_stubs[i];

		idt[i].off_lo = (uint16_t)a;
		idt[i].sel = INSTAR_SEL_KERNEL_CS;
		idt[i].ist = 0;
		idt[i].off_mid = (uint16_t)(a >> 16);
		idt[i].off_hi = (uint32_t)(a >> 32);
		idt[i].zero = 0;
		idt[i].type_attr = GUEST_GATE_INTR; /* present last */
	}
}

/* Runs at CPL0, so reading CR2, port I/O and hlt are allowed here. */
void guest_exception(const uint64_t *frame)
{
	struct instar_exception e;
	uint64_t cr2;

	/* A fault while reporting a fault: halting is all that is left. */
	if (guest_in_exception++)
		guest_halt_forever();
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	e.vector = frame[0];
	e.error_code = frame[1];
	e.rip = frame[2];
	e.cr2 = cr2;
	guest_frame_send_com1(INSTAR_FRAME_EXCEPTION, &e, sizeof(e));
	guest_halt_forever();
}
