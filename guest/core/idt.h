/* guest/core/idt.h — guest core: exception vectors 0-31 report over COM1
 * from CPL0; the IDT itself lives at INSTAR_IDT_ADDR (host-set IDTR). */
#ifndef GUEST_IDT_H
#define GUEST_IDT_H

#include <stdint.h>

/* Fills the gates; plain stores only, so it runs at CPL3. */
void guest_idt_init(void);

/* Called by the stubs with the saved [vector, error, RIP, ...]; never returns. */
void guest_exception(const uint64_t *frame) __attribute__((noreturn));

#endif
