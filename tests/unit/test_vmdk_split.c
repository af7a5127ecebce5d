/* tests/unit/test_vmdk_split.c — the twoGbMaxExtentFlat rule
 * (shared/vmdk_split.c): layouts and names; the probe's reading of a
 * descriptor's extents by it (shared/probe.c); and the host's check of a
 * staged descriptor against it (vmm/verify.c): a guest that names another
 * file, or other sizes, is refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "abi.h"
#include "probe_read.h"
#include "verify.h"
#include "virtio_blk.h"
#include "vmdk_split.h"

#define S2G INSTAR_VMDK_SPLIT_SECTORS
#define FLAT(s, c, l) ((struct instar_vmdk_split){.split = (s), .count = (c), .last = (l)})

static void test_resize(void **state)
{
	struct instar_vmdk_split old = FLAT(S2G, 1, 2048), r;

	(void)state;
	/* 1M -> 3G: the first extent fills, a second of 1G */
	assert_int_equal(instar_vmdk_split_resize(&old, 3 * S2G / 2, &r), 0);
	assert_int_equal(r.count, 2);
	assert_int_equal(r.split, S2G);
	assert_int_equal(r.last, S2G / 2);
	/* exactly 2G: one full extent, no empty one after it */
	assert_int_equal(instar_vmdk_split_resize(&old, S2G, &r), 0);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.last, S2G);
	/* 2G + 1M */
	assert_int_equal(instar_vmdk_split_resize(&old, S2G + 2048, &r), 0);
	assert_int_equal(r.count, 2);
	assert_int_equal(r.last, 2048);
	/* 5G -> 1M: one extent left */
	old = FLAT(S2G, 3, S2G / 2);
	assert_int_equal(instar_vmdk_split_resize(&old, 2048, &r), 0);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.last, 2048);
	assert_int_equal(instar_vmdk_split_extent_sectors(&old, 1), S2G);
	assert_int_equal(instar_vmdk_split_extent_sectors(&old, 3), S2G / 2);
	assert_int_equal(instar_vmdk_split_extent_sectors(&old, 4), 0);
	assert_int_equal(instar_vmdk_split_extent_sectors(&old, 0), 0);
	/* VMware's split keeps its size */
	old = FLAT(4192256, 2, 100);
	assert_int_equal(instar_vmdk_split_resize(&old, 4192256ull * 3 + 1, &r), 0);
	assert_int_equal(r.count, 4);
	assert_int_equal(r.split, 4192256);
	assert_int_equal(r.last, 1);
	/* refusals: 0 sectors, too many extents, invalid layouts */
	assert_int_equal(instar_vmdk_split_resize(&old, 0, &r), -1);
	assert_int_equal(instar_vmdk_split_resize(&old, 4192256ull * 1024 + 1, &r), -1);
	assert_int_equal(instar_vmdk_split_resize(&old, 4192256ull * 1024, &r), 0);
	assert_int_equal(r.count, 1024);
	old = FLAT(S2G + 1, 1, 1);
	assert_int_equal(instar_vmdk_split_valid(&old), -1);
	old = FLAT(S2G, 2, S2G + 1);
	assert_int_equal(instar_vmdk_split_valid(&old), -1);
	old = FLAT(S2G, 2, 0);
	assert_int_equal(instar_vmdk_split_valid(&old), -1);
	old = FLAT(S2G, 0, 1);
	assert_int_equal(instar_vmdk_split_valid(&old), -1);
}

static void name_is(const char *first, uint32_t idx, const char *want)
{
	char out[INSTAR_VMDK_SPLIT_NAME_MAX + 1];
	int n =
	    instar_vmdk_split_name((const uint8_t *)first, strlen(first), idx, out, sizeof(out));

	if (!want) {
		assert_int_equal(n, -1);
		return;
	}
	assert_int_equal(n, (int)strlen(want));
	assert_string_equal(out, want);
}

