/* tests/unit/test_cli_opts.c — --object and --image-opts parsing
 * (vmm/cli_opts.c): what each string yields, and qemu-img 7.2's message for
 * each one it refuses (measured with qemu-img; tests/compat/cli_opts.sh
 * compares the two tools end to end). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cli_opts.h"

static void object_ok(struct cli_objects *o, const char *arg)
{
	char msg[CLI_OPTS_MSG] = "";

	if (cli_object_add(o, arg, msg, sizeof(msg)) != 0)
		fail_msg("%s: refused: %s", arg, msg);
}

static void object_bad(struct cli_objects *o, const char *arg, const char *want)
{
	char msg[CLI_OPTS_MSG] = "";
	size_t n = o->n;

	if (cli_object_add(o, arg, msg, sizeof(msg)) == 0)
		fail_msg("%s: accepted", arg);
	if (strcmp(msg, want) != 0)
		fail_msg("%s: said '%s', want '%s'", arg, msg, want);
	assert_int_equal(o->n, n);
}

static void test_object(void **state)
{
	struct cli_objects o = {0};

	(void)state;
	object_ok(&o, "secret,id=s0,data=abc");
	assert_true(cli_object_has_secret(&o, "s0"));
	object_ok(&o, "qom-type=secret,id=s1,data=x,format=base64");
	object_ok(&o, "secret,id=s2,data=a,,b,data=y"); /* ",," and the rightmost data */
	object_ok(&o, "secret,id=a.b-c_d,data=,iv=x");
	assert_int_equal(o.n, 4);
	assert_false(cli_object_has_secret(&o, "s9"));

	object_bad(&o, "", "Parameter 'qom-type' is missing");
	object_bad(&o, "id=s5,data=x", "Parameter 'qom-type' is missing");
	object_bad(&o, "secret", "Parameter 'id' is missing");
	object_bad(&o, "foo,id=x", "Parameter 'qom-type' does not accept value 'foo'");
	object_bad(&o, "secret,,id=s5", "Invalid parameter ''");
	object_bad(&o, "secret,id=s5,data", "Expected '=' after parameter 'data'");
	object_bad(&o, "secret,id=s5,data=x,=3", "Invalid parameter ''");
	object_bad(&o, "secret,id=s5", "Either 'file' or 'data' must be provided");
	object_bad(&o, "secret,id=s5,data=x,format=hex",
		   "Parameter 'format' does not accept value 'hex'");
	object_bad(&o, "secret,id=s5,data=x,bogus=1", "Parameter 'bogus' is unexpected");
	object_bad(&o, "secret,id=s5,data=x,a.b=1", "Parameter 'a' is unexpected");
	object_bad(&o, "secret,id=s5,data=x,file=y", "'file' and 'data' are mutually exclusive");
	object_bad(&o, "secret,id=0s,data=x",
		   "Parameter 'id' expects an identifier\nIdentifiers consist of letters, "
		   "digits, '-', '.', '_', starting with a letter.");
	object_bad(&o, "secret,id=s0,data=y",
		   "attempt to add duplicate property 's0' to object (type 'container')");
	object_bad(&o, "secret,id=s5,data=x,keyid=k", "No secret with id 'k'");
	object_bad(&o, "secret,id=s5,data=x,keyid=s0",
		   "Secret 's5': instar does not decrypt secrets (keyid=); give the secret in "
		   "the clear");
	object_bad(&o, "iothread,id=t",
		   "Object type 'iothread' is not supported by instar: --object takes only "
		   "'secret'");
	object_bad(&o, "secret,id=s5,file=/nonexistent/instar-secret",
		   "Unable to read /nonexistent/instar-secret: Failed to open file "
		   "\u201c/nonexistent/instar-secret\u201d: No such file or directory");
	cli_objects_free(&o);
	assert_int_equal(o.n, 0);
}

static void opts_bad(const char *s, const char *want)
{
	struct cli_image_opts io;
	char msg[CLI_OPTS_MSG] = "";

	if (cli_image_opts_parse(s, &io, msg, sizeof(msg)) == 0) {
		if (cli_image_opts_file(&io, msg, sizeof(msg)) == 0)
			fail_msg("%s: accepted", s);
		cli_image_opts_free(&io);
	}
	if (strcmp(msg, want) != 0)
		fail_msg("%s: said '%s', want '%s'", s, msg, want);
}

