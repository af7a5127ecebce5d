/* tests/unit/test_vmdk_flat_plan.c — the vmdk planner on descriptor files
 * with one flat extent (monolithicFlat as qemu-img writes it, ESXi's vmfs),
 * told the extent's name as the host probe saw it. Every plan is applied to
 * a copy and the host probe reads the result back: the size asked for and
 * the same extent name, which is what the host verifies before a commit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "abi_names.h"
#include "plan.h"
#include "probe.h"

#define MIB (1024ull * 1024)
#define CAP (64u * 1024 + 4096)

static const char qemu_desc[] = "# Disk DescriptorFile\n"
				"version=1\n"
				"CID=b677d11c\n"
				"parentCID=ffffffff\n"
				"createType=\"monolithicFlat\"\n"
				"\n"
				"# Extent description\n"
				"RW 204800 FLAT \"fl-flat.vmdk\" 0\n"
				"\n"
				"# The Disk Data Base\n"
				"#DDB\n"
				"\n"
				"ddb.virtualHWVersion = \"4\"\n"
				"ddb.geometry.cylinders = \"203\"\n"
				"ddb.geometry.heads = \"16\"\n"
				"ddb.geometry.sectors = \"63\"\n"
				"ddb.adapterType = \"ide\"\n"
				"ddb.toolsVersion = \"2147483647\"\n";

/* What ESXi writes beside a -flat.vmdk (createType "vmfs", a VMFS extent
 * without an offset), from VMware's Virtual Disk Format 5.0 description. */
static const char esxi_desc[] = "# Disk DescriptorFile\n"
				"version=1\n"
				"encoding=\"UTF-8\"\n"
				"CID=fffffffe\n"
				"parentCID=ffffffff\n"
				"isNativeSnapshot=\"no\"\n"
				"createType=\"vmfs\"\n"
				"\n"
				"# Extent description\n"
				"RW 2097152 VMFS \"esx-flat.vmdk\"\n"
				"\n"
				"# The Disk Data Base\n"
				"#DDB\n"
				"\n"
				"ddb.adapterType = \"lsilogic\"\n"
				"ddb.geometry.cylinders = \"130\"\n"
				"ddb.geometry.heads = \"255\"\n"
				"ddb.geometry.sectors = \"63\"\n"
				"ddb.longContentID = \"8e1b0a3a0b0c0d0e0f1011121314fffe\"\n"
				"ddb.uuid = \"60 00 C2 9a 3b 4c 5d 6e-7f 80 91 a2 b3 c4 d5 e6\"\n"
				"ddb.virtualHWVersion = \"13\"\n";

struct img {
	uint8_t b[CAP];
	size_t len;
};

struct run {
	struct instar_resize_result res;
	int rc, nwrites;
	struct img out; /* the image with the plan applied */
};

static int img_read(void *ctx, uint64_t off, void *buf, uint32_t len)
{
	const struct img *m = ctx;

	memset(buf, 0, len);
	if (off < m->len)
		memcpy(buf, m->b + off, m->len - off < len ? m->len - off : len);
	return 0;
}

static int apply_sink(void *ctx, const struct plan_op *op)
{
	struct run *r = ctx;

	if (op->kind == PLAN_OP_WRITE) {
		assert_true(op->off + op->len <= CAP);
		memcpy(r->out.b + op->off, op->data, op->len);
		if (op->off + op->len > r->out.len)
			r->out.len = (size_t)(op->off + op->len);
		r->nwrites++;
	}
	return 0;
}

static void set_img(struct img *m, const char *text)
{
	memset(m->b, 0, sizeof(m->b));
	m->len = strlen(text);
	memcpy(m->b, text, m->len);
}

/* The host probe of m: size and flat-extent name, as the host sees them. */
static void probe_img(const struct img *m, struct instar_probe_info *info)
{
	struct instar_probe_input in = {.file_size = m->len};

	in.windows[in.nwindows++] = (struct instar_probe_window){0, m->b, m->len};
	assert_int_equal(instar_probe(&in, info), 0);
}

/* Plans m -> new_size with the names the host probe gives (host = true),
 * or none; applies the plan to r->out. */
