/* shared/vmdk_split.c — the twoGbMaxExtentFlat and twoGbMaxExtentSparse
 * rules (vmdk_split.h). */
#include "vmdk_split.h"

#include "byteorder.h"

int instar_vmdk_split_valid(const struct instar_vmdk_split *s)
{
	uint64_t largest = 0;

	if (s->split == 0 || s->split > INSTAR_VMDK_SPLIT_SECTORS || s->count == 0 ||
	    s->count > INSTAR_VMDK_SPLIT_MAX_EXTENTS || s->last == 0 || s->last > s->split)
		return -1;
	if (!s->sparse)
		return 0;
	for (uint32_t i = 0; i < s->count; i++) {
		if (s->ext[i] == 0 || s->ext[i] > INSTAR_VMDK_SPLIT_SECTORS || s->num[i] == 0 ||
		    s->num[i] > INSTAR_VMDK_SPLIT_NUM_MAX || (i && s->num[i] <= s->num[i - 1]))
			return -1;
		if (s->ext[i] > largest)
			largest = s->ext[i];
	}
	if (s->last != s->ext[s->count - 1] ||
	    s->split != (s->count > 1 ? largest : INSTAR_VMDK_SPLIT_SECTORS))
		return -1;
	return 0;
}

int instar_vmdk_split_sparse(struct instar_vmdk_split *s, uint32_t n)
{
	uint64_t largest = 0;

	if (n == 0 || n > INSTAR_VMDK_SPLIT_MAX_EXTENTS)
		return -1;
	for (uint32_t i = 0; i < n; i++)
		if (s->ext[i] > largest)
			largest = s->ext[i];
	s->sparse = true;
	s->count = n;
	s->last = s->ext[n - 1];
	s->split = n > 1 ? largest : INSTAR_VMDK_SPLIT_SECTORS;
	return instar_vmdk_split_valid(s);
}

/* Sparse: every extent kept, new ones appended (grow); whole extents
 * dropped, and the one the new end cuts replaced by a copy under the next
 * number (shrink). */
static int split_resize_sparse(const struct instar_vmdk_split *old, uint64_t new_sectors,
			       struct instar_vmdk_split *ret)
{
	uint64_t sum = 0, add;
	uint32_t n = 0, next = old->num[old->count - 1];

	while (n < old->count && sum < new_sectors)
		sum += old->ext[n++];
	for (uint32_t i = 0; i < n; i++) {
		ret->ext[i] = old->ext[i];
		ret->num[i] = old->num[i];
	}
	if (sum > new_sectors) { /* the new end cuts extent n */
		ret->ext[n - 1] = (uint32_t)(old->ext[n - 1] - (sum - new_sectors));
		ret->num[n - 1] = ++next;
	}
	add = sum < new_sectors ? new_sectors - sum : 0; /* past the old end */
	if (add && (add - 1) / old->split + 1 > INSTAR_VMDK_SPLIT_MAX_EXTENTS - n)
		return -1;
	for (; add; n++) {
		ret->ext[n] = (uint32_t)(add < old->split ? add : old->split);
		ret->num[n] = ++next;
		add -= ret->ext[n];
	}
	return instar_vmdk_split_sparse(ret, n);
}

uint32_t instar_vmdk_split_cut(const struct instar_vmdk_split *old,
			       const struct instar_vmdk_split *ret)
{
	uint32_t k = ret->count;

	if (!old->sparse || !ret->sparse || k > old->count || old->num[k - 1] == ret->num[k - 1])
		return 0;
	return k;
}

int instar_vmdk_split_resize(const struct instar_vmdk_split *old, uint64_t new_sectors,
			     struct instar_vmdk_split *ret)
{
	uint64_t count;

