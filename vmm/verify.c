/* vmm/verify.c — "the guest said OK" is a claim: before the commit the host
 * probes the staged view itself (the same bounded, fuzzed probe that reads
 * headers before the run) and checks the claim against what it asked for.
 * SECURITY.md, "Verify before commit", lists the rules. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "abi_names.h"
#include "probe_read.h"
#include "verify.h"

#define VHD_CYLINDER_MAX (16ull * 255 * 512)
#define VHDX_SECTOR_MAX 4096ull
#define VDI_SECTOR_MAX 511ull /* a request rounds up to 512, as qemu-img create does */
#define VMM_VERIFY_PREALLOC_SLACK (256ull << 20)
/* A plan may round the end of file up to its allocation unit (a qcow2
 * cluster: at most 2 MiB; vhdx aligns to 1 MiB) without writing there. */
#define VMM_VERIFY_ALIGN_SLACK (2ull << 20)

struct view {
	struct vmm_blk *b;
	uint64_t size; /* the final length: the view ends there */
};

static int view_read(void *ctx, uint64_t off, void *buf, size_t len, size_t *ret_n)
{
	const struct view *v = ctx;
	size_t n = off >= v->size ? 0 : v->size - off < len ? (size_t)(v->size - off) : len;

	*ret_n = n;
	return n ? vmm_blk_view_read(v->b, off, buf, n) : 0;
}

static int refuse(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -EPROTO;
}

uint64_t vmm_verify_max_rounding(uint32_t format)
{
	switch (format) {
	case INSTAR_FMT_VHD:
		return VHD_CYLINDER_MAX;
	case INSTAR_FMT_VHDX:
		return VHDX_SECTOR_MAX;
	case INSTAR_FMT_LUKS:
		return 511; /* the payload is sized in 512-byte sectors */
	case INSTAR_FMT_VDI:
		return VDI_SECTOR_MAX;
	default:
		return 0;
	}
}

uint64_t vmm_verify_prealloc_allowance(const struct instar_resize_config *cfg)
{
	uint64_t delta, extra;

	if (cfg->prealloc == INSTAR_PREALLOC_OFF ||
	    cfg->new_virtual_size <= cfg->expected_old_virtual_size)
		return 0;
	delta = cfg->new_virtual_size - cfg->expected_old_virtual_size;
	if (__builtin_add_overflow(delta, vmm_verify_max_rounding(cfg->format), &delta) ||
	    __builtin_add_overflow(delta, delta / 16 + VMM_VERIFY_PREALLOC_SLACK, &extra))
		return UINT64_MAX;
	return extra;
}

/* The names a and b give; a sparse split's first extent name is left to
 * check_split (a shrink inside the first extent renames it). */
static bool names_equal(const struct instar_probe_info *a, const struct instar_probe_info *b)
{
	bool sparse = a->vmdk_split_ok && a->vmdk_split.sparse;

	return a->has_backing == b->has_backing && a->names_known == b->names_known &&
	       a->data_file == b->data_file && a->data_file_raw == b->data_file_raw &&
	       a->backing_len == b->backing_len && a->backing_fmt_len == b->backing_fmt_len &&
	       (sparse || a->data_file_len == b->data_file_len) &&
	       memcmp(a->backing, b->backing, a->backing_len) == 0 &&
	       memcmp(a->backing_fmt, b->backing_fmt, a->backing_fmt_len) == 0 &&
	       (sparse || memcmp(a->data_file_name, b->data_file_name, a->data_file_len) == 0);
}

int vmm_verify_split_target(const struct instar_probe_info *before, uint64_t new_size,
			    uint32_t prealloc, struct instar_vmdk_split *ret)
{
	if (!before->vmdk_split_ok || new_size % 512 || prealloc == INSTAR_PREALLOC_METADATA ||
	    (before->vmdk_split.sparse && prealloc != INSTAR_PREALLOC_OFF))
		return -1;
	return instar_vmdk_split_resize(&before->vmdk_split, new_size / 512, ret);
}

/* A twoGbMaxExtentFlat or twoGbMaxExtentSparse descriptor: the staged
 * extents are exactly the ones the split rule gives for the new size (the
 * host creates, sizes and drops the files by the same rule, vmm/split.c). */