static void test_names(void **state)
{
	char big[600];

	(void)state;
	name_is("d-f001.vmdk", 1, "d-f001.vmdk");
	name_is("d-f001.vmdk", 2, "d-f002.vmdk");
	name_is("d-f001.vmdk", 10, "d-f010.vmdk");
	name_is("d-f001.vmdk", 1000, "d-f1000.vmdk"); /* qemu's %03d */
	name_is("sub/disk-f001", 3, "sub/disk-f003");
	/* the last -f001 is the counter */
	name_is("a-f001-f001.vmdk", 2, "a-f001-f002.vmdk");
	name_is("d-flat.vmdk", 2, NULL);
	name_is("d-f002.vmdk", 2, NULL);
	name_is("d-f001.vmdk", 0, NULL);
	memset(big, 'x', sizeof(big));
	/* a name over qemu's 511 bytes, or over the buffer */
	memcpy(big + 502, "-f001.vmdk", 11);
	name_is(big, 2, NULL);
	big[500] = 0;
	name_is(big + 490, 2, NULL);
	memcpy(big + 490, "-f001", 6);
	name_is(big + 480, 2, "xxxxxxxxxx-f002");
	assert_int_equal(instar_vmdk_split_name((const uint8_t *)big + 480, 15, 2, big, 15), -1);
}

static const char *const desc_head = "# Disk DescriptorFile\nversion=1\nCID=12345678\n"
				     "parentCID=ffffffff\ncreateType=\"twoGbMaxExtentFlat\"\n"
				     "# Extent description\n";
static const char *const desc_tail = "\nddb.geometry.cylinders = \"10402\"\n"
				     "ddb.geometry.heads = \"16\"\nddb.geometry.sectors = \"63\"\n";

static const char *const sparse_head = "# Disk DescriptorFile\nversion=1\nCID=12345678\n"
				       "parentCID=ffffffff\ncreateType=\"twoGbMaxExtentSparse\"\n"
				       "# Extent description\n";
/* the descriptor head desc_file writes, and the old extents verify_text
 * checks a staged text against */
static const char *cur_head;
static const char *cur_before;

/* A descriptor with the given extent lines, NUL-padded to 1024 bytes, in a
 * temp file (fd). */
static int desc_file(const char *extents, uint8_t *buf)
{
	char path[64];
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int fd;

	memset(buf, 0, 1024);
	snprintf((char *)buf, 1024, "%s%s%s", cur_head, extents, desc_tail);
	snprintf(path, sizeof(path), "%s/instar-split-XXXXXX", dir);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(pwrite(fd, buf, 1024, 0), 1024);
	return fd;
}

static void probe_text(const char *extents, struct instar_probe_info *info)
{
	uint8_t buf[1024];
	int fd = desc_file(extents, buf);

	assert_int_equal(vmm_probe_fd(fd, 1024, info), 0);
	close(fd);
	assert_int_equal(info->format, INSTAR_FMT_VMDK);
}

static const char *const three = "RW 4194304 FLAT \"d-f001.vmdk\" 0\n"
				 "RW 4194304 FLAT \"d-f002.vmdk\" 0\n"
				 "RW 2097152 FLAT \"d-f003.vmdk\" 0\n";
/* 5G in sparse extents of 1G, 2G, 2G (a grown 1G image) */
static const char *const three_sparse = "RW 2097152 SPARSE \"d-s001.vmdk\"\n"
					"RW 4194304 SPARSE \"d-s002.vmdk\"\n"
					"RW 4194304 SPARSE \"d-s003.vmdk\"\n";

