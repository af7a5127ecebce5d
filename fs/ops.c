/* fs/ops.c — the FUSE operations (libfuse low-level API): a root listing the
 * source directory live, a folder per image, and the control files of
 * control.c. Nothing is cached by the kernel (zero timeouts, direct_io) so
 * images come and go without a remount.
 *
 * Inode numbers: the root is FUSE_ROOT_ID; an image entry of the table with
 * id N is the folder N << 3 and its control files (N << 3) | (1 + kind).
 * Table entries are never freed, so a number stays valid (forget needs no
 * bookkeeping) and always means the same name; whether that name is an
 * image right now is checked at every operation.
 *
 * A write to `size` is only checked and queued here; the job thread that
 * runs the resize replies to it (see instarfs.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "abi_names.h"
#include "instarfs.h"

#define INO_SHIFT 3

enum node { NODE_ROOT, NODE_IMAGE, NODE_CONTROL };

struct where {
	enum node node;
	fuse_ino_t ino;
	struct ifs_image *img;
	const struct ifs_control *ctl;
};

static fuse_ino_t ino_of(const struct ifs_image *img, const struct ifs_control *ctl)
{
	return ((fuse_ino_t)img->id << INO_SHIFT) | (ctl ? (fuse_ino_t)ctl->kind + 1 : 0);
}

/* The node of ino; an image (and so its files) must exist right now. */
static int resolve(fuse_ino_t ino, struct where *w, struct stat *ret_st)
{
	uint64_t sub = ino & ((1u << INO_SHIFT) - 1);
	int r;

	memset(w, 0, sizeof(*w));
	w->ino = ino;
	if (ino == FUSE_ROOT_ID) {
		w->node = NODE_ROOT;
		return 0;
	}
	if (sub > IFS_CTL_COUNT)
		return -ENOENT;
	w->img = ifs_image_by_id(ino >> INO_SHIFT);
	if (!w->img)
		return -ENOENT;
	r = ifs_source_stat(w->img->name, ret_st);
	if (r < 0)
		return r == -ENOTDIR || r == -ELOOP ? -ENOENT : r;
	if (sub == 0) {
		w->node = NODE_IMAGE;
		return 0;
	}
	w->ctl = &ifs_controls[sub - 1];
	w->node = NODE_CONTROL;
	return 0;
}

static int fill_attr(const struct where *w, const struct stat *img, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = w->ino;
	if (w->node == NODE_ROOT) {
		struct stat src;

		if (fstat(ifs_source_fd(), &src) < 0)
			return -errno;
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		st->st_uid = src.st_uid;
		st->st_gid = src.st_gid;
		st->st_atim = st->st_mtim = src.st_mtim;
		st->st_ctim = src.st_ctim;
		return 0;
	}
	st->st_uid = img->st_uid;
	st->st_gid = img->st_gid;
	st->st_atim = st->st_mtim = img->st_mtim;
	st->st_ctim = img->st_ctim;
	if (w->node == NODE_IMAGE) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return 0;
	}
	st->st_mode = S_IFREG | (img->st_mode & w->ctl->mask);
	st->st_nlink = 1;
	/* Like sysfs: a nominal size; reads go to us (direct_io) anyway. */
	st->st_size = 4096;
	st->st_blksize = 4096;
	if (w->ctl->kind == IFS_CTL_RESULT) {
		ifs_images_lock();
		if (w->img->result)
			st->st_mtim = st->st_ctim = w->img->result_time;
		ifs_images_unlock();
	}
	return 0;
}

