/* fs/ops.c — the FUSE operations: a root listing the source directory live,
 * a folder per image, and the control files of control.c. Nothing is cached
 * by the kernel (zero timeouts) so images come and go without a remount. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "instarfs.h"

enum node { NODE_ROOT, NODE_IMAGE, NODE_CONTROL };

struct where {
	enum node node;
	char name[NAME_MAX + 1];
	const struct ifs_control *ctl;
};

/* "/", "/IMAGE" or "/IMAGE/CONTROL"; the image must exist right now. */
static int resolve(const char *path, struct where *w, struct stat *ret_st)
{
	const char *p = path + 1, *slash;
	size_t n;
	int r;

	memset(w, 0, sizeof(*w));
	if (strcmp(path, "/") == 0) {
		w->node = NODE_ROOT;
		return 0;
	}
	slash = strchr(p, '/');
	n = slash ? (size_t)(slash - p) : strlen(p);
	if (n == 0 || n > NAME_MAX)
		return -ENOENT;
	memcpy(w->name, p, n);
	w->name[n] = '\0';
	r = ifs_source_stat(w->name, ret_st);
	if (r < 0)
		return r == -ENOTDIR || r == -ELOOP ? -ENOENT : r;
	if (!slash) {
		w->node = NODE_IMAGE;
		return 0;
	}
	w->ctl = ifs_control_find(slash + 1);
	if (!w->ctl)
		return -ENOENT;
	w->node = NODE_CONTROL;
	return 0;
}

static void *ifs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	/* Generated contents: no page cache, no attribute or entry caching,
	 * so every read, write and lookup reaches us. */
	cfg->direct_io = 1;
	cfg->kernel_cache = 0;
	cfg->entry_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->use_ino = 0;
	return NULL;
}

static int ifs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct stat img;
	struct where w;
	int r;

	(void)fi;
	r = resolve(path, &w, &img);
	if (r < 0)
		return r;
	memset(st, 0, sizeof(*st));
	if (w.node == NODE_ROOT) {
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
	st->st_uid = img.st_uid;
	st->st_gid = img.st_gid;
	st->st_atim = st->st_mtim = img.st_mtim;
	st->st_ctim = img.st_ctim;
	if (w.node == NODE_IMAGE) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return 0;
	}
	st->st_mode = S_IFREG | (img.st_mode & w.ctl->mask);
	st->st_nlink = 1;
	/* Like sysfs: a nominal size; reads go to us (direct_io) anyway. */
	st->st_size = 4096;
	st->st_blksize = 4096;
	if (w.ctl->kind == IFS_CTL_RESULT) {
		struct ifs_image *ii = ifs_image_get(w.name);

		if (ii) {
			ifs_images_lock();
			if (ii->result)
				st->st_mtim = st->st_ctim = ii->result_time;
			ifs_images_unlock();
		}
	}
	return 0;
}

static int list_source(void *buf, fuse_fill_dir_t fill)
{
	struct dirent *de;
	DIR *d;
	int fd;

	/* A fresh open file description each time: concurrent listings must
	 * not share a directory offset. */
	fd = openat(ifs_source_fd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		int r = -errno;

		close(fd);
		return r;
	}
	while ((de = readdir(d))) {
		struct stat st;

		if (!ifs_source_name_ok(de->d_name))
			continue;
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		if (de->d_type == DT_UNKNOWN && ifs_source_stat(de->d_name, &st) < 0)
			continue;
		if (fill(buf, de->d_name, NULL, 0, 0))
			break;
	}
	closedir(d);
	return 0;
}

static int ifs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct stat st;
	struct where w;
	int r;

	(void)off;
	(void)fi;
	(void)flags;
	r = resolve(path, &w, &st);
	if (r < 0)
		return r;
	if (w.node == NODE_CONTROL)
		return -ENOTDIR;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	if (w.node == NODE_ROOT)
		return list_source(buf, fill);
	for (size_t i = 0; i < IFS_CTL_COUNT; i++)
		fill(buf, ifs_controls[i].name, NULL, 0, 0);
	return 0;
}

