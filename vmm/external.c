/* vmm/external.c — the backing chain and the external data file of a qcow2
 * image: found as qemu-img 7.2 finds them, within the limits of one policy
 * (external.h), and opened O_PATH, checked, then reopened, so that no name
 * can make the host open a device or a FIFO, or write outside the image's
 * directory. Only the host's bounded probe ever reads the backing files'
 * headers. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "abi_names.h"
#include "cli.h"
#include "external.h"
#include "lock.h"

void vmm_ext_name(char *dst, size_t cap, const uint8_t *name, uint32_t len)
{
	size_t n = 0;

	if (!cap)
		return;
	while (n < len && n + 1 < cap && name[n])
		n++;
	memcpy(dst, name, n);
	dst[n] = '\0';
}

/* qemu's path_has_protocol(): a ':' before any '/'. */
static bool ext_has_protocol(const char *name)
{
	return name[strcspn(name, ":/")] == ':';
}

/* An fd handed over as a path has no directory of its own. */
static bool ext_is_fd_path(const char *p)
{
	return strncmp(p, "/dev/fd/", 8) == 0 || strncmp(p, "/proc/self/fd/", 14) == 0;
}

/* qemu's path_combine(): a relative name goes beside base. */
static int ext_combine(char *out, size_t cap, const char *base, const char *name)
{
	const char *slash = ext_is_fd_path(base) ? NULL : strrchr(base, '/');
	size_t dlen = name[0] == '/' || !slash ? 0 : (size_t)(slash - base) + 1;
	int n = snprintf(out, cap, "%.*s%s", (int)dlen, base, name);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* err = "Could not open backing file: " (depth + 1 times) + the text. */
static void ext_fail(char *err, size_t errlen, int depth, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void ext_fail(char *err, size_t errlen, int depth, const char *fmt, ...)
{
	size_t n = 0;
	va_list ap;

	err[0] = '\0';
	for (int i = 0; i <= depth && n + 1 < errlen; i++) {
		int k = snprintf(err + n, errlen - n, "Could not open backing file: ");

		if (k < 0)
			return;
		n += (size_t)k < errlen - n ? (size_t)k : errlen - n - 1;
	}
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - n, fmt, ap);
	va_end(ap);
}

/* The path the kernel gives for fd (no symlink in it): buf, or an error. */
static int ext_fd_path(int fd, char *buf, size_t cap)
{
	char proc[32];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, buf, cap - 1);
	if (n < 0)
		return -errno;
	if ((size_t)n >= cap - 1)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	/* an unlinked directory, or not a path at all: nothing lies beneath */
	if (buf[0] != '/' || (n > 10 && strcmp(buf + n - 10, " (deleted)") == 0))
		return -ENOENT;
	return 0;
}

static void ext_close_dir(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int ext_open_dir(const char *path, int *ret_fd, char *ret_path)
{
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -errno;
	r = ext_fd_path(fd, ret_path, PATH_MAX);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

void vmm_ext_policy_close(struct vmm_ext_policy *p)
{
	ext_close_dir(&p->dir_fd);
	for (size_t i = 0; i < p->n_backing_dirs; i++)
		ext_close_dir(&p->backing_dir_fd[i]);
	p->n_backing_dirs = 0;
}

int vmm_ext_policy_open(struct vmm_ext_policy *p, const char *image_path,
			const char *const *backing_dirs, size_t n, bool confine, char *err,
			size_t errlen)
{
	char dir[PATH_MAX];
	const char *slash = ext_is_fd_path(image_path) ? NULL : strrchr(image_path, '/');
	int r;

	memset(p, 0, sizeof(*p));
	p->dir_fd = -1;
	p->confine = confine;
	if (n > VMM_EXT_MAX_BACKING_DIRS) {
		snprintf(err, errlen, "at most %d backing directories", VMM_EXT_MAX_BACKING_DIRS);
		return -E2BIG;
	}
	if (!slash)
		strcpy(dir, ".");
	else if (slash == image_path)
		strcpy(dir, "/");
	else if ((size_t)(slash - image_path) < sizeof(dir))
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - image_path), image_path);
	else
		return -ENAMETOOLONG;
	r = ext_open_dir(dir, &p->dir_fd, p->dir);
	if (r < 0) {
		snprintf(err, errlen, "Could not open the image's directory '%s': %s", dir,
			 strerror(-r));
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		p->backing_dir_fd[i] = -1;
		r = ext_open_dir(backing_dirs[i], &p->backing_dir_fd[i], p->backing_dir[i]);
		if (r < 0) {
			snprintf(err, errlen, "Could not open the backing directory '%s': %s",
				 backing_dirs[i], strerror(-r));
			return r;
		}
		p->n_backing_dirs = i + 1;
	}
	return 0;
}

