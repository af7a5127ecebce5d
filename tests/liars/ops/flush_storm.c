/* tests/liars/ops/flush_storm.c — more barriers than the host allows. */
#define LIAR_FLUSHES 100
#include "storm.h"
