/* vmm/external.c — the backing chain and the external data file of a qcow2
 * image: resolved and opened as qemu-img 7.2 opens them, with the names
 * treated as untrusted paths. Only the host's bounded probe ever reads the
 * backing files' headers. */
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

/* Opens path read-only only if it is a regular file or a block device, so a
 * hostile name can never make us open (and so trigger) another device. */
static int ext_open_ro(const char *path, int *ret_fd)
{
	struct stat st, st2;
	int fd;

	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st2) < 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino) {
		close(fd);
		return -EAGAIN;
	}
	*ret_fd = fd;
	return 0;
}

static int ext_backing(const char *base, const uint8_t *raw, uint32_t rawlen, const uint8_t *fmt,
		       uint32_t fmtlen, int depth, uint64_t *ret_len, bool *ret_known, char *err,
		       size_t errlen)
{
	char name[1024], fmtname[33], path[PATH_MAX];
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
		r = ext_open_ro(path, &fd);
	if (r) {
		ext_fail(err, errlen, depth, "Could not open '%s': %s", path,
			 r == -EINVAL ? "Not a regular file or block device" : strerror(-r));
		return r;
	}
	end = lseek(fd, 0, SEEK_END);
	bi = malloc(sizeof(*bi));
	if (end < 0 || !bi) {
		r = end < 0 ? -errno : -ENOMEM;
		goto fail_io;
	}
	r = cli_probe_fd(fd, (uint64_t)end, bi);
	if (r)
		goto fail_io;
	want = fmtname[0] ? instar_format_from_name(fmtname) : (int)bi->format;
	if (want == INSTAR_FMT_RAW) {
		*ret_len = instar_probe_raw_size((uint64_t)end);
		*ret_known = true;
	} else if (want > 0 && (uint32_t)want != bi->format) {
		ext_fail(err, errlen, depth, "Image is not in %s format",
			 instar_format_name((uint32_t)want));
		r = -EINVAL;
	} else if (want > 0 && bi->virtual_size != INSTAR_PROBE_UNKNOWN) {
		/* qemu counts whole sectors of the header's size */
		*ret_len = want == INSTAR_FMT_QCOW2 ? bi->virtual_size & ~511ull : bi->virtual_size;
		*ret_known = true;
	}
	/* a format instar does not read leaves the length unknown, not an error */
	if (!r && want == INSTAR_FMT_QCOW2 && bi->names_known && bi->backing_len) {
		uint64_t len2;
		bool known2;

		r = ext_backing(path, bi->backing, bi->backing_len, bi->backing_fmt,
				bi->backing_fmt_len, depth + 1, &len2, &known2, err, errlen);
	}
	free(bi);
	close(fd);
	return r;

fail_io:
	free(bi);
	close(fd);
	ext_fail(err, errlen, depth, "Could not open '%s': %s", path, strerror(-r));
	return r;
}

int vmm_ext_backing(const char *image_path, const struct instar_probe_info *info, uint64_t *ret_len,
		    bool *ret_known, char *err, size_t errlen)
{
	return ext_backing(image_path, info->backing, info->backing_len, info->backing_fmt,
			   info->backing_fmt_len, 0, ret_len, ret_known, err, errlen);
}

int vmm_ext_data_file(int image_fd, const struct instar_probe_info *info, char *err, size_t errlen)
{
	struct open_how how = {
	    .flags = O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	struct vmm_lock_error le;
	struct stat st, ist;
	char name[1024];
	int fd, r;

	vmm_ext_name(name, sizeof(name), info->data_file_name, info->data_file_len);
	if (!name[0]) {
		snprintf(err, errlen, "The external data file name is empty");
		return -EINVAL;
	}
	if (ext_has_protocol(name)) {
		snprintf(err, errlen,
			 "instar opens only local data files, not the protocol name '%s'", name);
		return -EPROTONOSUPPORT;
	}
	fd = (int)syscall(SYS_openat2, AT_FDCWD, name, &how, sizeof(how));
	if (fd < 0) {
		r = -errno;
		if (r == -EXDEV || r == -ELOOP)
			snprintf(err, errlen,
				 "Could not open '%s': instar opens an external data file only "
				 "beneath the working directory",
				 name);
		else
			snprintf(err, errlen, "Could not open '%s': %s", name, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0 || fstat(image_fd, &ist) < 0) {
		r = -errno;
		snprintf(err, errlen, "Could not open '%s': %s", name, strerror(-r));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(err, errlen, "Could not open '%s': the data file is not a regular file",
			 name);
		goto fail;
	}
	if (st.st_dev == ist.st_dev && st.st_ino == ist.st_ino) {
		r = -EINVAL;
		snprintf(err, errlen, "Could not open '%s': the data file is the image itself",
			 name);
		goto fail;
	}
	/* qemu locks the data file as it locks the image (a raw protocol node) */
	r = vmm_image_lock(fd, false, &le);
	if (r) {
		snprintf(err, errlen, "Could not open '%s': Failed to get \"%s\" lock", name,
			 le.perm ? le.perm : "write");
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return r;
}
