/* guest/plan/plan.h — the contract between the pure per-format resize
 * planners and their callers (guest/ops/resize in the guest; tests and fuzzers
 * on the host). A planner reads metadata only through struct plan_io and emits
 * an ordered stream of operations into struct plan's sink; it has no I/O of its
 * own, no globals, and uses only the bounded scratch it is given. */
#ifndef INSTAR_PLAN_H
#define INSTAR_PLAN_H

#include "abi.h"
#include "byteorder.h"

/* Reads len bytes at byte offset off of the image. Bytes past the file's end
 * (within the device) read as zero. Returns 0 or a negative errno. */
typedef int (*plan_read_fn)(void *ctx, uint64_t off, void *buf, uint32_t len);

struct plan_io {
	plan_read_fn read;
	void *ctx;
	uint64_t file_size; /* image file length in bytes before the resize */
	/* Optional (NULL: not available): reads the backing file as the image
	 * sees it, at guest offsets (what an unallocated cluster reads as; past
	 * its end, zeros). qcow2 needs it only to grow an image whose old size
	 * ends inside an unallocated cluster over a longer backing file: the
	 * kept part of that cluster is copied from it, as qemu does. */
	plan_read_fn read_backing;
	void *backing_ctx;
};

enum plan_op_kind {
	PLAN_OP_WRITE = 1,   /* write len bytes of data at off */
	PLAN_OP_ZERO = 2,    /* make [off, off+len) read as zeros (allocated) */
	PLAN_OP_DISCARD = 3, /* bytes no longer referenced; may be punched */
	PLAN_OP_FLUSH = 4,   /* barrier: everything before is durable first */
};

struct plan_op {
	uint32_t kind; /* enum plan_op_kind */
	uint32_t reserved;
	uint64_t off;	  /* byte offset in the image file */
	uint64_t len;	  /* bytes; 0 for FLUSH */
	const void *data; /* WRITE only; valid only during the sink call */
};

/* Receives each operation in order. Returns 0 or a negative errno; a failing
 * sink aborts the plan (the planner returns INSTAR_ERR_WRITE_FAILED). */
typedef int (*plan_sink_fn)(void *ctx, const struct plan_op *op);

#define PLAN_MAX_OPS_DEFAULT (1u << 20)

struct plan {
	plan_sink_fn sink;
	void *sink_ctx;
	uint32_t nops;		  /* operations emitted so far */
	uint32_t max_ops;	  /* bound; exceeding it is SCRATCH_TOO_SMALL */
	uint64_t file_size_after; /* set by the planner: final file length */
};

/* Bump allocator over caller-provided memory. */
struct plan_scratch {
	uint8_t *base;
	size_t len;
	size_t used;
};

struct plan_opts {
	uint64_t new_size;	     /* resolved absolute virtual size, bytes */
	uint64_t expected_old_size;  /* host probe's view; mismatch -> HEADER_MISMATCH */
	uint32_t prealloc;	     /* enum instar_prealloc */
	uint32_t flags;		     /* INSTAR_RESIZE_* */
	uint64_t backing_len;	     /* with INSTAR_RESIZE_BACKING_LEN */
	uint32_t backing_name_crc;   /* with INSTAR_RESIZE_BACKING */
	uint32_t data_file_name_crc; /* with INSTAR_RESIZE_DATA_FILE */
};

/* ---- helpers (guest/plan/plan.c) ---- */
void plan_init(struct plan *p, plan_sink_fn sink, void *ctx, uint32_t max_ops);
/* Each returns 0, INSTAR_ERR_SCRATCH_TOO_SMALL (op bound) or
 * INSTAR_ERR_WRITE_FAILED (sink failed). */
int plan_write(struct plan *p, uint64_t off, const void *data, uint64_t len);
int plan_zero(struct plan *p, uint64_t off, uint64_t len);
int plan_discard(struct plan *p, uint64_t off, uint64_t len);
int plan_flush(struct plan *p);

void plan_scratch_init(struct plan_scratch *s, void *base, size_t len);
/* Returns zeroed memory aligned to align (power of two), or NULL. */
void *plan_alloc(struct plan_scratch *s, size_t len, size_t align);

/* Reads through io; 0 or INSTAR_ERR_READ_FAILED. */
int plan_read(const struct plan_io *io, uint64_t off, void *buf, uint32_t len);
/* plan_read as qemu reads a file: zeros past io->file_size. */
int plan_read_z(const struct plan_io *io, uint64_t off, uint8_t *buf, uint32_t len);

/* A detail message built piece by piece (the guest has no printf);
 * m.n = 0 and m.b[0] = '\0' start one; each call appends, truncating. */
struct plan_msg {
	char b[INSTAR_DETAIL_MAX];
	uint32_t n;
};
void plan_msg_str(struct plan_msg *m, const char *t);
/* v as qemu's %#" PRIx64 prints it: "0", else "0x" and lowercase digits */
void plan_msg_hex0x(struct plan_msg *m, uint64_t v);
/* v as %" PRIx64: lowercase hex digits, no prefix */
void plan_msg_hex(struct plan_msg *m, uint64_t v);
/* v in decimal */
void plan_msg_dec(struct plan_msg *m, uint64_t v);

