/* shared/msgbuf.h — appending text to a fixed buffer, always NUL-terminated,
 * silently truncated: how the host probe (shared/probe.c) and the open
 * checks (shared/open_check.c) build qemu's messages. Freestanding C99 (the
 * guest's planners call the open checks), header only. */
#ifndef INSTAR_MSGBUF_H
#define INSTAR_MSGBUF_H

#include <stddef.h>
#include <stdint.h>

struct instar_msgbuf {
	char *b;    /* cap bytes */
	size_t cap; /* 0: nothing is written */
	size_t n;   /* the text's length so far */
};

/* At most len bytes of s, ending early at a NUL. */
static inline void instar_msg_bytes(struct instar_msgbuf *m, const char *s, size_t len)
{
	for (size_t i = 0; i < len && s[i] && m->n + 1 < m->cap; i++)
		m->b[m->n++] = s[i];
	if (m->cap)
		m->b[m->n] = '\0';
}

static inline void instar_msg_str(struct instar_msgbuf *m, const char *s)
{
	instar_msg_bytes(m, s, SIZE_MAX);
}

/* v in base 10 or 16 (lowercase), at least width digits. */
static inline void instar_msg_num(struct instar_msgbuf *m, uint64_t v, unsigned base,
				  unsigned width)
{
	char t[24];
	unsigned k = 0;

	do {
		t[k++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v && k < sizeof(t));
	while (k < width && k < sizeof(t))
		t[k++] = '0';
	while (k && m->n + 1 < m->cap)
		m->b[m->n++] = t[--k];
	if (m->cap)
		m->b[m->n] = '\0';
}

#endif
