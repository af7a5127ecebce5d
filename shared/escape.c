/* shared/escape.c — control characters of printed names escaped (see
 * escape.h). */
#include "escape.h"

static size_t escape_one(unsigned char c, char out[4])
{
	static const char hex[] = "0123456789abcdef";

	switch (c) {
	case '\n':
		out[0] = '\\', out[1] = 'n';
		return 2;
	case '\r':
		out[0] = '\\', out[1] = 'r';
		return 2;
	case '\t':
		out[0] = '\\', out[1] = 't';
		return 2;
	case 0x1b:
		out[0] = '\\', out[1] = 'e';
		return 2;
	default:
		break;
	}
	if (c >= 0x20 && c != 0x7f) {
		out[0] = (char)c;
		return 1;
	}
	out[0] = '\\', out[1] = 'x', out[2] = hex[c >> 4], out[3] = hex[c & 15];
	return 4;
}

size_t instar_escape(char *dst, size_t cap, const char *src)
{
	size_t need = 0, used = 0;
	int full = cap == 0;

	for (; *src; src++) {
		char e[4];
		size_t n = escape_one((unsigned char)*src, e);

		if (!full && used + n < cap) {
			for (size_t i = 0; i < n; i++)
				dst[used++] = e[i];
		} else {
			full = 1;
		}
		need += n;
	}
	if (cap)
		dst[used] = '\0';
	return need;
}
