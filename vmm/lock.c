/* vmm/lock.c — QEMU-compatible OFD image locks (see lock.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "lock.h"

#define LOCK_PERM_BASE 100
#define LOCK_SHARED_BASE 200

enum { PERM_CONSISTENT_READ = 0, PERM_WRITE = 1, PERM_WRITE_UNCHANGED = 2, PERM_RESIZE = 3 };
#define PERM_COUNT 4

static const char *const perm_names[PERM_COUNT] = {
    [PERM_CONSISTENT_READ] = "consistent read",
    [PERM_WRITE] = "write",
    [PERM_WRITE_UNCHANGED] = "write unchanged",
    [PERM_RESIZE] = "resize",
};

static int ofd_lock(int fd, unsigned byte, short type)
{
	struct flock fl = {
	    .l_type = type,
	    .l_whence = SEEK_SET,
	    .l_start = byte,
	    .l_len = 1,
	};

	if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
		return -errno;
	return 0;
}

/* 0 if nobody else holds a lock on byte, -EAGAIN if someone does. */
static int ofd_test(int fd, unsigned byte)
{
	struct flock fl = {
	    .l_type = F_WRLCK,
	    .l_whence = SEEK_SET,
	    .l_start = byte,
	    .l_len = 1,
	};

	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	return fl.l_type == F_UNLCK ? 0 : -EAGAIN;
}

static bool ofd_supported(void)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return true; /* cannot tell: try, and report what fails */
	ok = fcntl(fd, F_OFD_GETLK, &fl) == 0;
	close(fd);
	return ok;
}

static void unlock_all(int fd, const unsigned *bytes, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		ofd_lock(fd, bytes[i], F_UNLCK);
}

int vmm_image_lock(int fd, bool metadata_format, struct vmm_lock_error *ret)
{
	/* qemu-img resize holds consistent read, write and resize; a format
	 * driver with metadata also refuses to share write and resize. */
	const uint32_t held = 1u << PERM_CONSISTENT_READ | 1u << PERM_WRITE | 1u << PERM_RESIZE;
	const uint32_t unshared = metadata_format ? (1u << PERM_WRITE | 1u << PERM_RESIZE) : 0;
	unsigned taken[2 * PERM_COUNT], ntaken = 0;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (!ofd_supported())
		return 0;

	for (unsigned i = 0; i < PERM_COUNT; i++) {
		if (held & 1u << i)
			taken[ntaken++] = LOCK_PERM_BASE + i;
	}
	for (unsigned i = 0; i < PERM_COUNT; i++) {
		if (unshared & 1u << i)
			taken[ntaken++] = LOCK_SHARED_BASE + i;
	}
	for (unsigned k = 0; k < ntaken; k++) {
		r = ofd_lock(fd, taken[k], F_RDLCK);
		if (r < 0) {
			unlock_all(fd, taken, k);
			ret->kind = VMM_LOCK_FAIL_BYTE;
			ret->byte = taken[k];
			ret->err = r == -EAGAIN || r == -EACCES ? 0 : -r;
			return r == -EAGAIN || r == -EACCES ? -EBUSY : r;
		}
	}
	for (unsigned i = 0; i < PERM_COUNT; i++) {
		if (!(held & 1u << i))
			continue;
		r = ofd_test(fd, LOCK_SHARED_BASE + i);
		if (r < 0) {
			ret->kind = VMM_LOCK_FAIL_PERM;
			ret->byte = LOCK_SHARED_BASE + i;
			ret->perm = perm_names[i];
			goto fail;
		}
	}
	for (unsigned i = 0; i < PERM_COUNT; i++) {
		if (!(unshared & 1u << i))
			continue;
		r = ofd_test(fd, LOCK_PERM_BASE + i);
		if (r < 0) {
			ret->kind = VMM_LOCK_FAIL_SHARED;
			ret->byte = LOCK_PERM_BASE + i;
			ret->perm = perm_names[i];
			goto fail;
		}
	}
	return 0;

fail:
	unlock_all(fd, taken, ntaken);
	ret->err = r == -EAGAIN || r == -EACCES ? 0 : -r;
	return r == -EAGAIN || r == -EACCES ? -EBUSY : r;
}