/* base_dir + "/" + name (or name alone if absolute) with ".", ".." and
 * repeated slashes folded, as text. Sound here because the result is only
 * ever opened beneath a directory it names a prefix of, without symbolic
 * links, so the kernel walks exactly the path the text says. */
static int ext_normalize(const char *base_dir, const char *name, char *out, size_t cap)
{
	char buf[2 * PATH_MAX];
	size_t o = 0;
	char *save = NULL, *tok;
	int n = name[0] == '/' ? snprintf(buf, sizeof(buf), "%s", name)
			       : snprintf(buf, sizeof(buf), "%s/%s", base_dir, name);

	if (n < 0 || (size_t)n >= sizeof(buf))
		return -ENAMETOOLONG;
	for (tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		size_t len = strlen(tok);

		if (strcmp(tok, ".") == 0)
			continue;
		if (strcmp(tok, "..") == 0) {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--; /* the slash before it; ".." of "/" is "/" */
			continue;
		}
		if (o + 1 + len + 1 > cap)
			return -ENAMETOOLONG;
		out[o++] = '/';
		memcpy(out + o, tok, len);
		o += len;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	return 0;
}

/* The rest of full beneath root ("." for root itself), or NULL. */
static const char *ext_beneath(const char *root, const char *full)
{
	size_t n = strlen(root);

	if (strcmp(root, "/") == 0)
		return full[1] ? full + 1 : ".";
	if (strncmp(full, root, n) != 0 || (full[n] != '/' && full[n] != '\0'))
		return NULL;
	return full[n] ? full + n + 1 : ".";
}

/* Opens rel beneath dirfd as an O_PATH fd: no "..", no absolute
 * name, no symbolic link, nothing but a path walk. */
static int ext_open_beneath(int dirfd, const char *rel)
{
	struct open_how how = {
	    .flags = O_PATH | O_CLOEXEC,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));

	return fd < 0 ? -errno : fd;
}

/* name (untrusted text) folded under the policy's directory into full:
 * 0 with *rel the rest beneath that directory ("." for itself, NULL when
 * outside it), or the folding's -errno. The one resolution of a data file's
 * or an extent's name, for opening, creating and removing it. */
static int ext_locate(const struct vmm_ext_policy *p, const char *name, char *full, size_t cap,
		      const char **rel)
{
	int r = ext_normalize(p->dir, name, full, cap);

	*rel = r < 0 ? NULL : ext_beneath(p->dir, full);
	return r;
}

/* Whether an open beneath the directory failed because the name leaves it
 * or passes a symbolic link (or lay outside it to begin with: -EACCES). */
static bool ext_outside(int r)
{
	return r == -ELOOP || r == -EXDEV || r == -EACCES;
}

/* pathfd (O_PATH, fstat'ed into st) reopened with flags; the same file or
 * -EAGAIN. A regular file only, so no device or FIFO is ever opened. */
static int ext_reopen(int pathfd, const struct stat *st, int flags)
{
	char proc[32];
	struct stat st2;
	int fd;

	if (!S_ISREG(st->st_mode))
		return S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pathfd);
	fd = open(proc, flags | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st2) < 0 || st2.st_dev != st->st_dev || st2.st_ino != st->st_ino) {
		close(fd);
		return -EAGAIN;
	}
	return fd;
}

/* Opens path (qemu's combination of the names) read-only as a backing file:
 * anywhere for the CLI, beneath the image's directory or a backing dir
 * under confinement (full: the folded path, used for that check and as the
 * next link's directory). -EACCES: the policy refused it. */
