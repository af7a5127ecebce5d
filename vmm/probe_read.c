/* vmm/probe_read.c — the probe's window reader, shared by the CLI (the image
 * before a resize, its backing files) and the check of a guest's result (the
 * staged view before the commit). */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "probe_read.h"

struct probe_bufs {
	uint8_t head[INSTAR_PROBE_HEAD_LEN];
	uint8_t tail[INSTAR_PROBE_TAIL_LEN];
	uint8_t extra[INSTAR_PROBE_MAX_WINDOWS - 2][INSTAR_PROBE_MAX_EXTRA];
};

static int probe_windows(vmm_probe_read_fn rd, void *ctx, struct probe_bufs *b, uint64_t file_size,
			 const char *name, const char *force, struct instar_probe_info *ret)
{
	struct instar_probe_input in = {.file_size = file_size, .name = name, .force = force};
	unsigned nextra = 0;
	size_t n;
	int r;

	r = rd(ctx, 0, b->head, sizeof(b->head), &n);
	if (r < 0)
		return r;
	in.windows[in.nwindows++] = (struct instar_probe_window){0, b->head, n};
	if (file_size > 0) {
		uint64_t tl = file_size < sizeof(b->tail) ? file_size : sizeof(b->tail);

		r = rd(ctx, file_size - tl, b->tail, (size_t)tl, &n);
		if (r < 0)
			return r;
		in.windows[in.nwindows++] =
		    (struct instar_probe_window){file_size - tl, b->tail, n};
	}
	for (;;) {
		if (instar_probe(&in, ret) < 0)
			return -EINVAL;
		if (!ret->need_len || in.nwindows >= INSTAR_PROBE_MAX_WINDOWS ||
		    ret->need_len > INSTAR_PROBE_MAX_EXTRA)
			return 0;
		r = rd(ctx, ret->need_offset, b->extra[nextra], ret->need_len, &n);
		if (r < 0)
			return r;
		if (n < ret->need_len)
			return 0; /* the file ends there: keep what we know */
		in.windows[in.nwindows++] =
		    (struct instar_probe_window){ret->need_offset, b->extra[nextra], n};
		nextra++;
	}
}

static int probe_read_as(vmm_probe_read_fn rd, void *ctx, uint64_t file_size, const char *name,
			 const char *force, struct instar_probe_info *ret)
{
	struct probe_bufs *b = malloc(sizeof(*b));
	int r;

	if (!b)
		return -ENOMEM;
	r = probe_windows(rd, ctx, b, file_size, name, force, ret);
	free(b);
	return r;
}

int vmm_probe_read(vmm_probe_read_fn rd, void *ctx, uint64_t file_size,
		   struct instar_probe_info *ret)
{
	return probe_read_as(rd, ctx, file_size, NULL, NULL, ret);
}

static int probe_pread(void *ctx, uint64_t off, void *buf, size_t len, size_t *ret_n)
{
	int fd = *(const int *)ctx;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	*ret_n = done;
	return 0;
}

int vmm_probe_fd(int fd, uint64_t file_size, struct instar_probe_info *ret)
{
	return vmm_probe_read(probe_pread, &fd, file_size, ret);
}

int vmm_probe_fd_as(int fd, uint64_t file_size, const char *name, const char *force,
		    struct instar_probe_info *ret)
{
	return probe_read_as(probe_pread, &fd, file_size, name, force, ret);
}
