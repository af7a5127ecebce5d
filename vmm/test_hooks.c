/* vmm/test_hooks.c — the test-only hooks obeyed (see test_hooks.h): linked
 * into instar-test and the unit tests, never into the installed instar. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "overlay.h"
#include "test_hooks.h"

uint64_t vmm_hook_commit_stop_after(void)
{
	const char *s = getenv("INSTAR_TEST_COMMIT_STOP_AFTER");
	unsigned long long k;
	char *end;

	if (!s || !*s)
		return VMM_OVL_NO_STOP;
	errno = 0;
	k = strtoull(s, &end, 10);
	if (errno || *end || *s == '-')
		return VMM_OVL_NO_STOP;
	return k;
}

void vmm_hook_guest_delay(void)
{
	const char *s = getenv("INSTAR_TEST_GUEST_DELAY_MS");
	unsigned long ms;
	struct timespec ts;
	char *end;

	if (!s || !*s)
		return;
	errno = 0;
	ms = strtoul(s, &end, 10);
	if (errno || *end || ms > 600000)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
