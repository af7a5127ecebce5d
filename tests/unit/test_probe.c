/* tests/unit/test_probe.c — the host format probe against images made by
 * qemu-img (the oracle for format and virtual size), plus hostile headers
 * built in memory. The qemu-img cases skip when qemu-img is missing. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "abi_names.h"
#include "probe.h"
#include "vhd_size.h"

static char tmpdir[] = "/tmp/instar-probe-XXXXXX";
static bool have_qemu_img;

struct probe_buf {
	uint8_t head[INSTAR_PROBE_HEAD_LEN];
	uint8_t tail[INSTAR_PROBE_TAIL_LEN];
	uint8_t extra[INSTAR_PROBE_MAX_WINDOWS][INSTAR_PROBE_MAX_EXTRA];
};

static struct probe_buf pb;

static size_t read_at(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (n <= 0)
			break;
		done += (size_t)n;
	}
	return done;
}

/* What the CLI does: head + tail, then the windows the probe asks for. */
static void probe_file(const char *path, struct instar_probe_info *ret)
{
	struct instar_probe_input in = {0};
	struct stat st;
	int fd = open(path, O_RDONLY);
	unsigned extra = 0;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	in.file_size = (uint64_t)st.st_size;
	in.windows[0].data = pb.head;
	in.windows[0].len = read_at(fd, pb.head, sizeof(pb.head), 0);
	in.nwindows = 1;
	if (in.file_size) {
		uint64_t tl =
		    in.file_size < INSTAR_PROBE_TAIL_LEN ? in.file_size : INSTAR_PROBE_TAIL_LEN;

		in.windows[1].offset = in.file_size - tl;
		in.windows[1].data = pb.tail;
		in.windows[1].len = read_at(fd, pb.tail, tl, in.file_size - tl);
		in.nwindows = 2;
	}
	for (;;) {
		assert_int_equal(instar_probe(&in, ret), 0);
		if (!ret->need_len || in.nwindows >= INSTAR_PROBE_MAX_WINDOWS)
			break;
		struct instar_probe_window *w = &in.windows[in.nwindows++];

		w->offset = ret->need_offset;
		w->data = pb.extra[extra];
		w->len = read_at(fd, pb.extra[extra], ret->need_len, ret->need_offset);
		extra++;
	}
	close(fd);
}

static int run(const char *cmd)
{
	int r = system(cmd);

	return r == -1 ? -1 : WEXITSTATUS(r);
}

static uint64_t qemu_virtual_size(const char *path, const char *fmt)
{
	char cmd[512], line[512];
	unsigned long long v = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "qemu-img info -f %s --output=json '%s'", fmt, path);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, " \"virtual-size\": %llu", &v) == 1)
			break;
	pclose(f);
	return v;
}

struct qcase {
	const char *name;
	const char *fmt; /* qemu-img -f */
	const char *opts;
	const char *size;
	uint32_t want_format;
	const char *want_sub;
	uint32_t want_cluster;
};

static const struct qcase qcases[] = {
    {"a.qcow2", "qcow2", "", "1G", INSTAR_FMT_QCOW2, "", 65536},
    {"v2.qcow2", "qcow2", "-o compat=0.10,cluster_size=4096", "100M", INSTAR_FMT_QCOW2, "", 4096},
    {"big.qcow2", "qcow2", "-o cluster_size=2M", "64T", INSTAR_FMT_QCOW2, "", 2u << 20},
    {"s.vmdk", "vmdk", "", "1G", INSTAR_FMT_VMDK, "monolithicSparse", 65536},
    {"so.vmdk", "vmdk", "-o subformat=streamOptimized", "3G", INSTAR_FMT_VMDK, "streamOptimized",
     65536},
    {"f.vmdk", "vmdk", "-o subformat=monolithicFlat", "10M", INSTAR_FMT_VMDK, "monolithicFlat", 0},
    {"d.vhd", "vpc", "", "1G", INSTAR_FMT_VHD, "dynamic", 2u << 20},
    {"f.vhd", "vpc", "-o subformat=fixed", "10M", INSTAR_FMT_VHD, "fixed", 0},
    {"d.vhdx", "vhdx", "", "1G", INSTAR_FMT_VHDX, "dynamic", 8u << 20},
    {"f.vhdx", "vhdx", "-o subformat=fixed,block_size=1M", "3M", INSTAR_FMT_VHDX, "fixed",
     1u << 20},
    {"b.vhdx", "vhdx", "", "2T", INSTAR_FMT_VHDX, "dynamic", 32u << 20},
    {"d.vdi", "vdi", "", "1G", INSTAR_FMT_VDI, "dynamic", 1u << 20},
    {"s.vdi", "vdi", "-o static=on", "3M", INSTAR_FMT_VDI, "static", 1u << 20},
    {"odd.vdi", "vdi", "", "1000", INSTAR_FMT_VDI, "dynamic", 1u << 20},
    {"r.raw", "raw", "", "1M", INSTAR_FMT_RAW, "", 0},
    {"odd.raw", "raw", "", "1000", INSTAR_FMT_RAW, "", 0},
};

