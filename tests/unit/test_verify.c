/* tests/unit/test_verify.c — the host's check of a guest's success claim
 * (vmm/verify.c), run on a real device over a temp file: what it accepts
 * and each lie it refuses. The image is a LUKS1 container whose payload is
 * not whole sectors, the case where the length and the size part ways. */
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

#define PAYLOAD 4096u	     /* the payload offset: 8 sectors */
#define LEN (PAYLOAD + 1000) /* reads as 1024 bytes */
#define RAM_SIZE (1u << 20)

struct t {
	uint8_t *ram;
	struct vmm_guestmem mem;
	struct vmm_blk *b;
	int fd;
	char path[64];
	struct instar_probe_info before;
	struct instar_resize_config cfg;
	char why[256];
};

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	uint8_t h[PAYLOAD] = {0};
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	struct vmm_blk_opts o;

	assert_non_null(t);
	t->ram = calloc(1, RAM_SIZE);
	assert_non_null(t->ram);
	t->mem = (struct vmm_guestmem){.host = t->ram, .size = RAM_SIZE};
	memcpy(h, "LUKS\xba\xbe\x00\x01", 8);
	h[104 + 3] = PAYLOAD / 512; /* payload offset, u32 BE sectors */
	snprintf(t->path, sizeof(t->path), "%s/instar-verify-XXXXXX", dir);
	t->fd = mkstemp(t->path);
	assert_true(t->fd >= 0);
	unlink(t->path);
	assert_int_equal(pwrite(t->fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
	assert_int_equal(ftruncate(t->fd, LEN), 0);
	assert_int_equal(vmm_probe_fd(t->fd, LEN, &t->before), 0);
	assert_int_equal(t->before.format, INSTAR_FMT_LUKS);
	assert_int_equal(t->before.virtual_size, 1024);
	o = (struct vmm_blk_opts){.fd = t->fd, .file_size = LEN, .capacity_bytes = 1u << 20};
	assert_int_equal(vmm_blk_create(&t->b, &t->mem, &o), 0);
	t->cfg = (struct instar_resize_config){.magic = INSTAR_RESIZE_MAGIC,
					       .abi_version = INSTAR_ABI_VERSION,
					       .format = INSTAR_FMT_LUKS,
					       .expected_old_virtual_size = 1024,
					       .file_size = LEN};
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;

	vmm_blk_destroy(t->b);
	close(t->fd);
	free(t->ram);
	free(t);
	return 0;
}

/* The guest's claim: sizes, action and final length. */
static int claim(struct t *t, uint64_t req, uint32_t flags, uint32_t action, uint64_t old_sz,
		 uint64_t new_sz, uint64_t after)
{
	struct instar_resize_result g = {.error = INSTAR_OK,
					 .action = action,
					 .old_virtual_size = old_sz,
					 .new_virtual_size = new_sz,
					 .file_size_before = LEN,
					 .file_size_after = after};

	t->cfg.new_virtual_size = req;
	t->cfg.flags = flags;
	t->why[0] = 0;
	return vmm_verify_resize(t->b, &t->cfg, &t->before, &g, t->why, sizeof(t->why));
}

static void refused(struct t *t, int r, const char *why)
{
	if (r != -EPROTO || !strstr(t->why, why))
		fail_msg("got %d, \"%s\"; expected -EPROTO, \"%s\"", r, t->why, why);
}

/* What an honest guest reports is accepted. */
static void test_honest(void **state)
{
	struct t *t = *state;
	const uint32_t shrink = INSTAR_RESIZE_SHRINK_ALLOWED;

	/* grow: 1024 -> 2048, length payload + 2048 */
	assert_int_equal(claim(t, 2048, 0, INSTAR_ACTION_GROW, 1024, 2048, PAYLOAD + 2048), 0);
	/* a request of 1500 reads as 1536 */
	assert_int_equal(claim(t, 1500, 0, INSTAR_ACTION_GROW, 1024, 1536, PAYLOAD + 1500), 0);
	/* the size as it reads: the length grows to the sector, the size stays */
	assert_int_equal(claim(t, 1024, 0, INSTAR_ACTION_NOOP, 1024, 1024, PAYLOAD + 1024), 0);
	/* --shrink within the last sector: the length shrinks, the size stays */
	assert_int_equal(claim(t, 900, shrink, INSTAR_ACTION_NOOP, 1024, 1024, PAYLOAD + 900), 0);
	/* a real shrink */
	assert_int_equal(claim(t, 512, shrink, INSTAR_ACTION_SHRINK, 1024, 512, PAYLOAD + 512), 0);
	/* a grow by far more than any slack: the file grows by what it adds,
	 * nothing written (iotest 048 luks: +32M) */
	assert_int_equal(
	    claim(t, 32 << 20, 0, INSTAR_ACTION_GROW, 1024, 32 << 20, PAYLOAD + (32 << 20)), 0);
}

/* Each lie is refused, with what gave it away. */
static void test_lies(void **state)
{
	struct t *t = *state;
	const uint32_t shrink = INSTAR_RESIZE_SHRINK_ALLOWED;

	/* the action does not match the sizes (what the planner once reported
	 * for a request of the size as it reads) */
	refused(t, claim(t, 1024, 0, INSTAR_ACTION_GROW, 1024, 1024, PAYLOAD + 1024),
		"reported action grow");
	/* a shortened file without --shrink */
	refused(t, claim(t, 1024, 0, INSTAR_ACTION_NOOP, 1024, 1024, PAYLOAD + 900),
		"shortened the file");
	/* shrinking without --shrink */
	refused(t, claim(t, 512, 0, INSTAR_ACTION_SHRINK, 1024, 512, PAYLOAD + 512),
		"shrank without --shrink");
	/* another old size than the host probed */
	refused(t, claim(t, 2048, 0, INSTAR_ACTION_GROW, 4096, 8192, PAYLOAD + 2048),
		"old size of 4096");
	/* a new size past the format's rounding of the request */
	refused(t, claim(t, 2048, 0, INSTAR_ACTION_GROW, 1024, 2560, PAYLOAD + 2560),
		"new size of 2560");
	/* the size it reports is not what the staged image says */
	refused(t, claim(t, 1500, 0, INSTAR_ACTION_GROW, 1024, 1536, PAYLOAD + 1024),
		"the staged header says 1024 bytes, the guest 1536");
	/* a length past anything written or preallocated */
	refused(t, claim(t, 2048, 0, INSTAR_ACTION_GROW, 1024, 2048, (uint64_t)1 << 40),
		"past anything it wrote");
	refused(t, claim(t, 32 << 20, 0, INSTAR_ACTION_GROW, 1024, 32 << 20, PAYLOAD + (64 << 20)),
		"past anything it wrote");
	/* a shrink of the length by more than a sector while the size "stays" */
	refused(t, claim(t, 900, shrink, INSTAR_ACTION_NOOP, 1024, 1024, PAYLOAD + 100),
		"shortened the file");
	/* the staged view is cut inside the header: its payload offset reads
	 * as 0 and the 100 bytes as 512, but a cut header has no size */
	refused(t, claim(t, 512, shrink, INSTAR_ACTION_SHRINK, 1024, 512, 100),
		"the staged header says 18446744073709551615 bytes");
}

/* The staged image must keep the encryption the host probed: a guest that
 * clears a qcow2's encryption method (probed as before.encrypted) is
 * refused. Here the host's probe said encrypted, the staged view is not. */
static void test_encryption_kept(void **state)
{
	struct t *t = *state;

	t->before.encrypted = true;
	refused(t, claim(t, 2048, 0, INSTAR_ACTION_GROW, 1024, 2048, PAYLOAD + 2048),
		"changed the image's encryption");
	t->before.encrypted = false;
	assert_int_equal(claim(t, 2048, 0, INSTAR_ACTION_GROW, 1024, 2048, PAYLOAD + 2048), 0);
}

/* The in-sector allowance is LUKS's alone: another format may not shorten
 * its file without a shrink. */
static void test_other_formats(void **state)
{
	struct t *t = *state;

	t->cfg.format = INSTAR_FMT_QCOW2;
	refused(t,
		claim(t, 1024, INSTAR_RESIZE_SHRINK_ALLOWED, INSTAR_ACTION_NOOP, 1024, 1024,
		      PAYLOAD + 900),
		"shortened the file");
	t->cfg.format = INSTAR_FMT_LUKS;
}

/* The final length against the staged writes: whole-sector writes may end
 * past a length inside their last sector (a vmdk descriptor of 343 bytes
 * written as one sector), not a sector further. */
static void test_length_sector(void **state)
{
	struct t *t = *state;
	struct instar_resize_result g = {.error = INSTAR_OK, .action = INSTAR_ACTION_GROW};
	struct vmm_blk_staged s = {.write_end = 512, .eof = 512};

	t->cfg.format = INSTAR_FMT_VMDK;
	t->cfg.file_size = 340;
	g.file_size_after = 343;
	assert_int_equal(vmm_verify_length(&t->cfg, &g, &s, t->why, sizeof(t->why)), 0);
	g.file_size_after = 512;
	assert_int_equal(vmm_verify_length(&t->cfg, &g, &s, t->why, sizeof(t->why)), 0);
	/* a second sector written, the length inside the first: cut off */
	s.write_end = s.eof = 1024;
	g.file_size_after = 343;
	refused(t, vmm_verify_length(&t->cfg, &g, &s, t->why, sizeof(t->why)),
		"cuts off its own writes (up to 1024)");
	/* the rounding saturates instead of wrapping */
	s.write_end = 4096;
	g.file_size_after = UINT64_MAX - 100;
	refused(t, vmm_verify_length(&t->cfg, &g, &s, t->why, sizeof(t->why)),
		"past anything it wrote");
	t->cfg.format = INSTAR_FMT_LUKS;
	t->cfg.file_size = LEN;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_honest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lies, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_formats, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_encryption_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_length_sector, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
