/* guest/plan/le.h — little-endian loads for the decoders' hot bit readers:
 * inline, unaligned-safe, one instruction where the target allows (plan.h's
 * plan_le32/plan_le64 are out-of-line byte loops for the planners). */
#ifndef INSTAR_PLAN_LE_H
#define INSTAR_PLAN_LE_H

#include <stdint.h>

static inline uint64_t plan_ld_le64(const uint8_t *p)
{
	uint64_t v;

	__builtin_memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline uint32_t plan_ld_le32(const uint8_t *p)
{
	uint32_t v;

	__builtin_memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap32(v);
#endif
	return v;
}

#endif