static int check_split(const struct instar_resize_config *cfg,
		       const struct instar_probe_info *before,
		       const struct instar_probe_info *after, uint64_t new_size, char *why,
		       size_t whylen)
{
	struct instar_vmdk_split want;

	if (before->vmdk_split_ok != after->vmdk_split_ok)
		return refuse(why, whylen,
			      "the staged descriptor's extents do not follow the "
			      "twoGbMaxExtent split rule");
	/* a split descriptor whose extents the host has no layout for (it
	 * prepared no extent files): no guest may resize it */
	if (!before->vmdk_split_ok && before->format == INSTAR_FMT_VMDK &&
	    new_size != cfg->expected_old_virtual_size &&
	    (strcmp(before->subformat, "twoGbMaxExtentFlat") == 0 ||
	     strcmp(before->subformat, "twoGbMaxExtentSparse") == 0))
		return refuse(why, whylen,
			      "the host prepared no extent files for this %s descriptor",
			      before->subformat);
	if (!before->vmdk_split_ok)
		return 0;
	if (vmm_verify_split_target(before, new_size, cfg->prealloc, &want) < 0)
		return refuse(why, whylen, "no twoGbMaxExtent split layout holds %llu bytes",
			      (unsigned long long)new_size);
	if (want.sparse) { /* the first name: the rule's (names_equal left it) */
		char first[INSTAR_VMDK_SPLIT_NAME_MAX + 1];
		int n = instar_vmdk_split_ext_name(&want, before->data_file_name,
						   before->data_file_len, 1, first, sizeof(first));

		if (n < 0 || (uint32_t)n != after->data_file_len ||
		    memcmp(first, after->data_file_name, (size_t)n) != 0)
			return refuse(why, whylen,
				      "the staged header names other backing or data files");
	}
	if (!instar_vmdk_split_same(&want, &after->vmdk_split))
		return refuse(why, whylen,
			      "the staged descriptor has %u extents (last %llu sectors), the host "
			      "makes %u (last %llu)",
			      after->vmdk_split.count, (unsigned long long)after->vmdk_split.last,
			      want.count, (unsigned long long)want.last);
	return 0;
}

/* The sizes the guest reported against the ones the host asked for. */
static int check_sizes(const struct instar_resize_config *cfg, const struct instar_resize_result *g,
		       char *why, size_t whylen)
{
	uint64_t req = cfg->new_virtual_size, round = vmm_verify_max_rounding(cfg->format);
	uint32_t action;

	if (g->file_size_before != cfg->file_size)
		return refuse(why, whylen, "it reported a file of %llu bytes, not %llu",
			      (unsigned long long)g->file_size_before,
			      (unsigned long long)cfg->file_size);
	if (g->old_virtual_size != cfg->expected_old_virtual_size)
		return refuse(why, whylen, "it reported an old size of %llu, not %llu",
			      (unsigned long long)g->old_virtual_size,
			      (unsigned long long)cfg->expected_old_virtual_size);
	if (g->new_virtual_size < req || g->new_virtual_size - req > round)
		return refuse(why, whylen, "it reported a new size of %llu for a request of %llu",
			      (unsigned long long)g->new_virtual_size, (unsigned long long)req);
	action = g->new_virtual_size > g->old_virtual_size   ? INSTAR_ACTION_GROW
		 : g->new_virtual_size < g->old_virtual_size ? INSTAR_ACTION_SHRINK
							     : INSTAR_ACTION_NOOP;
	if (g->action != action)
		return refuse(why, whylen, "it reported action %s for %llu -> %llu",
			      instar_action_name(g->action),
			      (unsigned long long)g->old_virtual_size,
			      (unsigned long long)g->new_virtual_size);
	if (action == INSTAR_ACTION_SHRINK && !(cfg->flags & INSTAR_RESIZE_SHRINK_ALLOWED))
		return refuse(why, whylen, "it shrank without --shrink");
	return 0;
}

/* A LUKS container's size is its length rounded up to whole sectors: a
 * --shrink to a size within the last sector shortens the file and leaves the
 * size as it was (qemu sets the length to exactly payload + size). */
static bool shortened_in_sector(const struct instar_resize_config *cfg,
				const struct instar_resize_result *g)
{
	return cfg->format == INSTAR_FMT_LUKS && (cfg->flags & INSTAR_RESIZE_SHRINK_ALLOWED) &&
	       g->action == INSTAR_ACTION_NOOP &&
	       cfg->file_size - g->file_size_after <= vmm_verify_max_rounding(cfg->format);
}

