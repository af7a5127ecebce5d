/* vmm/exits.c — what the host does at each exit a guest makes: COM1 bytes
 * and FRAME doorbells feed the frame decoder (results, logs, exceptions,
 * panics), the control page ends the run, and the virtio-mmio window goes to
 * the block device. Every address and length is the guest's, so each is
 * checked against its window before it is used. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "run.h"
#include "timing.h"

void vmm_run_fault(struct vmm_run *r, const char *fmt, ...)
{
	va_list ap;

	if (r->fault[0])
		return;
	va_start(ap, fmt);
	vsnprintf(r->fault, sizeof(r->fault), fmt, ap);
	va_end(ap);
}

/* Guest text is shown only in debug mode, with control bytes masked. */
static void vmm_run_print_guest(const char *what, const uint8_t *s, size_t len)
{
	fprintf(stderr, "instar: guest %s: ", what);
	for (size_t i = 0; i < len; i++)
		fputc(s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?', stderr);
	fputc('\n', stderr);
}

static int vmm_run_frame(void *ctx, const struct vmm_frame *f)
{
	struct vmm_run *r = ctx;

	switch (f->type) {
	case INSTAR_FRAME_RESULT:
		if (r->nresults++) {
			vmm_run_fault(r, "guest sent more than one result");
			return -EPROTO;
		}
		if (f->len != sizeof(r->result)) {
			vmm_run_fault(r, "guest result frame of %u bytes", f->len);
			return -EPROTO;
		}
		memcpy(&r->result, f->payload, sizeof(r->result));
		vmm_timing_mark("guest_result");
		return 0;
	case INSTAR_FRAME_LOG:
		if (r->debug)
			vmm_run_print_guest("log", f->payload, f->len);
		return 0;
	case INSTAR_FRAME_EXCEPTION: {
		struct instar_exception e;

		if (f->len != sizeof(e)) {
			vmm_run_fault(r, "guest exception frame of %u bytes", f->len);
			return -EPROTO;
		}
		memcpy(&e, f->payload, sizeof(e));
		vmm_run_fault(r, "guest exception vector %llu at RIP 0x%llx",
			      (unsigned long long)e.vector, (unsigned long long)e.rip);
		if (r->debug)
			fprintf(stderr,
				"instar: guest exception vector %llu error 0x%llx rip 0x%llx cr2 "
				"0x%llx\n",
				(unsigned long long)e.vector, (unsigned long long)e.error_code,
				(unsigned long long)e.rip, (unsigned long long)e.cr2);
		return -EFAULT;
	}
	case INSTAR_FRAME_PANIC: {
		char msg[96];
		size_t n = f->len < sizeof(msg) - 1 ? f->len : sizeof(msg) - 1;

		for (size_t i = 0; i < n; i++)
			msg[i] = f->payload[i] >= 0x20 && f->payload[i] < 0x7f ? (char)f->payload[i]
									       : '?';
		msg[n] = '\0';
		vmm_run_fault(r, "guest panic: %s", msg);
		return -EFAULT;
	}
	default:
		vmm_run_fault(r, "guest frame of unknown type %u", f->type);
		return -EPROTO;
	}
}

/* COM1 is left for the CPL0 exception path (port I/O faults at CPL3). */
static int vmm_run_io(void *ctx, uint16_t port, bool is_out, uint32_t size, uint32_t count,
		      uint8_t *data)
{
	struct vmm_run *r = ctx;
	int e;

	if (!is_out || size != 1 || port != INSTAR_COM1_PORT)
		return -EINVAL;
	e = vmm_frame_feed(&r->dec, data, count, vmm_run_frame, r);
	if (e == -EBADMSG)
		vmm_run_fault(r, "malformed guest frame: %s", r->dec.what);
	return e;
}

/* FRAME doorbell: gpa names a whole frame in guest RAM. The header is checked
 * by the decoder before its length is trusted; the payload range is then
 * checked once and fed from guest memory (the vCPU is stopped meanwhile). */
static int vmm_run_doorbell(struct vmm_run *r, uint64_t gpa)
{
	struct instar_frame_hdr h;
	const void *p;
	int e;

	if (!vmm_frame_decoder_idle(&r->dec)) {
		vmm_run_fault(r, "frame doorbell inside a COM1 frame");
		return -EPROTO;
	}
	p = vmm_gpa(&r->kvm.mem, gpa, sizeof(h));
	if (!p) {
		vmm_run_fault(r, "frame doorbell address 0x%llx outside guest RAM",
			      (unsigned long long)gpa);
		return -EFAULT;
	}
	memcpy(&h, p, sizeof(h));
	e = vmm_frame_feed(&r->dec, &h, sizeof(h), vmm_run_frame, r);
	if (e == 0) {
		/* The decoder accepted h.len (<= INSTAR_FRAME_MAX_PAYLOAD). gpa +
		 * sizeof(h) cannot wrap: that range was inside RAM. */
		p = vmm_gpa(&r->kvm.mem, gpa + sizeof(h), h.len);
		if (!p) {
			vmm_run_fault(r, "frame at 0x%llx runs past guest RAM",
				      (unsigned long long)gpa);
			return -EFAULT;
		}
		if (h.len)
			e = vmm_frame_feed(&r->dec, p, h.len, vmm_run_frame, r);
	}
	if (e == -EBADMSG)
		vmm_run_fault(r, "malformed guest frame: %s", r->dec.what);
	return e;
}

static int vmm_run_ctrl(struct vmm_run *r, uint64_t off, bool is_write, uint32_t len,
			const uint8_t *data)
{
	uint64_t v = 0;

	if (!is_write)
		return -EINVAL; /* write-only page */
	if (off == INSTAR_CTRL_FRAME && len == 8) {
		memcpy(&v, data, 8); /* x86 host: little-endian like the guest */
		return vmm_run_doorbell(r, v);
	}
	if (off >= INSTAR_CTRL_EXIT && off < INSTAR_CTRL_EXIT + 8 &&
	    len <= INSTAR_CTRL_EXIT + 8 - off)
		return VMM_EXIT_DONE;
	return -EINVAL;
}

/* Each window is bounds-checked for the whole access before dispatch. */
static bool vmm_run_in(uint64_t gpa, uint32_t len, uint64_t base, uint64_t size, uint64_t *ret_off)
{
	uint64_t off = gpa - base;

	if (gpa < base || off >= size || len > size - off)
		return false;
	*ret_off = off;
	return true;
}

static int vmm_run_mmio(void *ctx, uint64_t gpa, bool is_write, uint32_t len, uint8_t *data)
{
	struct vmm_run *r = ctx;
	uint64_t off;

	struct vmm_blk *b = NULL;

	if (vmm_run_in(gpa, len, INSTAR_CTRL_MMIO_BASE, INSTAR_CTRL_MMIO_SIZE, &off))
		return vmm_run_ctrl(r, off, is_write, len, data);
	if (vmm_run_in(gpa, len, INSTAR_VIRTIO_MMIO_BASE, INSTAR_VIRTIO_MMIO_SIZE, &off))
		b = r->blk;
	for (uint32_t i = 0; !b && i < r->nbacking; i++)
		if (vmm_run_in(gpa, len, INSTAR_VIRTIO_MMIO_DEV_BASE(i + 1),
			       INSTAR_VIRTIO_MMIO_SIZE, &off))
			b = r->bblk[i];
	if (!b)
		return -EFAULT;
	if (is_write)
		vmm_blk_mmio_write(b, off, data, len);
	else
		vmm_blk_mmio_read(b, off, data, len);
	return 0;
}

const struct vmm_exit_ops vmm_run_exit_ops = {
    .io = vmm_run_io,
    .mmio = vmm_run_mmio,
};

void vmm_run_coalesce(struct vmm_run *r)
{
	const struct vmm_blk_mmio_range *cr;
	size_t n = vmm_blk_coalescable(&cr);

	for (uint32_t d = 0; d <= r->nbacking; d++)
		for (size_t i = 0; i < n; i++)
			vmm_kvm_coalesce(&r->kvm, INSTAR_VIRTIO_MMIO_DEV_BASE(d) + cr[i].off,
					 cr[i].len);
}