	if (instar_vmdk_split_valid(old) || new_sectors == 0)
		return -1;
	if (old->sparse)
		return split_resize_sparse(old, new_sectors, ret);
	count = (new_sectors - 1) / old->split + 1;
	if (count > INSTAR_VMDK_SPLIT_MAX_EXTENTS)
		return -1;
	ret->sparse = false;
	ret->split = old->split;
	ret->count = (uint32_t)count;
	ret->last = new_sectors - (count - 1) * old->split;
	return 0;
}

uint64_t instar_vmdk_split_extent_sectors(const struct instar_vmdk_split *s, uint32_t idx)
{
	if (idx == 0 || idx > s->count)
		return 0;
	if (s->sparse)
		return s->ext[idx - 1];
	return idx == s->count ? s->last : s->split;
}

uint64_t instar_vmdk_split_total(const struct instar_vmdk_split *s)
{
	uint64_t sum = 0;

	for (uint32_t i = 1; i <= s->count; i++)
		sum += instar_vmdk_split_extent_sectors(s, i);
	return sum;
}

bool instar_vmdk_split_same(const struct instar_vmdk_split *a, const struct instar_vmdk_split *b)
{
	if (a->sparse != b->sparse || a->count != b->count || a->split != b->split ||
	    a->last != b->last)
		return false;
	for (uint32_t i = 1; a->sparse && i <= a->count; i++)
		if (a->ext[i - 1] != b->ext[i - 1] || a->num[i - 1] != b->num[i - 1])
			return false;
	return true;
}

int instar_vmdk_sparse_extent(uint64_t sectors, struct instar_vmdk_sparse_extent *e)
{
	/* qemu 7.2's vmdk_init_extent: grains of 128 sectors, 512 entries a
	 * GT (4 sectors), the descriptor's place (sector 1, 20 sectors) kept
	 * empty, the redundant GD and its GTs, then the GD and its GTs, the
	 * first grain at the next multiple of 128 sectors. */
	uint64_t grains, gt_count, rgd = 21, gd, grain;

	if (sectors == 0 || sectors > INSTAR_VMDK_SPLIT_SECTORS)
		return -1;
	grains = (sectors + 127) / 128;
	gt_count = (grains + 511) / 512; /* <= 64: one GD sector */
	gd = rgd + 1 + 4 * gt_count;
	grain = (gd + 1 + 4 * gt_count + 127) / 128 * 128;
	for (size_t i = 0; i < 512; i++)
		e->header[i] = e->rgd[i] = e->gd[i] = 0;
	e->header[0] = 'K';
	e->header[1] = 'D';
	e->header[2] = 'M';
	e->header[3] = 'V';
	put_le32(e->header + 4, 1);	   /* version */
	put_le32(e->header + 8, 3);	   /* newline test, redundant GD */
	put_le64(e->header + 12, sectors); /* capacity */
	put_le64(e->header + 20, 128);	   /* grain */
	put_le64(e->header + 28, 1);	   /* descriptor offset */
	put_le64(e->header + 36, 20);	   /* descriptor size */
	put_le32(e->header + 44, 512);	   /* GT entries */
	put_le64(e->header + 48, rgd);
	put_le64(e->header + 56, gd);
	put_le64(e->header + 64, grain);
	e->header[73] = 0x0a; /* the newline test bytes */
	e->header[74] = 0x20;
	e->header[75] = 0x0d;
	e->header[76] = 0x0a;
	for (uint64_t i = 0; i < gt_count; i++) {
		put_le32(e->rgd + 4 * i, (uint32_t)(rgd + 1 + 4 * i));
		put_le32(e->gd + 4 * i, (uint32_t)(gd + 1 + 4 * i));
	}
	e->rgd_at = rgd * 512;
	e->gd_at = gd * 512;
	e->file_len = grain * 512;
	return 0;
}

/* Writes first[0..pre) (which ends in "-f" or "-s"), num as
 * "%03d" prints it, then first[suf..first_len), and a NUL, to out (cap
 * bytes): the name's length, or -1 when it does not fit or is over
 * INSTAR_VMDK_SPLIT_NAME_MAX. */
