/* shared/vmdk_split.h — the twoGbMaxExtentFlat rule, in one place: which
 * extents a descriptor file split into flat extents has after a resize, and
 * what each one is called. The host probe (shared/probe.c, to check what the
 * guest staged), the host's file handling (vmm/cli_resize.c, to create,
 * size and drop extent files) and the planner (guest/plan/vmdk.c, to write
 * the extent lines) all call it, so they cannot disagree. Freestanding C99.
 *
 * An image's split is (split, count, last): count extents, every one but the
 * last of split sectors, the last of last sectors (1 <= last <= split).
 * qemu-img 7.2 writes extents of 2 GiB (4194304 sectors) named
 * PREFIX-f001.vmdk, PREFIX-f002.vmdk, ... (docs/formats.md §2.3a); split is
 * the first extent's size when there are several, qemu's 2 GiB when there is
 * one, and never more than 2 GiB. A resize to S sectors keeps split: the
 * extents are filled in order, the last one holds the rest. */
#ifndef INSTAR_VMDK_SPLIT_H
#define INSTAR_VMDK_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#define INSTAR_VMDK_SPLIT_SECTORS 4194304ull /* qemu's extent: 2 GiB */
#define INSTAR_VMDK_SPLIT_MAX_EXTENTS 1024u  /* 2 TiB of 2 GiB extents */
#define INSTAR_VMDK_SPLIT_NAME_MAX 511u	     /* qemu's longest extent name */

struct instar_vmdk_split {
	uint64_t split; /* sectors of every extent but the last */
	uint32_t count; /* extents, 1..INSTAR_VMDK_SPLIT_MAX_EXTENTS */
	uint64_t last;	/* sectors of the last extent, 1..split */
};

/* 0 when s is a split the rule accepts, else -1. */
int instar_vmdk_split_valid(const struct instar_vmdk_split *s);

/* The split of an image of new_sectors sectors that was old: 0, or -1 when
 * old is not valid, new_sectors is 0 or needs more than
 * INSTAR_VMDK_SPLIT_MAX_EXTENTS extents. */
int instar_vmdk_split_resize(const struct instar_vmdk_split *old, uint64_t new_sectors,
			     struct instar_vmdk_split *ret);

/* Sectors of extent idx (1-based) of s; 0 past its end. */
uint64_t instar_vmdk_split_extent_sectors(const struct instar_vmdk_split *s, uint32_t idx);

/* The name of extent idx (1-based) when the first is called first
 * (first_len bytes): first's last "-f001" becomes "-f" and idx in at least
 * three digits (qemu's "%s-f%03d%s"). Writes the name and a NUL to out (cap
 * bytes) and returns its length, or -1 when first has no "-f001" or the
 * name would not fit (or be over INSTAR_VMDK_SPLIT_NAME_MAX). */
int instar_vmdk_split_name(const uint8_t *first, size_t first_len, uint32_t idx, char *out,
			   size_t cap);

#endif