static int ext_open_backing(const struct vmm_ext_policy *p, const char *link_dir, const char *name,
			    const char *path, char *full, int *ret_fd)
{
	struct stat st;
	int pfd = -1, r;

	if (!p->confine && !p->n_backing_dirs) {
		struct open_how how = {.flags = O_PATH | O_CLOEXEC,
				       .resolve = RESOLVE_NO_MAGICLINKS};

		pfd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
		if (pfd < 0)
			return -errno;
	} else {
		r = ext_normalize(link_dir, name, full, PATH_MAX);
		if (r < 0)
			return r;
		r = -EACCES;
		for (size_t i = 0; i <= p->n_backing_dirs && r == -EACCES; i++) {
			const char *root = i ? p->backing_dir[i - 1] : p->dir;
			const char *rel = ext_beneath(root, full);

			if (rel) {
				r = ext_open_beneath(i ? p->backing_dir_fd[i - 1] : p->dir_fd, rel);
				if (r == -ELOOP || r == -EXDEV)
					r = -EACCES;
			}
		}
		if (r < 0)
			return r;
		pfd = r;
	}
	if (fstat(pfd, &st) < 0) {
		r = -errno;
		close(pfd);
		return r;
	}
	r = ext_reopen(pfd, &st, O_RDONLY);
	close(pfd);
	if (r < 0)
		return r;
	*ret_fd = r;
	return 0;
}

static const char *ext_backing_refusal(const struct vmm_ext_policy *p)
{
	return p->n_backing_dirs ? "instar opens backing files only beneath the image's "
				   "directory or a --backing-dir, and follows no symbolic link"
				 : "instar opens backing files only beneath the image's "
				   "directory, and follows no symbolic link";
}

static int ext_backing(const struct vmm_ext_policy *p, const char *base, const char *link_dir,
		       const uint8_t *raw, uint32_t rawlen, const uint8_t *fmt, uint32_t fmtlen,
		       int depth, uint64_t *ret_len, bool *ret_known, struct vmm_ext_chain *chain,
		       char *err, size_t errlen)
{
	char name[INSTAR_PROBE_BACKING_MAX + 1], fmtname[33], path[PATH_MAX], full[PATH_MAX] = "";
	struct instar_probe_info *bi;
	int fd = -1, r, want;
	off_t end;

	*ret_known = false;
	*ret_len = 0;
	vmm_ext_name(name, sizeof(name), raw, rawlen);
	vmm_ext_name(fmtname, sizeof(fmtname), fmt, fmtlen);
	if (depth >= VMM_EXT_MAX_DEPTH) {
		ext_fail(err, errlen, depth - 1, "backing chain longer than %d files",
			 VMM_EXT_MAX_DEPTH);
		return -ELOOP;
	}
	if (!name[0]) {
		ext_fail(err, errlen, depth, "The backing file name is empty");
		return -EINVAL;
	}
	if (ext_has_protocol(name)) {
		ext_fail(err, errlen, depth,
			 "instar opens only local backing files, not the protocol name '%s'", name);
		return -EPROTONOSUPPORT;
	}
	r = ext_combine(path, sizeof(path), base, name);
	if (!r)
		r = ext_open_backing(p, link_dir, name, path, full, &fd);
	if (r) {
		ext_fail(err, errlen, depth, "Could not open '%s': %s", path,
			 r == -EACCES	? ext_backing_refusal(p)
			 : r == -EINVAL ? "Not a regular file"
					: strerror(-r));
		return r;
	}
	end = lseek(fd, 0, SEEK_END);
	bi = malloc(sizeof(*bi));
	if (end < 0 || !bi) {
		r = end < 0 ? -errno : -ENOMEM;
		goto fail_io;
	}
	want = fmtname[0] ? instar_format_from_name(fmtname) : -1;
	/* a format the header names is the driver qemu opens it with */
	r = want > 0 ? cli_probe_file(fd, (uint64_t)end, NULL, fmtname, bi)
		     : cli_probe_fd(fd, (uint64_t)end, bi);
	if (r)
		goto fail_io;
	if (!fmtname[0])
		want = (int)bi->format;
	if (want == INSTAR_FMT_RAW) {
		*ret_len = instar_probe_raw_size((uint64_t)end);
		*ret_known = true;
	} else if (want > 0 && (uint32_t)want != bi->format) {
		/* that driver's own open message (its first line), as qemu's */
		size_t k = strcspn(bi->open_error, "\n");

		if (k)
			ext_fail(err, errlen, depth, "%.*s", (int)k, bi->open_error);
		else
			ext_fail(err, errlen, depth, "Image is not in %s format",
				 instar_format_name((uint32_t)want));
		r = -EINVAL;
	} else if (want > 0 && bi->virtual_size != INSTAR_PROBE_UNKNOWN) {
		/* qemu counts whole sectors of the header's size */
		*ret_len = want == INSTAR_FMT_QCOW2 ? bi->virtual_size & ~511ull : bi->virtual_size;
		*ret_known = true;
	}
	/* the guest reads raw and qcow2 backing files (the first few) */
	if (!r && chain && chain->n == (uint32_t)depth && depth < (int)INSTAR_BACKING_MAX_DEVS &&
	    (want == INSTAR_FMT_RAW || want == INSTAR_FMT_QCOW2)) {
		chain->fd[depth] = fd;
		chain->fmt[depth] = (uint32_t)want;
		chain->n++;
		fd = -1;
	}
	/* a format instar does not read leaves the length unknown, not an error */
	/* qemu opens the whole chain: the next name the probe knows */
	if (!r && (want == INSTAR_FMT_QCOW2 || want == INSTAR_FMT_QED || want == INSTAR_FMT_VMDK) &&
	    bi->names_known && bi->backing_len) {
		char next_dir[PATH_MAX];
		char *slash = strrchr(full, '/');
		uint64_t len2;
		bool known2;

		/* under confinement the next name is relative to this link's
		 * directory, known as text (full has no symbolic link in it) */
		snprintf(next_dir, sizeof(next_dir), "%.*s",
			 slash && slash != full ? (int)(slash - full) : 1, slash ? full : "/");
		r = ext_backing(p, path, next_dir, bi->backing, bi->backing_len, bi->backing_fmt,
				bi->backing_fmt_len, depth + 1, &len2, &known2, chain, err, errlen);
	}
	free(bi);
	if (fd >= 0)
		close(fd);
	return r;

fail_io:
	free(bi);
	close(fd);
	ext_fail(err, errlen, depth, "Could not open '%s': %s", path, strerror(-r));
	return r;
}

