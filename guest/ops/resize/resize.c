/* guest/ops/resize/resize.c — the resize operation binary (placeholder). */
#include "abi.h"

int _start(const struct instar_calltab *ct) __attribute__((section(".text.entry")));

int _start(const struct instar_calltab *ct)
{
	(void)ct;
	return 0;
}