static void test_qemu_images(void **state)
{
	char path[256], cmd[768];

	(void)state;
	if (!have_qemu_img)
		skip();
	for (size_t i = 0; i < sizeof(qcases) / sizeof(qcases[0]); i++) {
		const struct qcase *c = &qcases[i];
		struct instar_probe_info info;
		uint64_t want;

		snprintf(path, sizeof(path), "%s/%s", tmpdir, c->name);
		snprintf(cmd, sizeof(cmd), "qemu-img create -q -f %s %s '%s' %s", c->fmt, c->opts,
			 path, c->size);
		assert_int_equal(run(cmd), 0);
		probe_file(path, &info);
		want = qemu_virtual_size(path, c->fmt);
		if (c->want_format == INSTAR_FMT_RAW)
			want = (want + 511) & ~511ull;
		if (info.format != c->want_format || info.virtual_size != want ||
		    strcmp(info.subformat, c->want_sub) != 0 ||
		    info.cluster_size != c->want_cluster)
			fail_msg(
			    "%s: format %u size %llu sub '%s' cluster %u; want %u %llu '%s' %u",
			    c->name, info.format, (unsigned long long)info.virtual_size,
			    info.subformat, info.cluster_size, c->want_format,
			    (unsigned long long)want, c->want_sub, c->want_cluster);
	}
}

static void test_qcow2_fields(void **state)
{
	char path[256], cmd[768];
	struct instar_probe_info info;

	(void)state;
	if (!have_qemu_img)
		skip();
	snprintf(path, sizeof(path), "%s/base.qcow2", tmpdir);
	snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 '%s' 64M", path);
	assert_int_equal(run(cmd), 0);
	snprintf(path, sizeof(path), "%s/ovl.qcow2", tmpdir);
	snprintf(cmd, sizeof(cmd),
		 "qemu-img create -q -f qcow2 -o compat=0.10 -b base.qcow2 -F qcow2 '%s'", path);
	assert_int_equal(run(cmd), 0);
	probe_file(path, &info);
	assert_int_equal(info.format, INSTAR_FMT_QCOW2);
	assert_int_equal(info.version, 2);
	assert_true(info.has_backing);
	assert_int_equal(info.virtual_size, 64ull << 20);
}

/* ---- in-memory cases: no qemu-img needed ---- */

static uint8_t mem[512 * 1024];

static void probe_mem(uint64_t file_size, size_t head_len, struct instar_probe_info *ret)
{
	struct instar_probe_input in = {0};

	in.file_size = file_size;
	in.windows[0].data = mem;
	in.windows[0].len = head_len;
	in.nwindows = 1;
	assert_int_equal(instar_probe(&in, ret), 0);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void test_empty_and_small(void **state)
{
	struct instar_probe_info info;

	(void)state;
	memset(mem, 0, sizeof(mem));
	probe_mem(0, 0, &info);
	assert_int_equal(info.format, INSTAR_FMT_RAW);
	assert_int_equal(info.virtual_size, 0);

	/* a qcow2 magic in a file too short for the header is qcow2: qemu
	 * reads the first 512 bytes as zeros past the end (qemu-img 7.2 then
	 * fails to open it: "Unsupported cluster size: 2^0") */
	memcpy(mem, "QFI\xfb\0\0\0\3", 8);
	probe_mem(50, 50, &info);
	assert_int_equal(info.format, INSTAR_FMT_QCOW2);
	assert_string_equal(info.driver, "qcow2");
	assert_int_equal(info.virtual_size, 0);

	/* qcow v1 and version 0 */
	memset(mem, 0, 512);
	memcpy(mem, "QFI\xfb\0\0\0\1", 8);
	probe_mem(512, 512, &info);
	assert_int_equal(info.format, INSTAR_FMT_UNKNOWN);
	assert_string_equal(info.other, "qcow");
	memcpy(mem, "QFI\xfb\0\0\0\0", 8);
	probe_mem(512, 512, &info);
	assert_int_equal(info.format, INSTAR_FMT_RAW);
}

static void test_other_formats(void **state)
{
	struct instar_probe_info info;

	(void)state;
	memset(mem, 0, 4096);
	memcpy(mem, "QED\0", 4);
	put_le64(mem + 4, 65536); /* cluster size (and table size 0) */
	put_le64(mem + 16, 1);	  /* a backing file */
	put_le64(mem + 48, 5ull << 30);
	put_le32(mem + 56, 64);
	put_le32(mem + 60, 12);
	memcpy(mem + 64, "base.raw\0xyz", 12);
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.format, INSTAR_FMT_QED);
	assert_null(info.other);
	assert_int_equal(info.virtual_size, 5ull << 30);
	assert_int_equal(info.cluster_size, 65536);
	assert_true(info.has_backing);
	/* the name as qemu takes it: up to the first NUL; a probed format */
	assert_true(info.names_known);
	assert_int_equal(info.backing_len, 8);
	assert_memory_equal(info.backing, "base.raw", 8);
	assert_int_equal(info.backing_fmt_len, 0);
	put_le64(mem + 16, 5); /* "the backing file is raw" */
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.backing_fmt_len, 3);
	assert_memory_equal(info.backing_fmt, "raw", 3);
	/* an empty name is no backing file (qemu-img resizes the image alone) */
	mem[64] = 0;
	probe_mem(4096, 4096, &info);
	assert_true(info.names_known);
	assert_false(info.has_backing);
	assert_int_equal(info.backing_len, 0);
	/* a name qemu cannot read (4 KiB or more): not known, the guest
	 * refuses the header */
	put_le32(mem + 60, 4096);
	probe_mem(4096, 4096, &info);
	assert_false(info.names_known);

	memset(mem, 0, 4096);
	memcpy(mem, "LUKS\xba\xbe\0\1", 8);
	put_be32(mem + 104, 4); /* payload at 2048 */
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.format, INSTAR_FMT_LUKS);
	assert_null(info.other);
	assert_int_equal(info.version, 1);
	assert_int_equal(info.virtual_size, 4096 - 2048);
	/* a file cut inside the 592-byte header has no size, even where the
	 * zeros past its end read as payload offset 0 */
	memset(mem, 0, 4096);
	memcpy(mem, "LUKS\xba\xbe\0\1", 8);
	probe_mem(100, 100, &info);
	assert_int_equal(info.format, INSTAR_FMT_LUKS);
	assert_int_equal(info.virtual_size, INSTAR_PROBE_UNKNOWN);
	probe_mem(592, 592, &info);
	assert_int_equal(info.virtual_size, 1024); /* 592 in whole sectors */

	memset(mem, 0, 4096);
	mem[0x40] = 0x7f;
	mem[0x41] = 0x10;
	mem[0x42] = 0xda;
	mem[0x43] = 0xbe;
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.format, INSTAR_FMT_VDI);
	assert_null(info.other);
	assert_int_equal(info.virtual_size, INSTAR_PROBE_UNKNOWN); /* version 0 */
}

