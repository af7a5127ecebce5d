/* tests/fuzz/fuzz_backing.c — libFuzzer target for the backing chain reader
 * (guest/plan/backing.c): a chain of up to PLAN_BACKING_MAX_DEVS raw or qcow2
 * files of arbitrary content, read at arbitrary guest offsets through
 * plan_backing_read, as the qcow2 planner reads an image's backing file.
 *
 * Input (little-endian):
 *   u8  bits 0-2: devices (above PLAN_BACKING_MAX_DEVS: that many), bit 3:
 *       a 64 KiB scratch (too small for most compressed clusters), bit 4: none
 *   u8  2 bits per device: 0 raw, 1 and 2 qcow2, 3 vmdk (refused by
 *       plan_backing_add, which ends the chain there as the guest does)
 *   u8  the device read call that fails with -EIO (0: none)
 *   u8  bits 0-1: reads - 1
 *   reads x { u64 guest offset, u32 length (at most FUZZ_MAX_LEN) }
 *   per device: u32 n, then n bytes of a sparse image (sparse_image.h),
 *       whose file_size is the device's length
 *
 * Asserted: the reader asks each device only for bytes inside the file
 * ([0, file_len), as the guest's read-only devices serve them) and never
 * writes: the devices are the const input and the API has no write path, so
 * what is checked is that the input is the same afterwards; a read returns 0
 * or an errno backing.h names (-ENOTSUP, -EINVAL, -ENOMEM, the device's
 * -EIO); a read that succeeds wrote every byte of the buffer and none past it
 * (two reads over differently filled buffers agree; guard bytes), gives the
 * same bytes as its two halves read apart (when off + len does not wrap),
 * gives a raw first file's bytes (zeros past its end), and zeros past a
 * qcow2 first file's size. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backing.h"
#include "sparse_image.h"

#define FUZZ_SCRATCH (16u << 20)
#define FUZZ_SMALL_SCRATCH (64u << 10)
#define FUZZ_MAX_LEN (128u << 10)
#define FUZZ_MAX_CALLS (1u << 20)
#define FUZZ_GUARD 64u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_dev {
	struct sparse_image img;
	uint32_t index;
};

static struct fuzz_dev devs[PLAN_BACKING_MAX_DEVS];
static uint8_t *scratch, *buf1, *buf2;
static uint32_t calls, fail_at;

static uint64_t rd_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t fnv(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* A device: only bytes of the file are asked for. */
static int dev_read(void *ctx, uint64_t off, void *buf, uint32_t len)
{
	struct fuzz_dev *d = ctx;
	uint64_t end;

	if (d < devs || d >= devs + PLAN_BACKING_MAX_DEVS || d != &devs[d->index])
		abort();
	if (len == 0 || __builtin_add_overflow(off, len, &end) || end > d->img.file_size)
		abort(); /* outside the device */
	if (++calls > FUZZ_MAX_CALLS)
		abort(); /* no endless loop on hostile tables */
	if (calls == fail_at)
		return -EIO;
	return sparse_image_read(&d->img, off, buf, len);
}

static void chain(struct plan_backing *b, struct plan_scratch *s, uint8_t how, uint32_t ndev,
		  uint8_t fmts)
{
	plan_backing_init(b, (how & 0x10) ? NULL : s);
	for (uint32_t i = 0; i < ndev; i++) {
		static const uint32_t fmt[4] = {INSTAR_FMT_RAW, INSTAR_FMT_QCOW2, INSTAR_FMT_QCOW2,
						INSTAR_FMT_VMDK};
		uint32_t f = fmt[(fmts >> (2 * i)) & 3];
		int r = plan_backing_add(b, f, devs[i].img.file_size, dev_read, &devs[i]);

		if ((r != 0) != (f == INSTAR_FMT_VMDK))
			abort();
		if (r)
			break; /* as guest/ops/resize: the chain ends at the first refusal */
	}
}

/* Reads into buf (len + FUZZ_GUARD bytes) filled with fill first; the
 * guard must stay as it was. */