static int ifs_open(const char *path, struct fuse_file_info *fi)
{
	int acc = fi->flags & O_ACCMODE;
	struct ifs_handle *h;
	struct stat st;
	struct where w;
	int r;

	r = resolve(path, &w, &st);
	if (r < 0)
		return r;
	if (w.node != NODE_CONTROL)
		return -EISDIR;
	/* default_permissions checks the mode, but not for root. */
	if (acc != O_RDONLY && !w.ctl->writable)
		return -EACCES;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->ctl = w.ctl;
	h->img = ifs_image_get(w.name);
	if (!h->img) {
		free(h);
		return -ENOMEM;
	}
	/* The kernel holds the inode lock for the whole of a write (and so for
	 * the whole resize), and the truncate of '>' waits for it too: a second
	 * writer would just queue. Refuse it here, before that lock, instead. */
	if (acc != O_RDONLY) {
		ifs_images_lock();
		r = h->img->busy ? -EBUSY : 0;
		ifs_images_unlock();
		if (r < 0) {
			log_info("%s: open of size for writing refused: a resize is running",
				 w.name);
			free(h);
			return r;
		}
	}
	if (acc != O_WRONLY) {
		r = ifs_control_render(h);
		if (r < 0) {
			free(h);
			return r;
		}
	} else {
		ifs_images_lock();
		h->gen = h->img->gen;
		ifs_images_unlock();
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	return 0;
}

static struct ifs_handle *handle_of(struct fuse_file_info *fi)
{
	return (struct ifs_handle *)(uintptr_t)fi->fh;
}

static int ifs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct ifs_handle *h = handle_of(fi);

	(void)path;
	if (!h->buf)
		return -EBADF;
	if (off < 0 || (size_t)off >= h->len)
		return 0;
	if (size > h->len - (size_t)off)
		size = h->len - (size_t)off;
	memcpy(buf, h->buf + off, size);
	return (int)size;
}

static int ifs_write(const char *path, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct ifs_handle *h = handle_of(fi);
	struct ifs_request *req;
	char err[256];
	int r;

	(void)path;
	if (!h->ctl->writable)
		return -EACCES;
	/* sysfs manners: the whole value in one write at offset 0. */
	if (off != 0)
		return -EINVAL;
	if (size > IFS_WRITE_MAX)
		return -E2BIG;
	r = ifs_image_claim(h->img);
	if (r < 0) {
		log_info("%s: write to size refused: a resize is already running", h->img->name);
		return r;
	}
	req = malloc(sizeof(*req));
	if (!req) {
		ifs_image_release(h->img);
		return -ENOMEM;
	}
	r = ifs_request_parse(buf, size, req, err, sizeof(err));
	if (r < 0) {
		log_info("%s: write to size refused: %s", h->img->name, err);
		ifs_image_publish(h->img, ifs_result_error(h->img->name, req->code, -r, err));
	} else {
		r = ifs_job_resize(h->img, req);
	}
	free(req);
	return r < 0 ? r : (int)size;
}

/* `echo ... > size` truncates first: that is not a resize, just accept it. */
static int ifs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct stat st;
	struct where w;
	int r;

	(void)size;
	(void)fi;
	r = resolve(path, &w, &st);
	if (r < 0)
		return r;
	if (w.node != NODE_CONTROL)
		return -EISDIR;
	return w.ctl->writable ? 0 : -EACCES;
}

static int ifs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	(void)tv;
	return ifs_truncate(path, 0, fi);
}

static int ifs_poll(const char *path, struct fuse_file_info *fi, struct fuse_pollhandle *ph,
		    unsigned *reventsp)
{
	struct ifs_handle *h = handle_of(fi);

	(void)path;
	if (!h->ctl->pollable) {
		if (ph)
			fuse_pollhandle_destroy(ph);
		*reventsp = POLLIN | POLLRDNORM;
		return 0;
	}
	ifs_images_lock();
	if (h->gen != h->img->gen) {
		/* A resize finished since this snapshot: reopen to read it. */
		*reventsp = POLLIN | POLLRDNORM | POLLPRI;
		ifs_images_unlock();
		if (ph)
			fuse_pollhandle_destroy(ph);
		return 0;
	}
	*reventsp = 0;
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
	return 0;
}

static int ifs_release(const char *path, struct fuse_file_info *fi)
{
	struct ifs_handle *h = handle_of(fi), **pp;

	(void)path;
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
	return 0;
}

static int ifs_refuse(void)
{
	return -EPERM;
}

static int ifs_mkdir(const char *path, mode_t mode)
{
	(void)path;
	(void)mode;
	return ifs_refuse();
}

static int ifs_unlink(const char *path)
{
	(void)path;
	return ifs_refuse();
}

static int ifs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)path;
	(void)mode;
	(void)fi;
	return ifs_refuse();
}

static int ifs_rename(const char *from, const char *to, unsigned int flags)
{
	(void)from;
	(void)to;
	(void)flags;
	return ifs_refuse();
}

static int ifs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)path;
	(void)mode;
	(void)fi;
	return ifs_refuse();
}

static int ifs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	(void)path;
	(void)uid;
	(void)gid;
	(void)fi;
	return ifs_refuse();
}

const struct fuse_operations ifs_ops = {
    .init = ifs_init,
    .getattr = ifs_getattr,
    .readdir = ifs_readdir,
    .open = ifs_open,
    .read = ifs_read,
    .write = ifs_write,
    .truncate = ifs_truncate,
    .utimens = ifs_utimens,
    .poll = ifs_poll,
    .release = ifs_release,
    .mkdir = ifs_mkdir,
    .rmdir = ifs_unlink,
    .unlink = ifs_unlink,
    .create = ifs_create,
    .rename = ifs_rename,
    .chmod = ifs_chmod,
    .chown = ifs_chown,
};
