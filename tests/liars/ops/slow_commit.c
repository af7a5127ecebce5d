/* tests/liars/ops/slow_commit.c — fewer barriers than the bound, but more
 * than a 1 s --timeout leaves room to sync. */
#define LIAR_FLUSHES 60
#include "storm.h"
