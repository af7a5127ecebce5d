/* vmm/test_hooks.h — the test-only hooks. The vmm library calls them; which
 * definition it gets is chosen at link time: test_hooks.c (instar-test and
 * the unit tests: the environment variables below are obeyed) or
 * test_hooks_off.c (the installed instar: they are ignored, and nothing
 * reads them). tests/compat/cli_hooks.sh checks both binaries. */
#ifndef VMM_TEST_HOOKS_H
#define VMM_TEST_HOOKS_H

#include <stdint.h>

/* INSTAR_TEST_COMMIT_STOP_AFTER=K: the commit stops with -ECANCELED right
 * after applying K write/zero/discard ops, as a crash would. Returns K, or
 * VMM_OVL_NO_STOP (overlay.h) when unset, invalid or hooks are off. */
uint64_t vmm_hook_commit_stop_after(void);

/* INSTAR_TEST_GUEST_DELAY_MS=N: holds the run (image locked, sandbox on,
 * watchdog not yet armed) for N ms, at most 600000, so tests can observe a
 * resize in progress. Returns at once when unset or hooks are off. */
void vmm_hook_guest_delay(void);

#endif
