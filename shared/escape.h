/* shared/escape.h — names from images and users, made safe to print: control
 * characters escaped so a name can neither start a new log line nor send a
 * terminal escape sequence. Pure, freestanding (no libc): instar and
 * instarfs print every untrusted name through this one helper. */
#ifndef INSTAR_ESCAPE_H
#define INSTAR_ESCAPE_H

#include <stddef.h>

/* Copies src to dst (cap bytes, always NUL-terminated when cap > 0) with
 * each byte below 0x20 and 0x7f written as an escape: \n, \r, \t, \e
 * (ESC) or \xHH. Other bytes, backslash included, are copied as they are.
 * An escape that does not fit whole is left out, and so is the rest.
 * Returns the length the whole escaped text needs (without the NUL), so
 * a return >= cap means it was cut short. */
size_t instar_escape(char *dst, size_t cap, const char *src);

#endif
