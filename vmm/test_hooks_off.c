/* vmm/test_hooks_off.c — the test-only hooks ignored (see test_hooks.h):
 * what the installed instar links. */
#include "overlay.h"
#include "test_hooks.h"

uint64_t vmm_hook_commit_stop_after(void)
{
	return VMM_OVL_NO_STOP;
}

void vmm_hook_guest_hold(void)
{
}
