/* vmm/sandbox.h — confine the host process before the first KVM_RUN: close
 * every fd it does not need, set no_new_privs, install a seccomp allow-list. */
#ifndef VMM_SANDBOX_H
#define VMM_SANDBOX_H

#include <stddef.h>

/* Closes every fd except 0, 1, 2 and keep[0..nkeep), then allows only the
 * syscalls the run loop, the commit and the caller's final output need;
 * ioctl only as KVM_RUN on vcpu_fd (and the tty query stdio makes), tgkill
 * only to this process (getpid() now), fcntl only F_GETFD and F_GETFL,
 * newfstatat only as fstat() (an fd, AT_EMPTY_PATH). Anything else kills the
 * process. Irreversible for the process. Returns 0 or a
 * negative errno. */
int vmm_sandbox_enter(const int *keep, size_t nkeep, int vcpu_fd);

/* Only the fd-closing part (used by tests to inspect its effect). */
int vmm_sandbox_close_fds(const int *keep, size_t nkeep);

#endif