static void ifs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	struct stat img;
	struct where w, pw;
	int r;

	memset(&e, 0, sizeof(e));
	r = resolve(parent, &pw, &img);
	if (r < 0)
		goto err;
	memset(&w, 0, sizeof(w));
	switch (pw.node) {
	case NODE_ROOT:
		if (strlen(name) > NAME_MAX) {
			r = -ENAMETOOLONG;
			goto err;
		}
		r = ifs_source_stat(name, &img);
		if (r < 0) {
			r = r == -ENOTDIR || r == -ELOOP ? -ENOENT : r;
			goto err;
		}
		w.img = ifs_image_get(name);
		if (!w.img) {
			r = -ENOMEM;
			goto err;
		}
		w.node = NODE_IMAGE;
		break;
	case NODE_IMAGE:
		w.ctl = ifs_control_find(name);
		if (!w.ctl) {
			r = -ENOENT;
			goto err;
		}
		w.img = pw.img;
		w.node = NODE_CONTROL;
		break;
	default:
		r = -ENOTDIR;
		goto err;
	}
	w.ino = ino_of(w.img, w.ctl);
	r = fill_attr(&w, &img, &e.attr);
	if (r < 0)
		goto err;
	e.ino = w.ino;
	/* Zero timeouts: no entry or attribute is cached by the kernel. */
	e.attr_timeout = 0;
	e.entry_timeout = 0;
	fuse_reply_entry(req, &e);
	return;
err:
	fuse_reply_err(req, -r);
}

static void ifs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat img, st;
	struct where w;
	int r;

	(void)fi;
	r = resolve(ino, &w, &img);
	if (r == 0)
		r = fill_attr(&w, &img, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, 0.0);
}

/* `echo ... > size` truncates first: that is not a resize, just accept it
 * (and touch, likewise). Modes and owners come from the image: refused. */
static void ifs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			struct fuse_file_info *fi)
{
	struct stat img, st;
	struct where w;
	int r;

	(void)attr;
	(void)fi;
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	r = resolve(ino, &w, &img);
	if (r == 0 && w.node != NODE_CONTROL)
		r = -EISDIR;
	if (r == 0 && !w.ctl->writable)
		r = -EACCES;
	if (r == 0)
		r = fill_attr(&w, &img, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, 0.0);
}

/* ---- directories: the listing is taken at opendir, served in slices ---- */
struct dirbuf {
	char *buf;
	size_t len, cap;
	size_t *ends; /* where each entry ends: the offsets readdir may get */
	size_t n, ends_cap;
};

static void dirbuf_free(struct dirbuf *d)
{
	free(d->buf);
	free(d->ends);
	free(d);
}

static int dir_add(fuse_req_t req, struct dirbuf *d, const char *name, fuse_ino_t ino)
{
	struct stat st = {.st_ino = ino};
	size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);

	if (d->n == d->ends_cap) {
		size_t cap = d->ends_cap ? 2 * d->ends_cap : 64;
		size_t *p = realloc(d->ends, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		d->ends = p;
		d->ends_cap = cap;
	}
	if (d->len + need > d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 4096;
		char *p;

		while (cap < d->len + need)
			cap *= 2;
		p = realloc(d->buf, cap);
		if (!p)
			return -ENOMEM;
		d->buf = p;
		d->cap = cap;
	}
	/* The offset of an entry is where the next one starts. */
	fuse_add_direntry(req, d->buf + d->len, need, name, &st, (off_t)(d->len + need));
	d->len += need;
	d->ends[d->n++] = d->len;
	return 0;
}

static int list_source(fuse_req_t req, struct dirbuf *db)
{
	struct dirent *de;
	int fd, r = 0;
	DIR *d;

	/* A fresh open file description each time: concurrent listings must
	 * not share a directory offset. */
	fd = openat(ifs_source_fd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	while (r == 0 && (de = readdir(d))) {
		struct ifs_image *img;
		struct stat st;

		if (!ifs_source_name_ok(de->d_name))
			continue;
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		if (de->d_type == DT_UNKNOWN && ifs_source_stat(de->d_name, &st) < 0)
			continue;
		img = ifs_image_get(de->d_name);
		r = img ? dir_add(req, db, de->d_name, ino_of(img, NULL)) : -ENOMEM;
	}
	closedir(d);
	return r;
}

static void ifs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirbuf *d;
	struct stat img;
	struct where w;
	int r;

	r = resolve(ino, &w, &img);
	if (r == 0 && w.node == NODE_CONTROL)
		r = -ENOTDIR;
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = dir_add(req, d, ".", ino);
	if (r == 0)
		r = dir_add(req, d, "..", FUSE_ROOT_ID);
	if (r == 0 && w.node == NODE_ROOT)
		r = list_source(req, d);
	for (size_t i = 0; r == 0 && w.node == NODE_IMAGE && i < IFS_CTL_COUNT; i++)
		r = dir_add(req, d, ifs_controls[i].name, ino_of(w.img, &ifs_controls[i]));
	if (r < 0) {
		dirbuf_free(d);
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0)
		dirbuf_free(d);
}

