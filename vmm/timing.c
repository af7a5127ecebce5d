/* vmm/timing.c — opt-in phase timestamps for finding where a resize spends
 * its time. The origin is taken by a constructor, before main() runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timing.h"

static struct timespec vmm_timing_t0;
static int vmm_timing_on;

__attribute__((constructor)) static void vmm_timing_init(void)
{
	const char *e = getenv("INSTAR_TIMING");

	clock_gettime(CLOCK_MONOTONIC, &vmm_timing_t0);
	vmm_timing_on = e && !strcmp(e, "1");
}

void vmm_timing_mark(const char *phase)
{
	struct timespec t;
	long long us;

	if (!vmm_timing_on)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t);
	us = (long long)(t.tv_sec - vmm_timing_t0.tv_sec) * 1000000 +
	     (t.tv_nsec - vmm_timing_t0.tv_nsec) / 1000;
	fprintf(stderr, "instar-timing: %s %lld.%03lld\n", phase, us / 1000, us % 1000);
}
