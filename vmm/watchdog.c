/* vmm/watchdog.c — the guest's --timeout (see watchdog.h). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "watchdog.h"

#define VMM_WATCHDOG_SIGNAL SIGALRM

/* The signal handler reaches the vCPU through these. */
static struct vmm_kvm *vmm_watchdog_kvm;
static volatile sig_atomic_t vmm_watchdog_flag;

static void vmm_watchdog_handler(int sig)
{
	(void)sig;
	vmm_watchdog_flag = 1;
	if (vmm_watchdog_kvm)
		vmm_kvm_kick(vmm_watchdog_kvm);
}

volatile sig_atomic_t *vmm_watchdog_fired(void)
{
	return &vmm_watchdog_flag;
}

int vmm_watchdog_create(struct vmm_watchdog *w, struct vmm_kvm *k)
{
	struct sigevent sev;
	struct sigaction sa;

	vmm_watchdog_flag = 0;
	vmm_watchdog_kvm = k;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = vmm_watchdog_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(VMM_WATCHDOG_SIGNAL, &sa, &w->old) < 0) {
		vmm_watchdog_kvm = NULL;
		return -errno;
	}
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = VMM_WATCHDOG_SIGNAL;
	sev._sigev_un._tid = gettid(); /* the vCPU thread, not any thread */
	if (timer_create(CLOCK_MONOTONIC, &sev, &w->timer) < 0) {
		int e = -errno;
		sigaction(VMM_WATCHDOG_SIGNAL, &w->old, NULL);
		vmm_watchdog_kvm = NULL;
		return e;
	}
	return 0;
}

int vmm_watchdog_start(struct vmm_watchdog *w, uint32_t ms)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = ms / 1000;
	its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
	return timer_settime(w->timer, 0, &its, NULL) < 0 ? -errno : 0;
}

void vmm_watchdog_disarm(struct vmm_watchdog *w)
{
	timer_delete(w->timer);
	sigaction(VMM_WATCHDOG_SIGNAL, &w->old, NULL);
	vmm_watchdog_kvm = NULL;
}