/* A VDI header: the size only when the header is one qemu opens; an odd
 * disk size rounds up to 512 as qemu's open does. */
static void test_vdi(void **state)
{
	struct instar_probe_info info;

	(void)state;
	memset(mem, 0, 4096);
	put_le32(mem + 0x40, 0xbeda107f);
	put_le32(mem + 0x44, 0x00010001);
	put_le32(mem + 0x4c, 2);
	put_le32(mem + 0x168, 512);
	put_le32(mem + 0x178, 1u << 20);
	put_le32(mem + 0x180, 3);
	put_le64(mem + 0x170, 3u << 20);
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.format, INSTAR_FMT_VDI);
	assert_int_equal(info.virtual_size, 3u << 20);
	assert_string_equal(info.subformat, "static");
	assert_int_equal(info.cluster_size, 1u << 20);
	put_le64(mem + 0x170, (2u << 20) + 1);
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.virtual_size, (2u << 20) + 512);
	put_le64(mem + 0x170, (3u << 20) + 1); /* more than the block map holds */
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.virtual_size, INSTAR_PROBE_UNKNOWN);
	put_le64(mem + 0x170, 1u << 20);
	put_le32(mem + 0x178, 4096); /* a block size qemu does not open */
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.virtual_size, INSTAR_PROBE_UNKNOWN);
	put_le32(mem + 0x178, 1u << 20);
	put_le32(mem + 0x180, 0x1fffff80); /* qemu 7.2's most blocks */
	put_le64(mem + 0x170, 1u << 20);
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.virtual_size, 1u << 20);
	put_le32(mem + 0x180, 0x1fffff81); /* one more: qemu refuses it */
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.virtual_size, INSTAR_PROBE_UNKNOWN);
	probe_mem(300, 300, &info); /* the signature, not the whole header */
	assert_int_equal(info.format, INSTAR_FMT_VDI);
	assert_int_equal(info.virtual_size, INSTAR_PROBE_UNKNOWN);
}

static void test_hostile_qcow2(void **state)
{
	struct instar_probe_info info;

	(void)state;
	memset(mem, 0, 4096);
	memcpy(mem, "QFI\xfb", 4);
	put_be32(mem + 4, 3);
	put_be32(mem + 20, 99); /* absurd cluster_bits */
	put_be64(mem + 24, UINT64_MAX);
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.format, INSTAR_FMT_QCOW2);
	assert_int_equal(info.cluster_size, 0);
	assert_int_equal(info.virtual_size, UINT64_MAX); /* the CLI reports it */
}

