/* guest/core/idt.c — guest core: the IDT. Any CPU exception sends one
 * EXCEPTION frame (vector, error code, RIP, CR2) and halts; the host turns it
 * into GUEST_FAULT. */
#include "abi.h"
#include "frame.h"
#include "idt.h"

#define GUEST_CODE_SEL 0x08  /* the host-built GDT's 64-bit code segment */
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

struct guest_idt_ptr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

extern const uint64_t guest_exc_stubs[32];

static struct guest_idt_gate guest_idt[32] __attribute__((aligned(16)));
static volatile int guest_in_exception;

void guest_idt_init(void)
{
	struct guest_idt_ptr p;

	for (int i = 0; i < 32; i++) {
		uint64_t a = guest_exc_stubs[i];

		guest_idt[i] = (struct guest_idt_gate){
		    .off_lo = (uint16_t)a,
		    .sel = GUEST_CODE_SEL,
		    .ist = 0,
		    .type_attr = GUEST_GATE_INTR,
		    .off_mid = (uint16_t)(a >> 16),
		    .off_hi = (uint32_t)(a >> 32),
		};
	}
	p.limit = sizeof(guest_idt) - 1;
	p.base = (uint64_t)(uintptr_t)guest_idt;
	__asm__ volatile("lidt %0" : : "m"(p));
}

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
	guest_frame_send(INSTAR_FRAME_EXCEPTION, &e, sizeof(e));
	guest_halt_forever();
}