static void run_plan(const struct img *m, uint64_t new_size, uint32_t flags, uint32_t prealloc,
		     bool host, struct run *r)
{
	static uint8_t scratch[1 << 20];
	struct instar_probe_info info;
	struct plan_io io = {.read = img_read, .ctx = (void *)m, .file_size = m->len};
	struct plan_opts o = {.new_size = new_size,
			      .expected_old_size = UINT64_MAX,
			      .flags = flags,
			      .prealloc = prealloc};
	struct plan_scratch s;
	struct plan p;
	uint32_t bcrc;

	memset(r, 0, sizeof(*r));
	r->out = *m;
	if (host) {
		probe_img(m, &info);
		o.flags |= instar_probe_name_flags(&info, &bcrc, &o.data_file_name_crc);
	}
	plan_scratch_init(&s, scratch, sizeof(scratch));
	plan_init(&p, apply_sink, r, 0);
	r->rc = plan_resize_vmdk(&o, &io, &s, &p, &r->res);
	if (r->rc == 0)
		r->out.len = (size_t)p.file_size_after;
}

/* The host's verification of a successful plan: the staged result probes
 * as vmdk with the new size, the same subformat and the same extent name. */
static void verify_like_host(const struct img *before, const struct run *r)
{
	struct instar_probe_info a, b;

	probe_img(before, &a);
	probe_img(&r->out, &b);
	assert_int_equal(b.format, INSTAR_FMT_VMDK);
	assert_int_equal(b.virtual_size, r->res.new_virtual_size);
	assert_string_equal(a.subformat, b.subformat);
	assert_true(b.data_file);
	assert_int_equal(a.data_file_len, b.data_file_len);
	assert_memory_equal(a.data_file_name, b.data_file_name, a.data_file_len);
}

static void expect_err(const struct img *m, uint64_t new_size, uint32_t flags, uint32_t prealloc,
		       bool host, uint32_t err, const char *sub)
{
	struct run r;

	run_plan(m, new_size, flags, prealloc, host, &r);
	if (r.rc != (int)err || !strstr(r.res.detail, sub))
		fail_msg("got %s (%s), want %s (%s)", instar_err_name(r.res.error), r.res.detail,
			 instar_err_name(err), sub);
	assert_int_equal(r.nwrites, 0);
}

static void test_qemu_grow(void **state)
{
	static struct img m;
	static struct run r;

	(void)state;
	set_img(&m, qemu_desc);
	run_plan(&m, 200 * MIB, 0, INSTAR_PREALLOC_OFF, true, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.res.action, INSTAR_ACTION_GROW);
	assert_int_equal(r.res.old_virtual_size, 100 * MIB);
	assert_int_equal(r.res.new_virtual_size, 200 * MIB);
	assert_int_equal(r.nwrites, 1);
	assert_non_null(strstr((char *)r.out.b, "\nRW 409600 FLAT \"fl-flat.vmdk\" 0\n"));
	assert_non_null(strstr((char *)r.out.b, "ddb.geometry.cylinders = \"406\"\n"));
	assert_null(strstr((char *)r.out.b, "CID=b677d11c\n"));
	assert_non_null(strstr((char *)r.out.b, "parentCID=ffffffff\n"));
	assert_int_equal(r.out.len, m.len);
	verify_like_host(&m, &r);
	/* into ten digits of sectors: the text, and the file, get longer */
	run_plan(&m, 8192 * MIB, 0, INSTAR_PREALLOC_OFF, true, &r);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr((char *)r.out.b, "\nRW 16777216 FLAT"));
	assert_int_equal(r.out.len, m.len + 2 + 2); /* sectors and cylinders */
	assert_int_equal(r.res.file_size_after, r.out.len);
	verify_like_host(&m, &r);
	/* falloc and full are the host's, on the extent: the same plan */
	run_plan(&m, 200 * MIB, 0, INSTAR_PREALLOC_FULL, true, &r);
	assert_int_equal(r.rc, 0);
	verify_like_host(&m, &r);
}

static void test_qemu_shrink(void **state)
{
	static struct img m;
	static struct run r;
	const char *end;

	(void)state;
	set_img(&m, qemu_desc);
	expect_err(&m, MIB, 0, INSTAR_PREALLOC_OFF, true, INSTAR_ERR_SHRINK_WITHOUT_FLAG,
		   "--shrink");
	run_plan(&m, MIB, INSTAR_RESIZE_SHRINK_ALLOWED, INSTAR_PREALLOC_OFF, true, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.res.action, INSTAR_ACTION_SHRINK);
	assert_non_null(strstr((char *)r.out.b, "\nRW 2048 FLAT \"fl-flat.vmdk\" 0\n"));
	assert_non_null(strstr((char *)r.out.b, "ddb.geometry.cylinders = \"2\"\n"));
	/* the file keeps its length: the text ends in a comment line of blanks */
	assert_int_equal(r.out.len, m.len);
	end = strstr((char *)r.out.b, "ddb.toolsVersion = \"2147483647\"\n#");
	assert_non_null(end);
	assert_int_equal(r.out.b[r.out.len - 1], '\n');
	for (const char *c = strchr(end, '#') + 1; c < (char *)r.out.b + r.out.len - 1; c++)
		assert_int_equal(*c, ' ');
	verify_like_host(&m, &r);
}