int vmm_ext_backing(const struct vmm_ext_policy *p, const char *image_path,
		    const struct instar_probe_info *info, uint64_t *ret_len, bool *ret_known,
		    struct vmm_ext_chain *ret_chain, char *err, size_t errlen)
{
	if (ret_chain)
		ret_chain->n = 0;
	return ext_backing(p, image_path, p->dir, info->backing, info->backing_len,
			   info->backing_fmt, info->backing_fmt_len, 0, ret_len, ret_known,
			   ret_chain, err, errlen);
}

void vmm_ext_chain_close(struct vmm_ext_chain *c)
{
	for (uint32_t i = 0; i < c->n; i++)
		close(c->fd[i]);
	c->n = 0;
}

/* What the file an image names is called in messages. */
struct ext_noun {
	const char *ext, *noun, *an;
};

static const struct ext_noun ext_qcow2 = {"external data file", "data file",
					  "an external data file"},
			     ext_vmdk = {"flat extent", "extent file", "a vmdk extent"};

/* The policy's refusal of a name outside the image's directory or through
 * a symbolic link (verb: "open" or "create"). */
static int ext_refuse_outside(const char *verb, const char *name, const struct ext_noun *n,
			      char *err, size_t errlen)
{
	snprintf(err, errlen,
		 "Could not %s '%s': instar opens %s only beneath the image's directory, "
		 "and follows no symbolic link",
		 verb, name, n->an);
	return -EACCES;
}

/* Creates rel beneath the policy's directory (O_EXCL, no symbolic link)
 * with the image's mode bits and owner (ist); *st: its identity. */
