/* tests/unit/test_serial.c — the host's COM1 frame decoder (vmm/serial.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crc32.h"
#include "serial.h"

struct sink {
	int n;
	uint16_t type[8];
	uint32_t len[8];
	uint8_t data[8][64];
	int fail_with; /* callback error to return, 0 for none */
};

static int sink_cb(void *ctx, const struct vmm_frame *f)
{
	struct sink *s = ctx;

	if (s->fail_with)
		return s->fail_with;
	if (s->n < 8) {
		s->type[s->n] = f->type;
		s->len[s->n] = f->len;
		memcpy(s->data[s->n], f->payload, f->len < 64 ? f->len : 64);
	}
	s->n++;
	return 0;
}

/* Builds a frame into out; returns its total length. */
static size_t mkframe(uint8_t *out, uint32_t magic, uint16_t type, uint16_t reserved,
		      const void *payload, uint32_t len)
{
	struct instar_frame_hdr h = {
	    .magic = magic,
	    .type = type,
	    .reserved = reserved,
	    .len = len,
	    .crc32 = instar_crc32(0, payload, len),
	};

	memcpy(out, &h, sizeof(h));
	memcpy(out + sizeof(h), payload, len);
	return sizeof(h) + len;
}

static void test_crc32_check_value(void **state)
{
	(void)state;
	/* The standard check value of CRC-32 (zlib's crc32("123456789")). */
	assert_int_equal(instar_crc32(0, "123456789", 9), 0xcbf43926u);
	assert_int_equal(instar_crc32(0, "", 0), 0);
	/* Chaining over pieces equals one pass. */
	assert_int_equal(instar_crc32(instar_crc32(0, "1234", 4), "56789", 5), 0xcbf43926u);
}

static void test_two_frames_one_call(void **state)
{
	struct vmm_frame_decoder d;
	struct sink s = {0};
	uint8_t buf[256];
	size_t n;

	(void)state;
	vmm_frame_decoder_init(&d);
	n = mkframe(buf, INSTAR_FRAME_MAGIC, INSTAR_FRAME_LOG, 0, "hello", 5);
	n += mkframe(buf + n, INSTAR_FRAME_MAGIC, INSTAR_FRAME_RESULT, 0, "abc", 3);
	assert_int_equal(vmm_frame_feed(&d, buf, n, sink_cb, &s), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.type[0], INSTAR_FRAME_LOG);
	assert_int_equal(s.len[0], 5);
	assert_memory_equal(s.data[0], "hello", 5);
	assert_int_equal(s.type[1], INSTAR_FRAME_RESULT);
	assert_memory_equal(s.data[1], "abc", 3);
	assert_true(vmm_frame_decoder_idle(&d));
}

static void test_byte_at_a_time(void **state)
{
	struct vmm_frame_decoder d;
	struct sink s = {0};
	uint8_t buf[128];
	size_t n;

	(void)state;
	vmm_frame_decoder_init(&d);
	n = mkframe(buf, INSTAR_FRAME_MAGIC, INSTAR_FRAME_PANIC, 0, "boom!", 5);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(s.n, 0);
		assert_int_equal(vmm_frame_feed(&d, buf + i, 1, sink_cb, &s), 0);
		if (i + 1 < n)
			assert_false(vmm_frame_decoder_idle(&d));
	}
	assert_int_equal(s.n, 1);
	assert_memory_equal(s.data[0], "boom!", 5);
	assert_true(vmm_frame_decoder_idle(&d));
}