static int read_at(struct plan_backing *b, uint64_t off, uint8_t *buf, uint32_t len, uint8_t fill)
{
	int r;

	memset(buf, fill, len + FUZZ_GUARD);
	r = plan_backing_read(b, off, buf, len);
	for (uint32_t i = 0; i < FUZZ_GUARD; i++)
		if (buf[len + i] != fill)
			abort(); /* written past the buffer */
	if (r != 0 && r != -ENOTSUP && r != -EINVAL && r != -ENOMEM && r != -EIO)
		abort();
	return r;
}

static void check_read(struct plan_backing *b, uint64_t off, uint32_t len)
{
	uint64_t end;
	/* halves only where off + len does not wrap (past the end: zeros) */
	uint32_t half = __builtin_add_overflow(off, len, &end) ? 0 : len / 2;
	int r = read_at(b, off, buf1, len, 0xa5);

	if (r)
		return;
	/* every byte written: a second read over other bytes agrees */
	if (read_at(b, off, buf2, len, 0x5a) == 0 && memcmp(buf1, buf2, len) != 0)
		abort();
	/* pieces agree with the whole */
	if (half && read_at(b, off, buf2, half, 0x3c) == 0 && memcmp(buf1, buf2, half) != 0)
		abort();
	if (half && read_at(b, off + half, buf2, len - half, 0xc3) == 0 &&
	    memcmp(buf1 + half, buf2, len - half) != 0)
		abort();
	if (b->dev[0].format == INSTAR_FMT_RAW) {
		/* a raw file: its bytes, zeros past its end */
		uint64_t flen = b->dev[0].file_len, n = off < flen ? flen - off : 0;

		if (n > len)
			n = len;
		if (n)
			sparse_image_read(&devs[0].img, off, buf2, (uint32_t)n);
		memset(buf2 + n, 0, len - n);
		if (memcmp(buf1, buf2, len) != 0)
			abort();
	} else if (b->dev[0].parsed == 1) {
		/* a qcow2 file: zeros past its size */
		for (uint64_t i = 0; i < len; i++)
			if (off + i >= b->dev[0].size && buf1[i] != 0)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct plan_backing b;
	struct plan_scratch s;
	uint64_t offs[4], sum = fnv(data, size);
	uint32_t lens[4], ndev, nreads;
	size_t pos = 4;
	uint8_t how, fmts;

	if (size < 4)
		return 0;
	if (!scratch) {
		scratch = malloc(FUZZ_SCRATCH);
		buf1 = malloc(FUZZ_MAX_LEN + FUZZ_GUARD);
		buf2 = malloc(FUZZ_MAX_LEN + FUZZ_GUARD);
		if (!scratch || !buf1 || !buf2)
			abort();
	}
	how = data[0];
	fmts = data[1];
	fail_at = data[2];
	ndev = how & 7;
	if (ndev > PLAN_BACKING_MAX_DEVS)
		ndev = PLAN_BACKING_MAX_DEVS;
	nreads = (data[3] & 3) + 1;
	for (uint32_t i = 0; i < nreads; i++) {
		if (size - pos < 12)
			return 0;
		offs[i] = rd_le(data + pos, 8);
		lens[i] = (uint32_t)rd_le(data + pos + 8, 4) % (FUZZ_MAX_LEN + 1);
		pos += 12;
	}
	for (uint32_t i = 0; i < ndev; i++) {
		size_t n;

		if (size - pos < 4)
			return 0;
		n = (size_t)rd_le(data + pos, 4);
		pos += 4;
		if (n > size - pos)
			n = size - pos;
		devs[i].index = i;
		if (sparse_image_decode(&devs[i].img, data + pos, n) != 0)
			return 0;
		pos += n;
	}
	plan_scratch_init(&s, scratch, (how & 8) ? FUZZ_SMALL_SCRATCH : FUZZ_SCRATCH);
	calls = 0;
	chain(&b, &s, how, ndev, fmts);
	for (uint32_t i = 0; i < nreads; i++) {
		if (lens[i])
			check_read(&b, offs[i], lens[i]);
		if (b.ccap > FUZZ_SCRATCH || s.used > s.len)
			abort();
	}
	if (b.ndev == 0 && read_at(&b, 0, buf1, 1, 0) != -ENOTSUP)
		abort();
	if (fnv(data, size) != sum)
		abort(); /* a device was written */
	return 0;
}
