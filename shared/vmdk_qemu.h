/* shared/vmdk_qemu.h — how qemu 7.2's vmdk driver reads a descriptor's text
 * when it opens the image (block/vmdk.c: vmdk_parse_description() for the
 * createType, vmdk_open_desc_file() for the createTypes it opens, and
 * vmdk_parse_extents() for the extent lines), for its open-time messages
 * (docs/qemu.md, "Open-time messages"): the vmdk planner (guest) and the
 * host's probe both ask it. Header-only; d[0..n) is the text up to its
 * first NUL. */
#ifndef INSTAR_VMDK_QEMU_H
#define INSTAR_VMDK_QEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool instar_vmdkq_eq(const char *t, size_t n, const char *s)
{
	size_t k = 0;

	while (s[k] && k < n && t[k] == s[k])
		k++;
	return k == n && !s[k];
}

static inline bool instar_vmdkq_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static inline bool instar_vmdkq_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* qemu's vmdk_parse_description(text, "createType"): the first
 * "createType" anywhere in the text, the two bytes after it skipped, the
 * value up to the next '"', at most 127 bytes; false where qemu fails
 * ("invalid VMDK image descriptor"). */
static inline bool instar_vmdkq_ct(const char *d, size_t n, const char **ct, size_t *ctn)
{
	static const char key[] = "createType";
	const size_t k = sizeof(key) - 1;
	size_t i = 0, v, e;

	for (; i + k <= n; i++) {
		size_t j = 0;

		while (j < k && d[i + j] == key[j])
			j++;
		if (j == k)
			break;
	}
	v = i + k + 2;
	if (i + k > n || v >= n)
		return false;
	for (e = v; e < n && d[e] != '"';)
		e++;
	if (e == n || e - v + 1 > 128)
		return false;
	*ct = d + v;
	*ctn = e - v;
	return true;
}

/* The createTypes qemu opens as a descriptor file (else "Unsupported image
 * type 'CT'"). */