static void test_hostile_vmdk(void **state)
{
	struct instar_probe_info info;

	(void)state;
	memset(mem, 0, 4096);
	memcpy(mem, "KDMV", 4);
	put_le64(mem + 12, UINT64_MAX);	    /* capacity overflows * 512 */
	put_le64(mem + 20, UINT64_MAX);	    /* grain */
	put_le64(mem + 28, UINT64_MAX / 2); /* descriptor far away */
	put_le64(mem + 36, 20);
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.format, INSTAR_FMT_VMDK);
	assert_int_equal(info.virtual_size, INSTAR_PROBE_UNKNOWN);
	assert_int_equal(info.cluster_size, 0);

	/* descriptor without a closing quote and with a huge extent */
	memset(mem, 0, 4096);
	memcpy(mem, "KDMV", 4);
	put_le64(mem + 12, 2048);
	put_le64(mem + 28, 1);
	put_le64(mem + 36, 1);
	strcpy((char *)mem + 512, "createType=\"monolithicSparse\nRW 99999999999999999999999 X\n");
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.virtual_size, 2048 * 512);
	assert_string_equal(info.subformat, "");

	/* a stream with the GD at the end: the size is the footer's (the
	 * sector before the last), after the end-of-stream marker's check */
	memset(mem, 0, 4096);
	memcpy(mem, "KDMV", 4);
	put_le64(mem + 12, 2048); /* the header's capacity: not what qemu reads */
	put_le64(mem + 56, UINT64_MAX);
	memcpy(mem + 4096 - 1024, "KDMV", 4);
	put_le64(mem + 4096 - 1024 + 12, 4096);
	put_le64(mem + 4096 - 1024 + 56, 3);
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.virtual_size, 4096 * 512);
	mem[4096 - 512 + 12] = 3; /* not an end-of-stream marker */
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.virtual_size, INSTAR_PROBE_UNKNOWN);
	mem[4096 - 512 + 12] = 0;
	probe_mem(4095, 4095, &info); /* not whole sectors */
	assert_int_equal(info.virtual_size, INSTAR_PROBE_UNKNOWN);
	probe_mem(4096, 1024, &info); /* the footer not in a window */
	assert_int_equal(info.virtual_size, INSTAR_PROBE_UNKNOWN);
	memcpy(mem + 4096 - 1024, "KDMW", 4);
	probe_mem(4096, 4096, &info);
	assert_int_equal(info.virtual_size, INSTAR_PROBE_UNKNOWN);

	/* text descriptor: qemu's rule, then extents summed */
	memset(mem, 0, 4096);
	strcpy((char *)mem, "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n"
			    "RW 2048 FLAT \"x-flat.vmdk\" 0\nRW 2048 FLAT \"y-flat.vmdk\" 0\n");
	probe_mem(strlen((char *)mem), strlen((char *)mem), &info);
	assert_int_equal(info.format, INSTAR_FMT_VMDK);
	assert_string_equal(info.subformat, "monolithicFlat");
	assert_int_equal(info.virtual_size, 4096 * 512);
	assert_false(info.data_file); /* two extents: no one flat extent */

	/* qemu's extent rules: RW only, a known type, FLAT with an offset, VMFS
	 * without; one FLAT/VMFS extent is the file the host opens */
	static const struct {
		const char *lines;
		uint64_t size; /* sectors; 0: unknown */
		const char *flat;
	} ext[] = {
	    {"RW 2048 FLAT \"x-flat.vmdk\" 0\n", 2048, "x-flat.vmdk"},
	    {"  RW\t2048   VMFS  \"sub/x-flat.vmdk\"\r\n", 2048, "sub/x-flat.vmdk"},
	    {"RW 2048 FLAT \"x-flat.vmdk\" 0\nRDONLY 4096 FLAT \"y.vmdk\" 0\n", 2048,
	     "x-flat.vmdk"},
	    {"RW 2048 FLAT \"x-flat.vmdk\" 0\nNOACCESS 4096 FLAT \"y.vmdk\" 0\n", 2048,
	     "x-flat.vmdk"},
	    {"RW 2048 FLAT \"x-flat.vmdk\" 0\nRW 4096 ZERO \"z\"\n", 2048, "x-flat.vmdk"},
	    {"RW 2048 FLAT \"x-flat.vmdk\" 0\nRW 0 FLAT \"z\" 0\nRW -5 FLAT \"z\" 0\n", 2048,
	     "x-flat.vmdk"},
	    {"RW 2048 SPARSE \"x-s001.vmdk\"\n", 2048, NULL},
	    {"RW 2048 FLAT \"x-flat.vmdk\"\n", 0, NULL},	 /* FLAT needs an offset */
	    {"RW 2048 VMFS \"x-flat.vmdk\" 0\n", 0, NULL},	 /* VMFS takes none */
	    {"RW 2048 FLAT \"x-flat.vmdk\" -1\n", 0, NULL},	 /* a negative offset */
	    {"RW 2048 VMFS \"x-flat.vmdk\n", 0, NULL},		 /* no closing quote */
	    {"RW 2048 VMFS \"x-flat.vmdk\"\n7\n", 0, NULL},	 /* offset from the next line */
	    {"RW 99999999999999999999 FLAT \"x\" 0\n", 0, NULL}, /* past int64 */
	};
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		memset(mem, 0, 4096);
		snprintf((char *)mem, 4096,
			 "# Disk DescriptorFile\nversion=1\n"
			 "createType=\"monolithicFlat\"\n%s",
			 ext[i].lines);
		probe_mem(strlen((char *)mem), strlen((char *)mem), &info);
		print_message("%s", ext[i].lines);
		assert_int_equal(info.virtual_size,
				 ext[i].size ? ext[i].size * 512 : INSTAR_PROBE_UNKNOWN);
		assert_int_equal(info.data_file, ext[i].flat != NULL);
		if (ext[i].flat) {
			assert_int_equal(info.data_file_len, strlen(ext[i].flat));
			assert_memory_equal(info.data_file_name, ext[i].flat, info.data_file_len);
		}
	}

	/* "# Disk DescriptorFile" without version= is raw for qemu */
	memset(mem, 0, 4096);
	strcpy((char *)mem, "# Disk DescriptorFile\nhello\n");
	probe_mem(strlen((char *)mem), strlen((char *)mem), &info);
	assert_int_equal(info.format, INSTAR_FMT_RAW);
}

/* qemu's vmdk_parent_open: a parentFileNameHint in the 10 KiB at 0x200 (a
 * sparse header) or at 0 (a descriptor file) names the backing file, in
 * format vmdk; the name ends at the next '"'. */
static void test_vmdk_parent(void **state)
{
	static const char *desc = "# Disk DescriptorFile\nversion=1\nCID=12345678\n"
				  "parentCID=abcdef01\ncreateType=\"monolithicSparse\"\n"
				  "parentFileNameHint=\"../base dir/b.vmdk\"\n"
				  "RW 2048 SPARSE \"d.vmdk\"\n";
	struct instar_probe_info info;

	(void)state;
	memset(mem, 0, 65536);
	memcpy(mem, "KDMV", 4);
	put_le32(mem + 4, 1);
	put_le64(mem + 12, 2048);
	put_le64(mem + 20, 128);
	put_le64(mem + 28, 1);
	put_le64(mem + 36, 20);
	strcpy((char *)mem + 512, desc);
	probe_mem(65536, 65536, &info);
	assert_int_equal(info.format, INSTAR_FMT_VMDK);
	assert_true(info.names_known);
	assert_true(info.has_backing);
	assert_int_equal(info.backing_len, 18);
	assert_memory_equal(info.backing, "../base dir/b.vmdk", 18);
	assert_int_equal(info.backing_fmt_len, 4);
	assert_memory_equal(info.backing_fmt, "vmdk", 4);
	/* qemu reads at 0x200 whatever the descriptor offset says */
	put_le64(mem + 28, 30);
	probe_mem(65536, 65536, &info);
	assert_int_equal(info.backing_len, 18);
	/* no closing quote (qemu: EINVAL), an empty name (no backing file) */
	memset(mem + 512, 0, 4096);
	strcpy((char *)mem + 512, "CID=1\nparentCID=ffffffff\nparentFileNameHint=\"b.vmdk\n");
	probe_mem(65536, 65536, &info);
	assert_false(info.has_backing);
	assert_int_equal(info.backing_len, 0);
	strcpy((char *)mem + 512, "CID=1\nparentCID=ffffffff\nparentFileNameHint=\"\"\n");
	probe_mem(65536, 65536, &info);
	assert_false(info.has_backing);
	assert_true(info.names_known);
	/* the 10 KiB not all in the windows: the names are not known */
	probe_mem(65536, 4096, &info);
	assert_false(info.names_known);

	/* a descriptor file (monolithicFlat) with a hint */
	memset(mem, 0, 65536);
	strcpy((char *)mem, "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=abcdef01\n"
			    "createType=\"monolithicFlat\"\nparentFileNameHint=\"p.vmdk\"\n"
			    "RW 2048 FLAT \"d-flat.vmdk\" 0\n");
	probe_mem(strlen((char *)mem), strlen((char *)mem), &info);
	assert_true(info.names_known);
	assert_true(info.data_file);
	assert_int_equal(info.backing_len, 6);
	assert_memory_equal(info.backing, "p.vmdk", 6);
}

