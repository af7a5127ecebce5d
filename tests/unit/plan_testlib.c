/* tests/unit/plan_testlib.c — shared helpers of the planner unit tests
 * (see plan_testlib.h). */
#include <string.h>

#include "plan_testlib.h"

int ptl_img_read(void *ctx, uint64_t off, void *buf, uint32_t len)
{
	struct ptl_img *m = ctx;

	if (m->fail_read)
		return -5;
	memset(buf, 0, len);
	if (off < m->len) {
		uint64_t n = m->len - off < len ? m->len - off : len;
		memcpy(buf, m->b + off, n);
	}
	return 0;
}

int ptl_count_sink(void *ctx, const struct plan_op *op)
{
	(void)op;
	(*(int *)ctx)++;
	return 0;
}

int ptl_run(ptl_planner_fn planner, uint8_t *img, size_t len, uint64_t new_size, uint32_t flags,
	    struct instar_resize_result *res)
{
	static uint8_t scratch[1 << 20];
	struct ptl_img m = {.b = img, .len = len};
	struct plan_io io = {.read = ptl_img_read, .ctx = &m, .file_size = len};
	struct plan_opts o = {
	    .new_size = new_size, .expected_old_size = UINT64_MAX, .flags = flags};
	struct plan_scratch s;
	struct plan p;
	int n = 0;

	memset(res, 0, sizeof(*res));
	plan_scratch_init(&s, scratch, sizeof(scratch));
	plan_init(&p, ptl_count_sink, &n, 0);
	return planner(&o, &io, &s, &p, res);
}

void ptl_luks_header(uint8_t *h, uint32_t payload_sect, uint32_t key_bytes, uint32_t slot_step)
{
	memcpy(h, "LUKS\xba\xbe", 6);
	put_be16(h + 6, 1);
	memset(h + 8, 0, 200);
	strcpy((char *)h + 8, "aes");
	strcpy((char *)h + 40, "xts-plain64");
	strcpy((char *)h + 72, "sha256");
	put_be32(h + 104, payload_sect);
	put_be32(h + 108, key_bytes);
	put_be32(h + 164, 1000);
	for (uint32_t i = 0; i < 8; i++) {
		uint8_t *s = h + 208 + 48 * i;

		memset(s, 0, 48);
		put_be32(s, i == 0 ? 0x00AC71F3u : 0x0000DEADu);
		put_be32(s + 4, i == 0 ? 2000 : 0);
		put_be32(s + 40, 8 + slot_step * i);
		put_be32(s + 44, 4000);
	}
}

void ptl_put_field(uint8_t *b, size_t off, int width, bool big_endian, uint64_t v)
{
	for (int i = 0; i < width; i++)
		b[off + (size_t)(big_endian ? width - 1 - i : i)] = (uint8_t)(v >> (8 * i));
}
