/* tests/unit/test_cli_guest.c — the CLI's message for a failed guest result
 * (vmm/cli_guest.c), driven without a guest: a failed open of the image
 * (INSTAR_RESULT_OPEN) reads as qemu-img's "Could not open 'NAME': DETAIL",
 * NAME as the command line gave it; other results keep their words; the
 * JSON result carries the same text and the guest's code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "abi.h"
#include "cli.h"

static void expect(const struct instar_resize_result *gr, const char *display, const char *want)
{
	struct cli_ctx c;

	cli_ctx_init(&c, true);
	cli_guest_error(&c, "t.qcow2", display, INSTAR_PREALLOC_OFF, 0, gr);
	assert_non_null(c.msg);
	assert_string_equal(c.msg, want);
	assert_int_equal(c.res.error, gr->error);
	cli_ctx_free(&c);
}

static void test_open_failure(void **state)
{
	struct instar_resize_result gr = {.error = INSTAR_ERR_PARSE_FAILED,
					  .flags = INSTAR_RESULT_OPEN};

	(void)state;
	strcpy(gr.detail, "Unsupported cluster size: 2^8");
	expect(&gr, "t.qcow2", "Could not open 't.qcow2': Unsupported cluster size: 2^8");
	/* --image-opts: the option string, as qemu-img names it */
	expect(&gr, "driver=qcow2,file.filename=t.qcow2",
	       "Could not open 'driver=qcow2,file.filename=t.qcow2': Unsupported cluster size: "
	       "2^8");
	/* a driver's errno: the block layer names the file (t.qcow2 here) */
	gr.flags = INSTAR_RESULT_OPEN | INSTAR_RESULT_OPEN_ERRNO;
	strcpy(gr.detail, "Invalid argument");
	expect(&gr, "t.qcow2",
	       "Could not open 't.qcow2': Could not open 't.qcow2': Invalid argument");
	expect(&gr, "driver=vhdx,file.filename=t.qcow2",
	       "Could not open 'driver=vhdx,file.filename=t.qcow2': Could not open 't.qcow2': "
	       "Invalid argument");
	gr.flags = INSTAR_RESULT_OPEN;
	/* whatever the code: the flag decides */
	gr.error = INSTAR_ERR_CORRUPT;
	strcpy(gr.detail, "qcow2: Image is corrupt; cannot be opened read/write");
	expect(&gr, "t.qcow2",
	       "Could not open 't.qcow2': qcow2: Image is corrupt; cannot be opened read/write");
	gr.error = INSTAR_ERR_UNSUPPORTED_FEATURE;
	strcpy(gr.detail, "Unsupported qcow2 feature(s): Unknown incompatible feature: 20");
	expect(&gr, "t.qcow2",
	       "Could not open 't.qcow2': Unsupported qcow2 feature(s): Unknown incompatible "
	       "feature: 20");
	/* a control character from the image is escaped, as on every line */
	gr.error = INSTAR_ERR_UNSUPPORTED_FEATURE;
	strcpy(gr.detail, "Unsupported qcow2 feature(s): a\nb");
	{
		struct cli_ctx c;

		cli_ctx_init(&c, true);
		cli_guest_error(&c, "t.qcow2", "t.qcow2", INSTAR_PREALLOC_OFF, 0, &gr);
		assert_non_null(c.msg);
		assert_null(strchr(c.msg, '\n'));
		cli_ctx_free(&c);
	}
	/* qemu's hint behind the detail's NUL: a line of its own, unprefixed */
	memset(gr.detail, 0, sizeof(gr.detail));
	strcpy(gr.detail, "Too much extra metadata in snapshot table entry 0");
	strcpy(gr.detail + strlen(gr.detail) + 1, "You can force-remove\nit");
	gr.error = INSTAR_ERR_CORRUPT;
	gr.flags = INSTAR_RESULT_OPEN | INSTAR_RESULT_HINT;
	{
		struct cli_ctx c;

		cli_ctx_init(&c, true);
		cli_guest_error(&c, "t.qcow2", "t.qcow2", INSTAR_PREALLOC_OFF, 0, &gr);
		assert_non_null(c.msg);
		/* two lines; the hint's own newline escaped */
		assert_string_equal(c.msg, "Could not open 't.qcow2': Too much extra metadata in "
					   "snapshot table entry 0\nYou can force-remove\\nit");
		cli_ctx_free(&c);
	}
	/* a hint without room for its NUL stays bounded */
	memset(gr.detail, 'y', sizeof(gr.detail));
	gr.detail[10] = '\0';
	{
		struct cli_ctx c;

		cli_ctx_init(&c, true);
		cli_guest_error(&c, "t.qcow2", "t.qcow2", INSTAR_PREALLOC_OFF, 0, &gr);
		assert_non_null(c.msg);
		cli_ctx_free(&c);
	}
	gr.flags = INSTAR_RESULT_OPEN;
	/* a detail of INSTAR_DETAIL_MAX bytes without its NUL stays bounded */
	memset(gr.detail, 'x', sizeof(gr.detail));
	{
		struct cli_ctx c;

		cli_ctx_init(&c, true);
		cli_guest_error(&c, "t.qcow2", "t.qcow2", INSTAR_PREALLOC_OFF, 0, &gr);
		assert_int_equal(strlen(c.msg),
				 strlen("Could not open 't.qcow2': ") + INSTAR_DETAIL_MAX);
		cli_ctx_free(&c);
	}
}

static void test_not_open(void **state)
{
	struct instar_resize_result gr = {.error = INSTAR_ERR_SHRINK_WITHOUT_FLAG};

	(void)state;
	/* a refusal of the resize: the detail alone, as qemu-img prints it */
	strcpy(gr.detail, "Use the --shrink option to perform a shrink operation.");
	expect(&gr, "t.qcow2", "Use the --shrink option to perform a shrink operation.");
	gr.error = INSTAR_ERR_CORRUPT;
	strcpy(gr.detail, "Refblock at 0xffffff00000000 is not covered by the refcount structures");
	expect(&gr, "t.qcow2",
	       "Refblock at 0xffffff00000000 is not covered by the refcount structures");
	/* without a detail: instar's words, with the file opened */
	gr.detail[0] = '\0';
	expect(&gr, "t.qcow2",
	       "Could not open 't.qcow2': Image is corrupt; cannot be opened "
	       "read/write");
	/* the flag without a detail changes nothing */
	gr.error = INSTAR_ERR_PARSE_FAILED;
	gr.flags = INSTAR_RESULT_OPEN;
	expect(&gr, "t.qcow2", "Could not open 't.qcow2': invalid image header");
	/* codes with their own words keep them */
	gr.flags = 0;
	gr.error = INSTAR_ERR_HEADER_MISMATCH;
	strcpy(gr.detail, "qcow2: virtual size differs from the host's probe");
	expect(&gr, "t.qcow2",
	       "Could not resize 't.qcow2': image changed while we looked; retry: qcow2: virtual "
	       "size differs from the host's probe");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open_failure),
	    cmocka_unit_test(test_not_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
