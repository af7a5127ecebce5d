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

/* One definition per width and order: a move and, where needed, a swap. */
#define INSTAR_BYTEORDER_FNS(order, ORDER, bits)                                                   \
	static inline uint##bits##_t get_##order##bits(const void *p)                              \
	{                                                                                          \
		uint##bits##_t v;                                                                  \
                                                                                                   \
		__builtin_memcpy(&v, p, sizeof(v));                                                \
		return INSTAR_##ORDER##bits(v);                                                    \
	}                                                                                          \
	static inline void put_##order##bits(void *p, uint##bits##_t v)                            \
	{                                                                                          \
		v = INSTAR_##ORDER##bits(v);                                                       \
		__builtin_memcpy(p, &v, sizeof(v));                                                \
	}

INSTAR_BYTEORDER_FNS(le, LE, 16)
INSTAR_BYTEORDER_FNS(le, LE, 32)
INSTAR_BYTEORDER_FNS(le, LE, 64)
INSTAR_BYTEORDER_FNS(be, BE, 16)
INSTAR_BYTEORDER_FNS(be, BE, 32)
INSTAR_BYTEORDER_FNS(be, BE, 64)

#undef INSTAR_BYTEORDER_FNS

#endif
