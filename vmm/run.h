/* vmm/run.h — one resize run's state, shared by the files that handle its
 * phases: guest_run.c (setup, the run, teardown), exits.c (what each guest
 * exit does), outcome.c (the verdict on a finished run) and commit.c (the
 * commit a successful run earns). Internal to vmm/. */
#ifndef VMM_RUN_H
#define VMM_RUN_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "abi.h"
#include "kvm.h"
#include "probe.h"
#include "serial.h"
#include "virtio_blk.h"

struct vmm_run {
	struct vmm_kvm kvm;
	bool kvm_up; /* kvm was created: vmm_kvm_destroy() it */
	struct vmm_blk *blk;
	/* The backing chain, read-only devices 1..nbacking (never committed,
	 * never verified: only blk is). */
	struct vmm_blk *bblk[INSTAR_BACKING_MAX_DEVS];
	uint32_t nbacking;
	struct vmm_frame_decoder dec;
	bool debug;
	uint32_t nresults;
	struct instar_resize_result result;
	char fault[INSTAR_DETAIL_MAX];	 /* first reason to call the run a guest fault */
	struct instar_probe_info before; /* the host's probe of the image (verify) */
	uint64_t t0;			 /* CLOCK_MONOTONIC start of the run */
	uint64_t deadline_ns;		 /* CLOCK_MONOTONIC end of --timeout */
	uint32_t timeout_ms;
	struct instar_resize_config gcfg; /* what the guest is given */
	uint64_t capacity;		  /* of the guest's disk, bytes */
	char core_path[PATH_MAX + 16], op_buf[PATH_MAX + 16];
	const char *op_path;
	enum vmm_stop stop; /* why the guest stopped */
	char stopdetail[INSTAR_DETAIL_MAX];
};

/* CLOCK_MONOTONIC, in ns. */
uint64_t vmm_now_ns(void);

/* Records the first reason to call the run a guest fault; later ones are
 * dropped. */
void vmm_run_fault(struct vmm_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* exits.c: the handlers vmm_kvm_run() calls (ctx: the struct vmm_run). */
extern const struct vmm_exit_ops vmm_run_exit_ops;

/* exits.c: lets KVM queue the device's register writes that need no exit
 * (vmm_blk_coalescable). Optional: failure only loses the speed-up. */
void vmm_run_coalesce(struct vmm_run *r);

/* outcome.c: the verdict on a finished run, into ret (cleared first). */
void vmm_run_outcome(struct vmm_run *r, struct instar_resize_result *ret);

/* outcome.c: the claim of a guest that reported success, checked against
 * the staged view before the commit; GUEST_MISBEHAVED in ret if it fails. */
void vmm_run_verify(struct vmm_run *r, struct instar_resize_result *ret);

/* commit.c: before the first write, the commit must fit in the time left and
 * in the file system (space, size limit). 0, or -errno with ret->error and
 * ret->detail set and the file as it was. */
int vmm_run_precommit(struct vmm_run *r, int fd, struct instar_resize_result *ret);

/* commit.c: writes the staged plan and the final length (only after guest
 * success). On an error, ret->error and ret->detail say what failed and
 * what the image is now (see guest_run.h). */
void vmm_run_commit(struct vmm_run *r, int fd, struct instar_resize_result *ret);

#endif
