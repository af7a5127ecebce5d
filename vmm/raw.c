/* vmm/raw.c — raw images: ftruncate, posix_fallocate or written zeros. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "abi.h"
#include "raw.h"

#define ZERO_CHUNK (1u << 20)

static int write_zeros(int fd, uint64_t off, uint64_t len)
{
	char *buf = calloc(1, ZERO_CHUNK);

	if (!buf)
		return -ENOMEM;
	while (len > 0) {
		size_t n = len < ZERO_CHUNK ? (size_t)len : ZERO_CHUNK;
		ssize_t w = pwrite(fd, buf, n, (off_t)off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			int r = -errno;

			free(buf);
			return r;
		}
		off += (uint64_t)w;
		len -= (uint64_t)w;
	}
	free(buf);
	return 0;
}

/* qemu writes zeros over the first block of a file that was empty, so that
 * later alignment probing finds it allocated; failures are ignored. */
static void allocate_first_block(int fd, uint64_t max_size)
{
	size_t n = max_size < 4096 ? 512 : 4096;
	char buf[4096] = {0};
	ssize_t w;

	do {
		w = pwrite(fd, buf, n, 0);
	} while (w < 0 && errno == EINTR);
}

static uint64_t file_size(int fd, uint64_t fallback)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : fallback;
}

int vmm_raw_resize(int fd, uint64_t new_size, uint32_t prealloc, struct vmm_raw_result *ret)
{
	struct stat st;
	uint64_t cur;
	int r = 0;

	memset(ret, 0, sizeof(*ret));
	if (fstat(fd, &st) < 0) {
		ret->what = "Could not stat file";
		return -errno;
	}
	cur = (uint64_t)st.st_size;
	ret->file_size_before = cur;
	ret->file_size_after = cur;
	if (new_size > (uint64_t)INT64_MAX) {
		ret->what = "Could not resize file";
		return -EFBIG;
	}
	if (prealloc != INSTAR_PREALLOC_OFF && cur > new_size) {
		ret->what = "Cannot use preallocation for shrinking files";
		return -ENOTSUP;
	}

	switch (prealloc) {
	case INSTAR_PREALLOC_OFF:
		if (ftruncate(fd, (off_t)new_size) < 0) {
			ret->what = "Could not resize file";
			return -errno;
		}
		if (cur == 0 && new_size > 0)
			allocate_first_block(fd, new_size);
		break;
	case INSTAR_PREALLOC_FALLOC:
		if (new_size != cur) {
			r = posix_fallocate(fd, (off_t)cur, (off_t)(new_size - cur));
			if (r) {
				ret->what = "Could not preallocate new data";
				r = -r;
				goto restore;
			}
			if (cur == 0)
				allocate_first_block(fd, 512);
		}
		break;
	case INSTAR_PREALLOC_FULL:
		/* Blocks first (the length stays), so that from the moment the
		 * file has its new length all of it is allocated: a crash while
		 * the zeros are written leaves the new size, fully preallocated.
		 * A full disk fails here with nothing changed. Where the file
		 * system has no fallocate the zeros themselves allocate. */
		if (new_size > cur &&
		    fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)cur, (off_t)(new_size - cur)) < 0 &&
		    errno != EOPNOTSUPP && errno != ENOSYS) {
			ret->what = "Could not preallocate new data";
			r = -errno;
			goto restore;
		}
		if (ftruncate(fd, (off_t)new_size) < 0) {
			ret->what = "Could not resize file";
			r = -errno;
			goto restore;
		}
		r = write_zeros(fd, cur, new_size - cur);
		if (r < 0) {
			ret->what = "Could not write zeros for preallocation";
			goto restore;
		}
		break;
	default:
		ret->what = NULL; /* "Unsupported preallocation mode: <mode>" */
		return -ENOTSUP;
	}

	/* fdatasync, as qemu-img: it covers the new length too */
	if (fdatasync(fd) < 0) {
		ret->what = "Could not flush file to disk";
		r = -errno;
		ret->file_size_after = file_size(fd, new_size);
		return r;
	}
	ret->file_size_after = file_size(fd, new_size);
	return 0;

restore:
	/* best effort, as qemu: the error already says what went wrong */
	if (ftruncate(fd, (off_t)cur) == 0)
		(void)fsync(fd);
	ret->file_size_after = file_size(fd, cur);
	return r;
}
