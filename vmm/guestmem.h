/* vmm/guestmem.h — the ONE checked accessor for guest-physical memory. Every
 * guest-controlled address passes vmm_gpa() before the host touches it. */
#ifndef VMM_GUESTMEM_H
#define VMM_GUESTMEM_H

#include <stddef.h>
#include <stdint.h>

struct vmm_guestmem {
	uint8_t *host; /* mapping of guest-physical [0, size) */
	uint64_t size;
};

/* Host pointer for guest-physical [gpa, gpa+len), or NULL if any byte lies
 * outside guest RAM (overflow-checked). len 0 is valid when gpa <= size. */
static inline void *vmm_gpa(const struct vmm_guestmem *m, uint64_t gpa, uint64_t len)
{
	uint64_t end;

	if (__builtin_add_overflow(gpa, len, &end) || end > m->size)
		return NULL;
	return m->host + gpa;
}

#endif