static inline bool instar_vmdkq_ct_known(const char *ct, size_t n)
{
	static const char *const known[] = {"monolithicFlat",	    "vmfs",
					    "vmfsSparse",	    "seSparse",
					    "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (instar_vmdkq_eq(ct, n, known[i]))
			return true;
	return false;
}

/* sscanf's %Ns at d[*i]: blanks skipped, then 1..max non-blank bytes. */
static inline bool instar_vmdkq_scan_s(const char *d, size_t n, size_t *i, size_t max, size_t *ts,
				       size_t *tl)
{
	while (*i < n && instar_vmdkq_space(d[*i]))
		(*i)++;
	*ts = *i;
	while (*i < n && *i - *ts < max && !instar_vmdkq_space(d[*i]))
		(*i)++;
	*tl = *i - *ts;
	return *tl > 0;
}

/* sscanf's %SCNd64 at d[*i] (out of range: clamped, as glibc's). */
static inline bool instar_vmdkq_scan_d(const char *d, size_t n, size_t *i, int64_t *ret)
{
	size_t k = *i;
	uint64_t x = 0, lim = (uint64_t)1 << 63;
	bool neg = false;

	while (k < n && instar_vmdkq_space(d[k]))
		k++;
	if (k < n && (d[k] == '+' || d[k] == '-'))
		neg = d[k++] == '-';
	if (k >= n || !instar_vmdkq_digit(d[k]))
		return false;
	for (; k < n && instar_vmdkq_digit(d[k]); k++) {
		uint64_t c = (uint64_t)(d[k] - '0');

		x = x > (lim - c) / 10 ? lim : x * 10 + c;
	}
	if (neg)
		*ret = x >= lim ? INT64_MIN : -(int64_t)x;
	else
		*ret = x >= lim ? INT64_MAX : (int64_t)x;
	*i = k;
	return true;
}

/* The line at d[p] as qemu's vmdk_parse_extents() reads it, with
 * sscanf(p, "%10s %" SCNd64 " %10s \"%511[^\n\r\"]\" %" SCNd64) over the
 * text from there to its end (sscanf crosses line ends): 1 an extent qemu
 * opens, 0 a line it skips, -1 one it refuses ("Invalid extent line"). */
static inline int instar_vmdkq_line(const char *d, size_t n, size_t p)
{
	static const char *const types[] = {"FLAT", "SPARSE", "VMFS", "VMFSSPARSE", "SESPARSE"};
	size_t i = p, as, al, ts, tl, ns;
	int64_t sectors, off = -1;
	int matches = 4;
	bool known = false;

	if (!instar_vmdkq_scan_s(d, n, &i, 10, &as, &al) ||
	    !instar_vmdkq_scan_d(d, n, &i, &sectors) ||
	    !instar_vmdkq_scan_s(d, n, &i, 10, &ts, &tl))
		return 0;
	while (i < n && instar_vmdkq_space(d[i]))
		i++;
	if (i >= n || d[i] != '"')
		return 0;
	for (ns = ++i; i < n && i - ns < 511 && d[i] != '\n' && d[i] != '\r' && d[i] != '"';)
		i++;
	if (i == ns)
		return 0;
	if (i < n && d[i] == '"') {
		i++;
		if (instar_vmdkq_scan_d(d, n, &i, &off))
			matches = 5;
	}
	if (!instar_vmdkq_eq(d + as, al, "RW"))
		return 0;
	if (instar_vmdkq_eq(d + ts, tl, "FLAT") ? matches != 5 || off < 0 : matches != 4)
		return -1;
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
		known |= instar_vmdkq_eq(d + ts, tl, types[t]);
	return sectors > 0 && known ? 1 : 0;
}

/* qemu's extent walk as far as the text tells: the first line it refuses
 * before any extent it opens (an extent's own open is its file's). true
 * with the line's span [*ls, *le) (without its '\n') for "Invalid extent
 * line: LINE". */
static inline bool instar_vmdkq_bad_line(const char *d, size_t n, size_t *ls, size_t *le)
{
	for (size_t p = 0; p < n;) {
		size_t e = p;
		int c = instar_vmdkq_line(d, n, p);

		while (e < n && d[e] != '\n')
			e++;
		if (c > 0)
			return false;
		if (c < 0) {
			*ls = p;
			*le = e;
			return true;
		}
		p = e + 1;
	}
	return false;
}

/* What qemu 7.2's vmdk_parent_open and vmdk_read_cid read of the
 * descriptor: INSTAR_VMDKQ_DESC_SIZE bytes at INSTAR_VMDKQ_DESC_AT (a sparse
 * header, whatever its descriptor offset says) or at 0 (a descriptor file),
 * zeros past the end of the file. */
#define INSTAR_VMDKQ_DESC_SIZE 10240u
#define INSTAR_VMDKQ_DESC_AT 512u
/* The longest parent name qemu takes (sizeof(bs->auto_backing_file) - 1). */
#define INSTAR_VMDKQ_PARENT_MAX 4095u

/* qemu's vmdk_parent_open on t[0..n) (what lies past n reads as zeros, so
 * a text that reaches n ends there): strstr finds the first
 * "parentFileNameHint" before the first NUL; the name starts 20 bytes after
 * it (the key, then two bytes taken as '="'), and strchr ends it at the
 * next '"' (not past a NUL, which may lie after the first one). Returns 0
 * without a hint, 1 with the name at t[*off..*off + *len) (*len 0: qemu
 * opens no backing file), -1 where qemu fails the open with EINVAL (no
 * closing quote, a name over INSTAR_VMDKQ_PARENT_MAX bytes). qemu then
 * opens the name as the backing file, in format "vmdk", resolved beside
 * the image. */
static inline int instar_vmdkq_parent(const char *t, size_t n, size_t *off, size_t *len)
{
	static const char key[] = "parentFileNameHint";
	const size_t k = sizeof(key) - 1;
	size_t i, p, e;

	for (i = 0; i < n && t[i]; i++) {
		size_t j = 0;

		while (j < k && i + j < n && t[i + j] == key[j])
			j++;
		if (j == k)
			break;
	}
	if (i >= n || !t[i])
		return 0;
	p = i + k + 2;
	if (p > n)
		return -1; /* past qemu's buffer: nothing it could read */
	for (e = p; e < n && t[e] && t[e] != '"';)
		e++;
	if (e >= n || t[e] != '"' || e - p > INSTAR_VMDKQ_PARENT_MAX)
		return -1;
	*off = p;
	*len = e - p;
	return 1;
}

#endif