static void test_hostile_vhdx(void **state)
{
	struct instar_probe_input in = {0};
	struct instar_probe_info info;
	uint8_t *rt = mem + 192 * 1024;

	(void)state;
	memset(mem, 0, sizeof(mem));
	memcpy(mem, "vhdxfile", 8);
	/* head only: asks for region table 1 */
	probe_mem(sizeof(mem), 65536, &info);
	assert_int_equal(info.format, INSTAR_FMT_VHDX);
	assert_int_equal(info.virtual_size, INSTAR_PROBE_UNKNOWN);
	assert_int_equal(info.need_offset, 192 * 1024);
	assert_int_equal(info.need_len, 65536);

	/* region table with too many entries */
	memcpy(rt, "regi", 4);
	rt[8] = 0xff;
	rt[9] = 0xff;
	probe_mem(sizeof(mem), sizeof(mem), &info);
	assert_int_equal(info.virtual_size, INSTAR_PROBE_UNKNOWN);
	assert_int_equal(info.need_len, 0);

	/* metadata region pointing past the end of the file */
	rt[8] = 1;
	rt[9] = 0;
	memcpy(rt + 16, "\x06\xa2\x7c\x8b\x90\x47\x9a\x4b\xb8\xfe\x57\x5f\x05\x0f\x88\x6e", 16);
	put_le64(rt + 32, UINT64_MAX - 4096);
	rt[40] = 0;
	rt[41] = 0;
	rt[42] = 0x10; /* 1 MiB */
	probe_mem(sizeof(mem), sizeof(mem), &info);
	assert_int_equal(info.virtual_size, INSTAR_PROBE_UNKNOWN);
	assert_int_equal(info.need_len, 0);

	/* too many windows is a caller error */
	in.nwindows = INSTAR_PROBE_MAX_WINDOWS + 1;
	assert_int_equal(instar_probe(&in, &info), -1);
	/* a window past the end of the file as well */
	in.nwindows = 1;
	in.file_size = 10;
	in.windows[0].data = mem;
	in.windows[0].len = 20;
	assert_int_equal(instar_probe(&in, &info), -1);
}

static void test_vhd_tail_footer(void **state)
{
	struct instar_probe_input in = {0};
	struct instar_probe_info info;
	uint8_t tail[1024] = {0};

	(void)state;
	memset(mem, 0, 4096);
	memcpy(tail + 512, "conectix", 8);
	memcpy(tail + 512 + 28, "win ", 4); /* current_size decides */
	put_be64(tail + 512 + 48, 10 << 20);
	put_be32(tail + 512 + 60, 2);
	in.file_size = (10 << 20) + 512;
	in.windows[0] = (struct instar_probe_window){0, mem, 4096};
	in.windows[1] = (struct instar_probe_window){in.file_size - 1024, tail, 1024};
	in.nwindows = 2;
	assert_int_equal(instar_probe(&in, &info), 0);
	assert_int_equal(info.format, INSTAR_FMT_VHD);
	assert_int_equal(info.virtual_size, 10 << 20);
	assert_string_equal(info.subformat, "fixed");
}

/* ---- the VHD size rule (shared/vhd_size.h): hand-built fixed-disk footers,
 * creators and geometries of other products; qemu-img 7.2 is the oracle ---- */

struct vhd_rule_case {
	char creator[4];
	uint64_t cur; /* current_size */
	uint16_t c;
	uint8_t h, s;
	uint64_t want; /* what qemu-img 7.2 reports */
};

#define MIB10 (10ull << 20)
#define CHS20 (20ull * 16 * 63 * 512) /* 10321920 */
#define VPC127_CUR (266338304ull * 512)
#define VPC127_CHS (65535ull * 16 * 254 * 512)