static void test_probe(void **state)
{
	struct instar_probe_info info;

	(void)state;
	probe_text(three, &info);
	assert_true(info.vmdk_split_ok);
	assert_false(info.data_file);
	assert_int_equal(info.vmdk_split.count, 3);
	assert_int_equal(info.vmdk_split.split, S2G);
	assert_int_equal(info.vmdk_split.last, S2G / 2);
	assert_int_equal(info.virtual_size, 5ull << 30);
	assert_int_equal(info.data_file_len, 11);
	assert_memory_equal(info.data_file_name, "d-f001.vmdk", 11);
	/* one extent: qemu's 2 GiB split */
	probe_text("RW 2048 FLAT \"x-f001.vmdk\" 0\n", &info);
	assert_true(info.vmdk_split_ok);
	assert_int_equal(info.vmdk_split.split, S2G);
	assert_int_equal(info.vmdk_split.count, 1);
	/* off the rule: names, sizes, offsets, types */
	probe_text("RW 4194304 FLAT \"d-f001.vmdk\" 0\nRW 1 FLAT \"e-f002.vmdk\" 0\n", &info);
	assert_false(info.vmdk_split_ok);
	assert_int_equal(info.data_file_len, 0);
	probe_text("RW 4194304 FLAT \"d-f001.vmdk\" 0\nRW 1 FLAT \"d-f003.vmdk\" 0\n", &info);
	assert_false(info.vmdk_split_ok);
	probe_text("RW 4194300 FLAT \"d-f001.vmdk\" 0\nRW 4194304 FLAT \"d-f002.vmdk\" 0\n", &info);
	assert_false(info.vmdk_split_ok);
	probe_text("RW 4194304 FLAT \"d-f001.vmdk\" 0\nRW 1 FLAT \"d-f002.vmdk\" 7\n", &info);
	assert_false(info.vmdk_split_ok);
	probe_text("RW 4194304 FLAT \"d-f001.vmdk\" 0\nRW 1 VMFS \"d-f002.vmdk\"\n", &info);
	assert_false(info.vmdk_split_ok);
	probe_text("RW 4194305 FLAT \"d-f001.vmdk\" 0\n", &info);
	assert_false(info.vmdk_split_ok);
}

/* verify: before is the probe of the 5G descriptor above; the "staged"
 * view is a file holding the guest's new text. */
static int verify_text(const char *extents, uint64_t new_size, uint32_t flags, char *why,
		       size_t whylen)
{
	static uint8_t ram[1 << 20];
	struct vmm_guestmem mem = {.host = ram, .size = sizeof(ram)};
	struct instar_probe_info before;
	struct vmm_blk_opts o;
	struct vmm_blk *b;
	uint8_t buf[1024];
	int fd = desc_file(extents, buf), r;
	uint64_t old = 5ull << 30;
	struct instar_resize_config cfg = {.magic = INSTAR_RESIZE_MAGIC,
					   .abi_version = INSTAR_ABI_VERSION,
					   .format = INSTAR_FMT_VMDK,
					   .flags = flags,
					   .expected_old_virtual_size = old,
					   .new_virtual_size = new_size,
					   .file_size = 1024};
	struct instar_resize_result g = {.error = INSTAR_OK,
					 .action = new_size > old   ? INSTAR_ACTION_GROW
						   : new_size < old ? INSTAR_ACTION_SHRINK
								    : INSTAR_ACTION_NOOP,
					 .old_virtual_size = old,
					 .new_virtual_size = new_size,
					 .file_size_before = 1024,
					 .file_size_after = 1024};

	probe_text(cur_before, &before);
	o = (struct vmm_blk_opts){.fd = fd, .file_size = 1024, .capacity_bytes = 1u << 20};
	assert_int_equal(vmm_blk_create(&b, &mem, &o), 0);
	why[0] = 0;
	r = vmm_verify_resize(b, &cfg, &before, &g, why, whylen);
	vmm_blk_destroy(b);
	close(fd);
	return r;
}

static void refused(int r, const char *why, const char *want)
{
	if (r != -EPROTO || !strstr(why, want))
		fail_msg("got %d, \"%s\"; expected -EPROTO, \"%s\"", r, why, want);
}