/* A LUKS grow writes nothing (the payload is the disk): the file grows by
 * the size it adds, as qemu sets it; the staged header's size, read back
 * from that length, is checked against the guest's (vmm_verify_resize). */
static uint64_t luks_grow_allowance(const struct instar_resize_config *cfg)
{
	uint64_t old = cfg->expected_old_virtual_size, req = cfg->new_virtual_size;

	if (cfg->format != INSTAR_FMT_LUKS || req <= old)
		return 0;
	return req - old > UINT64_MAX - vmm_verify_max_rounding(cfg->format)
		   ? UINT64_MAX
		   : req - old + vmm_verify_max_rounding(cfg->format);
}

/* The final length against what the staged ops and the request justify. */
int vmm_verify_length(const struct instar_resize_config *cfg, const struct instar_resize_result *g,
		      const struct vmm_blk_staged *s, char *why, size_t whylen)
{
	uint64_t after = g->file_size_after, before = cfg->file_size;
	uint64_t max = (before > s->eof ? before : s->eof) + VMM_VERIFY_ALIGN_SLACK;
	/* The device writes whole sectors: a final length inside the last
	 * sector written (a vmdk descriptor's text) cuts off none of it. */
	uint64_t cover = after > UINT64_MAX - 511 ? UINT64_MAX : (after + 511) & ~(uint64_t)511;
	bool shrinks =
	    g->action == INSTAR_ACTION_SHRINK || (after < before && shortened_in_sector(cfg, g));

	/* A shrink may write inside the old file past its new end (a VHD
	 * footer that commits the new size at the old end of file, then moves). */
	if (cover < s->write_end && (!shrinks || s->write_end > before))
		return refuse(why, whylen,
			      "its final length %llu cuts off its own writes (up to %llu)",
			      (unsigned long long)after, (unsigned long long)s->write_end);
	if (after < before && !shrinks)
		return refuse(why, whylen, "it shortened the file (%llu -> %llu) without a shrink",
			      (unsigned long long)before, (unsigned long long)after);
	if (__builtin_add_overflow(max, vmm_verify_prealloc_allowance(cfg), &max) ||
	    __builtin_add_overflow(max, luks_grow_allowance(cfg), &max))
		max = UINT64_MAX;
	if (after > max)
		return refuse(why, whylen,
			      "its final length %llu is past anything it wrote or preallocated "
			      "(%llu)",
			      (unsigned long long)after, (unsigned long long)max);
	return 0;
}

int vmm_verify_resize(struct vmm_blk *b, const struct instar_resize_config *cfg,
		      const struct instar_probe_info *before, const struct instar_resize_result *g,
		      char *why, size_t whylen)
{
	struct instar_probe_info after;
	struct vmm_blk_staged s;
	struct view v = {b, g->file_size_after};
	int r;

	r = check_sizes(cfg, g, why, whylen);
	if (r)
		return r;
	vmm_blk_staged(b, &s);
	r = vmm_verify_length(cfg, g, &s, why, whylen);
	if (r)
		return r;
	r = vmm_probe_read(view_read, &v, g->file_size_after, &after);
	if (r)
		return refuse(why, whylen, "reading the staged image failed: %s", strerror(-r));
	if (after.format != cfg->format)
		return refuse(why, whylen, "the staged image is %s, not %s",
			      after.other ? after.other : instar_format_name(after.format),
			      instar_format_name(cfg->format));
	if (after.virtual_size != g->new_virtual_size)
		return refuse(why, whylen, "the staged header says %llu bytes, the guest %llu",
			      (unsigned long long)after.virtual_size,
			      (unsigned long long)g->new_virtual_size);
	if (after.version != before->version || after.cluster_size != before->cluster_size ||
	    strcmp(after.subformat, before->subformat) != 0)
		return refuse(why, whylen, "the staged header changed the image's kind");
	if (after.encrypted != before->encrypted)
		return refuse(why, whylen, "the staged header changed the image's encryption");
	if (!names_equal(before, &after))
		return refuse(why, whylen, "the staged header names other backing or data files");
	return check_split(cfg, before, &after, g->new_virtual_size, why, whylen);
}