/* Replies with a copy of buf that this thread owns. The kernel completes a
 * read as soon as it has the reply; the reader may then close, and release
 * (on another thread) frees the handle while fuse_reply_buf is still
 * returning: the sanitizer build's check of the writev buffer read freed
 * memory there. */
static void reply_copy(fuse_req_t req, const char *buf, size_t size)
{
	char *copy = malloc(size ? size : 1);

	if (!copy) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(copy, buf, size);
	fuse_reply_buf(req, copy, size);
	free(copy);
}

static void ifs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct dirbuf *d = (struct dirbuf *)(uintptr_t)fi->fh;
	size_t end;

	(void)ino;
	if (off < 0 || (size_t)off >= d->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	/* Whole entries only: cut at the last entry that fits. */
	end = (size_t)off;
	for (size_t i = 0; i < d->n; i++) {
		if (d->ends[i] <= (size_t)off)
			continue;
		if (d->ends[i] - (size_t)off > size)
			break;
		end = d->ends[i];
	}
	reply_copy(req, d->buf + off, end - (size_t)off);
}

static void ifs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirbuf *d = (struct dirbuf *)(uintptr_t)fi->fh;

	(void)ino;
	dirbuf_free(d);
	fuse_reply_err(req, 0);
}

/* ---- control files ---- */
static void ifs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int acc = fi->flags & O_ACCMODE;
	struct ifs_handle *h;
	struct stat st;
	struct where w;
	int r;

	r = resolve(ino, &w, &st);
	if (r == 0 && w.node != NODE_CONTROL)
		r = -EISDIR;
	/* default_permissions checks the mode, but not for root. */
	if (r == 0 && acc != O_RDONLY && !w.ctl->writable)
		r = -EACCES;
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->ctl = w.ctl;
	h->img = w.img;
	/* The kernel holds the inode lock for the whole of a write (and so for
	 * the whole resize), and the truncate of '>' waits for it too: a second
	 * writer would just queue. Refuse it here, before that lock, instead. */
	if (acc != O_RDONLY) {
		ifs_images_lock();
		r = h->img->busy ? -EBUSY : 0;
		ifs_images_unlock();
		if (r < 0) {
			log_info("%s: open of size for writing refused: a resize is running",
				 h->img->name);
			free(h);
			fuse_reply_err(req, -r);
			return;
		}
	}
	if (acc != O_WRONLY) {
		r = ifs_control_render(h);
		if (r < 0) {
			free(h);
			fuse_reply_err(req, -r);
			return;
		}
	} else {
		ifs_images_lock();
		h->gen = h->img->gen;
		ifs_images_unlock();
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) != 0) {
		free(h->buf);
		free(h);
	}
}

static struct ifs_handle *handle_of(struct fuse_file_info *fi)
{
	return (struct ifs_handle *)(uintptr_t)fi->fh;
}

static void ifs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct ifs_handle *h = handle_of(fi);

	(void)ino;
	if (!h->buf) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (off < 0 || (size_t)off >= h->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > h->len - (size_t)off)
		size = h->len - (size_t)off;
	reply_copy(req, h->buf + off, size);
}

