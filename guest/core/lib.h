/* guest/core/lib.h — the guest's own libc subset; the compiler emits calls to
 * mem* even with -ffreestanding, so every guest image links lib.c. */
#ifndef GUEST_LIB_H
#define GUEST_LIB_H

#include <stddef.h>
#include <stdint.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
