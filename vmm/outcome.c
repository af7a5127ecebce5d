/* vmm/outcome.c — the verdict on a finished run: the watchdog, a guest fault,
 * the overlay bound, a missing or out-of-range result, or the guest's own
 * result (with the host's reason for an I/O error the guest only saw as a
 * status); and the check of a success claim before the commit. */
#include <stdio.h>
#include <string.h>

#include "run.h"
#include "verify.h"

void vmm_run_outcome(struct vmm_run *r, struct instar_resize_result *ret)
{
	struct instar_resize_result *g = &r->result;
	const enum vmm_stop stop = r->stop;
	const uint32_t timeout_ms = r->timeout_ms;
	const uint64_t capacity = r->capacity;

	memset(ret, 0, sizeof(*ret));
	if (stop == VMM_STOP_TIMEOUT) {
		ret->error = INSTAR_ERR_TIMEOUT;
		snprintf(ret->detail, sizeof(ret->detail), "guest did not finish within %u ms",
			 timeout_ms);
		return;
	}
	if (!r->fault[0] && stop != VMM_STOP_HLT)
		vmm_run_fault(r, "%s", r->stopdetail);
	if (!r->fault[0] && !vmm_frame_decoder_idle(&r->dec))
		vmm_run_fault(r, "guest halted inside a frame");
	if (!r->fault[0] && vmm_blk_needs_reset(r->blk))
		vmm_run_fault(r, "guest left the virtio-blk queue malformed");
	for (uint32_t i = 0; !r->fault[0] && i < r->nbacking; i++)
		if (vmm_blk_needs_reset(r->bblk[i]))
			vmm_run_fault(r, "guest left the queue of backing device %u malformed",
				      i + 1);
	if (r->fault[0]) {
		ret->error = INSTAR_ERR_GUEST_FAULT;
		snprintf(ret->detail, sizeof(ret->detail), "%s", r->fault);
		return;
	}
	for (uint32_t i = 0; i < r->nbacking; i++) {
		if (vmm_blk_write_refused(r->bblk[i])) {
			/* whatever the guest claims: it tried to change a backing file */
			ret->error = INSTAR_ERR_GUEST_MISBEHAVED;
			snprintf(ret->detail, sizeof(ret->detail),
				 "guest result refused: it tried to write to read-only backing "
				 "device %u",
				 i + 1);
			return;
		}
	}
	if (vmm_blk_overlay_exceeded(r->blk)) {
		ret->error = INSTAR_ERR_OVERLAY_LIMIT;
		snprintf(ret->detail, sizeof(ret->detail), "staged writes exceeded the limit");
		return;
	}
	if (!r->nresults) {
		ret->error = INSTAR_ERR_GUEST_FAULT;
		snprintf(ret->detail, sizeof(ret->detail), "guest halted without a result");
		return;
	}
	g->detail[sizeof(g->detail) - 1] = '\0';
	if (g->error >= INSTAR_ERR_COUNT || g->action > INSTAR_ACTION_SHRINK ||
	    (g->flags & ~INSTAR_RESULT_KNOWN) || g->reserved ||
	    (g->error == INSTAR_OK && (g->file_size_after > capacity || g->flags))) {
		ret->error = INSTAR_ERR_GUEST_FAULT;
		snprintf(ret->detail, sizeof(ret->detail), "guest result out of range");
		return;
	}
	*ret = *g;
	if (g->error != INSTAR_OK) {
		/* The guest saw only an I/O error status; the host knows why. */
		uint64_t off;
		int e = vmm_blk_read_error(r->blk, &off);

		if (e) {
			ret->error = INSTAR_ERR_IO;
			ret->flags = 0; /* the host's text, not the driver's */
			snprintf(ret->detail, sizeof(ret->detail),
				 "reading the image at offset %llu failed: %s",
				 (unsigned long long)off, strerror(-e));
		}
	}
}

void vmm_run_verify(struct vmm_run *r, struct instar_resize_result *ret)
{
	char why[INSTAR_DETAIL_MAX - 24];

	if (vmm_verify_resize(r->blk, &r->gcfg, &r->before, ret, why, sizeof(why)) == 0)
		return;
	memset(ret, 0, sizeof(*ret));
	ret->error = INSTAR_ERR_GUEST_MISBEHAVED;
	snprintf(ret->detail, sizeof(ret->detail), "guest result refused: %s", why);
}
