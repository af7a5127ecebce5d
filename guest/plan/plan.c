/* guest/plan/plan.c — helpers shared by every planner: the op stream, the
 * scratch allocator, endian and CRC helpers, and the format dispatch.
 * Freestanding: built into resize.bin and into the host planner library. */
#include "plan.h"

void plan_init(struct plan *p, plan_sink_fn sink, void *ctx, uint32_t max_ops)
{
	p->sink = sink;
	p->sink_ctx = ctx;
	p->nops = 0;
	p->max_ops = max_ops ? max_ops : PLAN_MAX_OPS_DEFAULT;
	p->file_size_after = 0;
}

static int plan_emit(struct plan *p, uint32_t kind, uint64_t off, uint64_t len,
		     const void *data)
{
	struct plan_op op = {.kind = kind, .off = off, .len = len, .data = data};
	uint64_t end;

	if (p->nops >= p->max_ops)
		return INSTAR_ERR_SCRATCH_TOO_SMALL;
	if (__builtin_add_overflow(off, len, &end))
		return INSTAR_ERR_INTERNAL;
	p->nops++;
	if (p->sink(p->sink_ctx, &op) != 0)
		return INSTAR_ERR_WRITE_FAILED;
	return 0;
}

int plan_write(struct plan *p, uint64_t off, const void *data, uint64_t len)
{
	if (len == 0)
		return 0;
	return plan_emit(p, PLAN_OP_WRITE, off, len, data);
}

int plan_zero(struct plan *p, uint64_t off, uint64_t len)
{
	if (len == 0)
		return 0;
	return plan_emit(p, PLAN_OP_ZERO, off, len, NULL);
}

int plan_discard(struct plan *p, uint64_t off, uint64_t len)
{
	if (len == 0)
		return 0;
	return plan_emit(p, PLAN_OP_DISCARD, off, len, NULL);
}

int plan_flush(struct plan *p)
{
	return plan_emit(p, PLAN_OP_FLUSH, 0, 0, NULL);
}

void plan_scratch_init(struct plan_scratch *s, void *base, size_t len)
{
	s->base = base;
	s->len = len;
	s->used = 0;
}

void *plan_alloc(struct plan_scratch *s, size_t len, size_t align)
{
	size_t start, end;
	uintptr_t b = (uintptr_t)s->base;

	if (align == 0 || (align & (align - 1)) != 0)
		return NULL;
	if (__builtin_add_overflow(b + s->used, align - 1, &start))
		return NULL;
	start = (start & ~(uintptr_t)(align - 1)) - b;
	if (__builtin_add_overflow(start, len, &end) || end > s->len)
		return NULL;
	s->used = end;
	plan_memset(s->base + start, 0, len);
	return s->base + start;
}

int plan_read(const struct plan_io *io, uint64_t off, void *buf, uint32_t len)
{
	uint64_t end;

	if (__builtin_add_overflow(off, (uint64_t)len, &end))
		return INSTAR_ERR_READ_FAILED;
	return io->read(io->ctx, off, buf, len) == 0 ? 0 : INSTAR_ERR_READ_FAILED;
}

void plan_set_detail(struct instar_resize_result *ret, const char *msg)
{
	size_t i = 0;

	for (; msg[i] && i < INSTAR_DETAIL_MAX - 1; i++)
		ret->detail[i] = msg[i];
	ret->detail[i] = '\0';
}

uint16_t plan_be16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[0] << 8 | b[1]);
}

uint32_t plan_be32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

uint64_t plan_be64(const void *p)
{
	const uint8_t *b = p;
	return (uint64_t)plan_be32(b) << 32 | plan_be32(b + 4);
}

uint16_t plan_le16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[1] << 8 | b[0]);
}

uint32_t plan_le32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0];
}

uint64_t plan_le64(const void *p)
{
	const uint8_t *b = p;
	return (uint64_t)plan_le32(b + 4) << 32 | plan_le32(b);
}

void plan_put_be16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}

void plan_put_be32(void *p, uint32_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}

void plan_put_be64(void *p, uint64_t v)
{
	plan_put_be32(p, (uint32_t)(v >> 32));
	plan_put_be32((uint8_t *)p + 4, (uint32_t)v);
}

void plan_put_le16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

void plan_put_le32(void *p, uint32_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
}

void plan_put_le64(void *p, uint64_t v)
{
	plan_put_le32(p, (uint32_t)v);
	plan_put_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

void plan_memcpy(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	while (n--)
		*d++ = *s++;
}

void plan_memset(void *dst, int c, size_t n)
{
	uint8_t *d = dst;

	while (n--)
		*d++ = (uint8_t)c;
}

int plan_memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;

	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x < *y ? -1 : 1;
	return 0;
}

uint32_t plan_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *b = buf;

	crc = ~crc;
	while (len--) {
		crc ^= *b++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

int plan_resize(uint32_t format, const struct plan_opts *o,
		const struct plan_io *io, struct plan_scratch *s, struct plan *p,
		struct instar_resize_result *ret)
{
	switch (format) {
	case INSTAR_FMT_QCOW2:
		return plan_resize_qcow2(o, io, s, p, ret);
	case INSTAR_FMT_VMDK:
		return plan_resize_vmdk(o, io, s, p, ret);
	case INSTAR_FMT_VHD:
		return plan_resize_vhd(o, io, s, p, ret);
	case INSTAR_FMT_VHDX:
		return plan_resize_vhdx(o, io, s, p, ret);
	default:
		ret->error = INSTAR_ERR_UNSUPPORTED_FORMAT;
		return ret->error;
	}
}