static int ext_create(const struct vmm_ext_policy *p, const struct stat *ist, const char *rel,
		      const char *name, const struct ext_noun *n, struct stat *st, char *err,
		      size_t errlen)
{
	struct open_how how = {
	    .flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
	    .mode = ist->st_mode & 0666,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, p->dir_fd, rel, &how, sizeof(how)), r;

	if (fd < 0) {
		r = -errno;
		if (ext_outside(r))
			return ext_refuse_outside("create", name, n, err, errlen);
		snprintf(err, errlen, "Could not create '%s': %s", name, strerror(-r));
		return r;
	}
	if (fstat(fd, st) < 0) {
		r = -errno;
		snprintf(err, errlen, "Could not create '%s': %s", name, strerror(-r));
		close(fd);
		return r;
	}
	/* a new extent belongs to the image's owner, as the image */
	if ((st->st_uid != ist->st_uid || st->st_gid != ist->st_gid) &&
	    fchown(fd, ist->st_uid, ist->st_gid) < 0) {
		r = -errno;
		snprintf(err, errlen, "Could not give '%s' the image's owner: %s", name,
			 strerror(-r));
		close(fd);
		vmm_ext_unlink(p, name, st, NULL, 0);
		return r;
	}
	return fd;
}

/* Opens an existing rel (NULL: outside the directory) beneath the policy's
 * directory as an O_PATH fd, checks what it is against the image (ist),
 * then reopens it read-write; *st: its identity. base: its last component
 * in the folded name. */
static int ext_open_existing(const struct vmm_ext_policy *p, const struct stat *ist,
			     const char *rel, const char *base, const char *name,
			     const struct ext_noun *n, struct stat *st, char *err, size_t errlen)
{
	const char *why = NULL;
	int pfd = rel ? ext_open_beneath(p->dir_fd, rel) : -EACCES, fd, r;

	if (ext_outside(pfd))
		return ext_refuse_outside("open", name, n, err, errlen);
	if (pfd < 0) {
		snprintf(err, errlen, "Could not open '%s': %s", name, strerror(-pfd));
		return pfd;
	}
	if (fstat(pfd, st) < 0) {
		r = -errno;
		snprintf(err, errlen, "Could not open '%s': %s", name, strerror(-r));
		close(pfd);
		return r;
	}
	/* Checked before it is opened for writing: the file is written to. */
	if (!S_ISREG(st->st_mode))
		why = " is not a regular file";
	else if (st->st_dev == ist->st_dev && st->st_ino == ist->st_ino)
		why = " is the image itself";
	else if (st->st_uid != ist->st_uid)
		why = "'s owner is not the image's owner";
	else if (st->st_nlink != 1)
		why = " has more than one link";
	else if (p->confine && rel == base && base[0] != '.')
		why = " lies directly beside the image, where instarfs exposes it as an image of "
		      "its own (use a subdirectory or a hidden name)";
	if (why) {
		snprintf(err, errlen, "Could not open '%s': the %s%s", name, n->noun, why);
		close(pfd);
		return -EACCES;
	}
	fd = ext_reopen(pfd, st, O_RDWR);
	close(pfd);
	if (fd < 0)
		snprintf(err, errlen, "Could not open '%s': %s", name, strerror(-fd));
	return fd;
}

/* Opens (create: creates, O_EXCL) the file name (untrusted text) under the
 * policy of data files, read-write and locked; *ret_st: its identity. */
static int ext_open_rw(const struct vmm_ext_policy *p, int image_fd, const char *name,
		       const struct ext_noun *n, bool create, struct stat *ret_st, char *err,
		       size_t errlen)
{
	struct vmm_lock_error le;
	struct stat st, ist;
	char full[PATH_MAX];
	const char *rel, *base;
	int fd, r;

	if (!name[0]) {
		snprintf(err, errlen, "The %s name is empty", n->ext);
		return -EINVAL;
	}
	if (ext_has_protocol(name)) {
		snprintf(err, errlen, "instar opens only local %ss, not the protocol name '%s'",
			 n->noun, name);
		return -EPROTONOSUPPORT;
	}
	if (fstat(image_fd, &ist) < 0) {
		r = -errno;
		snprintf(err, errlen, "Could not open '%s': %s", name, strerror(-r));
		return r;
	}
	r = ext_locate(p, name, full, sizeof(full), &rel);
	if (r < 0) {
		snprintf(err, errlen, "Could not open '%s': %s", name, strerror(-r));
		return r;
	}
	base = strrchr(full, '/') + 1;
	if (create && rel && p->confine && rel == base && base[0] != '.') {
		snprintf(err, errlen,
			 "Could not create '%s': the %s would lie directly beside the image, where "
			 "instarfs exposes it as an image of its own",
			 name, n->noun);
		return -EACCES;
	}
	if (create && !rel)
		return ext_refuse_outside("create", name, n, err, errlen);
	fd = create ? ext_create(p, &ist, rel, name, n, &st, err, errlen)
		    : ext_open_existing(p, &ist, rel, base, name, n, &st, err, errlen);
	if (fd < 0)
		return fd;
	/* qemu locks the data file as it locks the image (a raw protocol node) */
	r = vmm_image_lock(fd, false, &le);
	if (r) {
		snprintf(err, errlen, "Could not open '%s': Failed to get \"%s\" lock", name,
			 le.perm ? le.perm : "write");
		close(fd);
		if (create)
			vmm_ext_unlink(p, name, &st, NULL, 0);
		return r;
	}
	if (ret_st)
		*ret_st = st;
	return fd;
}