static void test_image_opts(void **state)
{
	struct cli_image_opts io;
	char msg[CLI_OPTS_MSG] = "";

	(void)state;
	assert_int_equal(cli_image_opts_parse(
			     "driver=raw,file.driver=file,file.filename=t.qcow2,file.locking=off",
			     &io, msg, sizeof(msg)),
			 0);
	assert_string_equal(io.driver, "raw");
	assert_string_equal(io.filename, "t.qcow2");
	assert_int_equal(io.locking, CLI_LOCKING_OFF);
	assert_null(io.key_secret);
	cli_image_opts_free(&io);

	assert_int_equal(
	    cli_image_opts_parse("file.filename=a,,b,file.locking=on", &io, msg, sizeof(msg)), 0);
	assert_null(io.driver);
	assert_string_equal(io.filename, "a,b");
	assert_int_equal(io.locking, CLI_LOCKING_ON);
	cli_image_opts_free(&io);

	assert_int_equal(cli_image_opts_parse("driver=qcow2,file.filename=x,encrypt.key-secret=s0,"
					      "l2-cache-size=1M,lazy-refcounts=maybe",
					      &io, msg, sizeof(msg)),
			 0);
	assert_string_equal(io.key_secret, "s0");
	assert_string_equal(io.late_error, "Parameter 'lazy-refcounts' expects 'on' or 'off'");
	cli_image_opts_free(&io);

	/* encrypt.format: taken for qcow2, judged against the header's method */
	assert_int_equal(cli_image_opts_parse("driver=qcow2,file.filename=x,encrypt.format=luks,"
					      "encrypt.key-secret=s0",
					      &io, msg, sizeof(msg)),
			 0);
	assert_string_equal(io.encrypt_format, "luks");
	assert_int_equal(cli_image_opts_crypt(&io, 2, msg, sizeof(msg)), 0);
	assert_int_equal(cli_image_opts_crypt(&io, 1, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "Header reported 'aes' encryption format but options specify "
				 "'luks'");
	assert_int_equal(cli_image_opts_crypt(&io, 0, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "No encryption in image header, but options specified format "
				 "'luks'");
	cli_image_opts_free(&io);
	assert_int_equal(cli_image_opts_parse("driver=qcow2,file.filename=x,encrypt.format=foo",
					      &io, msg, sizeof(msg)),
			 0);
	assert_int_equal(cli_image_opts_crypt(&io, 2, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "Header reported 'luks' encryption format but options specify "
				 "'foo'");
	assert_int_equal(cli_image_opts_crypt(&io, 1, msg, sizeof(msg)), -1);
	cli_image_opts_free(&io);
	assert_int_equal(
	    cli_image_opts_parse("driver=qcow2,file.filename=x", &io, msg, sizeof(msg)), 0);
	assert_int_equal(cli_image_opts_crypt(&io, 0, msg, sizeof(msg)), 0);
	cli_image_opts_free(&io);
	opts_bad("driver=luks,file.filename=x,encrypt.format=luks",
		 "Block format 'luks' does not support the option 'encrypt.format'");
	opts_bad("driver=raw,file.filename=x,encrypt.format=luks",
		 "Block format 'raw' does not support the option 'encrypt.format'");

	opts_bad("driver=raw,file.filename=x,offset=512",
		 "Block format 'raw' does not support the option 'offset'");
	opts_bad("driver=raw,file.filename=x,key-secret=s0",
		 "Block format 'raw' does not support the option 'key-secret'");
	opts_bad("file.filename=x,l2-cache-size=1M",
		 "Block format 'raw' does not support the option 'l2-cache-size'");
	opts_bad("driver=raw,file.filename=x,file.bogus=1",
		 "Block protocol 'file' doesn't support the option 'bogus'");
	opts_bad("driver=raw,file.filename=x,file.locking=maybe", "invalid parameter value: maybe");
	opts_bad("driver=raw,file.driver=nbd,file.filename=x",
		 "Protocol driver 'nbd' is not supported by instar: file.driver takes only 'file'");
	opts_bad("driver=raw", "A block device must be specified for \"file\"");
	opts_bad("w.qcow2", "Cannot find device='w.qcow2' nor node-name='w.qcow2'");
	opts_bad("x,driver=raw,file.filename=img", "Cannot reference an existing block device "
						   "with additional options or a new filename");
	opts_bad("", "Must specify either driver or file");
	opts_bad("driver=raw,file.filename=img,x",
		 "Block format 'raw' does not support the option 'x'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_object),
	    cmocka_unit_test(test_image_opts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
