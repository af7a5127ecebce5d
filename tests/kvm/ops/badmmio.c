/* tests/kvm/ops/badmmio.c — MMIO outside the virtio-mmio window (unbacked
 * memory below 1 GiB, above guest RAM). */
#include "testop.h"

TESTOP_ENTRY;
int _start(const struct instar_calltab *ct)
{
	*(volatile uint32_t *)(uintptr_t)0x20000000ull = 1;
	return testop_ok(ct, testop_cfg(ct)->file_size, 0);
}