static void test_verify(void **state)
{
	const uint32_t shrink = INSTAR_RESIZE_SHRINK_ALLOWED;
	char why[256];

	(void)state;
	/* honest: 5G -> 7G (f003 grows to 2G, f004 of 1G) and 5G -> 1M */
	assert_int_equal(verify_text("RW 4194304 FLAT \"d-f001.vmdk\" 0\n"
				     "RW 4194304 FLAT \"d-f002.vmdk\" 0\n"
				     "RW 4194304 FLAT \"d-f003.vmdk\" 0\n"
				     "RW 2097152 FLAT \"d-f004.vmdk\" 0\n",
				     7ull << 30, 0, why, sizeof(why)),
			 0);
	assert_int_equal(
	    verify_text("RW 2048 FLAT \"d-f001.vmdk\" 0\n", 1u << 20, shrink, why, sizeof(why)), 0);
	/* the right size in other extents: 7G as 2G + 2G + 1G + 2G */
	refused(verify_text("RW 4194304 FLAT \"d-f001.vmdk\" 0\n"
			    "RW 4194304 FLAT \"d-f002.vmdk\" 0\n"
			    "RW 2097152 FLAT \"d-f003.vmdk\" 0\n"
			    "RW 4194304 FLAT \"d-f004.vmdk\" 0\n",
			    7ull << 30, 0, why, sizeof(why)),
		why, "names other backing or data files");
	/* one extent too many, each of the rule's size: 7G as 1G extents */
	refused(verify_text("RW 2097152 FLAT \"d-f001.vmdk\" 0\n"
			    "RW 2097152 FLAT \"d-f002.vmdk\" 0\n"
			    "RW 2097152 FLAT \"d-f003.vmdk\" 0\n"
			    "RW 2097152 FLAT \"d-f004.vmdk\" 0\n"
			    "RW 2097152 FLAT \"d-f005.vmdk\" 0\n"
			    "RW 2097152 FLAT \"d-f006.vmdk\" 0\n"
			    "RW 2097152 FLAT \"d-f007.vmdk\" 0\n",
			    7ull << 30, 0, why, sizeof(why)),
		why, "the staged descriptor has 7 extents");
	/* another file for a new extent */
	refused(verify_text("RW 4194304 FLAT \"d-f001.vmdk\" 0\n"
			    "RW 4194304 FLAT \"d-f002.vmdk\" 0\n"
			    "RW 4194304 FLAT \"d-f003.vmdk\" 0\n"
			    "RW 2097152 FLAT \"../etc-f004.vmdk\" 0\n",
			    7ull << 30, 0, why, sizeof(why)),
		why, "names other backing or data files");
	/* every name moved: the first one differs from the host's */
	refused(verify_text("RW 4194304 FLAT \"../x-f001.vmdk\" 0\n"
			    "RW 4194304 FLAT \"../x-f002.vmdk\" 0\n"
			    "RW 4194304 FLAT \"../x-f003.vmdk\" 0\n"
			    "RW 2097152 FLAT \"../x-f004.vmdk\" 0\n",
			    7ull << 30, 0, why, sizeof(why)),
		why, "names other backing or data files");
	/* a shrink that keeps the dropped extents named (as zero-length is
	 * impossible, as a different split) */
	refused(verify_text("RW 1024 FLAT \"d-f001.vmdk\" 0\nRW 1024 FLAT \"d-f002.vmdk\" 0\n",
			    1u << 20, shrink, why, sizeof(why)),
		why, "the staged descriptor has 2 extents");
	/* one sector is a layout too */
	assert_int_equal(
	    verify_text("RW 1 FLAT \"d-f001.vmdk\" 0\n", 512, shrink, why, sizeof(why)), 0);
}

