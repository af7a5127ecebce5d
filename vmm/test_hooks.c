/* vmm/test_hooks.c — the test-only hooks obeyed (see test_hooks.h): linked
 * into instar-test and the unit tests, never into the installed instar. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

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

void vmm_hook_guest_hold(void)
{
	const char *s = getenv("INSTAR_TEST_GUEST_HOLD_FD");
	unsigned long fd;
	struct stat st;
	char *end;
	char c;

	if (!s || !*s)
		return;
	errno = 0;
	fd = strtoul(s, &end, 10);
	if (errno || *end || fd < 3 || fd > INT_MAX)
		return;
	/* Only a pipe or FIFO: never one of instar's own files. */
	if (fstat((int)fd, &st) < 0 || !S_ISFIFO(st.st_mode))
		return;
	while (read((int)fd, &c, 1) < 0 && errno == EINTR)
		;
	close((int)fd);
}