static const struct vhd_rule_case vhd_rule_cases[] = {
    /* CHS creators: the geometry, whatever current_size says */
    {{'v', 'p', 'c', ' '}, MIB10, 20, 16, 63, CHS20},
    {{'v', 's', ' ', ' '}, MIB10, 20, 16, 63, CHS20},
    {{'q', 'e', 'm', 'u'}, MIB10, 20, 16, 63, CHS20},
    {{'x', 'y', 'z', 'w'}, MIB10, 20, 16, 63, CHS20},
    /* disk2vhd's own "d2v\0" is not in qemu 7.2's list ("d2v " is) */
    {{'d', '2', 'v', '\0'}, MIB10, 20, 16, 63, CHS20},
    /* current_size creators (rounded down to 512) */
    {{'w', 'i', 'n', ' '}, MIB10, 20, 16, 63, MIB10},
    {{'q', 'e', 'm', '2'}, MIB10, 20, 16, 63, MIB10},
    {{'d', '2', 'v', ' '}, MIB10, 20, 16, 63, MIB10},
    {{'C', 'T', 'X', 'S'}, MIB10, 20, 16, 63, MIB10},
    {{'t', 'a', 'p', '\0'}, MIB10, 20, 16, 63, MIB10},
    {{'w', 'i', 'n', ' '}, MIB10 + 100, 20, 16, 63, MIB10},
    /* the maximum geometry: current_size for every creator */
    {{'d', '2', 'v', '\0'}, MIB10, 65535, 16, 255, MIB10},
    {{'v', 'p', 'c', ' '}, MIB10, 65535, 16, 255, MIB10},
    {{'v', 's', ' ', ' '}, 200ull << 30, 65535, 16, 255, 200ull << 30},
    /* Virtual PC's 127 GB default (qemu's virtualpc-dynamic sample) */
    {{'v', 'p', 'c', ' '}, VPC127_CUR, 65535, 16, 254, VPC127_CHS},
    {{'w', 'i', 'n', ' '}, VPC127_CUR, 65535, 16, 254, VPC127_CUR},
};

static void vhd_rule_footer(uint8_t *f, const struct vhd_rule_case *c)
{
	uint32_t sum = 0;

	memset(f, 0, 512);
	memcpy(f, "conectix", 8);
	put_be32(f + 8, 2);
	put_be32(f + 12, 0x10000);
	put_be64(f + 16, UINT64_MAX);
	memcpy(f + 28, c->creator, 4);
	put_be64(f + 40, c->cur);
	put_be64(f + 48, c->cur);
	f[56] = (uint8_t)(c->c >> 8);
	f[57] = (uint8_t)c->c;
	f[58] = c->h;
	f[59] = c->s;
	put_be32(f + 60, 2); /* fixed */
	for (int i = 0; i < 512; i++)
		sum += f[i];
	put_be32(f + 64, ~sum);
}

static void test_vhd_size_rule(void **state)
{
	struct instar_probe_input in = {0};
	struct instar_probe_info info;
	uint8_t tail[1024] = {0};
	char path[256];

	(void)state;
	for (size_t i = 0; i < sizeof(vhd_rule_cases) / sizeof(vhd_rule_cases[0]); i++) {
		const struct vhd_rule_case *c = &vhd_rule_cases[i];
		uint64_t fsz = c->want + 512;

		if (fsz < c->cur + 512)
			fsz = c->cur + 512;
		fsz = (fsz + 511) & ~511ull;
		vhd_rule_footer(tail + 512, c);
		assert_true(instar_vhd_virtual_size(tail + 512) == c->want);
		memset(mem, 0, 4096);
		memset(&in, 0, sizeof(in));
		in.file_size = fsz;
		in.windows[0] = (struct instar_probe_window){0, mem, 4096};
		in.windows[1] = (struct instar_probe_window){fsz - 1024, tail, 1024};
		in.nwindows = 2;
		assert_int_equal(instar_probe(&in, &info), 0);
		assert_int_equal(info.format, INSTAR_FMT_VHD);
		if (info.virtual_size != c->want)
			fail_msg("case %zu (%.4s %u/%u/%u): probe says %llu, want %llu", i,
				 c->creator, c->c, c->h, c->s,
				 (unsigned long long)info.virtual_size,
				 (unsigned long long)c->want);
		if (!have_qemu_img)
			continue;
		/* the same footer in a sparse file: qemu-img must agree */
		snprintf(path, sizeof(path), "%s/rule%zu.vhd", tmpdir, i);
		{
			int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);

			assert_true(fd >= 0);
			assert_int_equal(ftruncate(fd, (off_t)(fsz - 512)), 0);
			assert_int_equal(pwrite(fd, tail + 512, 512, (off_t)(fsz - 512)), 512);
			close(fd);
		}
		if (qemu_virtual_size(path, "vpc") != c->want)
			fail_msg("case %zu (%.4s): qemu-img says %llu, the table %llu", i,
				 c->creator, (unsigned long long)qemu_virtual_size(path, "vpc"),
				 (unsigned long long)c->want);
		probe_file(path, &info);
		assert_true(info.virtual_size == c->want);
		unlink(path);
	}
}

/* Every request rounds up by less than INSTAR_VHD_MAX_ROUNDING (one cylinder
 * of 16 heads * 255 sectors), which the host's verify allows; the size read
 * back from the new footer is the size the resize reports. */
