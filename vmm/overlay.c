/* vmm/overlay.c — host side: staged guest writes (ordered log + extent map for
 * reads) and their commit to the image file. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "overlay.h"

void vmm_overlay_init(struct vmm_overlay *o, uint64_t data_limit, size_t max_ops)
{
	memset(o, 0, sizeof(*o));
	o->data_limit = data_limit;
	o->max_ops = max_ops;
	o->max_flush = VMM_OVL_MAX_FLUSH;
}

void vmm_overlay_set_base(struct vmm_overlay *o, uint64_t file_size, uint64_t prealloc_limit)
{
	o->eof = file_size;
	o->prealloc_limit = prealloc_limit;
}

void vmm_overlay_fini(struct vmm_overlay *o)
{
	size_t i;

	for (i = 0; i < o->nops; i++)
		free(o->ops[i].data);
	for (i = 0; i < o->nundo; i++)
		free(o->undo[i].old);
	free(o->undo);
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

/* What an op charges: data bytes (writes; zeroes inside the staged end of
 * file) and preallocated bytes (zeroes past it, when preallocating). */
struct op_cost {
	uint64_t data, prealloc;
};

static struct op_cost op_cost(const struct vmm_overlay *o, enum vmm_ovl_kind kind, uint64_t off,
			      uint64_t len)
{
	struct op_cost c = {0, 0};
	uint64_t end = off + len, in_end;

	if (kind == VMM_OVL_WRITE) {
		c.data = len;
	} else if (kind == VMM_OVL_ZERO) {
		in_end = end < o->eof ? end : o->eof;
		c.data = off < in_end ? in_end - off : 0;
		if (o->prealloc_limit)
			c.prealloc = len - c.data;
	}
	return c;
}

/* Reserve a log slot and the extent room it may need, so that recording an op
 * cannot fail halfway. */