static void test_sparse_rule(void **state)
{
	struct instar_vmdk_split old = {0}, r;

	(void)state;
	/* qemu-img's 3G: 2G + 1G; a grow appends, the 1G extent stays */
	old.ext[0] = S2G;
	old.ext[1] = S2G / 2;
	old.num[0] = 1;
	old.num[1] = 2;
	assert_int_equal(instar_vmdk_split_sparse(&old, 2), 0);
	assert_true(old.sparse);
	assert_int_equal(old.split, S2G);
	assert_int_equal(old.last, S2G / 2);
	assert_int_equal(instar_vmdk_split_total(&old), 3 * S2G / 2);
	assert_int_equal(instar_vmdk_split_resize(&old, 3 * S2G + 8, &r), 0);
	assert_int_equal(r.count, 4);
	assert_int_equal(instar_vmdk_split_extent_sectors(&r, 2), S2G / 2);
	assert_int_equal(instar_vmdk_split_extent_sectors(&r, 3), S2G);
	assert_int_equal(instar_vmdk_split_extent_sectors(&r, 4), S2G / 2 + 8);
	assert_int_equal(instar_vmdk_split_extent_sectors(&r, 5), 0);
	assert_int_equal(instar_vmdk_split_total(&r), 3 * S2G + 8);
	assert_int_equal(r.num[2], 3);
	assert_int_equal(r.num[3], 4);
	assert_int_equal(instar_vmdk_split_cut(&old, &r), 0);
	/* a shrink to where an extent ends drops the rest */
	assert_int_equal(instar_vmdk_split_resize(&r, 3 * S2G / 2, &old), 0);
	assert_int_equal(old.count, 2);
	assert_int_equal(old.num[1], 2);
	assert_int_equal(instar_vmdk_split_cut(&r, &old), 0);
	assert_int_equal(instar_vmdk_split_resize(&r, S2G, &old), 0);
	assert_int_equal(old.count, 1);
	assert_int_equal(old.split, S2G);
	/* one inside an extent: that extent becomes a copy under the next
	 * number (after 4, the highest), shorter */
	assert_int_equal(instar_vmdk_split_resize(&r, S2G - 1, &old), 0);
	assert_int_equal(old.count, 1);
	assert_int_equal(old.ext[0], S2G - 1);
	assert_int_equal(old.num[0], 5);
	assert_int_equal(instar_vmdk_split_cut(&r, &old), 1);
	assert_int_equal(instar_vmdk_split_resize(&r, 2 * S2G, &old), 0);
	assert_int_equal(old.count, 3);
	assert_int_equal(old.ext[2], S2G / 2);
	assert_int_equal(old.num[1], 2);
	assert_int_equal(old.num[2], 5);
	assert_int_equal(instar_vmdk_split_cut(&r, &old), 3);
	assert_int_equal(instar_vmdk_split_resize(&r, 0, &old), -1);
	/* numbers end at 99999 */
	r.num[3] = INSTAR_VMDK_SPLIT_NUM_MAX;
	assert_int_equal(instar_vmdk_split_valid(&r), 0);
	assert_int_equal(instar_vmdk_split_resize(&r, 2 * S2G, &old), -1);
	assert_int_equal(instar_vmdk_split_resize(&r, 4 * S2G, &old), -1);
	r.num[3] = 3;
	assert_int_equal(instar_vmdk_split_valid(&r), -1); /* not increasing */
	/* VMware's extents (2047 MiB) set the split of what is appended */
	old = (struct instar_vmdk_split){0};
	old.ext[0] = 4192256;
	old.ext[1] = 100;
	old.num[0] = 1;
	old.num[1] = 2;
	assert_int_equal(instar_vmdk_split_sparse(&old, 2), 0);
	assert_int_equal(old.split, 4192256);
	assert_int_equal(instar_vmdk_split_resize(&old, 4192356ull + 4192256 + 1, &r), 0);
	assert_int_equal(r.count, 4);
	assert_int_equal(instar_vmdk_split_extent_sectors(&r, 3), 4192256);
	assert_int_equal(instar_vmdk_split_extent_sectors(&r, 4), 1);
	/* at most 1024 extents */
	assert_int_equal(instar_vmdk_split_resize(&old, 4192356ull + 4192256ull * 1022, &r), 0);
	assert_int_equal(r.count, 1024);
	assert_int_equal(instar_vmdk_split_resize(&old, 4192356ull + 4192256ull * 1022 + 1, &r),
			 -1);
	/* invalid: an extent of 0 or over 2 GiB */
	old.ext[1] = 0;
	assert_int_equal(instar_vmdk_split_sparse(&old, 2), -1);
	old.ext[1] = S2G + 1;
	assert_int_equal(instar_vmdk_split_sparse(&old, 2), -1);
}

