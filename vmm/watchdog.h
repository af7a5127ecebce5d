/* vmm/watchdog.h — the --timeout of a guest: a CLOCK_MONOTONIC timer whose
 * signal, sent to the vCPU thread, sets a flag vmm_kvm_run() watches and
 * kicks the vCPU out of KVM_RUN. One watchdog at a time per process. */
#ifndef VMM_WATCHDOG_H
#define VMM_WATCHDOG_H

#include <signal.h>
#include <stdint.h>
#include <time.h>

#include "kvm.h"

struct vmm_watchdog {
	timer_t timer;
	struct sigaction old; /* the signal's disposition before create */
};

/* Created before the sandbox (timer_create is not allowed in it), on the
 * thread that will run the vCPU of k; started after it by
 * vmm_watchdog_start(). Clears the flag. 0 or -errno. */
int vmm_watchdog_create(struct vmm_watchdog *w, struct vmm_kvm *k);

/* Fires once, ms from now. 0 or -errno. */
int vmm_watchdog_start(struct vmm_watchdog *w, uint32_t ms);

/* Deletes the timer and puts the signal's old disposition back. */
void vmm_watchdog_disarm(struct vmm_watchdog *w);

/* Set (to 1) by the signal handler when the watchdog fired: vmm_kvm_run()'s
 * timed_out. */
volatile sig_atomic_t *vmm_watchdog_fired(void);

#endif