int vmm_ext_data_file(const struct vmm_ext_policy *p, int image_fd,
		      const struct instar_probe_info *info, char *err, size_t errlen)
{
	char name[1024];

	vmm_ext_name(name, sizeof(name), info->data_file_name, info->data_file_len);
	return ext_open_rw(p, image_fd, name,
			   info->format == INSTAR_FMT_VMDK ? &ext_vmdk : &ext_qcow2, false, NULL,
			   err, errlen);
}

int vmm_ext_extent_open(const struct vmm_ext_policy *p, int image_fd, const char *name, bool create,
			struct stat *ret_st, char *err, size_t errlen)
{
	return ext_open_rw(p, image_fd, name, &ext_vmdk, create, ret_st, err, errlen);
}

int vmm_ext_absent(const struct vmm_ext_policy *p, const char *name, char *err, size_t errlen)
{
	char full[PATH_MAX];
	const char *rel;
	int fd;

	fd = ext_locate(p, name, full, sizeof(full), &rel);
	if (fd < 0) {
		snprintf(err, errlen, "Could not create '%s': %s", name, strerror(-fd));
		return fd;
	}
	fd = rel ? ext_open_beneath(p->dir_fd, rel) : -EACCES;
	if (fd == -ENOENT)
		return 0;
	if (fd >= 0) {
		close(fd);
		fd = -EEXIST;
	}
	if (ext_outside(fd))
		return ext_refuse_outside("create", name, &ext_vmdk, err, errlen);
	snprintf(err, errlen, "Could not create '%s': %s", name, strerror(-fd));
	return fd;
}

int vmm_ext_unlink(const struct vmm_ext_policy *p, const char *name, const struct stat *id,
		   char *err, size_t errlen)
{
	char full[PATH_MAX], dirpart[PATH_MAX];
	const char *rel, *slash;
	struct stat st;
	int dfd, r = 0;

	if (ext_locate(p, name, full, sizeof(full), &rel) < 0 || !rel || strcmp(rel, ".") == 0) {
		if (err)
			snprintf(err, errlen,
				 "Could not remove '%s': not beneath the image's "
				 "directory",
				 name);
		return -EACCES;
	}
	slash = strrchr(rel, '/');
	if (slash) {
		snprintf(dirpart, sizeof(dirpart), "%.*s", (int)(slash - rel), rel);
		dfd = ext_open_beneath(p->dir_fd, dirpart);
		if (dfd < 0) {
			if (err)
				snprintf(err, errlen, "Could not remove '%s': %s", name,
					 strerror(-dfd));
			return dfd;
		}
	} else {
		dfd = p->dir_fd;
	}
	/* the entry must still be the file that was checked (or created) */
	if (fstatat(dfd, slash ? slash + 1 : rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
		r = -errno;
	else if (st.st_dev != id->st_dev || st.st_ino != id->st_ino)
		r = -ESTALE;
	else if (unlinkat(dfd, slash ? slash + 1 : rel, 0) < 0)
		r = -errno;
	if (r && err)
		snprintf(err, errlen, "Could not remove '%s': %s", name,
			 r == -ESTALE ? "it is no longer the extent file instar checked"
				      : strerror(-r));
	if (slash)
		close(dfd);
	return r;
}