static int op_reserve(struct vmm_overlay *o, enum vmm_ovl_kind kind, struct op_cost c)
{
	uint64_t total, ptotal;

	if (o->exceeded)
		return -ENOSPC;
	if (o->nops >= o->max_ops || (kind == VMM_OVL_FLUSH && o->nflush >= o->max_flush) ||
	    __builtin_add_overflow(o->data_bytes, c.data, &total) || total > o->data_limit ||
	    __builtin_add_overflow(o->prealloc_bytes, c.prealloc, &ptotal) ||
	    (c.prealloc && ptotal > o->prealloc_limit)) {
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
	struct op_cost c;
	int r;

	/* An empty range changes nothing; don't let it cost a slot. */
	if (len == 0 && kind != VMM_OVL_FLUSH)
		return 0;
	c = op_cost(o, kind, off, len);
	r = op_reserve(o, kind, c);
	if (r < 0)
		return r;
	if (kind != VMM_OVL_FLUSH) {
		r = ext_insert(o, off, off + len, data);
		if (r < 0)
			return r;
	}
	o->ops[o->nops++] = (struct vmm_ovl_op){.off = off, .len = len, .data = data, .kind = kind};
	o->data_bytes += c.data;
	o->prealloc_bytes += c.prealloc;
	if (kind == VMM_OVL_FLUSH)
		o->nflush++;
	if ((kind == VMM_OVL_WRITE || kind == VMM_OVL_ZERO) && off + len > o->eof)
		o->eof = off + len;
	if (kind == VMM_OVL_WRITE && off + len > o->write_end)
		o->write_end = off + len;
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

/* Zeros over [off, off+len) with cur the file's length now: inside the file
 * they must read as zeros (zero range, or written by hand where the file
 * system lacks it; charged to the budget when staged). Past the end they are
 * preallocated (allocated zeros) when preallocation was asked for, else the
 * length is only extended: a hole, never allocated, never written. */
static int commit_zero(int fd, uint64_t off, uint64_t len, uint64_t cur, bool prealloc,
		       struct vmm_ovl_where *w)
{
	uint64_t end = off + len, in_end = end < cur ? end : cur, a;
	int r = 0;

	if (off < in_end) {
		*w = (struct vmm_ovl_where){.what = "zeroing", .off = off, .len = in_end - off};
		r = do_fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, in_end - off);
		if (r < 0 && fallocate_unsupported(r))
			r = pwrite_zeros(fd, off, in_end - off);
		if (r < 0)
			return r;
	}
	if (end <= cur)
		return 0;
	a = off > cur ? off : cur;
	*w = (struct vmm_ovl_where){
	    .what = prealloc ? "preallocating" : "extending", .off = a, .len = end - a};
	if (!prealloc)
		return ftruncate(fd, (off_t)end) < 0 ? -errno : 0;
	r = do_fallocate(fd, 0, a, end - a);
	if (r < 0 && fallocate_unsupported(r))
		r = pwrite_zeros(fd, a, end - a);
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

/* ---- reservation before the commit ---- */

static int reserve_range(int fd, uint64_t off, uint64_t len, uint64_t *fallback,
			 struct vmm_ovl_where *w)
{
	int r;

	if (!len)
		return 0;
	*w = (struct vmm_ovl_where){.what = "reserving space in", .off = off, .len = len};
	if (*fallback) {
		/* no fallocate here: count what may need new blocks instead */
		return __builtin_add_overflow(*fallback, len, fallback) ? -EFBIG : 0;
	}
	r = do_fallocate(fd, FALLOC_FL_KEEP_SIZE, off, len);
	if (r < 0 && fallocate_unsupported(r)) {
		*fallback = 1 + len;
		return 0;
	}
	return r;
}

int vmm_overlay_reserve(const struct vmm_overlay *o, int fd, uint64_t final_size,
			struct vmm_ovl_where *ret_where)
{
	uint64_t fallback = 0, cur;
	struct statvfs sv;
	struct stat st;
	size_t i;
	int r = 0;

	*ret_where = (struct vmm_ovl_where){.what = "checking", .off = 0, .len = 0};
	if (fstat(fd, &st) < 0)
		return -errno;
	cur = (uint64_t)st.st_size;
	for (i = 0; i < o->nops && !r; i++) {
		const struct vmm_ovl_op *op = &o->ops[i];
		uint64_t end = op->off + op->len;

		if (op->kind == VMM_OVL_WRITE) {
			r = reserve_range(fd, op->off, op->len, &fallback, ret_where);
		} else if (op->kind == VMM_OVL_ZERO && end > cur && o->prealloc_limit) {
			uint64_t a = op->off > cur ? op->off : cur;

			r = reserve_range(fd, a, end - a, &fallback, ret_where);
		}
		if ((op->kind == VMM_OVL_WRITE || op->kind == VMM_OVL_ZERO) && end > cur)
			cur = end;
	}
	/* the final length must be possible too (EFBIG), even where it is a hole */
	if (!r && final_size > cur)
		r = reserve_range(fd, final_size - 1, 1, &fallback, ret_where);
	if (r || !fallback)
		return r;
	*ret_where = (struct vmm_ovl_where){
	    .what = "checking the free space of", .off = 0, .len = fallback - 1};
	if (fstatvfs(fd, &sv) < 0)
		return -errno;
	if ((uint64_t)sv.f_bavail * sv.f_frsize < fallback - 1)
		return -ENOSPC;
	return 0;
}

/* Keeps the old bytes of [off, off+len) inside the old file before they
 * change. */
static int undo_save(struct vmm_overlay *o, int fd, uint64_t off, uint64_t len)
{
	uint64_t end = off + len, done = 0;
	struct vmm_ovl_undo *u;

	if (off >= o->undo_size)
		return 0;
	if (end > o->undo_size)
		end = o->undo_size;
	if (o->nundo == o->cap_undo) {
		size_t cap = o->cap_undo ? o->cap_undo * 2 : 64;

		u = reallocarray(o->undo, cap, sizeof(*u));
		if (!u)
			return -ENOMEM;
		o->undo = u;
		o->cap_undo = cap;
	}
	u = &o->undo[o->nundo];
	u->off = off;
	u->len = end - off;
	u->old = malloc(u->len);
	if (!u->old)
		return -ENOMEM;
	while (done < u->len) {
		ssize_t n = pread(fd, u->old + done, u->len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int r = n < 0 ? -errno : -EIO;

			free(u->old);
			return r;
		}
		done += (uint64_t)n;
	}
	o->nundo++;
	return 0;
}

int vmm_overlay_commit(struct vmm_overlay *o, int fd, uint64_t stop_after, bool *ret_unsynced,
		       struct vmm_ovl_where *ret_where)
{
	uint64_t applied = 0, cur;
	bool dirty = false; /* applied ops since the last fdatasync */
	struct stat st;
	size_t i;
	int r = 0;

	*ret_unsynced = false;
	*ret_where = (struct vmm_ovl_where){.what = "checking", .off = 0, .len = 0};
	if (fstat(fd, &st) < 0)
		return -errno;
	cur = o->undo_size = (uint64_t)st.st_size;

	for (i = 0; i < o->nops; i++) {
		const struct vmm_ovl_op *op = &o->ops[i];
		uint64_t end = op->off + op->len;

		if (op->kind != VMM_OVL_FLUSH && applied >= stop_after)
			return -ECANCELED;
		if (op->kind == VMM_OVL_WRITE || op->kind == VMM_OVL_ZERO) {
			*ret_where = (struct vmm_ovl_where){
			    .what = "saving the old bytes of", .off = op->off, .len = op->len};
			r = undo_save(o, fd, op->off, op->len);
			if (r < 0)
				return r;
		}
		switch (op->kind) {
		case VMM_OVL_WRITE:
			*ret_where = (struct vmm_ovl_where){
			    .what = "writing", .off = op->off, .len = op->len};
			r = pwrite_all(fd, op->data, op->len, op->off);
			break;
		case VMM_OVL_ZERO:
			r = commit_zero(fd, op->off, op->len, cur, o->prealloc_limit != 0,
					ret_where);
			break;
		case VMM_OVL_DISCARD:
			*ret_where = (struct vmm_ovl_where){
			    .what = "punching a hole in", .off = op->off, .len = op->len};
			if (op->off < o->undo_size)
				o->undo_lost = true;
			r = commit_discard(fd, op->off, op->len, cur);
			break;
		case VMM_OVL_FLUSH:
			/* A barrier orders what came before it against what
			 * follows: with nothing applied since the last one it
			 * has nothing to order (back-to-back or leading). */
			*ret_where = (struct vmm_ovl_where){.what = "syncing", .off = 0, .len = 0};
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

int vmm_overlay_rollback(struct vmm_overlay *o, int fd)
{
	int r;

	if (o->undo_lost)
		return -ESTALE;
	for (size_t i = o->nundo; i-- > 0;) {
		r = pwrite_all(fd, o->undo[i].old, o->undo[i].len, o->undo[i].off);
		if (r < 0)
			return r;
	}
	if (ftruncate(fd, (off_t)o->undo_size) < 0 || fdatasync(fd) < 0)
		return -errno;
	return 0;
}
