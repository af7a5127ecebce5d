/* tests/fuzz/sparse_image.c — decoder and reader of the sparse fuzz images. */
#include "sparse_image.h"

#include <string.h>

static uint64_t rd_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int sparse_image_decode(struct sparse_image *img, const uint8_t *data, size_t len)
{
	size_t pos = 8;

	if (len < 8)
		return -1;
	img->file_size = rd_le(data, 8);
	img->nrec = 0;
	while (pos + 6 <= len && img->nrec < SPARSE_MAX_RECORDS) {
		uint64_t sec = rd_le(data + pos, 4);
		uint32_t n = (uint32_t)rd_le(data + pos + 4, 2);

		pos += 6;
		if (n > len - pos)
			n = (uint32_t)(len - pos);
		img->rec[img->nrec].off = sec * 512;
		img->rec[img->nrec].data = data + pos;
		img->rec[img->nrec].len = n;
		img->nrec++;
		pos += n;
	}
	return 0;
}

int sparse_image_read(void *ctx, uint64_t off, void *buf, uint32_t len)
{
	const struct sparse_image *img = ctx;
	uint64_t end = off + len;

	if (end < off)
		return -1;
	memset(buf, 0, len);
	for (uint32_t i = 0; i < img->nrec; i++) {
		const struct sparse_rec *r = &img->rec[i];
		uint64_t rend = r->off + r->len;
		uint64_t a = r->off > off ? r->off : off;
		uint64_t b = rend < end ? rend : end;

		if (a < b)
			memcpy((uint8_t *)buf + (a - off), r->data + (a - r->off), b - a);
	}
	return 0;
}