static int64_t snum(const char *first, const char *name)
{
	return instar_vmdk_sparse_num((const uint8_t *)first, strlen(first), (const uint8_t *)name,
				      strlen(name));
}

static void test_sparse_names(void **state)
{
	struct instar_vmdk_split l = {0};
	char out[64];

	(void)state;
	assert_int_equal(snum("d-s001.vmdk", "d-s001.vmdk"), 1);
	assert_int_equal(snum("d-s001.vmdk", "d-s012.vmdk"), 12);
	assert_int_equal(snum("d-s004.vmdk", "d-s1000.vmdk"), 1000);
	assert_int_equal(snum("d-s001.vmdk", "d-s99999.vmdk"), 99999);
	assert_int_equal(snum("a-s001-s007", "a-s001-s008"), 8); /* the last -s */
	assert_int_equal(snum("sub/x-s001.vmdk", "sub/x-s002.vmdk"), 2);
	/* off the rule: another prefix or suffix, %03d's digits, 0, too big */
	assert_int_equal(snum("d-s001.vmdk", "e-s002.vmdk"), -1);
	assert_int_equal(snum("d-s001.vmdk", "d-s002.vmd"), -1);
	assert_int_equal(snum("d-s001.vmdk", "d-s02.vmdk"), -1);
	assert_int_equal(snum("d-s001.vmdk", "d-s0002.vmdk"), -1);
	assert_int_equal(snum("d-s001.vmdk", "d-s000.vmdk"), -1);
	assert_int_equal(snum("d-s001.vmdk", "d-s100000.vmdk"), -1);
	assert_int_equal(snum("d-s001.vmdk", "d-sx01.vmdk"), -1);
	assert_int_equal(snum("d-f001.vmdk", "d-f002.vmdk"), -1);
	assert_int_equal(snum("d-s01.vmdk", "d-s002.vmdk"), -1);
	/* names of a layout, after the first's */
	l.sparse = true;
	l.count = 2;
	l.num[0] = 3;
	l.num[1] = 1234;
	assert_int_equal(
	    instar_vmdk_split_ext_name(&l, (const uint8_t *)"d-s001.vmdk", 11, 1, out, sizeof(out)),
	    11);
	assert_string_equal(out, "d-s003.vmdk");
	assert_int_equal(
	    instar_vmdk_split_ext_name(&l, (const uint8_t *)"d-s001.vmdk", 11, 2, out, sizeof(out)),
	    12);
	assert_string_equal(out, "d-s1234.vmdk");
	assert_int_equal(
	    instar_vmdk_split_ext_name(&l, (const uint8_t *)"d-s001.vmdk", 11, 3, out, sizeof(out)),
	    -1);
	assert_int_equal(
	    instar_vmdk_split_ext_name(&l, (const uint8_t *)"d-s001.vmdk", 11, 2, out, 12), -1);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A new extent as qemu-img 7.2 creates one (the compat test twogb_sparse.sh
 * compares the files byte for byte): 2 GiB and 1 MiB. */
static void test_sparse_extent(void **state)
{
	struct instar_vmdk_sparse_extent e;

	(void)state;
	assert_int_equal(instar_vmdk_sparse_extent(S2G, &e), 0);
	assert_memory_equal(e.header, "KDMV\1\0\0\0\3\0\0\0", 12);
	assert_int_equal(e.rgd_at, 21 * 512);
	assert_int_equal(e.gd_at, (21 + 1 + 64 * 4) * 512);
	assert_int_equal(e.file_len, 640 * 512); /* 320 KiB */
	assert_int_equal(le32(e.rgd), 22);
	assert_int_equal(le32(e.rgd + 4 * 63), 22 + 63 * 4);
	assert_int_equal(le32(e.gd), 279);
	assert_int_equal(le32(e.gd + 4 * 63), 279 + 63 * 4);
	assert_int_equal(le32(e.gd + 4 * 64), 0);
	assert_int_equal(le32(e.header + 12), S2G);
	assert_int_equal(instar_vmdk_sparse_extent(2048, &e), 0);
	assert_int_equal(e.file_len, 128 * 512);
	assert_int_equal(e.gd_at, 26 * 512);
	assert_int_equal(instar_vmdk_sparse_extent(0, &e), -1);
	assert_int_equal(instar_vmdk_sparse_extent(S2G + 1, &e), -1);
}

static void test_sparse_probe_verify(void **state)
{
	const uint32_t shrink = INSTAR_RESIZE_SHRINK_ALLOWED;
	struct instar_probe_info info;
	char why[256];

	(void)state;
	cur_head = sparse_head;
	cur_before = three_sparse;
	probe_text(three_sparse, &info);
	assert_true(info.vmdk_split_ok);
	assert_true(info.vmdk_split.sparse);
	assert_int_equal(info.vmdk_split.count, 3);
	assert_int_equal(info.vmdk_split.ext[0], S2G / 2);
	assert_int_equal(info.vmdk_split.num[2], 3);
	assert_int_equal(info.virtual_size, 5ull << 30);
	/* a FLAT line, or a name off the rule: not a sparse split */
	probe_text("RW 2097152 SPARSE \"d-s001.vmdk\"\nRW 8 FLAT \"d-s002.vmdk\" 0\n", &info);
	assert_false(info.vmdk_split_ok);
	probe_text("RW 2097152 SPARSE \"d-s001.vmdk\"\nRW 8 SPARSE \"d-s001.vmdk\"\n", &info);
	assert_false(info.vmdk_split_ok);
	probe_text("RW 2097152 SPARSE \"d-s002.vmdk\"\nRW 8 SPARSE \"d-s001.vmdk\"\n", &info);
	assert_false(info.vmdk_split_ok);
	probe_text("RW 2097152 SPARSE \"d-s001.vmdk\"\nRW 8 SPARSE \"e-s002.vmdk\"\n", &info);
	assert_false(info.vmdk_split_ok);
	/* numbers with gaps (after a shrink inside an extent) */
	probe_text("RW 2097152 SPARSE \"d-s003.vmdk\"\nRW 8 SPARSE \"d-s010.vmdk\"\n", &info);
	assert_true(info.vmdk_split_ok);
	assert_int_equal(info.vmdk_split.num[0], 3);
	assert_int_equal(info.vmdk_split.num[1], 10);
	/* honest: 5G -> 8G appends 2G + 1G; 5G -> 1G drops two */
	assert_int_equal(verify_text("RW 2097152 SPARSE \"d-s001.vmdk\"\n"
				     "RW 4194304 SPARSE \"d-s002.vmdk\"\n"
				     "RW 4194304 SPARSE \"d-s003.vmdk\"\n"
				     "RW 4194304 SPARSE \"d-s004.vmdk\"\n"
				     "RW 2097152 SPARSE \"d-s005.vmdk\"\n",
				     8ull << 30, 0, why, sizeof(why)),
			 0);
	assert_int_equal(verify_text("RW 2097152 SPARSE \"d-s001.vmdk\"\n", 1ull << 30, shrink, why,
				     sizeof(why)),
			 0);
	/* the right size in other extents: an old one grown */
	refused(verify_text("RW 2097152 SPARSE \"d-s001.vmdk\"\n"
			    "RW 4194304 SPARSE \"d-s002.vmdk\"\n"
			    "RW 4194304 SPARSE \"d-s003.vmdk\"\n"
			    "RW 2097152 SPARSE \"d-s004.vmdk\"\n"
			    "RW 4194304 SPARSE \"d-s005.vmdk\"\n",
			    8ull << 30, 0, why, sizeof(why)),
		why, "the staged descriptor has 5 extents");
	/* a shrink inside an extent: its copy under the next number (4) */
	assert_int_equal(verify_text("RW 2097152 SPARSE \"d-s001.vmdk\"\n"
				     "RW 2097152 SPARSE \"d-s004.vmdk\"\n",
				     2ull << 30, shrink, why, sizeof(why)),
			 0);
	refused(verify_text("RW 2097152 SPARSE \"d-s001.vmdk\"\n"
			    "RW 2097152 SPARSE \"d-s002.vmdk\"\n",
			    2ull << 30, shrink, why, sizeof(why)),
		why, "the staged descriptor has 2 extents");
	/* inside the first extent: the first name changes, by the rule only */
	assert_int_equal(
	    verify_text("RW 1024 SPARSE \"d-s004.vmdk\"\n", 512 * 1024, shrink, why, sizeof(why)),
	    0);
	refused(
	    verify_text("RW 1024 SPARSE \"d-s009.vmdk\"\n", 512 * 1024, shrink, why, sizeof(why)),
	    why, "names other backing or data files");
	refused(
	    verify_text("RW 1024 SPARSE \"e-s004.vmdk\"\n", 512 * 1024, shrink, why, sizeof(why)),
	    why, "names other backing or data files");
	/* a flat text staged for a sparse image */
	cur_head = desc_head;
	refused(verify_text("RW 2097152 FLAT \"d-f001.vmdk\" 0\n", 1ull << 30, shrink, why,
			    sizeof(why)),
		why, "names other backing or data files");
	/* createType after the extent lines (qemu reads it anywhere): the same
	 * layouts, flat and sparse */
	cur_head = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n";
	probe_text("RW 2097152 SPARSE \"d-s001.vmdk\"\nRW 8 SPARSE \"d-s002.vmdk\"\n"
		   "createType=\"twoGbMaxExtentSparse\"\n",
		   &info);
	assert_true(info.vmdk_split_ok);
	assert_true(info.vmdk_split.sparse);
	assert_int_equal(info.vmdk_split.num[1], 2);
	probe_text("RW 4194304 FLAT \"d-f001.vmdk\" 0\nRW 8 FLAT \"d-f002.vmdk\" 0\n"
		   "createType=\"twoGbMaxExtentFlat\"\n",
		   &info);
	assert_true(info.vmdk_split_ok);
	assert_false(info.vmdk_split.sparse);
	assert_int_equal(info.vmdk_split.last, 8);
	/* a split descriptor the host has no layout for (a name off the rule):
	 * a guest that resizes it anyway is refused, whatever it names */
	cur_head = sparse_head;
	cur_before = "RW 2097152 SPARSE \"d-s001.vmdk\"\nRW 4194304 SPARSE \"x-s002.vmdk\"\n"
		     "RW 4194304 SPARSE \"d-s003.vmdk\"\n";
	probe_text(cur_before, &info);
	assert_false(info.vmdk_split_ok);
	refused(
	    verify_text("RW 2097152 SPARSE \"d-s001.vmdk\"\nRW 4194304 SPARSE \"x-s002.vmdk\"\n"
			"RW 4194304 SPARSE \"d-s003.vmdk\"\nRW 2097152 SPARSE \"d-s004.vmdk\"\n",
			6ull << 30, 0, why, sizeof(why)),
	    why, "the host prepared no extent files for this twoGbMaxExtentSparse descriptor");
	cur_head = desc_head;
	cur_before = three;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_resize),	  cmocka_unit_test(test_names),
	    cmocka_unit_test(test_probe),	  cmocka_unit_test(test_verify),
	    cmocka_unit_test(test_sparse_rule),	  cmocka_unit_test(test_sparse_names),
	    cmocka_unit_test(test_sparse_extent), cmocka_unit_test(test_sparse_probe_verify),
	};

	cur_head = desc_head;
	cur_before = three;

	return cmocka_run_group_tests(tests, NULL, NULL);
}