/* Sets ret->detail from a NUL-terminated string (truncating). */
void plan_set_detail(struct instar_resize_result *ret, const char *msg);
/* The file a header names is the host's to open (a backing file: flag
 * INSTAR_RESIZE_BACKING and o->backing_name_crc; a data file or flat
 * extent: INSTAR_RESIZE_DATA_FILE and o->data_file_name_crc): true when the
 * host opened one exactly when the header names one (present) and its
 * name's CRC-32 is that of name[0..len). */
bool plan_host_named(const struct plan_opts *o, uint32_t flag, bool present, const void *name,
		     uint32_t len);
/* A grow of an image of image_size bytes over a backing file (present):
 * qemu's block layer asks it for zeros over the grown range when the
 * backing file is longer than the image's whole sectors (bdrv_co_truncate,
 * BDRV_REQ_ZERO_WRITE); a length the host could not tell
 * (INSTAR_RESIZE_BACKING_LEN clear) counts as longer. */
bool plan_backing_needs_zeros(const struct plan_opts *o, bool present, uint64_t image_size);
/* After plan_set_detail: qemu's hint behind the detail's NUL
 * (INSTAR_RESULT_HINT), where it fits. */
void plan_set_hint(struct instar_resize_result *ret, const char *hint);

/* Starts a planner run: no error, NOOP, no detail, the file as it is (in ret
 * and in p), the requested size as the new virtual size. */
static inline void plan_result_init(struct instar_resize_result *ret, struct plan *p,
				    const struct plan_opts *o, const struct plan_io *io)
{
	ret->error = INSTAR_OK;
	ret->action = INSTAR_ACTION_NOOP;
	ret->flags = 0;
	ret->reserved = 0;
	ret->detail[0] = '\0';
	ret->file_size_before = io->file_size;
	ret->file_size_after = io->file_size;
	ret->new_virtual_size = o->new_size;
	p->file_size_after = io->file_size;
}

/* Byte order (unaligned-safe): get_be32, put_le64, ... from shared/byteorder.h. */

/* Freestanding-safe mem helpers (the guest has no libc). */
void plan_memcpy(void *dst, const void *src, size_t n);
void plan_memset(void *dst, int c, size_t n);
int plan_memcmp(const void *a, const void *b, size_t n);

/* CRC-32C (Castagnoli), as VHDX uses; crc starts at 0. */
uint32_t plan_crc32c(uint32_t crc, const void *buf, size_t len);

/* ---- planners: one per format ----
 * Each validates the header it reads against opts (expected_old_size),
 * fills ret (error, action, old/new virtual size, file sizes, detail) and
 * returns ret->error (0 on success). On error nothing must have been
 * emitted after the first FLUSH that precedes the commit write; callers
 * discard the whole stream on error anyway. The plan's crash-safe order:
 * prepare -> FLUSH -> commit write -> FLUSH -> cleanup. */
int plan_resize_qcow2(const struct plan_opts *o, const struct plan_io *io, struct plan_scratch *s,
		      struct plan *p, struct instar_resize_result *ret);
int plan_resize_vmdk(const struct plan_opts *o, const struct plan_io *io, struct plan_scratch *s,
		     struct plan *p, struct instar_resize_result *ret);
int plan_resize_vhd(const struct plan_opts *o, const struct plan_io *io, struct plan_scratch *s,
		    struct plan *p, struct instar_resize_result *ret);
int plan_resize_vhdx(const struct plan_opts *o, const struct plan_io *io, struct plan_scratch *s,
		     struct plan *p, struct instar_resize_result *ret);
int plan_resize_vdi(const struct plan_opts *o, const struct plan_io *io, struct plan_scratch *s,
		    struct plan *p, struct instar_resize_result *ret);

int plan_resize_luks(const struct plan_opts *o, const struct plan_io *io, struct plan_scratch *s,
		     struct plan *p, struct instar_resize_result *ret);
int plan_resize_qed(const struct plan_opts *o, const struct plan_io *io, struct plan_scratch *s,
		    struct plan *p, struct instar_resize_result *ret);

/* LUKS1 header checks as qemu makes them on open (guest/plan/luks.c): the
 * header at byte base of the image, with room bytes for it and its key
 * material (a raw container: the file; qcow2: its encryption header
 * region). 0 and the payload offset from base, or ret->error with qemu's
 * message (past: when the payload lies beyond room). */
int plan_luks_header(const struct plan_io *io, uint64_t base, uint64_t room, const char *past,
		     uint64_t *ret_payload, struct instar_resize_result *ret);

/* Dispatch on enum instar_format; UNSUPPORTED_FORMAT for others. */
int plan_resize(uint32_t format, const struct plan_opts *o, const struct plan_io *io,
		struct plan_scratch *s, struct plan *p, struct instar_resize_result *ret);

#endif