/* qemu rewrites a descriptor file it writes to padded with NULs to whole
 * sectors: a shorter text keeps that padding. */
static void test_nul_padded(void **state)
{
	static struct img m;
	static struct run r;
	size_t tl;

	(void)state;
	set_img(&m, qemu_desc);
	tl = m.len;
	m.len = 512;
	run_plan(&m, MIB, INSTAR_RESIZE_SHRINK_ALLOWED, INSTAR_PREALLOC_OFF, true, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.out.len, 512);
	assert_int_equal(strlen((char *)r.out.b), tl - 2 - 2);
	for (size_t i = tl - 4; i < 512; i++)
		assert_int_equal(r.out.b[i], 0);
	verify_like_host(&m, &r);
	/* The text ends at its first NUL, whatever follows: qemu's CID update
	 * leaves the old text's tail there when the new CID is shorter. The
	 * rewrite covers that tail with NULs. */
	set_img(&m, qemu_desc);
	memcpy(m.b + tl + 1, "fe\n", 3);
	m.len = 512;
	run_plan(&m, 200 * MIB, 0, INSTAR_PREALLOC_OFF, true, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.res.old_virtual_size, 100 * MIB);
	assert_int_equal(r.out.len, 512);
	tl = strlen((char *)r.out.b);
	assert_non_null(strstr((char *)r.out.b, "\nRW 409600 FLAT \"fl-flat.vmdk\" 0\n"));
	for (size_t i = tl; i < 512; i++)
		assert_int_equal(r.out.b[i], 0);
	verify_like_host(&m, &r);
}

static void test_esxi_vmfs(void **state)
{
	static struct img m;
	static struct run r;

	(void)state;
	set_img(&m, esxi_desc);
	run_plan(&m, 2048 * MIB, 0, INSTAR_PREALLOC_OFF, true, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.res.old_virtual_size, 1024 * MIB);
	assert_non_null(strstr((char *)r.out.b, "\nRW 4194304 VMFS \"esx-flat.vmdk\"\n"));
	assert_non_null(strstr((char *)r.out.b, "ddb.geometry.cylinders = \"261\"\n"));
	verify_like_host(&m, &r);
	run_plan(&m, 512 * MIB, INSTAR_RESIZE_SHRINK_ALLOWED, INSTAR_PREALLOC_OFF, true, &r);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr((char *)r.out.b, "\nRW 1048576 VMFS \"esx-flat.vmdk\"\n"));
	verify_like_host(&m, &r);
}

/* The extent's name must be the one the host probe saw and opened. */
static void test_host_names(void **state)
{
	static struct img m;
	struct instar_probe_info info;

	(void)state;
	set_img(&m, qemu_desc);
	probe_img(&m, &info);
	assert_true(info.names_known);
	assert_true(info.data_file);
	assert_int_equal(info.data_file_len, strlen("fl-flat.vmdk"));
	assert_memory_equal(info.data_file_name, "fl-flat.vmdk", info.data_file_len);
	assert_int_equal(info.virtual_size, 100 * MIB);
	assert_string_equal(info.subformat, "monolithicFlat");
	expect_err(&m, 200 * MIB, 0, INSTAR_PREALLOC_OFF, false, INSTAR_ERR_HEADER_MISMATCH,
		   "extent file name differs from the host's probe");
}

