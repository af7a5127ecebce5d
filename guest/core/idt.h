/* guest/core/idt.h — guest core: exception vectors 0-31 report over COM1. */
#ifndef GUEST_IDT_H
#define GUEST_IDT_H

#include <stdint.h>

void guest_idt_init(void);

/* Called by the stubs with the saved [vector, error, RIP, ...]; never returns. */
void guest_exception(const uint64_t *frame) __attribute__((noreturn));

#endif
