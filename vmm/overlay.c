/* vmm/overlay.c — host side: staged guest writes (ordered log + extent map for
 * reads) and their commit to the image file. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "overlay.h"

void vmm_overlay_init(struct vmm_overlay *o, uint64_t data_limit, size_t max_ops)
{
	memset(o, 0, sizeof(*o));
	o->data_limit = data_limit;
	o->max_ops = max_ops;
}

void vmm_overlay_fini(struct vmm_overlay *o)
{
	size_t i;

	for (i = 0; i < o->nops; i++)
		free(o->ops[i].data);
	free(o->ops);
	free(o->ext);
	memset(o, 0, sizeof(*o));
}

/* First extent whose end lies beyond off (extents are sorted by start and by
 * end alike, because they never overlap). */
static size_t ext_lower(const struct vmm_overlay *o, uint64_t off)
{
	size_t lo = 0, hi = o->next;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (o->ext[mid].end > off)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Make [start, end) read src (or zeros): trim or split what it covers. */
static int ext_insert(struct vmm_overlay *o, uint64_t start, uint64_t end, const uint8_t *src)
{
	struct vmm_ovl_ext repl[3];
	size_t i, j, k = 0, n;

	i = ext_lower(o, start);
	for (j = i; j < o->next && o->ext[j].start < end; j++)
		;
	if (i < j && o->ext[i].start < start) {
		repl[k] = o->ext[i];
		repl[k++].end = start;
	}
	repl[k++] = (struct vmm_ovl_ext){.start = start, .end = end, .src = src};
	if (i < j && o->ext[j - 1].end > end) {
		struct vmm_ovl_ext r = o->ext[j - 1];

		if (r.src)
			r.src += end - r.start;
		r.start = end;
		repl[k++] = r;
	}

	n = o->next - (j - i) + k;
	if (n > o->cap_ext) {
		size_t cap = o->cap_ext ? o->cap_ext * 2 : 64;
		struct vmm_ovl_ext *e;

		while (cap < n)
			cap *= 2;
		e = reallocarray(o->ext, cap, sizeof(*e));
		if (!e)
			return -ENOMEM;
		o->ext = e;
		o->cap_ext = cap;
	}
	memmove(o->ext + i + k, o->ext + j, (o->next - j) * sizeof(*o->ext));
	memcpy(o->ext + i, repl, k * sizeof(*repl));
	o->next = n;
	return 0;
}

/* Reserve a log slot and the extent room it may need, so that recording an op
 * cannot fail halfway. */
static int op_reserve(struct vmm_overlay *o, uint64_t data_len)
{
	uint64_t total;

	if (o->exceeded)
		return -ENOSPC;
	if (o->nops >= o->max_ops || __builtin_add_overflow(o->data_bytes, data_len, &total) ||
	    total > o->data_limit) {
		o->exceeded = true;
		return -ENOSPC;
	}
	if (o->nops == o->cap_ops) {
		size_t cap = o->cap_ops ? o->cap_ops * 2 : 64;
		struct vmm_ovl_op *p = reallocarray(o->ops, cap, sizeof(*p));

		if (!p)
			return -ENOMEM;
		o->ops = p;
		o->cap_ops = cap;
	}
	return 0;
}

static int op_add(struct vmm_overlay *o, enum vmm_ovl_kind kind, uint64_t off, uint64_t len,
		  uint8_t *data)
{
	int r;

	/* An empty range changes nothing; don't let it cost a slot. */
	if (len == 0 && kind != VMM_OVL_FLUSH)
		return 0;
	r = op_reserve(o, kind == VMM_OVL_WRITE ? len : 0);
	if (r < 0)
		return r;
	if (kind != VMM_OVL_FLUSH) {
		r = ext_insert(o, off, off + len, data);
		if (r < 0)
			return r;
	}
	o->ops[o->nops++] = (struct vmm_ovl_op){.off = off, .len = len, .data = data, .kind = kind};
	if (kind == VMM_OVL_WRITE)
		o->data_bytes += len;
	return 0;
}

int vmm_overlay_write(struct vmm_overlay *o, uint64_t off, uint8_t *data, uint64_t len)
{
	uint64_t end;

	if (__builtin_add_overflow(off, len, &end))
		return -EINVAL;
	if (len == 0) {
		free(data); /* success means ownership passed */
		return 0;
	}
	return op_add(o, VMM_OVL_WRITE, off, len, data);
}

int vmm_overlay_zero(struct vmm_overlay *o, uint64_t off, uint64_t len)
{
	uint64_t end;

	if (__builtin_add_overflow(off, len, &end))
		return -EINVAL;
	return op_add(o, VMM_OVL_ZERO, off, len, NULL);
}

int vmm_overlay_discard(struct vmm_overlay *o, uint64_t off, uint64_t len)
{
	uint64_t end;

	if (__builtin_add_overflow(off, len, &end))
		return -EINVAL;
	return op_add(o, VMM_OVL_DISCARD, off, len, NULL);
}

int vmm_overlay_flush(struct vmm_overlay *o)
{
	/* Back-to-back barriers mean nothing more than one. */
	if (o->nops && o->ops[o->nops - 1].kind == VMM_OVL_FLUSH && !o->exceeded)
		return 0;
	return op_add(o, VMM_OVL_FLUSH, 0, 0, NULL);
}

void vmm_overlay_read(const struct vmm_overlay *o, uint64_t off, void *buf, uint64_t len)
{
	uint8_t *out = buf;
	uint64_t end = off + len;
	size_t i;

	for (i = ext_lower(o, off); i < o->next && o->ext[i].start < end; i++) {
		const struct vmm_ovl_ext *e = &o->ext[i];
		uint64_t a = e->start > off ? e->start : off;
		uint64_t b = e->end < end ? e->end : end;

		if (e->src)
			memcpy(out + (a - off), e->src + (a - e->start), b - a);
		else
			memset(out + (a - off), 0, b - a);
	}
}

/* ---- commit ---- */

static const uint8_t zero_buf[64 * 1024];

static int pwrite_all(int fd, const void *buf, uint64_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		size_t chunk = len > (1u << 30) ? (1u << 30) : (size_t)len;
		ssize_t n = pwrite(fd, p, chunk, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

static int pwrite_zeros(int fd, uint64_t off, uint64_t len)
{
	while (len) {
		uint64_t chunk = len > sizeof(zero_buf) ? sizeof(zero_buf) : len;
		int r = pwrite_all(fd, zero_buf, chunk, off);

		if (r < 0)
			return r;
		off += chunk;
		len -= chunk;
	}
	return 0;
}

static bool fallocate_unsupported(int err)
{
	return err == -EOPNOTSUPP || err == -ENOSYS || err == -EINVAL;
}

static int do_fallocate(int fd, int mode, uint64_t off, uint64_t len)
{
	int r;

	do {
		r = fallocate(fd, mode, (off_t)off, (off_t)len);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

/* The range must end up as allocated zero bytes, also where it extends the
 * file, so a later write there cannot fail for lack of space. */
static int commit_zero(int fd, uint64_t off, uint64_t len, uint64_t cur)
{
	uint64_t end = off + len, in_end;
	int r;

	r = do_fallocate(fd, FALLOC_FL_ZERO_RANGE, off, len);
	if (r == 0 || !fallocate_unsupported(r))
		return r;
	in_end = end < cur ? end : cur;
	if (off < in_end) {
		r = pwrite_zeros(fd, off, in_end - off);
		if (r < 0)
			return r;
	}
	if (end > cur) {
		uint64_t a = off > cur ? off : cur;

		r = do_fallocate(fd, 0, a, end - a);
		if (r < 0 && fallocate_unsupported(r))
			r = pwrite_zeros(fd, a, end - a);
	}
	return r;
}

static int commit_discard(int fd, uint64_t off, uint64_t len, uint64_t cur)
{
	uint64_t end = off + len;
	int r;

	if (off >= cur)
		return 0;
	if (end > cur)
		end = cur;
	r = do_fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, end - off);
	/* A discard is advice: a file system without holes keeps the bytes. */
	if (r < 0 && fallocate_unsupported(r))
		r = 0;
	return r;
}

int vmm_overlay_commit(const struct vmm_overlay *o, int fd, uint64_t stop_after, bool *ret_unsynced)
{
	uint64_t applied = 0, cur;
	bool dirty = false; /* applied ops since the last fdatasync */
	struct stat st;
	size_t i;
	int r = 0;

	*ret_unsynced = false;
	if (fstat(fd, &st) < 0)
		return -errno;
	cur = (uint64_t)st.st_size;

	for (i = 0; i < o->nops; i++) {
		const struct vmm_ovl_op *op = &o->ops[i];
		uint64_t end = op->off + op->len;

		if (op->kind != VMM_OVL_FLUSH && applied >= stop_after)
			return -ECANCELED;
		switch (op->kind) {
		case VMM_OVL_WRITE:
			r = pwrite_all(fd, op->data, op->len, op->off);
			break;
		case VMM_OVL_ZERO:
			r = commit_zero(fd, op->off, op->len, cur);
			break;
		case VMM_OVL_DISCARD:
			r = commit_discard(fd, op->off, op->len, cur);
			break;
		case VMM_OVL_FLUSH:
			/* A barrier orders what came before it against what
			 * follows: with nothing applied since the last one it
			 * has nothing to order (back-to-back or leading). */
			if (dirty)
				r = fdatasync(fd) < 0 ? -errno : 0;
			dirty = false;
			*ret_unsynced = false;
			break;
		}
		if (r < 0) {
			*ret_unsynced = true;
			return r;
		}
		if (op->kind == VMM_OVL_FLUSH)
			continue;
		applied++;
		dirty = true;
		*ret_unsynced = true;
		if ((op->kind == VMM_OVL_WRITE || op->kind == VMM_OVL_ZERO) && end > cur)
			cur = end;
		if (applied >= stop_after)
			return -ECANCELED;
	}
	return 0;
}