static void test_vhd_rounding_bound(void **state)
{
	static const struct vhd_rule_case kinds[] = {
	    {{'v', 'p', 'c', ' '}, MIB10, 20, 16, 63, 0},
	    {{'w', 'i', 'n', ' '}, MIB10, 20, 16, 63, 0},
	    {{'d', '2', 'v', '\0'}, MIB10, 65535, 16, 255, 0},
	    {{'d', '2', 'v', '\0'}, MIB10, 20, 16, 63, 0},
	};
	uint8_t f[512], nf[512];
	uint64_t worst = 0, x = 0x9e3779b97f4a7c15ull;

	(void)state;
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		vhd_rule_footer(f, &kinds[k]);
		for (uint64_t i = 0; i < 200000; i++) {
			struct instar_vhd_chs g;
			uint64_t req, got;

			/* dense below 64 MiB, then spread up to 2040 GiB; and
			 * around every switch of the spec's algorithm */
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			if (i < 70000)
				req = i * 1000 + x % 1000;
			else if (i < 100000)
				req =
				    (65535ull * 16 * 63 - 50000 + (i - 70000) * 3) * 512 + x % 512;
			else
				req = x % (INSTAR_VHD_MAX_SECTORS * 512 + 1);
			assert_int_equal(instar_vhd_resize_size(f, req, &got, &g), 0);
			assert_true(got >= req && got - req < INSTAR_VHD_MAX_ROUNDING);
			if (got - req > worst)
				worst = got - req;
			assert_true(g.cyls <= 65535 && g.heads <= 255 && g.spt <= 255);
			memcpy(nf, f, 512);
			put_be64(nf + 48, got);
			nf[56] = (uint8_t)(g.cyls >> 8);
			nf[57] = (uint8_t)g.cyls;
			nf[58] = (uint8_t)g.heads;
			nf[59] = (uint8_t)g.spt;
			if (instar_vhd_virtual_size(nf) != got)
				fail_msg("%.4s: request %llu -> %llu, read back %llu",
					 kinds[k].creator, (unsigned long long)req,
					 (unsigned long long)got,
					 (unsigned long long)instar_vhd_virtual_size(nf));
		}
	}
	assert_int_equal(instar_vhd_resize_size(f, INSTAR_VHD_MAX_SECTORS * 512 + 1, &x,
						&(struct instar_vhd_chs){0}),
			 -1);
	print_message("vhd: largest round-up %llu bytes (bound %llu)\n", (unsigned long long)worst,
		      (unsigned long long)INSTAR_VHD_MAX_ROUNDING);
}

/* ---- qemu 7.2's rules for the formats instar does not resize ---- */

/* What the probe says for a name (the other formats' drivers, or instar's
 * own format names), checked both ways. */
static void assert_driver(const struct instar_probe_info *info, const char *want, const char *what)
{
	int f = instar_format_from_name(want);

	if (!info->driver || strcmp(info->driver, want) != 0)
		fail_msg("%s: driver %s, want %s", what, info->driver ? info->driver : "(null)",
			 want);
	if (f > 0 ? info->format != (uint32_t)f || info->other
		  : info->format != INSTAR_FMT_UNKNOWN || !info->other ||
			strcmp(info->other, want) != 0)
		fail_msg("%s: format %u other %s for %s", what, info->format,
			 info->other ? info->other : "(null)", want);
}

static void probe_named(uint64_t file_size, const char *name, struct instar_probe_info *ret)
{
	struct instar_probe_input in = {0};

	in.file_size = file_size;
	in.name = name;
	in.windows[0].data = mem;
	in.windows[0].len = file_size < sizeof(mem) ? file_size : sizeof(mem);
	in.nwindows = 1;
	assert_int_equal(instar_probe(&in, ret), 0);
}

static const char cloop_head[] = "#!/bin/sh\n#V2.0 Format\n"
				 "modprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n";

static void mk_bochs(void)
{
	memset(mem, 0, 4096);
	memcpy(mem, "Bochs Virtual HD Image", 22);
	memcpy(mem + 32, "Redolog", 7);
	memcpy(mem + 48, "Growing", 7);
	put_le32(mem + 64, 0x20000);
}