static void test_empty_payload(void **state)
{
	struct vmm_frame_decoder d;
	struct sink s = {0};
	uint8_t buf[32];
	size_t n;

	(void)state;
	vmm_frame_decoder_init(&d);
	n = mkframe(buf, INSTAR_FRAME_MAGIC, INSTAR_FRAME_LOG, 0, "", 0);
	assert_int_equal(n, sizeof(struct instar_frame_hdr));
	assert_int_equal(vmm_frame_feed(&d, buf, n, sink_cb, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.len[0], 0);
}

static void expect_reject(const uint8_t *buf, size_t n, const char *what)
{
	struct vmm_frame_decoder d;
	struct sink s = {0};
	uint8_t ok[64];

	vmm_frame_decoder_init(&d);
	assert_int_equal(vmm_frame_feed(&d, buf, n, sink_cb, &s), -EBADMSG);
	assert_int_equal(s.n, 0);
	assert_string_equal(d.what, what);
	assert_false(vmm_frame_decoder_idle(&d));
	/* Sticky: a valid frame afterwards is not accepted. */
	n = mkframe(ok, INSTAR_FRAME_MAGIC, INSTAR_FRAME_LOG, 0, "x", 1);
	assert_int_equal(vmm_frame_feed(&d, ok, n, sink_cb, &s), -EBADMSG);
	assert_int_equal(s.n, 0);
}

static void test_rejects(void **state)
{
	uint8_t buf[INSTAR_FRAME_MAX_PAYLOAD + 64];
	struct instar_frame_hdr h;
	size_t n;

	(void)state;
	n = mkframe(buf, 0x12345678u, INSTAR_FRAME_LOG, 0, "x", 1);
	expect_reject(buf, n, "bad frame magic");
	n = mkframe(buf, INSTAR_FRAME_MAGIC, 0, 0, "x", 1);
	expect_reject(buf, n, "unknown frame type");
	n = mkframe(buf, INSTAR_FRAME_MAGIC, INSTAR_FRAME_PANIC + 1, 0, "x", 1);
	expect_reject(buf, n, "unknown frame type");
	n = mkframe(buf, INSTAR_FRAME_MAGIC, INSTAR_FRAME_LOG, 1, "x", 1);
	expect_reject(buf, n, "frame reserved field not zero");

	/* Length one past the bound: rejected at the header, before any payload. */
	h = (struct instar_frame_hdr){.magic = INSTAR_FRAME_MAGIC,
				      .type = INSTAR_FRAME_LOG,
				      .len = INSTAR_FRAME_MAX_PAYLOAD + 1};
	memcpy(buf, &h, sizeof(h));
	expect_reject(buf, sizeof(h), "frame payload too long");
	h.len = UINT32_MAX;
	memcpy(buf, &h, sizeof(h));
	expect_reject(buf, sizeof(h), "frame payload too long");

	/* One flipped payload bit. */
	n = mkframe(buf, INSTAR_FRAME_MAGIC, INSTAR_FRAME_LOG, 0, "hello", 5);
	buf[n - 1] ^= 0x01;
	expect_reject(buf, n, "frame CRC mismatch");
}

static void test_max_payload(void **state)
{
	static uint8_t payload[INSTAR_FRAME_MAX_PAYLOAD];
	static uint8_t buf[INSTAR_FRAME_MAX_PAYLOAD + 16];
	struct vmm_frame_decoder d;
	struct sink s = {0};
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 31);
	vmm_frame_decoder_init(&d);
	n = mkframe(buf, INSTAR_FRAME_MAGIC, INSTAR_FRAME_LOG, 0, payload, sizeof(payload));
	/* Odd split: header and payload cross feed boundaries. */
	assert_int_equal(vmm_frame_feed(&d, buf, 7, sink_cb, &s), 0);
	assert_int_equal(vmm_frame_feed(&d, buf + 7, 2000, sink_cb, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(vmm_frame_feed(&d, buf + 2007, n - 2007, sink_cb, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.len[0], INSTAR_FRAME_MAX_PAYLOAD);
	assert_memory_equal(s.data[0], payload, 64);
}

static void test_callback_error_sticks(void **state)
{
	struct vmm_frame_decoder d;
	struct sink s = {.fail_with = -EPROTO};
	uint8_t buf[64];
	size_t n;

	(void)state;
	vmm_frame_decoder_init(&d);
	n = mkframe(buf, INSTAR_FRAME_MAGIC, INSTAR_FRAME_RESULT, 0, "r", 1);
	assert_int_equal(vmm_frame_feed(&d, buf, n, sink_cb, &s), -EPROTO);
	s.fail_with = 0;
	assert_int_equal(vmm_frame_feed(&d, buf, n, sink_cb, &s), -EPROTO);
	assert_int_equal(s.n, 0);
}

static void test_partial_not_idle(void **state)
{
	struct vmm_frame_decoder d;
	struct sink s = {0};
	uint8_t buf[64];
	size_t n;

	(void)state;
	vmm_frame_decoder_init(&d);
	assert_true(vmm_frame_decoder_idle(&d));
	n = mkframe(buf, INSTAR_FRAME_MAGIC, INSTAR_FRAME_LOG, 0, "abcdef", 6);
	assert_int_equal(vmm_frame_feed(&d, buf, n - 1, sink_cb, &s), 0);
	assert_false(vmm_frame_decoder_idle(&d));
	assert_int_equal(s.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32_check_value),
	    cmocka_unit_test(test_two_frames_one_call),
	    cmocka_unit_test(test_byte_at_a_time),
	    cmocka_unit_test(test_empty_payload),
	    cmocka_unit_test(test_rejects),
	    cmocka_unit_test(test_max_payload),
	    cmocka_unit_test(test_callback_error_sticks),
	    cmocka_unit_test(test_partial_not_idle),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
