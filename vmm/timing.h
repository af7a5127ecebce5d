/* vmm/timing.h — opt-in phase timestamps (INSTAR_TIMING=1): one stderr line
 * "instar-timing: <phase> <ms since process start>" per mark. */
#ifndef VMM_TIMING_H
#define VMM_TIMING_H

/* Prints the line when INSTAR_TIMING=1, does nothing otherwise. Cheap: the
 * environment is read once and the clock is the vDSO's, so it is also safe
 * inside the sandbox (one write(2) to stderr). */
void vmm_timing_mark(const char *phase);

#endif
