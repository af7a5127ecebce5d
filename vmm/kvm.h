/* vmm/kvm.h — one KVM VM with one vCPU entered straight into 64-bit long mode
 * at CPL3, and the exit loop that dispatches port and MMIO exits to callbacks. */
#ifndef VMM_KVM_H
#define VMM_KVM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guestmem.h"

struct kvm_run;

/* Guest walls that depend on the CPU (KVM_GET_SUPPORTED_CPUID); those a host
 * lacks are simply not built, see vmm_kvm_walls_missing(). */
#define VMM_WALL_SMEP (1u << 0) /* CR4.SMEP: CPL0 runs no user page */
#define VMM_WALL_SMAP (1u << 1) /* CR4.SMAP: CPL0 touches no user page */
#define VMM_WALL_UMIP (1u << 2) /* CR4.UMIP: sgdt/sidt/sldt/smsw/str fault at CPL3 */
#define VMM_WALL_NX (1u << 3)	/* EFER.NXE: data pages are not executable */
#define VMM_WALLS_ALL 0xfu
struct kvm_coalesced_mmio_ring;

struct vmm_kvm {
	int sys_fd;
	int vm_fd;
	int vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	struct vmm_guestmem mem;
	struct kvm_coalesced_mmio_ring *ring; /* in the run mapping; NULL: none */
	uint32_t ring_max;		      /* entries in the ring */
	int reaper_fd;			      /* write end of the teardown helper's pipe, or -1 */
	int reaper_ready_fd; /* read end of the helper's report (strict mode on), or -1 */
	uint32_t walls;	     /* VMM_WALL_* in force in the guest */
};

/* Handlers of the exits the run loop does not decide itself. Each returns 0 to
 * resume the guest, VMM_EXIT_DONE to end the run normally (as hlt), or a
 * negative errno to stop the loop with that value. */
#define VMM_EXIT_DONE 1
struct vmm_exit_ops {
	/* Port I/O: count items of size bytes each at data (count > 1 for rep
	 * outs/ins); for IN the handler fills data. */
	int (*io)(void *ctx, uint16_t port, bool is_out, uint32_t size, uint32_t count,
		  uint8_t *data);
	/* MMIO access of len (1..8) bytes; for reads the handler fills data. */
	int (*mmio)(void *ctx, uint64_t gpa, bool is_write, uint32_t len, uint8_t *data);
};

/* Why vmm_kvm_run() stopped. */
enum vmm_stop {
	VMM_STOP_HLT = 0,     /* guest executed hlt or a handler said DONE: normal end */
	VMM_STOP_TIMEOUT = 1, /* *timed_out was set (watchdog) */
	VMM_STOP_HANDLER = 2, /* a handler returned an error */
	VMM_STOP_EXIT = 3,    /* shutdown, failed entry, unknown exit... */
	VMM_STOP_ERROR = 4,   /* KVM_RUN itself failed */
};

/* Writes the guest's initial memory image (binaries, boot info) into mem.
 * Runs on the calling thread while a second one sets up the vCPU, so it must
 * not touch k. Returns 0 or a negative errno with err filled. */
typedef int (*vmm_kvm_fill_fn)(void *ctx, const struct vmm_guestmem *mem, char *err, size_t errlen);

/* Opens /dev/kvm, checks the API version and required extensions, creates
 * the VM with ram_size bytes of RAM at guest-physical 0 and one vCPU in
 * long mode at CPL3 (RIP = INSTAR_CORE_ADDR, RDI = INSTAR_BOOTINFO_ADDR, a
 * minimal CPUID, CR4.SMEP/SMAP/UMIP and EFER.NXE where the CPU has them), and
 * has fill write guest RAM meanwhile; fill must load a core.bin, whose header
 * the GDT, TSS, IDT (IDTR = INSTAR_IDT_ADDR) and identity page tables for the
 * first 1 GiB are then built from, with every system structure
 * supervisor-only. With INSTAR_DEBUG set, names the walls the host lacks on
 * stderr. Also defers the VM's teardown (vmm_kvm_defer_teardown(),
 * where it can). Returns with the second thread gone (joined). On failure
 * returns a negative errno and writes what failed (the ioctls' or fill's) to
 * err. */
int vmm_kvm_create(struct vmm_kvm *k, uint64_t ram_size, vmm_kvm_fill_fn fill, void *ctx, char *err,
		   size_t errlen);
void vmm_kvm_destroy(struct vmm_kvm *k);

/* Moves the slow part of vmm_kvm_destroy() out of this process's lifetime:
 * KVM's VM teardown waits for an SRCU grace period (longer than the rest of
 * a resize; BENCHMARKS.md, Notes), and a process's exit closes its
 * fds before its parent can reap it. A helper process (clone(CLONE_VM), no
 * exit signal) that holds nothing but an extra reference to the VM fd (and a
 * pipe) and runs under seccomp strict mode waits for the pipe's EOF and
 * exits; that last close does the teardown after we are gone. The
 * pipe's write end outlives vmm_kvm_destroy(): our exit closes it (or the
 * next deferred VM's destroy does). The helper never holds the image fd past
 * vmm_kvm_create() returns (which waits for its report). vmm_kvm_create() calls
 * it; it needs the VM, not yet the vCPU. Before the sandbox (clone is not
 * allowed in it); keep k->reaper_fd open through it. Returns 0 or a
 * negative errno; on failure teardown simply stays synchronous. */
int vmm_kvm_defer_teardown(struct vmm_kvm *k);

/* Waits for the helper's one report, sent only after it closed every fd but
 * the VM's and its pipes' and entered seccomp strict mode: returns 0, or the
 * negative errno of its failed prctl (-ECHILD if it died first). Called by
 * vmm_kvm_create() (a failure there fails the create: no guest runs next to
 * an unconfined helper) and vmm_kvm_destroy(); later calls return 0. */
int vmm_kvm_reaper_wait(struct vmm_kvm *k);

/* Runs until hlt, a handler error, a fatal exit or *timed_out. Sets
 * run->immediate_exit via vmm_kvm_kick() from a signal handler to stop a
 * spinning guest. Writes a description of non-HLT stops to detail. */
enum vmm_stop vmm_kvm_run(struct vmm_kvm *k, const struct vmm_exit_ops *ops, void *ctx,
			  volatile sig_atomic_t *timed_out, int *ret_err, char *detail,
			  size_t detaillen);

/* Lets guest MMIO writes to [gpa, gpa+size) complete without an exit: KVM
 * queues them and vmm_kvm_run() hands them to ops->mmio, in order, before it
 * handles the next exit. Only for registers whose writes have no effect the
 * guest can see other than through a later MMIO access. Returns 0, or
 * -ENOTSUP when the host lacks the ring (the caller just loses the speed-up). */
int vmm_kvm_coalesce(struct vmm_kvm *k, uint64_t gpa, uint64_t size);

/* Async-signal-safe: makes the current or next KVM_RUN return EINTR. */
void vmm_kvm_kick(struct vmm_kvm *k);

/* Writes the names of the walls in VMM_WALLS_ALL that k lacks (e.g.
 * "SMEP SMAP") to buf, "" if none; returns how many. */
int vmm_kvm_walls_missing(const struct vmm_kvm *k, char *buf, size_t len);

const char *vmm_kvm_exit_name(uint32_t reason);

#endif
