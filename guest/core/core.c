/* guest/core/core.c — guest core: entry point (boots and halts for now). */
#include "abi.h"

void _start(void) __attribute__((section(".text.entry"), noreturn));

void _start(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}
