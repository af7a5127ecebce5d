/* vmm/split.c — the extent files of a twoGbMaxExtentFlat or
 * twoGbMaxExtentSparse descriptor (split.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byteorder.h"
#include "cli.h"
#include "raw.h"
#include "split.h"
#include "verify.h"

/* The name of extent idx of layout l (the old one, or s->want), named after
 * the old first extent's name. */
static int layout_name(const struct vmm_split *s, const struct instar_vmdk_split *l, uint32_t idx,
		       char *out, size_t cap)
{
	return instar_vmdk_split_ext_name(l, s->info->data_file_name, s->info->data_file_len, idx,
					  out, cap) < 0
		   ? -ENAMETOOLONG
		   : 0;
}

/* Old extent idx's name. */
static int split_name(const struct vmm_split *s, uint32_t idx, char *out, size_t cap)
{
	return layout_name(s, &s->info->vmdk_split, idx, out, cap);
}

/* New extent idx's name. */
static int want_name(const struct vmm_split *s, uint32_t idx, char *out, size_t cap)
{
	return layout_name(s, &s->want, idx, out, cap);
}

/* The directory the extents lie in, synced: new or removed entries last. */
static void split_sync_dir(const struct vmm_split *s)
{
	char name[INSTAR_VMDK_SPLIT_NAME_MAX + 1], *slash;
	int dfd;

	if (split_name(s, 1, name, sizeof(name)))
		return;
	slash = strrchr(name, '/');
	if (slash) {
		*slash = '\0';
		if (name[0] == '\0')
			return; /* an absolute name: the policy refused it already */
	}
	dfd = openat(s->pol->dir_fd, slash ? name : ".",
		     O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dfd < 0)
		return;
	if (fsync(dfd) < 0)
		cli_warn("could not sync the extents' directory: %s", strerror(errno));
	close(dfd);
}

static uint64_t split_len(const struct instar_vmdk_split *l, uint32_t idx)
{
	return instar_vmdk_split_extent_sectors(l, idx) * 512;
}

void vmm_split_undo(struct vmm_split *s)
{
	char name[INSTAR_VMDK_SPLIT_NAME_MAX + 1], err[1200];

	if (!s->target)
		return;
	if (s->copied) { /* a shrink's copy of the extent at the cut */
		s->copied = false;
		if (want_name(s, s->want.count, name, sizeof(name)) ||
		    vmm_ext_unlink(s->pol, name, &s->copy_id, err, sizeof(err)) < 0)
			cli_warn("could not remove the new extent file: %s", err);
		split_sync_dir(s);
	}
	if (!s->grow)
		return;
	if (s->fd >= 0 && (ftruncate(s->fd, s->fd_len) < 0 || fdatasync(s->fd) < 0))
		cli_warn("could not restore the length of the last extent file: %s",
			 strerror(errno));
	for (uint32_t i = 0; i < s->nids; i++) {
		if (want_name(s, s->info->vmdk_split.count + 1 + i, name, sizeof(name)) ||
		    vmm_ext_unlink(s->pol, name, &s->ids[i], err, sizeof(err)) < 0)
			cli_warn("could not remove the new extent file: %s", err);
	}
	s->nids = 0;
	split_sync_dir(s);
}

/* A new extent of a sparse split, as qemu-img create writes one
 * (shared/vmdk_split.h): its length over a hole, both directories, the
 * header last, synced. 0 or a negative errno. */
static int split_new_sparse(int fd, uint64_t sectors)
{
	struct instar_vmdk_sparse_extent e;

	if (instar_vmdk_sparse_extent(sectors, &e))
		return -EINVAL;
	if (ftruncate(fd, (off_t)e.file_len) < 0 ||
	    pwrite(fd, e.rgd, sizeof(e.rgd), (off_t)e.rgd_at) != (ssize_t)sizeof(e.rgd) ||
	    pwrite(fd, e.gd, sizeof(e.gd), (off_t)e.gd_at) != (ssize_t)sizeof(e.gd) ||
	    pwrite(fd, e.header, sizeof(e.header), 0) != (ssize_t)sizeof(e.header) ||
	    fdatasync(fd) < 0)
		return errno ? -errno : -EIO;
	return 0;
}