static int split_compose(const uint8_t *first, size_t first_len, size_t pre, size_t suf,
			 uint32_t num, char *out, size_t cap)
{
	size_t n = 0, digits = 0;
	char d[11];

	do {
		d[digits++] = (char)('0' + num % 10);
		num /= 10;
	} while (num);
	while (digits < 3)
		d[digits++] = '0';
	if (pre + digits + (first_len - suf) + 1 > cap ||
	    pre + digits + (first_len - suf) > INSTAR_VMDK_SPLIT_NAME_MAX)
		return -1;
	for (size_t i = 0; i < pre; i++)
		out[n++] = (char)first[i];
	while (digits)
		out[n++] = d[--digits];
	for (size_t i = suf; i < first_len; i++)
		out[n++] = (char)first[i];
	out[n] = '\0';
	return (int)n;
}

int instar_vmdk_split_name(const uint8_t *first, size_t first_len, uint32_t idx, char *out,
			   size_t cap)
{
	static const char pat[] = "-f001";
	size_t at = (size_t)-1;

	for (size_t i = 0; i + 5 <= first_len; i++) {
		size_t k = 0;

		while (k < 5 && first[i + k] == (uint8_t)pat[k])
			k++;
		if (k == 5)
			at = i;
	}
	if (at == (size_t)-1 || idx == 0)
		return -1;
	/* the prefix with "-f", the number, the suffix after "001" */
	return split_compose(first, first_len, at + 2, at + 5, idx, out, cap);
}

/* The last "-s" of first followed by a digit: where its digits start (the
 * prefix is what comes before "-s"), and where they end (the suffix). */
static int sparse_split_name(const uint8_t *first, size_t len, size_t *ret_at, size_t *ret_end)
{
	size_t at = (size_t)-1, end;

	for (size_t i = 0; i + 2 < len; i++)
		if (first[i] == '-' && first[i + 1] == 's' && first[i + 2] >= '0' &&
		    first[i + 2] <= '9')
			at = i + 2;
	if (at == (size_t)-1)
		return -1;
	for (end = at; end < len && first[end] >= '0' && first[end] <= '9';)
		end++;
	*ret_at = at;
	*ret_end = end;
	return 0;
}

/* The number the digits d[0..n) stand for when "%03d" prints them so (no
 * other leading zeros), up to INSTAR_VMDK_SPLIT_NUM_MAX; else -1. */
static int64_t sparse_digits(const uint8_t *d, size_t n)
{
	int64_t v = 0;

	if (n < 3 || n > 5 || (n > 3 && d[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (d[i] < '0' || d[i] > '9')
			return -1;
		v = v * 10 + (d[i] - '0');
	}
	return v >= 1 && v <= INSTAR_VMDK_SPLIT_NUM_MAX ? v : -1;
}

int64_t instar_vmdk_sparse_num(const uint8_t *first, size_t first_len, const uint8_t *name,
			       size_t len)
{
	size_t at, end, suf, i;

	if (sparse_split_name(first, first_len, &at, &end) ||
	    sparse_digits(first + at, end - at) < 0)
		return -1;
	suf = first_len - end;
	if (len < at + suf + 3)
		return -1;
	for (i = 0; i < at; i++)
		if (name[i] != first[i])
			return -1;
	for (i = 0; i < suf; i++)
		if (name[len - suf + i] != first[end + i])
			return -1;
	return sparse_digits(name + at, len - suf - at);
}

int instar_vmdk_split_ext_name(const struct instar_vmdk_split *s, const uint8_t *first,
			       size_t first_len, uint32_t idx, char *out, size_t cap)
{
	size_t at, end;

	if (!s->sparse)
		return instar_vmdk_split_name(first, first_len, idx, out, cap);
	if (idx == 0 || idx > s->count || sparse_split_name(first, first_len, &at, &end) ||
	    sparse_digits(first + at, end - at) < 0)
		return -1;
	return split_compose(first, first_len, at, end, s->num[idx - 1], out, cap);
}
