/* shared/vmdk_split.c — the twoGbMaxExtentFlat rule (vmdk_split.h). */
#include "vmdk_split.h"

int instar_vmdk_split_valid(const struct instar_vmdk_split *s)
{
	if (s->split == 0 || s->split > INSTAR_VMDK_SPLIT_SECTORS || s->count == 0 ||
	    s->count > INSTAR_VMDK_SPLIT_MAX_EXTENTS || s->last == 0 || s->last > s->split)
		return -1;
	return 0;
}

int instar_vmdk_split_resize(const struct instar_vmdk_split *old, uint64_t new_sectors,
			     struct instar_vmdk_split *ret)
{
	uint64_t count;

	if (instar_vmdk_split_valid(old) || new_sectors == 0)
		return -1;
	count = (new_sectors - 1) / old->split + 1;
	if (count > INSTAR_VMDK_SPLIT_MAX_EXTENTS)
		return -1;
	ret->split = old->split;
	ret->count = (uint32_t)count;
	ret->last = new_sectors - (count - 1) * old->split;
	return 0;
}

uint64_t instar_vmdk_split_extent_sectors(const struct instar_vmdk_split *s, uint32_t idx)
{
	if (idx == 0 || idx > s->count)
		return 0;
	return idx == s->count ? s->last : s->split;
}

int instar_vmdk_split_name(const uint8_t *first, size_t first_len, uint32_t idx, char *out,
			   size_t cap)
{
	static const char pat[] = "-f001";
	size_t at = (size_t)-1, n = 0, digits = 0;
	char num[11];
	uint32_t v = idx;

	for (size_t i = 0; i + 5 <= first_len; i++) {
		size_t k = 0;

		while (k < 5 && first[i + k] == (uint8_t)pat[k])
			k++;
		if (k == 5)
			at = i;
	}
	if (at == (size_t)-1 || idx == 0)
		return -1;
	do {
		num[digits++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (digits < 3)
		num[digits++] = '0';
	/* prefix, "-f", the digits, the suffix, NUL */
	if (at + 2 + digits + (first_len - at - 5) + 1 > cap ||
	    at + 2 + digits + (first_len - at - 5) > INSTAR_VMDK_SPLIT_NAME_MAX)
		return -1;
	for (size_t i = 0; i < at; i++)
		out[n++] = (char)first[i];
	out[n++] = '-';
	out[n++] = 'f';
	while (digits)
		out[n++] = num[--digits];
	for (size_t i = at + 5; i < first_len; i++)
		out[n++] = (char)first[i];
	out[n] = '\0';
	return (int)n;
}
