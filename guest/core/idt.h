/* guest/core/idt.h — guest core: exception vectors 0-31 report over COM1
 * from CPL0. The IDT itself is the host's (INSTAR_IDT_ADDR, supervisor-only),
 * built from the stub addresses in the core header. */
#ifndef GUEST_IDT_H
#define GUEST_IDT_H

#include <stdint.h>

/* Called by the stubs with the saved [vector, error, RIP, ...]; never returns. */
void guest_exception(const uint64_t *frame) __attribute__((noreturn));

#endif