static void ifs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct ifs_handle *h = handle_of(fi);
	struct ifs_config cfg;
	struct ifs_job *job;
	char err[256];
	int r;

	(void)ino;
	if (!h->ctl->writable) {
		fuse_reply_err(req, EACCES);
		return;
	}
	/* sysfs manners: the whole value in one write at offset 0. */
	if (off != 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (size > IFS_WRITE_MAX) {
		fuse_reply_err(req, E2BIG);
		return;
	}
	r = ifs_image_claim(h->img);
	if (r < 0) {
		log_info("%s: write to size refused: a resize is already running", h->img->name);
		fuse_reply_err(req, -r);
		return;
	}
	job = calloc(1, sizeof(*job));
	if (!job) {
		ifs_image_release(h->img);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	job->req = req;
	job->img = h->img;
	job->size = size;
	r = ifs_request_parse(buf, size, &job->r, err, sizeof(err));
	if (r == 0 && job->r.max_staged) {
		/* A writer may ask for less than its share, never for more: the
		 * share is what keeps max_jobs resizes within max_staged_total. */
		ifs_config_get(&cfg);
		if (job->r.max_staged > cfg.max_staged) {
			snprintf(err, sizeof(err),
				 "--max-staged %llu is above the configured max_staged %llu",
				 (unsigned long long)job->r.max_staged,
				 (unsigned long long)cfg.max_staged);
			job->r.code = INSTAR_ERR_INVALID_OPTION;
			r = -EINVAL;
		}
	}
	if (r < 0) {
		log_info("%s: write to size refused: %s", h->img->name, err);
		ifs_image_publish(h->img, ifs_result_error(h->img->name, job->r.code, -r, err));
		free(job);
		fuse_reply_err(req, -r);
		return;
	}
	ifs_job_submit(job);
}

static void ifs_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct fuse_pollhandle *ph)
{
	struct ifs_handle *h = handle_of(fi);
	unsigned revents = 0;

	(void)ino;
	if (!h->ctl->pollable) {
		if (ph)
			fuse_pollhandle_destroy(ph);
		fuse_reply_poll(req, POLLIN | POLLRDNORM);
		return;
	}
	ifs_images_lock();
	if (h->gen != h->img->gen) {
		/* A resize finished since this snapshot: reopen to read it. */
		revents = POLLIN | POLLRDNORM | POLLPRI;
		ifs_images_unlock();
		if (ph)
			fuse_pollhandle_destroy(ph);
		fuse_reply_poll(req, revents);
		return;
	}
	if (ph) {
		if (h->ph)
			fuse_pollhandle_destroy(h->ph);
		h->ph = ph;
		if (!h->polling) {
			h->polling = true;
			h->poll_next = h->img->pollers;
			h->img->pollers = h;
		}
	}
	ifs_images_unlock();
	fuse_reply_poll(req, revents);
}

static void ifs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ifs_handle *h = handle_of(fi), **pp;

	(void)ino;
	ifs_images_lock();
	if (h->polling) {
		for (pp = &h->img->pollers; *pp; pp = &(*pp)->poll_next) {
			if (*pp == h) {
				*pp = h->poll_next;
				break;
			}
		}
	}
	if (h->ph)
		fuse_pollhandle_destroy(h->ph);
	ifs_images_unlock();
	free(h->buf);
	free(h);
	fuse_reply_err(req, 0);
}

/* ---- the tree is the source directory's: no creating, removing, renaming ---- */
static void ifs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent;
	(void)name;
	(void)mode;
	fuse_reply_err(req, EPERM);
}

static void ifs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent;
	(void)name;
	fuse_reply_err(req, EPERM);
}

static void ifs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		       struct fuse_file_info *fi)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)fi;
	fuse_reply_err(req, EPERM);
}

static void ifs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	fuse_reply_err(req, EPERM);
}

static void ifs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		       const char *newname, unsigned int flags)
{
	(void)parent;
	(void)name;
	(void)newparent;
	(void)newname;
	(void)flags;
	fuse_reply_err(req, EPERM);
}

const struct fuse_lowlevel_ops ifs_ll_ops = {
    .lookup = ifs_lookup,
    .getattr = ifs_getattr,
    .setattr = ifs_setattr,
    .opendir = ifs_opendir,
    .readdir = ifs_readdir,
    .releasedir = ifs_releasedir,
    .open = ifs_open,
    .read = ifs_read,
    .write = ifs_write,
    .poll = ifs_poll,
    .release = ifs_release,
    .mkdir = ifs_mkdir,
    .rmdir = ifs_unlink,
    .unlink = ifs_unlink,
    .create = ifs_create,
    .mknod = ifs_mknod,
    .rename = ifs_rename,
};
