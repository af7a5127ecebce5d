/* fs/control.c — the control files of an image folder and how each renders
 * its snapshot. Permission bits come from the image: whoever may write the
 * image may write `size`; whoever may read it may read the rest. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "instarfs.h"

const struct ifs_control ifs_controls[IFS_CTL_COUNT] = {
    {.name = "size", .kind = IFS_CTL_SIZE, .mask = 0666, .writable = true, .pollable = true},
    {.name = "result.json", .kind = IFS_CTL_RESULT, .mask = 0444, .pollable = true},
    {.name = "info.json", .kind = IFS_CTL_INFO, .mask = 0444},
    {.name = "format", .kind = IFS_CTL_FORMAT, .mask = 0444},
};

/* Before any resize result.json is an empty object: no keys, no "error". */
#define RESULT_NONE "{}\n"

const struct ifs_control *ifs_control_find(const char *name)
{
	for (size_t i = 0; i < IFS_CTL_COUNT; i++)
		if (strcmp(name, ifs_controls[i].name) == 0)
			return &ifs_controls[i];
	return NULL;
}

static int render_text(struct ifs_handle *h, const char *text)
{
	h->buf = strdup(text);
	if (!h->buf)
		return -ENOMEM;
	h->len = strlen(h->buf);
	return 0;
}

int ifs_control_render(struct ifs_handle *h)
{
	struct ifs_image *img = h->img;
	char *error = NULL, line[64];
	int r;

	/* The generation is taken first: a resize finishing while we render
	 * makes the snapshot count as stale, never the other way round. */
	ifs_images_lock();
	h->gen = img->gen;
	if (h->ctl->kind == IFS_CTL_RESULT) {
		r = render_text(h, img->result ? img->result : RESULT_NONE);
		ifs_images_unlock();
		return r;
	}
	ifs_images_unlock();

	r = ifs_job_info(img, h->ctl->kind == IFS_CTL_INFO ? &error : NULL);
	if (r < 0) {
		/* info.json explains a failed probe; size and format just fail. */
		if (h->ctl->kind == IFS_CTL_INFO && error) {
			h->buf = error;
			h->len = strlen(error);
			return 0;
		}
		free(error);
		return r == -ENOENT || r == -EACCES || r == -ENOMEM ? r : -EIO;
	}
	ifs_images_lock();
	switch (h->ctl->kind) {
	case IFS_CTL_SIZE:
		snprintf(line, sizeof(line), "%llu\n", (unsigned long long)img->info.virtual_size);
		r = render_text(h, line);
		break;
	case IFS_CTL_FORMAT:
		snprintf(line, sizeof(line), "%s\n", img->info.format);
		r = render_text(h, line);
		break;
	case IFS_CTL_INFO:
		r = render_text(h, img->info.json);
		break;
	default:
		r = -EIO;
	}
	ifs_images_unlock();
	return r;
}