static int split_grow(struct vmm_split *s, uint32_t prealloc, int *ret_errno, char *err,
		      size_t errlen)
{
	const struct instar_vmdk_split *old = &s->info->vmdk_split;
	char name[INSTAR_VMDK_SPLIT_NAME_MAX + 1];
	struct vmm_raw_result rr;
	struct stat st;
	int r;

	if (old->sparse) {
		st.st_size = 0; /* a sparse split's extents stay as they are */
	} else if (split_name(s, old->count, name, sizeof(name))) {
		snprintf(err, errlen, "Could not open the last extent file: name too long");
		*ret_errno = ENAMETOOLONG;
		return -1;
	} else {
		r = vmm_ext_extent_open(s->pol, s->image_fd, name, false, &st, err, errlen);
		if (r < 0) {
			*ret_errno = -r;
			return -1;
		}
		s->fd = r;
		s->fd_len = st.st_size;
	}
	/* every new name is free before anything changes (creating each with
	 * O_EXCL below still refuses one that appears meanwhile) */
	for (uint32_t i = old->count + 1; i <= s->want.count; i++) {
		r = want_name(s, i, name, sizeof(name));
		if (r)
			snprintf(err, errlen, "Could not create extent %u: name too long", i);
		else
			r = vmm_ext_absent(s->pol, name, err, errlen);
		if (r) {
			*ret_errno = -r;
			return -1;
		}
	}
	s->ids = calloc(s->want.count - old->count + 1, sizeof(*s->ids));
	if (!s->ids) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		*ret_errno = ENOMEM;
		return -1;
	}
	/* Bytes past the descriptor's end of the last extent are not the
	 * disk's: the grown part reads as zeros. */
	if (!old->sparse && split_len(&s->want, old->count) > old->last * 512) {
		if ((uint64_t)st.st_size > old->last * 512 &&
		    ftruncate(s->fd, (off_t)(old->last * 512)) < 0)
			r = -errno;
		else
			r = vmm_raw_resize(s->fd, split_len(&s->want, old->count), prealloc, &rr);
		if (r < 0) {
			snprintf(err, errlen, "Could not resize the extent file '%s': %s", name,
				 strerror(-r));
			goto fail;
		}
	}
	s->target = true; /* from here on undo has something to do */
	for (uint32_t i = old->count + 1; i <= s->want.count; i++) {
		int fd;

		if (want_name(s, i, name, sizeof(name))) {
			r = -ENAMETOOLONG;
			snprintf(err, errlen, "Could not create extent %u: name too long", i);
			goto fail;
		}
		fd = vmm_ext_extent_open(s->pol, s->image_fd, name, true, &s->ids[s->nids], err,
					 errlen);
		if (fd < 0) {
			r = fd;
			goto fail;
		}
		s->nids++;
		r = old->sparse ? split_new_sparse(fd, split_len(&s->want, i) / 512)
				: vmm_raw_resize(fd, split_len(&s->want, i), prealloc, &rr);
		close(fd);
		if (r < 0) {
			snprintf(err, errlen, "Could not resize the extent file '%s': %s", name,
				 strerror(-r));
			goto fail;
		}
	}
	split_sync_dir(s);
	return 0;
fail:
	*ret_errno = -r;
	s->target = true;
	vmm_split_undo(s);
	s->target = false;
	return -1;
}

/* Copies len bytes at off of src to dst: copy_file_range, or by hand
 * where the file system has none. 0 or a negative errno. */