/* Descriptors instar does not resize: refused, nothing written. */
static void test_refusals(void **state)
{
	static const struct {
		const char *from, *to;
		uint32_t err;
		const char *detail;
	} cases[] = {
	    {"RW 204800 FLAT \"fl-flat.vmdk\" 0\n",
	     "RW 102400 FLAT \"a-flat.vmdk\" 0\nRW 102400 FLAT \"b-flat.vmdk\" 0\n",
	     INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "with 2 extents"},
	    {"RW 204800 FLAT \"fl-flat.vmdk\" 0\n", "RW 204800 FLAT \"fl-flat.vmdk\" 2048\n",
	     INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "extent line is not"},
	    {"RW 204800 FLAT \"fl-flat.vmdk\" 0\n", "RDONLY 204800 FLAT \"fl-flat.vmdk\" 0\n",
	     INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "extent line is not"},
	    {"RW 204800 FLAT \"fl-flat.vmdk\" 0\n", "RW 204800 SPARSE \"fl-s.vmdk\"\n",
	     INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "extent line is not"},
	    {"RW 204800 FLAT \"fl-flat.vmdk\" 0\n", "RW 204800 VMFS \"fl-flat.vmdk\" 0\n",
	     INSTAR_ERR_PARSE_FAILED, "Invalid extent line: "},
	    {"RW 204800 FLAT \"fl-flat.vmdk\" 0\n", "RW 204800 FLAT \"fl-flat.vmdk 0\n",
	     INSTAR_ERR_PARSE_FAILED, "Invalid extent line: "},
	    {"RW 204800 FLAT \"fl-flat.vmdk\" 0\n", "# no extent\n",
	     INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "with 0 extents"},
	    /* a delta disk: qemu-img's answer for every vmdk (no detail) */
	    {"parentCID=ffffffff", "parentCID=12345678", INSTAR_ERR_UNSUPPORTED_SUBFORMAT, ""},
	    /* qemu's vmdk_read_cid: no "parentCID" fails its open (EINVAL);
	     * "CID" it finds inside "parentCID", and instar refuses the
	     * descriptor without a CID line itself */
	    {"parentCID=ffffffff\n", "", INSTAR_ERR_PARSE_FAILED, "Invalid argument"},
	    {"CID=b677d11c\n", "", INSTAR_ERR_PARSE_FAILED, "no CID or no parentCID"},
	    /* twoGbMaxExtentFlat names its extents NAME-f001.vmdk, ... */
	    {"createType=\"monolithicFlat\"", "createType=\"twoGbMaxExtentFlat\"",
	     INSTAR_ERR_UNSUPPORTED_SUBFORMAT, "extent 1 is not named NAME-f001.vmdk"},
	    {"createType=\"monolithicFlat\"", "createType=\"twoGbMaxExtentSparse\"",
	     INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
	     "twoGbMaxExtentSparse extent line is not RW N SPARSE \"name\""},
	};
	static struct img m;
	static char text[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *at = strstr(qemu_desc, cases[i].from);
		size_t pre = (size_t)(at - qemu_desc);

		assert_non_null(at);
		snprintf(text, sizeof(text), "%.*s%s%s", (int)pre, qemu_desc, cases[i].to,
			 at + strlen(cases[i].from));
		set_img(&m, text);
		print_message("%s\n", cases[i].detail);
		expect_err(&m, 200 * MIB, 0, INSTAR_PREALLOC_OFF, true, cases[i].err,
			   cases[i].detail);
	}
	set_img(&m, qemu_desc);
	expect_err(&m, 200 * MIB + 1, 0, INSTAR_PREALLOC_OFF, true, INSTAR_ERR_NOT_MULTIPLE_512,
		   "multiple of 512");
	expect_err(&m, 0, INSTAR_RESIZE_SHRINK_ALLOWED, INSTAR_PREALLOC_OFF, true,
		   INSTAR_ERR_INVALID_NEW_SIZE, "capacity 0");
	expect_err(&m, 200 * MIB, 0, INSTAR_PREALLOC_METADATA, true,
		   INSTAR_ERR_PREALLOCATION_UNSUPPORTED, "metadata");
	/* a descriptor file over 64 KiB */
	memset(m.b + m.len, '#', 65 * 1024 - m.len);
	m.len = 65 * 1024;
	expect_err(&m, 200 * MIB, 0, INSTAR_PREALLOC_OFF, false, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
		   "over 65536 bytes");
}

/* Random damage to the text: whatever the planner accepts, the host's
 * checks accept too (the same size in the staged probe, the same name). */
static void test_random_text(void **state)
{
	static struct img m;
	static struct run r;
	uint64_t x = 0x243f6a8885a308d3ull;
	unsigned ok = 0;

	(void)state;
	for (int it = 0; it < 20000; it++) {
		set_img(&m, it & 1 ? qemu_desc : esxi_desc);
		for (int k = 0; k < 1 + it % 4; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			m.b[x % m.len] = (uint8_t)(x >> 40);
		}
		run_plan(&m, (x >> 20) % 4096 * MIB + MIB, INSTAR_RESIZE_SHRINK_ALLOWED,
			 INSTAR_PREALLOC_OFF, true, &r);
		if (r.rc == 0 && r.res.action != INSTAR_ACTION_NOOP) {
			verify_like_host(&m, &r);
			ok++;
		}
	}
	print_message("%u of 20000 damaged descriptors resized, each verified\n", ok);
	assert_true(ok > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_qemu_grow),	cmocka_unit_test(test_qemu_shrink),
	    cmocka_unit_test(test_nul_padded),	cmocka_unit_test(test_esxi_vmfs),
	    cmocka_unit_test(test_host_names),	cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_random_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
