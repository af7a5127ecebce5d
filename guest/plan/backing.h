/* guest/plan/backing.h — reads an image's backing chain as the image sees
 * it, for plan_io.read_backing: a raw file (its bytes, zeros past its end)
 * or a qcow2 image (a minimal read-only reader: header, L1 and L2 tables,
 * standard, zero and compressed clusters, extended L2 entries) whose
 * unallocated clusters read from its own backing file, the next one in the
 * chain. Pure like the planners: every byte comes through plan_read_fn, so
 * it runs in the guest (over the read-only backing devices) and in host
 * tests. Every number read from a backing file is checked: it is as
 * untrusted as the image. */
#ifndef INSTAR_PLAN_BACKING_H
#define INSTAR_PLAN_BACKING_H

#include "plan.h"

#define PLAN_BACKING_MAX_DEVS INSTAR_BACKING_MAX_DEVS

struct plan_backing_dev {
	plan_read_fn read; /* bytes of the file; only [0, file_len) is asked */
	void *ctx;
	uint32_t format;   /* INSTAR_FMT_RAW or INSTAR_FMT_QCOW2 */
	uint64_t file_len; /* bytes */
	/* qcow2: from its header, on first use */
	int parsed; /* 0: not yet, 1: done, < 0: refused with this errno */
	uint32_t cb, l1_size;
	uint64_t size, l1_off;
	bool ext_l2, zstd, has_backing;
};

struct plan_backing {
	uint32_t ndev;
	struct plan_backing_dev dev[PLAN_BACKING_MAX_DEVS];
	struct plan_scratch *s; /* buffers for compressed clusters, on first use */
	uint8_t *cin, *cout;	/* 2 * ccap and ccap bytes */
	uint64_t ccap;
	void *work;
};

void plan_backing_init(struct plan_backing *b, struct plan_scratch *s);

/* Appends the next file of the chain (the first call: the image's own
 * backing file). 0, or -EINVAL for a format not read or a full chain. */
int plan_backing_add(struct plan_backing *b, uint32_t format, uint64_t file_len, plan_read_fn read,
		     void *ctx);

/* plan_read_fn over ctx = struct plan_backing: len bytes at guest offset off
 * of the first file as the image sees it (zeros past its end). 0; -ENOTSUP
 * when it needs a file the chain does not hold (none given, a format not
 * read, deeper than PLAN_BACKING_MAX_DEVS) or a feature not read (external
 * data file, encryption, unknown incompatible feature); -EINVAL for a
 * malformed backing image; -ENOMEM without scratch; the reader's errno for a
 * failed read. */
int plan_backing_read(void *ctx, uint64_t off, void *buf, uint32_t len);

#endif
