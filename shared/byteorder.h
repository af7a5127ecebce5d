/* shared/byteorder.h — fixed-byte-order loads and stores at any alignment, for
 * every on-disk and on-the-wire field (image headers, virtio rings, COM1
 * frames). Header only and freestanding (no libc: a __builtin_memcpy of a
 * constant size compiles to one move, and a swap only where the host's byte
 * order differs), so the guest, the planners and the host share one copy.
 *
 * get_<order><bits>(p): the value stored at p in that byte order.
 * put_<order><bits>(p, v): v stored at p in that byte order.
 *
 * Not named endian.h: shared/ is on the include path, and libc's own
 * <endian.h> (pulled in by <sys/types.h>) must still be found. */
#ifndef INSTAR_BYTEORDER_H
#define INSTAR_BYTEORDER_H

#include <stdint.h>

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define INSTAR_LE16(v) (v)
#define INSTAR_LE32(v) (v)
#define INSTAR_LE64(v) (v)
#define INSTAR_BE16(v) __builtin_bswap16(v)
#define INSTAR_BE32(v) __builtin_bswap32(v)
#define INSTAR_BE64(v) __builtin_bswap64(v)
#elif __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define INSTAR_LE16(v) __builtin_bswap16(v)
#define INSTAR_LE32(v) __builtin_bswap32(v)
#define INSTAR_LE64(v) __builtin_bswap64(v)
#define INSTAR_BE16(v) (v)
#define INSTAR_BE32(v) (v)
#define INSTAR_BE64(v) (v)
#else
#error "shared/byteorder.h: unknown byte order"
#endif

static inline uint16_t get_le16(const void *p)
{
	uint16_t v;

	__builtin_memcpy(&v, p, sizeof(v));
	return INSTAR_LE16(v);
}

static inline void put_le16(void *p, uint16_t v)
{
	v = INSTAR_LE16(v);
	__builtin_memcpy(p, &v, sizeof(v));
}

static inline uint32_t get_le32(const void *p)
{
	uint32_t v;

	__builtin_memcpy(&v, p, sizeof(v));
	return INSTAR_LE32(v);
}

static inline void put_le32(void *p, uint32_t v)
{
	v = INSTAR_LE32(v);
	__builtin_memcpy(p, &v, sizeof(v));
}

static inline uint64_t get_le64(const void *p)
{
	uint64_t v;

	__builtin_memcpy(&v, p, sizeof(v));
	return INSTAR_LE64(v);
}

static inline void put_le64(void *p, uint64_t v)
{
	v = INSTAR_LE64(v);
	__builtin_memcpy(p, &v, sizeof(v));
}

static inline uint16_t get_be16(const void *p)
{
	uint16_t v;

	__builtin_memcpy(&v, p, sizeof(v));
	return INSTAR_BE16(v);
}

static inline void put_be16(void *p, uint16_t v)
{
	v = INSTAR_BE16(v);
	__builtin_memcpy(p, &v, sizeof(v));
}

static inline uint32_t get_be32(const void *p)
{
	uint32_t v;

	__builtin_memcpy(&v, p, sizeof(v));
	return INSTAR_BE32(v);
}

static inline void put_be32(void *p, uint32_t v)
{
	v = INSTAR_BE32(v);
	__builtin_memcpy(p, &v, sizeof(v));
}

static inline uint64_t get_be64(const void *p)
{
	uint64_t v;

	__builtin_memcpy(&v, p, sizeof(v));
	return INSTAR_BE64(v);
}

static inline void put_be64(void *p, uint64_t v)
{
	v = INSTAR_BE64(v);
	__builtin_memcpy(p, &v, sizeof(v));
}

#endif
