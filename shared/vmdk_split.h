/* shared/vmdk_split.h — the twoGbMaxExtentFlat and twoGbMaxExtentSparse
 * rules, in one place: which extents a descriptor file split into extents
 * has after a resize, what each one is called, and (sparse) what a new
 * extent file holds. The host probe (shared/probe.c, to check what the
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
 * extents are filled in order, the last one holds the rest.
 *
 * A sparse split (twoGbMaxExtentSparse, docs/formats.md §2.3b) is a list of
 * hosted sparse extents PREFIX-s001.vmdk, ... whose sizes qemu takes from
 * each extent's own header, so no extent kept is ever changed: a grow keeps
 * every extent and appends new ones of split sectors (the largest extent
 * when there are several, else 2 GiB), the last holding the rest; a shrink
 * drops whole extents, and one that ends inside an extent replaces that
 * extent with a copy under the next free number (the host copies the file
 * and sets the copy's capacity). Its layout is the list ext[] (sectors of
 * each extent) and num[] (the number in each file's name, -s%03d: strictly
 * increasing, 1..INSTAR_VMDK_SPLIT_NUM_MAX; qemu's and VMware's are 1, 2,
 * ...); split and last are as above. */
#ifndef INSTAR_VMDK_SPLIT_H
#define INSTAR_VMDK_SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INSTAR_VMDK_SPLIT_SECTORS 4194304ull /* qemu's extent: 2 GiB */
#define INSTAR_VMDK_SPLIT_MAX_EXTENTS 1024u  /* 2 TiB of 2 GiB extents */
#define INSTAR_VMDK_SPLIT_NAME_MAX 511u	     /* qemu's longest extent name */
#define INSTAR_VMDK_SPLIT_NUM_MAX 99999u     /* the largest number in a name */

struct instar_vmdk_split {
	uint64_t split; /* flat: sectors of every extent but the last;
			   sparse: of each extent a grow appends */
	uint32_t count; /* extents, 1..INSTAR_VMDK_SPLIT_MAX_EXTENTS */
	uint64_t last;	/* sectors of the last extent, 1..split (flat) */
	bool sparse;	/* twoGbMaxExtentSparse: ext[] is the layout */
	uint32_t ext[INSTAR_VMDK_SPLIT_MAX_EXTENTS]; /* sparse: each extent's
							sectors, 1..2 GiB */
	uint32_t num[INSTAR_VMDK_SPLIT_MAX_EXTENTS]; /* sparse: each file's
							number */
};

/* 0 when s is a split the rule accepts, else -1. */
int instar_vmdk_split_valid(const struct instar_vmdk_split *s);

/* Makes s the sparse split of its first n extents, whose sizes and numbers
 * s->ext and s->num hold: 0, or -1 when they are not one the rule accepts. */
int instar_vmdk_split_sparse(struct instar_vmdk_split *s, uint32_t n);

/* The split of an image of new_sectors sectors that was old: 0, or -1 when
 * old is not valid, new_sectors is 0 or needs more than
 * INSTAR_VMDK_SPLIT_MAX_EXTENTS extents (or, sparse, a number past
 * INSTAR_VMDK_SPLIT_NUM_MAX). */
int instar_vmdk_split_resize(const struct instar_vmdk_split *old, uint64_t new_sectors,
			     struct instar_vmdk_split *ret);

/* Sectors of extent idx (1-based) of s; 0 past its end. */
uint64_t instar_vmdk_split_extent_sectors(const struct instar_vmdk_split *s, uint32_t idx);

/* Sectors of the whole disk s describes. */
uint64_t instar_vmdk_split_total(const struct instar_vmdk_split *s);

/* A sparse shrink that ends inside an extent: the index (1-based) of the
 * extent of ret that is a copy of old's extent of the same index with fewer
 * sectors (its number differs), else 0. */
uint32_t instar_vmdk_split_cut(const struct instar_vmdk_split *old,
			       const struct instar_vmdk_split *ret);

/* Whether a and b are the same layout. */
bool instar_vmdk_split_same(const struct instar_vmdk_split *a, const struct instar_vmdk_split *b);

/* The name of flat extent idx (1-based) when the first is called first
 * (first_len bytes): first's last "-f001" becomes "-f" and idx in at least
 * three digits (qemu's "%s-f%03d%s"). Writes the name and a NUL to out (cap
 * bytes) and returns its length, or -1 when first has no "-f001" or the
 * name would not fit (or be over INSTAR_VMDK_SPLIT_NAME_MAX). */
int instar_vmdk_split_name(const uint8_t *first, size_t first_len, uint32_t idx, char *out,
			   size_t cap);

/* Sparse names: the number in name (len bytes) when it is first's name
 * with another number (first: PREFIX-sDIGITS SUFFIX, its last "-s" followed
 * by digits; the digits as "%03d" prints them, the suffix not starting with
 * a digit), else -1. With name == first: first's own number. */
int64_t instar_vmdk_sparse_num(const uint8_t *first, size_t first_len, const uint8_t *name,
			       size_t len);

/* The name of extent idx (1-based) of s: flat, instar_vmdk_split_name();
 * sparse, first's name with s->num[idx - 1]. Writes it and a NUL to
 * out (cap bytes): its length, or -1 (as instar_vmdk_split_name). */
int instar_vmdk_split_ext_name(const struct instar_vmdk_split *s, const uint8_t *first,
			       size_t first_len, uint32_t idx, char *out, size_t cap);

/* A new hosted sparse extent of a sparse split, as qemu 7.2's
 * vmdk_init_extent writes one (docs/formats.md §2.3b): the header sector,
 * the grain directory (both copies hold the same table: the GTs after each
 * copy), where each goes, and the file's length. Every grain table is
 * zeros, so the file is only these three writes over a hole. */
struct instar_vmdk_sparse_extent {
	uint8_t header[512];
	uint8_t rgd[512]; /* written at rgd_at */
	uint8_t gd[512];  /* written at gd_at */
	uint64_t rgd_at, gd_at, file_len;
};

/* Fills e for an extent of sectors sectors (1..2 GiB): 0, or -1. */
int instar_vmdk_sparse_extent(uint64_t sectors, struct instar_vmdk_sparse_extent *e);

#endif
