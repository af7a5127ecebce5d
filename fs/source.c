/* fs/source.c — the source directory (every access relative to its fd, no
 * symlinks followed) and the table of per-image state.
 *
 * Only regular, non-hidden files directly in the source directory are
 * exposed. Symlinks are not: following one would let whoever can write the
 * source directory point instarfs (running as root) at any file on the host.
 * Subdirectories are not either: one level keeps names flat and the fs small. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "instarfs.h"

#define IMAGE_BUCKETS 256

static int src_fd = -1;
static pthread_mutex_t images_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ifs_image *images[IMAGE_BUCKETS];
/* Entries by id (id - 1), for the inode numbers of the low-level API. */
static struct ifs_image **by_id;
static size_t n_by_id, cap_by_id;

int ifs_source_open_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	src_fd = fd;
	return 0;
}

int ifs_source_fd(void)
{
	return src_fd;
}

bool ifs_source_name_ok(const char *name)
{
	return name[0] != '\0' && name[0] != '.' && !strchr(name, '/');
}

int ifs_source_stat(const char *name, struct stat *ret)
{
	if (!ifs_source_name_ok(name))
		return -ENOENT;
	if (fstatat(src_fd, name, ret, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISREG(ret->st_mode))
		return -ENOENT;
	return 0;
}

int ifs_source_open(const char *name, int flags, struct stat *ret_st)
{
	struct stat st;
	int fd, r;

	/* The fstatat first keeps us from opening FIFOs or devices at all; the
	 * fstat after closes the race with a rename in between. */
	r = ifs_source_stat(name, &st);
	if (r < 0)
		return r;
	fd = openat(src_fd, name, flags | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? -ENOENT : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -ENOENT;
	}
	/* O_NONBLOCK was only for the open; the child wants plain semantics. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	if (ret_st)
		*ret_st = st;
	return fd;
}

static unsigned name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % IMAGE_BUCKETS;
}

void ifs_images_lock(void)
{
	pthread_mutex_lock(&images_lock);
}

void ifs_images_unlock(void)
{
	pthread_mutex_unlock(&images_lock);
}

struct ifs_image *ifs_image_get(const char *name)
{
	unsigned b = name_hash(name);
	struct ifs_image *img;

	ifs_images_lock();
	for (img = images[b]; img; img = img->next)
		if (strcmp(img->name, name) == 0)
			goto out;
	if (n_by_id == cap_by_id) {
		size_t cap = cap_by_id ? 2 * cap_by_id : 64;
		struct ifs_image **p = realloc(by_id, cap * sizeof(*p));

		if (!p)
			goto out;
		by_id = p;
		cap_by_id = cap;
	}
	img = calloc(1, sizeof(*img));
	if (img) {
		img->name = strdup(name);
		if (!img->name) {
			free(img);
			img = NULL;
			goto out;
		}
		by_id[n_by_id++] = img;
		img->id = n_by_id;
		img->next = images[b];
		images[b] = img;
	}
out:
	ifs_images_unlock();
	return img;
}

struct ifs_image *ifs_image_by_id(uint64_t id)
{
	struct ifs_image *img = NULL;

	ifs_images_lock();
	if (id >= 1 && id <= n_by_id)
		img = by_id[id - 1];
	ifs_images_unlock();
	return img;
}

int ifs_image_claim(struct ifs_image *img)
{
	int r = 0;

	ifs_images_lock();
	if (img->busy)
		r = -EBUSY;
	else
		img->busy = true;
	ifs_images_unlock();
	return r;
}

void ifs_image_release(struct ifs_image *img)
{
	ifs_images_lock();
	img->busy = false;
	ifs_images_unlock();
}

void ifs_image_publish(struct ifs_image *img, char *json)
{
	struct ifs_handle *h;

	ifs_images_lock();
	free(img->result);
	img->result = json;
	img->gen++;
	clock_gettime(CLOCK_REALTIME, &img->result_time);
	/* The image may have changed: the next read of size/info re-probes. */
	img->info.valid = false;
	img->busy = false;
	for (h = img->pollers; h; h = h->poll_next) {
		h->polling = false;
		if (h->ph)
			ifs_notify_queue(h->ph);
		h->ph = NULL;
	}
	img->pollers = NULL;
	ifs_images_unlock();
}
