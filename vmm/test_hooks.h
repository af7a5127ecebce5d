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

/* INSTAR_TEST_GUEST_HOLD_FD=N: holds the run (image open and locked, guest
 * not yet started, sandbox not yet on) until one byte or end of file can be
 * read from the inherited pipe or FIFO N (N >= 3; anything else is ignored),
 * then closes N. A test looks at a resize in progress for as long as it
 * needs and lets it go with one write: an event, not a time margin. Returns
 * at once when unset or hooks are off. */
void vmm_hook_guest_hold(void);

#endif