static int copy_range(int src, int dst, off_t off, off_t len)
{
	static char buf[1 << 20];

	while (len > 0) {
		off_t in = off, out = off;
		ssize_t n = copy_file_range(src, &in, dst, &out, (size_t)len, 0);

		if (n < 0 &&
		    (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
			n = pread(src, buf, len < (off_t)sizeof(buf) ? (size_t)len : sizeof(buf),
				  off);
			if (n > 0 && pwrite(dst, buf, (size_t)n, off) != n)
				n = -1;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += n;
		len -= n;
	}
	return 0;
}

/* A sparse shrink that ends inside extent idx: a copy of it under its new
 * name (created O_EXCL), whose header's capacity is the new size; the old
 * file stays until the commit drops it. Its data and holes are copied as
 * they are: a grain past the new capacity is never read again (an extent
 * is never grown). 0, or -1 with err, *ret_errno (nothing left behind). */
static int split_copy(struct vmm_split *s, int src, uint32_t idx, int *ret_errno, char *err,
		      size_t errlen)
{
	const struct instar_vmdk_split *old = &s->info->vmdk_split;
	char name[INSTAR_VMDK_SPLIT_NAME_MAX + 1];
	uint8_t h[512], cap[8];
	struct stat st;
	off_t size, off = 0;
	int dst, r = 0;

	/* the header the probe read (split_check_extents): a hosted sparse
	 * extent with its grain directory named in it (a stream's footer
	 * would hold a second capacity) */
	if (fstat(src, &st) < 0 || pread(src, h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    memcmp(h, "KDMV", 4) != 0 || get_le64(h + 56) == UINT64_MAX ||
	    get_le64(h + 12) != instar_vmdk_split_extent_sectors(old, idx)) {
		snprintf(err, errlen,
			 "vmdk twoGbMaxExtentSparse: a shrink inside extent %u needs a sparse "
			 "extent whose header holds its grain directory",
			 idx);
		*ret_errno = ENOTSUP;
		return -1;
	}
	/* the copy's budget: what an honest extent of this size can hold (its
	 * grains, tables and a 16th more), not whatever the file was padded
	 * with */
	if ((uint64_t)st.st_blocks * 512 >
	    instar_vmdk_split_extent_sectors(old, idx) * 512 / 16 * 17 + (256ull << 20)) {
		snprintf(err, errlen,
			 "vmdk twoGbMaxExtentSparse: extent %u holds more data than an extent of "
			 "its size, and instar would copy it",
			 idx);
		*ret_errno = ENOTSUP;
		return -1;
	}
	size = st.st_size;
	if (want_name(s, idx, name, sizeof(name))) {
		snprintf(err, errlen, "Could not create extent %u: name too long", idx);
		*ret_errno = ENAMETOOLONG;
		return -1;
	}
	dst = vmm_ext_extent_open(s->pol, s->image_fd, name, true, &s->copy_id, err, errlen);
	if (dst < 0) {
		*ret_errno = -dst;
		return -1;
	}
	s->copied = true; /* from here on undo removes it */
	while (r == 0 && off < size) {
		off_t d = lseek(src, off, SEEK_DATA), e;

		if (d < 0)
			break; /* no data past off */
		e = lseek(src, d, SEEK_HOLE);
		if (e < 0)
			e = size;
		r = copy_range(src, dst, d, e - d);
		off = e;
	}
	put_le64(cap, instar_vmdk_split_extent_sectors(&s->want, idx));
	if (r == 0 &&
	    (ftruncate(dst, size) < 0 ||
	     pwrite(dst, cap, sizeof(cap), 12) != (ssize_t)sizeof(cap) || fdatasync(dst) < 0))
		r = errno ? -errno : -EIO;
	close(dst);
	if (r < 0) {
		snprintf(err, errlen, "Could not copy extent '%s': %s", name, strerror(-r));
		*ret_errno = -r;
		vmm_split_undo(s);
		return -1;
	}
	split_sync_dir(s);
	return 0;
}

static int split_shrink(struct vmm_split *s, int *ret_errno, char *err, size_t errlen)
{
	const struct instar_vmdk_split *old = &s->info->vmdk_split;
	uint32_t cut = instar_vmdk_split_cut(old, &s->want);
	char name[INSTAR_VMDK_SPLIT_NAME_MAX + 1];
	struct stat st;
	int r, src = -1;

	s->ids = calloc(old->count - s->want.count + 1, sizeof(*s->ids));
	if (!s->ids) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		*ret_errno = ENOMEM;
		return -1;
	}
	/* the extents dropped (sparse: with the one at the cut, which a copy
	 * replaces), and flat's extent at the cut: checked now, before
	 * anything changes */
	s->drop_from = cut ? cut : s->want.count + 1;
	for (uint32_t i = old->sparse ? s->drop_from : s->want.count; i <= old->count; i++) {
		if (split_name(s, i, name, sizeof(name))) {
			snprintf(err, errlen, "Could not open extent %u: name too long", i);
			*ret_errno = ENAMETOOLONG;
			r = -1;
			goto out;
		}
		r = vmm_ext_extent_open(s->pol, s->image_fd, name, false, &st, err, errlen);
		if (r < 0) {
			*ret_errno = -r;
			r = -1;
			goto out;
		}
		if (i == s->want.count && !old->sparse) {
			s->fd = r;
			s->fd_len = st.st_size;
			continue;
		}
		if (i == cut)
			src = r;
		else
			close(r);
		s->ids[s->nids++] = st;
	}
	s->target = true;
	r = cut ? split_copy(s, src, cut, ret_errno, err, errlen) : 0;
out:
	if (src >= 0)
		close(src);
	return r;
}

/* Every extent opens under the policy, as qemu opens every one (a missing
 * one gets qemu's "Could not open 'NAME': No such file or directory"). A
 * sparse split's size is what each extent's header says (qemu reads it
 * there, not in the descriptor): each must be a vmdk sparse extent qemu
 * opens, of the size its line gives. */
static int split_check_extents(struct vmm_split *s, int *ret_errno, char *err, size_t errlen)
{
	const struct instar_vmdk_split *old = &s->info->vmdk_split;
	struct instar_probe_info *info = malloc(sizeof(*info));
	char name[INSTAR_VMDK_SPLIT_NAME_MAX + 1];
	struct stat st;
	int r = 0, fd;

	if (!info) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		*ret_errno = ENOMEM;
		return -1;
	}
	for (uint32_t i = 1; i <= old->count && r == 0; i++) {
		if (split_name(s, i, name, sizeof(name))) {
			snprintf(err, errlen, "Could not open extent %u: name too long", i);
			*ret_errno = ENAMETOOLONG;
			r = -1;
			break;
		}
		fd = vmm_ext_extent_open(s->pol, s->image_fd, name, false, &st, err, errlen);
		if (fd < 0) {
			*ret_errno = -fd;
			r = -1;
			break;
		}
		if (old->sparse &&
		    (cli_probe_fd(fd, (uint64_t)st.st_size, info) < 0 ||
		     info->format != INSTAR_FMT_VMDK || info->open_error[0] || info->has_backing ||
		     info->vmdk_split_ok ||
		     info->virtual_size != instar_vmdk_split_extent_sectors(old, i) * 512)) {
			snprintf(err, errlen,
				 "vmdk twoGbMaxExtentSparse extent '%s' is not a sparse extent of "
				 "the %llu sectors its descriptor line gives",
				 name,
				 (unsigned long long)instar_vmdk_split_extent_sectors(old, i));
			*ret_errno = ENOTSUP;
			r = -1;
		}
		close(fd);
	}
	free(info);
	return r;
}

int vmm_split_prepare(struct vmm_split *s, uint64_t new_size, uint32_t prealloc, int *ret_errno,
		      char *err, size_t errlen)
{
	const struct instar_vmdk_split *old = &s->info->vmdk_split;
	uint64_t old_size = instar_vmdk_split_total(old) * 512;

	s->fd = -1;
	s->nids = 0;
	s->ids = NULL;
	s->target = false;
	s->copied = false;
	if (split_check_extents(s, ret_errno, err, errlen) < 0)
		return -1;
	if (vmm_verify_split_target(s->info, new_size, prealloc, &s->want) < 0 ||
	    new_size == old_size)
		return 0;
	s->grow = new_size > old_size;
	return s->grow ? split_grow(s, prealloc, ret_errno, err, errlen)
		       : split_shrink(s, ret_errno, err, errlen);
}

bool vmm_split_committed(const struct vmm_split *s, int fd)
{
	struct instar_probe_info *info = malloc(sizeof(*info));
	char first[INSTAR_VMDK_SPLIT_NAME_MAX + 1];
	struct stat st;
	bool ok;

	if (!info)
		return false;
	/* the new first extent's name (a sparse shrink inside the first extent
	 * names its copy) */
	ok = want_name(s, 1, first, sizeof(first)) == 0 && fstat(fd, &st) == 0 &&
	     cli_probe_fd(fd, (uint64_t)st.st_size, info) == 0 && info->vmdk_split_ok &&
	     instar_vmdk_split_same(&info->vmdk_split, &s->want) &&
	     info->data_file_len == strlen(first) &&
	     memcmp(info->data_file_name, first, info->data_file_len) == 0;
	free(info);
	return ok;
}

int vmm_split_finish(struct vmm_split *s, char *err, size_t errlen)
{
	char name[INSTAR_VMDK_SPLIT_NAME_MAX + 1];
	int r, fails = 0;

	if (!s->target || s->grow)
		return 0;
	if (s->fd >= 0 && (uint64_t)s->fd_len > split_len(&s->want, s->want.count) &&
	    (ftruncate(s->fd, (off_t)split_len(&s->want, s->want.count)) < 0 ||
	     fdatasync(s->fd) < 0)) {
		snprintf(err, errlen, "Could not cut the extent file at the new end: %s",
			 strerror(errno));
		return -1;
	}
	for (uint32_t i = 0; i < s->nids; i++) {
		r = split_name(s, s->drop_from + i, name, sizeof(name));
		if (!r)
			r = vmm_ext_unlink(s->pol, name, &s->ids[i], err, errlen);
		if (r < 0) {
			cli_warn("%s", err);
			fails++;
		}
	}
	split_sync_dir(s);
	if (fails) {
		snprintf(err, errlen, "%d dropped extent file%s could not be removed", fails,
			 fails > 1 ? "s" : "");
		return -1;
	}
	return 0;
}

void vmm_split_close(struct vmm_split *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	free(s->ids);
	s->ids = NULL;
}