static void test_qemu_rules(void **state)
{
	struct instar_probe_info info;

	(void)state;
	/* cloop: the whole shell header, score 2 */
	memset(mem, 0, 4096);
	memcpy(mem, cloop_head, sizeof(cloop_head) - 1);
	probe_named(4096, "c.img", &info);
	assert_driver(&info, "cloop", "cloop");
	mem[sizeof(cloop_head) - 3] = 'X';
	probe_named(4096, "c.img", &info);
	assert_driver(&info, "raw", "cloop with one byte changed");

	/* dmg: only by name, and a name longer than ".dmg"; beats cloop */
	memset(mem, 0, 4096);
	probe_named(4096, "a.dmg", &info);
	assert_driver(&info, "dmg", "zeros named a.dmg");
	probe_named(4096, ".dmg", &info);
	assert_driver(&info, "raw", "zeros named .dmg");
	probe_named(4096, "a.dmgx", &info);
	assert_driver(&info, "raw", "zeros named a.dmgx");
	probe_named(4096, NULL, &info);
	assert_driver(&info, "raw", "zeros without a name");
	memcpy(mem, cloop_head, sizeof(cloop_head) - 1);
	probe_named(4096, "x.dmg", &info);
	assert_driver(&info, "dmg", "cloop named x.dmg");
	/* a score-100 format named *.dmg is that format */
	memset(mem, 0, 4096);
	memcpy(mem, "QED\0", 4);
	probe_named(4096, "q.dmg", &info);
	assert_driver(&info, "qed", "qed named q.dmg");

	/* bochs: NUL-terminated fields, version 1 or 2 */
	mk_bochs();
	probe_named(4096, NULL, &info);
	assert_driver(&info, "bochs", "bochs");
	put_le32(mem + 64, 0x10000);
	probe_named(4096, NULL, &info);
	assert_driver(&info, "bochs", "bochs v1");
	put_le32(mem + 64, 0x30000);
	probe_named(4096, NULL, &info);
	assert_driver(&info, "raw", "bochs v3");
	mk_bochs();
	mem[22] = 'X';
	probe_named(4096, NULL, &info);
	assert_driver(&info, "raw", "bochs magic without its NUL");
	mk_bochs();
	memcpy(mem + 48, "Undoable", 8);
	probe_named(4096, NULL, &info);
	assert_driver(&info, "raw", "bochs undoable");

	/* parallels: either magic, version 2; its size is nb_sectors */
	memset(mem, 0, 4096);
	memcpy(mem, "WithouFreSpacExt", 16);
	put_le32(mem + 16, 2);
	put_le64(mem + 36, 2048);
	probe_named(4096, NULL, &info);
	assert_driver(&info, "parallels", "parallels");
	assert_int_equal(info.virtual_size, 2048 * 512);
	put_le32(mem + 16, 3);
	probe_named(4096, NULL, &info);
	assert_driver(&info, "raw", "parallels v3");

	/* luks: version 1 only; LUKS2 is raw to qemu 7.2 */
	memset(mem, 0, 4096);
	memcpy(mem, "LUKS\xba\xbe\0\2", 8);
	probe_named(4096, NULL, &info);
	assert_driver(&info, "raw", "LUKS2");

	/* qcow v1 in a file shorter than its header: zeros past the end */
	memset(mem, 0, 4096);
	memcpy(mem, "QFI\xfb\0\0\0\1", 8);
	probe_named(8, NULL, &info);
	assert_driver(&info, "qcow", "8-byte qcow");

	/* ties at 100 in qemu's order: parallels and qed before vdi, vdi
	 * before qcow2, qcow, luks, vmdk, vpc, vhdx, bochs */
	static const struct {
		const char *magic;
		size_t len;
		const char *want;
	} ties[] = {
	    {"WithoutFreeSpace\2\0\0\0", 20, "parallels"},
	    {"QED\0", 4, "qed"},
	    {"QFI\xfb\0\0\0\3", 8, "vdi"},
	    {"QFI\xfb\0\0\0\1", 8, "vdi"},
	    {"LUKS\xba\xbe\0\1", 8, "vdi"},
	    {"KDMV", 4, "vdi"},
	    {"conectix", 8, "vdi"},
	    {"vhdxfile", 8, "vdi"},
	};
	for (size_t i = 0; i < sizeof(ties) / sizeof(ties[0]); i++) {
		memset(mem, 0, 4096);
		memcpy(mem, ties[i].magic, ties[i].len);
		put_le32(mem + 0x40, 0xbeda107f);
		probe_named(4096, NULL, &info);
		assert_driver(&info, ties[i].want, ties[i].magic);
	}
	mk_bochs();
	put_le32(mem + 0x40, 0xbeda107f);
	probe_named(4096, NULL, &info);
	assert_driver(&info, "vdi", "bochs and vdi");

	/* the driver list names every qemu format with a probe */
	{
		size_t n;
		const char *const *names = instar_probe_driver_names(&n);
		static const char *const want[] = {"bochs", "cloop", "dmg",  "parallels",
						   "qcow",  "qed",   "vdi",  "luks",
						   "vmdk",  "vpc",   "vhdx", "qcow2"};

		assert_int_equal(n, sizeof(want) / sizeof(want[0]));
		for (size_t i = 0; i < n; i++) {
			bool found = false;

			for (size_t j = 0; j < n; j++)
				found = found || strcmp(names[j], want[i]) == 0;
			if (!found)
				fail_msg("%s is not in the probe's driver list", want[i]);
		}
	}
}

/* The formats qemu-img 7.2 creates and instar does not resize: the probe
 * names qemu's driver and reads the virtual size qemu-img info reports. */
static void test_qemu_other_images(void **state)
{
	static const struct {
		const char *name, *fmt, *opts;
	} cases[] = {
	    {"o.qcow", "qcow", ""},
	    {"o.qed", "qed", ""},
	    {"o.parallels", "parallels", ""},
	    {"o.luks", "luks", "--object secret,id=s0,data=x -o key-secret=s0,iter-time=10"},
	};
	char path[256], cmd[768];

	(void)state;
	if (!have_qemu_img)
		skip();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct instar_probe_info info;

		snprintf(path, sizeof(path), "%s/%s", tmpdir, cases[i].name);
		snprintf(cmd, sizeof(cmd), "qemu-img create -q -f %s %s '%s' 5M", cases[i].fmt,
			 cases[i].opts, path);
		/* qemu-img times a LUKS key derivation on the thread's CPU clock
		 * and gives up ("Unable to get accurate CPU usage") when a loaded
		 * machine lets that clock stand still: up to five tries. */
		int rc = run(cmd);

		for (int try = 1; rc != 0 && try < 5; try++)
			rc = run(cmd);
		assert_int_equal(rc, 0);
		probe_file(path, &info);
		assert_driver(&info, cases[i].fmt, cases[i].name);
		if (info.virtual_size != qemu_virtual_size(path, cases[i].fmt))
			fail_msg("%s: size %llu, qemu-img says %llu", cases[i].name,
				 (unsigned long long)info.virtual_size,
				 (unsigned long long)qemu_virtual_size(path, cases[i].fmt));
	}
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	have_qemu_img = run("qemu-img --version >/dev/null 2>&1") == 0;
	return 0;
}

static int teardown(void **state)
{
	char cmd[256];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return run(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_qemu_images),
	    cmocka_unit_test(test_qcow2_fields),
	    cmocka_unit_test(test_empty_and_small),
	    cmocka_unit_test(test_other_formats),
	    cmocka_unit_test(test_vdi),
	    cmocka_unit_test(test_hostile_qcow2),
	    cmocka_unit_test(test_hostile_vmdk),
	    cmocka_unit_test(test_vmdk_parent),
	    cmocka_unit_test(test_hostile_vhdx),
	    cmocka_unit_test(test_vhd_tail_footer),
	    cmocka_unit_test(test_vhd_size_rule),
	    cmocka_unit_test(test_vhd_rounding_bound),
	    cmocka_unit_test(test_qemu_rules),
	    cmocka_unit_test(test_qemu_other_images),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
