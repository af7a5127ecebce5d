/* tests/unit/test_virtio_blk.c — the host virtio-mmio block device and its
 * overlay, driven by a tiny test-side driver over a malloc'd "guest RAM". */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "abi.h"
#include "overlay.h"
#include "virtio_blk.h"
#include "virtio_mmio.h"

/* Register offsets and bits, as the spec names them. */

#define NO_STATUS 0xeeu /* what the device must overwrite */

/* Simulated guest RAM layout. */
#define RAM_SIZE (8u << 20)
#define G_DESC 0x1000u
#define G_AVAIL 0x2000u
#define G_USED 0x3000u
#define G_HDR 0x5000u
#define G_STATUS 0x5100u
#define G_SEG 0x5200u
#define G_DATA 0x10000u

#define FILE_SIZE (64u * 1024)
#define CAPACITY (256u * 1024)

struct t {
	uint8_t *ram;
	struct vmm_guestmem mem;
	struct vmm_blk *b;
	int fd;
	char path[64];
	uint8_t *orig;	/* the file as created */
	uint8_t *model; /* what the device should show, CAPACITY bytes */
	uint32_t qnum;
	uint16_t avail_idx, used_idx;
};

static uint32_t rd32(struct t *t, uint64_t off)
{
	uint32_t v = 0xdeadbeef;

	vmm_blk_mmio_read(t->b, off, &v, 4);
	return v;
}

static void wr32(struct t *t, uint64_t off, uint32_t v)
{
	vmm_blk_mmio_write(t->b, off, &v, 4);
}

static void put_desc(struct t *t, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t *d = t->ram + G_DESC + 16u * i;

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static uint16_t used_idx(struct t *t)
{
	uint16_t v;

	memcpy(&v, t->ram + G_USED + 2, 2);
	return v;
}

/* Makes head available, notifies, and returns the status byte; checks the
 * used ring entry (id, len) when the device completed the request. */
static uint8_t kick(struct t *t, uint16_t head, uint32_t expect_len_ok)
{
	uint16_t ai;
	uint32_t id, len;
	uint8_t *u;

	t->ram[G_STATUS] = NO_STATUS;
	memcpy(t->ram + G_AVAIL + 4 + 2 * (t->avail_idx % t->qnum), &head, 2);
	ai = ++t->avail_idx;
	memcpy(t->ram + G_AVAIL + 2, &ai, 2);
	wr32(t, VIRTIO_R_QUEUE_NOTIFY, 0);
	if (vmm_blk_needs_reset(t->b))
		return NO_STATUS;
	assert_int_equal(used_idx(t), (uint16_t)(t->used_idx + 1));
	u = t->ram + G_USED + 4 + 8 * (t->used_idx % t->qnum);
	memcpy(&id, u, 4);
	memcpy(&len, u + 4, 4);
	t->used_idx++;
	assert_int_equal(id, head);
	if (t->ram[G_STATUS] == VIRTIO_S_OK)
		assert_int_equal(len, expect_len_ok);
	else
		assert_int_equal(len, 1);
	assert_true(rd32(t, VIRTIO_R_INTERRUPT_STATUS) & 1);
	wr32(t, VIRTIO_R_INTERRUPT_ACK, 1);
	assert_int_equal(rd32(t, VIRTIO_R_INTERRUPT_STATUS), 0);
	return t->ram[G_STATUS];
}

static void put_hdr(struct t *t, uint32_t type, uint64_t sector)
{
	uint32_t zero = 0;

	memcpy(t->ram + G_HDR, &type, 4);
	memcpy(t->ram + G_HDR + 4, &zero, 4);
	memcpy(t->ram + G_HDR + 8, &sector, 8);
}

/* The usual three-descriptor request. */
static uint8_t req(struct t *t, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
		   bool dev_writes)
{
	unsigned n = 0;

	put_hdr(t, type, sector);
	put_desc(t, n, G_HDR, 16, VIRTIO_DESC_F_NEXT, (uint16_t)(n + 1));
	n++;
	if (len) {
		put_desc(t, n, data, len,
			 VIRTIO_DESC_F_NEXT | (dev_writes ? VIRTIO_DESC_F_WRITE : 0),
			 (uint16_t)(n + 1));
		n++;
	}
	put_desc(t, n, G_STATUS, 1, VIRTIO_DESC_F_WRITE, 0);
	return kick(t, 0, 1 + (dev_writes ? len : 0));
}

static uint8_t zreq(struct t *t, uint32_t type, uint64_t sector, uint32_t num, uint32_t flags)
{
	memcpy(t->ram + G_SEG, &sector, 8);
	memcpy(t->ram + G_SEG + 8, &num, 4);
	memcpy(t->ram + G_SEG + 12, &flags, 4);
	return req(t, type, 0, G_SEG, 16, false);
}

static void driver_setup(struct t *t, uint32_t qnum)
{
	uint64_t feat;

	t->qnum = qnum;
	t->avail_idx = t->used_idx = 0;
	memset(t->ram, 0, G_DATA);
	wr32(t, VIRTIO_R_STATUS, 0);
	assert_int_equal(rd32(t, VIRTIO_R_STATUS), 0);
	wr32(t, VIRTIO_R_STATUS, VIRTIO_ST_ACKNOWLEDGE);
	wr32(t, VIRTIO_R_STATUS, VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER);
	wr32(t, VIRTIO_R_DEVICE_FEATURES_SEL, 0);
	feat = rd32(t, VIRTIO_R_DEVICE_FEATURES);
	wr32(t, VIRTIO_R_DEVICE_FEATURES_SEL, 1);
	feat |= (uint64_t)rd32(t, VIRTIO_R_DEVICE_FEATURES) << 32;
	assert_true(feat & VIRTIO_F_VERSION_1);
	feat &= VIRTIO_F_VERSION_1 | VIRTIO_F_BLK_FLUSH | VIRTIO_F_BLK_DISCARD |
		VIRTIO_F_BLK_WRITE_ZEROES;
	wr32(t, VIRTIO_R_DRIVER_FEATURES_SEL, 0);
	wr32(t, VIRTIO_R_DRIVER_FEATURES, (uint32_t)feat);
	wr32(t, VIRTIO_R_DRIVER_FEATURES_SEL, 1);
	wr32(t, VIRTIO_R_DRIVER_FEATURES, (uint32_t)(feat >> 32));
	wr32(t, VIRTIO_R_STATUS, VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK);
	assert_true(rd32(t, VIRTIO_R_STATUS) & VIRTIO_ST_FEATURES_OK);
	wr32(t, VIRTIO_R_QUEUE_SEL, 0);
	assert_int_equal(rd32(t, VIRTIO_R_QUEUE_NUM_MAX), 256);
	assert_int_equal(rd32(t, VIRTIO_R_QUEUE_READY), 0);
	wr32(t, VIRTIO_R_QUEUE_NUM, qnum);
	wr32(t, VIRTIO_R_QUEUE_DESC_LOW, G_DESC);
	wr32(t, VIRTIO_R_QUEUE_DRIVER_LOW, G_AVAIL);
	wr32(t, VIRTIO_R_QUEUE_DEVICE_LOW, G_USED);
	wr32(t, VIRTIO_R_QUEUE_READY, 1);
	assert_int_equal(rd32(t, VIRTIO_R_QUEUE_READY), 1);
	wr32(t, VIRTIO_R_STATUS,
	     VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK |
		 VIRTIO_ST_DRIVER_OK);
	assert_int_equal(rd32(t, VIRTIO_R_STATUS), VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER |
						       VIRTIO_ST_FEATURES_OK | VIRTIO_ST_DRIVER_OK);
}

static void pattern(uint8_t *p, size_t n, uint32_t seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 131u + seed * 7u + (i >> 9)) ^ seed);
}

static struct t *t_new_cap(const char *dir, uint64_t file_size, uint64_t capacity, uint64_t limit)
{
	struct t *t = calloc(1, sizeof(*t));
	struct vmm_blk_opts o;

	assert_non_null(t);
	t->ram = calloc(1, RAM_SIZE);
	t->orig = calloc(1, file_size + 1);
	t->model = calloc(1, CAPACITY);
	assert_non_null(t->ram);
	assert_non_null(t->orig);
	assert_non_null(t->model);
	t->mem = (struct vmm_guestmem){.host = t->ram, .size = RAM_SIZE};
	snprintf(t->path, sizeof(t->path), "%s/instar-vblk-XXXXXX", dir);
	t->fd = mkstemp(t->path);
	assert_true(t->fd >= 0);
	pattern(t->orig, file_size, 1);
	assert_int_equal(pwrite(t->fd, t->orig, file_size, 0), (ssize_t)file_size);
	memcpy(t->model, t->orig, file_size);
	o = (struct vmm_blk_opts){.fd = t->fd,
				  .file_size = file_size,
				  .capacity_bytes = capacity,
				  .overlay_limit = limit};
	assert_int_equal(vmm_blk_create(&t->b, &t->mem, &o), 0);
	return t;
}

static int t_commit(struct t *t)
{
	struct vmm_ovl_where w;

	return vmm_blk_commit(t->b, &w);
}

static struct t *t_new(const char *dir, uint64_t file_size, uint64_t limit)
{
	return t_new_cap(dir, file_size, CAPACITY, limit);
}

static void t_free(struct t *t)
{
	vmm_blk_destroy(t->b);
	close(t->fd);
	unlink(t->path);
	free(t->ram);
	free(t->orig);
	free(t->model);
	free(t);
}

/* The file still holds exactly what it was created with. */
static void assert_file_untouched(struct t *t, uint64_t file_size)
{
	struct stat st;
	uint8_t *buf = malloc(file_size + 1);

	assert_non_null(buf);
	assert_int_equal(fstat(t->fd, &st), 0);
	assert_int_equal(st.st_size, file_size);
	assert_int_equal(pread(t->fd, buf, file_size, 0), (ssize_t)file_size);
	assert_memory_equal(buf, t->orig, file_size);
	free(buf);
}

/* Reading the whole device through the queue shows the model. */
static void assert_device_shows_model(struct t *t)
{
	uint32_t off;

	for (off = 0; off < CAPACITY; off += 64 * 1024) {
		memset(t->ram + G_DATA, 0xcc, 64 * 1024);
		assert_int_equal(req(t, VIRTIO_T_IN, off / 512, G_DATA, 64 * 1024, true),
				 VIRTIO_S_OK);
		assert_memory_equal(t->ram + G_DATA, t->model + off, 64 * 1024);
	}
}

/* ---- registers and negotiation ---- */

static void test_registers(void **state)
{
	struct t *t = t_new("/tmp", FILE_SIZE, 0);
	uint64_t cap = 0, v8 = 0x1111;
	uint16_t v2 = 0x2222;
	uint32_t v;

	(void)state;
	assert_int_equal(rd32(t, VIRTIO_R_MAGIC), 0x74726976u);
	assert_int_equal(rd32(t, VIRTIO_R_VERSION), 2);
	assert_int_equal(rd32(t, VIRTIO_R_DEVICE_ID), 2);
	wr32(t, VIRTIO_R_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(rd32(t, VIRTIO_R_DEVICE_FEATURES), 1); /* VERSION_1 */
	wr32(t, VIRTIO_R_DEVICE_FEATURES_SEL, 0);
	v = rd32(t, VIRTIO_R_DEVICE_FEATURES);
	assert_true(v & VIRTIO_F_BLK_FLUSH);
	assert_true(v & VIRTIO_F_BLK_DISCARD);
	assert_true(v & VIRTIO_F_BLK_WRITE_ZEROES);
	wr32(t, VIRTIO_R_DEVICE_FEATURES_SEL, 7);
	assert_int_equal(rd32(t, VIRTIO_R_DEVICE_FEATURES), 0);

	/* config: capacity in sectors, as one 8-byte and as two 4-byte reads */
	vmm_blk_mmio_read(t->b, VIRTIO_R_CONFIG, &cap, 8);
	assert_int_equal(cap, CAPACITY / 512);
	assert_int_equal(rd32(t, VIRTIO_R_CONFIG + 4), 0);
	assert_int_equal(rd32(t, VIRTIO_R_CONFIG + 36), 1u << 31); /* max_discard_sectors */
	assert_int_equal(rd32(t, VIRTIO_R_CONFIG + 48), 1u << 31); /* max_write_zeroes_sectors */

	/* bad accesses read 0: unaligned, narrow register, outside config, huge */
	vmm_blk_mmio_read(t->b, VIRTIO_R_MAGIC + 1, &v8, 4);
	assert_int_equal(v8 & 0xffffffffu, 0);
	vmm_blk_mmio_read(t->b, VIRTIO_R_MAGIC, &v2, 2);
	assert_int_equal(v2, 0);
	v8 = 0x1111;
	vmm_blk_mmio_read(t->b, VIRTIO_R_CONFIG + 56, &v8, 8);
	assert_int_equal(v8, 0);
	assert_int_equal(rd32(t, INSTAR_VIRTIO_MMIO_SIZE - 4), 0);
	assert_int_equal(rd32(t, UINT64_MAX - 3), 0);
	/* config writes are ignored */
	wr32(t, VIRTIO_R_CONFIG, 0);
	assert_int_equal(rd32(t, VIRTIO_R_CONFIG), CAPACITY / 512);

	/* FEATURES_OK is refused without VERSION_1 ... */
	wr32(t, VIRTIO_R_STATUS, VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER);
	wr32(t, VIRTIO_R_DRIVER_FEATURES_SEL, 0);
	wr32(t, VIRTIO_R_DRIVER_FEATURES, (uint32_t)VIRTIO_F_BLK_FLUSH);
	wr32(t, VIRTIO_R_STATUS, VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK);
	assert_int_equal(rd32(t, VIRTIO_R_STATUS), VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER);
	/* ... and with a feature the device did not offer */
	wr32(t, VIRTIO_R_DRIVER_FEATURES_SEL, 1);
	wr32(t, VIRTIO_R_DRIVER_FEATURES, 1 | 2);
	wr32(t, VIRTIO_R_STATUS, VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK);
	assert_int_equal(rd32(t, VIRTIO_R_STATUS) & VIRTIO_ST_FEATURES_OK, 0);
	/* a queue cannot go live before FEATURES_OK */
	wr32(t, VIRTIO_R_QUEUE_NUM, 8);
	wr32(t, VIRTIO_R_QUEUE_DESC_LOW, G_DESC);
	wr32(t, VIRTIO_R_QUEUE_DRIVER_LOW, G_AVAIL);
	wr32(t, VIRTIO_R_QUEUE_DEVICE_LOW, G_USED);
	wr32(t, VIRTIO_R_QUEUE_READY, 1);
	assert_int_equal(rd32(t, VIRTIO_R_QUEUE_READY), 0);
	/* reset clears everything */
	wr32(t, VIRTIO_R_STATUS, 0);
	assert_int_equal(rd32(t, VIRTIO_R_STATUS), 0);

	driver_setup(t, 8);
	/* features are frozen once FEATURES_OK was accepted */
	wr32(t, VIRTIO_R_DRIVER_FEATURES_SEL, 1);
	wr32(t, VIRTIO_R_DRIVER_FEATURES, 0);
	assert_int_equal(req(t, VIRTIO_T_FLUSH, 0, 0, 0, false), VIRTIO_S_OK);
	/* GET_ID */
	memset(t->ram + G_DATA, 0xaa, 20);
	assert_int_equal(req(t, VIRTIO_T_GET_ID, 0, G_DATA, 20, true), VIRTIO_S_OK);
	assert_string_equal((char *)t->ram + G_DATA, "instar");
	assert_int_equal(t->ram[G_DATA + 19], 0);
	t_free(t);
}

static void test_bad_queue_setup(void **state)
{
	struct t *t = t_new("/tmp", FILE_SIZE, 0);
	static const struct {
		uint32_t num;
		uint64_t desc, avail, used;
	} cases[] = {
	    {0, G_DESC, G_AVAIL, G_USED},		 /* empty queue */
	    {12, G_DESC, G_AVAIL, G_USED},		 /* not a power of two */
	    {512, G_DESC, G_AVAIL, G_USED},		 /* above QueueNumMax */
	    {8, RAM_SIZE - 64, G_AVAIL, G_USED},	 /* descriptors leave RAM */
	    {8, G_DESC, RAM_SIZE - 4, G_USED},		 /* avail ring leaves RAM */
	    {8, G_DESC, G_AVAIL, RAM_SIZE},		 /* used ring leaves RAM */
	    {8, G_DESC + 8, G_AVAIL, G_USED},		 /* misaligned descriptors */
	    {8, 0xffffffffffffff00ull, G_AVAIL, G_USED}, /* wraps around */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		wr32(t, VIRTIO_R_STATUS, 0);
		wr32(t, VIRTIO_R_STATUS, VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER);
		wr32(t, VIRTIO_R_DRIVER_FEATURES_SEL, 1);
		wr32(t, VIRTIO_R_DRIVER_FEATURES, 1);
		wr32(t, VIRTIO_R_STATUS,
		     VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK);
		wr32(t, VIRTIO_R_QUEUE_NUM, cases[i].num);
		wr32(t, VIRTIO_R_QUEUE_DESC_LOW, (uint32_t)cases[i].desc);
		wr32(t, VIRTIO_R_QUEUE_DESC_LOW + 4, (uint32_t)(cases[i].desc >> 32));
		wr32(t, VIRTIO_R_QUEUE_DRIVER_LOW, (uint32_t)cases[i].avail);
		wr32(t, VIRTIO_R_QUEUE_DEVICE_LOW, (uint32_t)cases[i].used);
		wr32(t, VIRTIO_R_QUEUE_READY, 1);
		assert_int_equal(rd32(t, VIRTIO_R_QUEUE_READY), 0);
		assert_true(vmm_blk_needs_reset(t->b));
		assert_true(rd32(t, VIRTIO_R_STATUS) & VIRTIO_ST_NEEDS_RESET);
	}
	/* a reset recovers */
	driver_setup(t, 8);
	assert_false(vmm_blk_needs_reset(t->b));
	assert_int_equal(req(t, VIRTIO_T_IN, 0, G_DATA, 512, true), VIRTIO_S_OK);
	t_free(t);
}

/* ---- staged reads and writes ---- */

static void test_staged_rw(void **state)
{
	struct t *t = t_new("/tmp", FILE_SIZE, 0);
	struct stat st;
	uint8_t *buf;

	(void)state;
	driver_setup(t, 8);
	assert_device_shows_model(t);

	/* a write in the middle of the file, one straddling EOF, one past it */
	pattern(t->ram + G_DATA, 4096, 2);
	assert_int_equal(req(t, VIRTIO_T_OUT, 3, G_DATA, 4096, false), VIRTIO_S_OK);
	memcpy(t->model + 3 * 512, t->ram + G_DATA, 4096);
	pattern(t->ram + G_DATA, 8192, 3);
	assert_int_equal(req(t, VIRTIO_T_OUT, (FILE_SIZE - 2048) / 512, G_DATA, 8192, false),
			 VIRTIO_S_OK);
	memcpy(t->model + FILE_SIZE - 2048, t->ram + G_DATA, 8192);
	pattern(t->ram + G_DATA, 1024, 4);
	assert_int_equal(req(t, VIRTIO_T_OUT, (CAPACITY - 1024) / 512, G_DATA, 1024, false),
			 VIRTIO_S_OK);
	memcpy(t->model + CAPACITY - 1024, t->ram + G_DATA, 1024);
	/* overwrite part of an earlier write: newest wins */
	pattern(t->ram + G_DATA, 512, 5);
	assert_int_equal(req(t, VIRTIO_T_OUT, 4, G_DATA, 512, false), VIRTIO_S_OK);
	memcpy(t->model + 4 * 512, t->ram + G_DATA, 512);
	assert_int_equal(req(t, VIRTIO_T_FLUSH, 0, 0, 0, false), VIRTIO_S_OK);

	assert_device_shows_model(t);
	assert_file_untouched(t, FILE_SIZE);

	assert_int_equal(t_commit(t), 0);
	assert_int_equal(fstat(t->fd, &st), 0);
	assert_int_equal(st.st_size, CAPACITY);
	buf = malloc(CAPACITY);
	assert_non_null(buf);
	assert_int_equal(pread(t->fd, buf, CAPACITY, 0), CAPACITY);
	assert_memory_equal(buf, t->model, CAPACITY);
	free(buf);
	t_free(t);
}

/* The device must not assume a framing: a header split over two buffers and
 * data spread over many descriptors, up to a 1 MiB request. */
static void test_multi_descriptor(void **state)
{
	struct t *t = t_new_cap("/tmp", FILE_SIZE, 2u << 20, 0);
	const uint32_t chunk = 64 * 1024;
	const uint64_t back = G_DATA + (2u << 20);
	unsigned i, n = 0;

	(void)state;
	driver_setup(t, 32);
	put_hdr(t, VIRTIO_T_OUT, 0);
	put_desc(t, n, G_HDR, 5, VIRTIO_DESC_F_NEXT, (uint16_t)(n + 1));
	n++;
	put_desc(t, n, G_HDR + 5, 11, VIRTIO_DESC_F_NEXT, (uint16_t)(n + 1));
	n++;
	/* 16 data buffers in reverse guest order */
	pattern(t->ram + G_DATA, 16 * chunk, 9);
	for (i = 0; i < 16; i++, n++)
		put_desc(t, n, G_DATA + (15 - i) * chunk, chunk, VIRTIO_DESC_F_NEXT,
			 (uint16_t)(n + 1));
	put_desc(t, n, G_STATUS, 1, VIRTIO_DESC_F_WRITE, 0);
	assert_int_equal(kick(t, 0, 1), VIRTIO_S_OK);

	/* read it back into one buffer through descriptors of odd sizes, the
	 * last one carrying the status byte too */
	n = 0;
	put_hdr(t, VIRTIO_T_IN, 0);
	put_desc(t, n++, G_HDR, 16, VIRTIO_DESC_F_NEXT, 1);
	put_desc(t, n++, back, 1000, VIRTIO_DESC_F_NEXT | VIRTIO_DESC_F_WRITE, 2);
	put_desc(t, n++, back + 1000, 16 * chunk - 1000 + 1, VIRTIO_DESC_F_WRITE, 0);
	t->ram[back + 16 * chunk] = NO_STATUS;
	memcpy(t->ram + G_AVAIL + 4 + 2 * (t->avail_idx % t->qnum), &(uint16_t){0}, 2);
	t->avail_idx++;
	memcpy(t->ram + G_AVAIL + 2, &t->avail_idx, 2);
	wr32(t, VIRTIO_R_QUEUE_NOTIFY, 0);
	assert_int_equal(used_idx(t), ++t->used_idx);
	assert_int_equal(t->ram[back + 16 * chunk], VIRTIO_S_OK);
	for (i = 0; i < 16; i++)
		assert_memory_equal(t->ram + back + i * chunk, t->ram + G_DATA + (15 - i) * chunk,
				    chunk);
	assert_file_untouched(t, FILE_SIZE);
	t_free(t);
}

static void test_zero_discard(void **state)
{
	struct t *t = t_new("/tmp", FILE_SIZE, 0);
	struct stat st;
	uint8_t *buf;

	(void)state;
	driver_setup(t, 8);
	pattern(t->ram + G_DATA, 8192, 6);
	assert_int_equal(req(t, VIRTIO_T_OUT, 8, G_DATA, 8192, false), VIRTIO_S_OK);
	memcpy(t->model + 8 * 512, t->ram + G_DATA, 8192);
	/* zeroes over part of that write and of the original file */
	assert_int_equal(zreq(t, VIRTIO_T_WRITE_ZEROES, 12, 8, 0), VIRTIO_S_OK);
	memset(t->model + 12 * 512, 0, 8 * 512);
	/* discard reads as zeros */
	assert_int_equal(zreq(t, VIRTIO_T_DISCARD, 40, 4, 0), VIRTIO_S_OK);
	memset(t->model + 40 * 512, 0, 4 * 512);
	/* write-zeroes past EOF must extend the file with zeros */
	assert_int_equal(
	    zreq(t, VIRTIO_T_WRITE_ZEROES, (FILE_SIZE + 4096) / 512, 16, 1 /* unmap ok */),
	    VIRTIO_S_OK);
	/* a discard past EOF changes nothing in the file */
	assert_int_equal(zreq(t, VIRTIO_T_DISCARD, CAPACITY / 512 - 4, 4, 0), VIRTIO_S_OK);
	/* discard with the unmap flag and unknown write-zeroes flags are unsupported */
	assert_int_equal(zreq(t, VIRTIO_T_DISCARD, 0, 1, 1), VIRTIO_S_UNSUPP);
	assert_int_equal(zreq(t, VIRTIO_T_WRITE_ZEROES, 0, 1, 2), VIRTIO_S_UNSUPP);
	/* beyond the device, or a 0-segment request */
	assert_int_equal(zreq(t, VIRTIO_T_WRITE_ZEROES, CAPACITY / 512 - 1, 2, 0), VIRTIO_S_IOERR);
	assert_int_equal(zreq(t, VIRTIO_T_DISCARD, UINT64_MAX / 256, 1, 0), VIRTIO_S_IOERR);
	assert_int_equal(req(t, VIRTIO_T_WRITE_ZEROES, 0, G_SEG, 0, false), VIRTIO_S_IOERR);
	assert_int_equal(req(t, VIRTIO_T_WRITE_ZEROES, 0, G_SEG, 15, false), VIRTIO_S_IOERR);
	assert_int_equal(req(t, VIRTIO_T_FLUSH, 0, 0, 0, false), VIRTIO_S_OK);
	assert_device_shows_model(t);
	assert_file_untouched(t, FILE_SIZE);

	assert_int_equal(t_commit(t), 0);
	assert_int_equal(fstat(t->fd, &st), 0);
	assert_int_equal(st.st_size, FILE_SIZE + 4096 + 16 * 512);
	/* without preallocation the extension is a hole: only the length grew */
	assert_true((uint64_t)st.st_blocks * 512 < FILE_SIZE + 8192);
	buf = calloc(1, CAPACITY);
	assert_non_null(buf);
	assert_int_equal(pread(t->fd, buf, CAPACITY, 0), st.st_size);
	assert_memory_equal(buf, t->model, CAPACITY);
	free(buf);
	t_free(t);
}

/* Write-zeroes and discard without the features negotiated are unsupported. */
static void test_zero_unnegotiated(void **state)
{
	struct t *t = t_new("/tmp", FILE_SIZE, 0);

	(void)state;
	t->qnum = 8;
	wr32(t, VIRTIO_R_STATUS, VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER);
	wr32(t, VIRTIO_R_DRIVER_FEATURES_SEL, 1);
	wr32(t, VIRTIO_R_DRIVER_FEATURES, 1);
	wr32(t, VIRTIO_R_STATUS, VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK);
	wr32(t, VIRTIO_R_QUEUE_NUM, 8);
	wr32(t, VIRTIO_R_QUEUE_DESC_LOW, G_DESC);
	wr32(t, VIRTIO_R_QUEUE_DRIVER_LOW, G_AVAIL);
	wr32(t, VIRTIO_R_QUEUE_DEVICE_LOW, G_USED);
	wr32(t, VIRTIO_R_QUEUE_READY, 1);
	wr32(t, VIRTIO_R_STATUS,
	     VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK |
		 VIRTIO_ST_DRIVER_OK);
	assert_int_equal(zreq(t, VIRTIO_T_WRITE_ZEROES, 0, 1, 0), VIRTIO_S_UNSUPP);
	assert_int_equal(zreq(t, VIRTIO_T_DISCARD, 0, 1, 0), VIRTIO_S_UNSUPP);
	assert_int_equal(req(t, 99, 0, 0, 0, false), VIRTIO_S_UNSUPP);
	t_free(t);
}

/* ---- bounds ---- */

static void test_overlay_limit(void **state)
{
	struct t *t = t_new("/tmp", FILE_SIZE, 8192);

	(void)state;
	driver_setup(t, 8);
	pattern(t->ram + G_DATA, 8192, 7);
	assert_int_equal(req(t, VIRTIO_T_OUT, 0, G_DATA, 4096, false), VIRTIO_S_OK);
	assert_false(vmm_blk_overlay_exceeded(t->b));
	assert_int_equal(req(t, VIRTIO_T_OUT, 8, G_DATA, 8192, false), VIRTIO_S_IOERR);
	assert_true(vmm_blk_overlay_exceeded(t->b));
	/* sticky: even what would fit now fails, and so does write-zeroes */
	assert_int_equal(req(t, VIRTIO_T_OUT, 16, G_DATA, 512, false), VIRTIO_S_IOERR);
	assert_int_equal(zreq(t, VIRTIO_T_WRITE_ZEROES, 0, 1, 0), VIRTIO_S_IOERR);
	/* reads still work, and the failed write is not visible */
	memcpy(t->model, t->ram + G_DATA, 4096);
	assert_device_shows_model(t);
	/* the device keeps going; nothing is ever committed */
	assert_int_equal(t_commit(t), -ENOSPC);
	assert_file_untouched(t, FILE_SIZE);
	t_free(t);
}

static void test_op_count_limit(void **state)
{
	struct t *t = t_new("/tmp", FILE_SIZE, 0);
	unsigned i;

	(void)state;
	driver_setup(t, 8);
	for (i = 0; i < VMM_BLK_OVERLAY_MAX_OPS; i++)
		assert_int_equal(zreq(t, VIRTIO_T_WRITE_ZEROES, i % (CAPACITY / 512), 1, 0),
				 VIRTIO_S_OK);
	assert_false(vmm_blk_overlay_exceeded(t->b));
	assert_int_equal(zreq(t, VIRTIO_T_WRITE_ZEROES, 0, 1, 0), VIRTIO_S_IOERR);
	assert_true(vmm_blk_overlay_exceeded(t->b));
	t_free(t);
}

/* ---- hostile requests: an error status, never a crash ---- */

static void test_hostile_requests(void **state)
{
	struct t *t = t_new_cap("/tmp", FILE_SIZE, 64u << 20, 0);

	(void)state;
	driver_setup(t, 8);

	/* data outside guest RAM, and an address whose end overflows */
	assert_int_equal(req(t, VIRTIO_T_IN, 0, RAM_SIZE - 256, 512, true), VIRTIO_S_IOERR);
	assert_int_equal(req(t, VIRTIO_T_OUT, 0, UINT64_MAX - 100, 512, false), VIRTIO_S_IOERR);
	assert_int_equal(req(t, VIRTIO_T_IN, 0, 0xfffffffffffffe00ull, 512, true), VIRTIO_S_IOERR);
	/* sectors beyond the capacity; sector * 512 overflowing */
	assert_int_equal(req(t, VIRTIO_T_IN, (64u << 20) / 512, G_DATA, 512, true), VIRTIO_S_IOERR);
	assert_int_equal(req(t, VIRTIO_T_OUT, (64u << 20) / 512 - 1, G_DATA, 1024, false),
			 VIRTIO_S_IOERR);
	assert_int_equal(req(t, VIRTIO_T_IN, UINT64_MAX / 512 + 1, G_DATA, 512, true),
			 VIRTIO_S_IOERR);
	assert_int_equal(req(t, VIRTIO_T_IN, UINT64_MAX / 512, G_DATA, 512, true), VIRTIO_S_IOERR);
	/* not a whole number of sectors */
	assert_int_equal(req(t, VIRTIO_T_IN, 0, G_DATA, 500, true), VIRTIO_S_IOERR);
	assert_int_equal(req(t, VIRTIO_T_OUT, 0, G_DATA, 513, false), VIRTIO_S_IOERR);
	/* wrong directions: read into a device-readable buffer, write from a
	 * device-writable one */
	assert_int_equal(req(t, VIRTIO_T_IN, 0, G_DATA, 512, false), VIRTIO_S_IOERR);
	put_hdr(t, VIRTIO_T_OUT, 0);
	put_desc(t, 0, G_HDR, 16, VIRTIO_DESC_F_NEXT, 1);
	put_desc(t, 1, G_DATA, 512, VIRTIO_DESC_F_NEXT | VIRTIO_DESC_F_WRITE, 2);
	put_desc(t, 2, G_STATUS, 1, VIRTIO_DESC_F_WRITE, 0);
	assert_int_equal(kick(t, 0, 1), VIRTIO_S_IOERR);
	/* a device-readable buffer after a writable one */
	put_hdr(t, VIRTIO_T_IN, 0);
	put_desc(t, 0, G_HDR, 16, VIRTIO_DESC_F_NEXT, 1);
	put_desc(t, 1, G_DATA, 512, VIRTIO_DESC_F_NEXT | VIRTIO_DESC_F_WRITE, 2);
	put_desc(t, 2, G_DATA + 512, 512, VIRTIO_DESC_F_NEXT, 3);
	put_desc(t, 3, G_STATUS, 1, VIRTIO_DESC_F_WRITE, 0);
	assert_int_equal(kick(t, 0, 1), VIRTIO_S_IOERR);
	/* header too short; extra header bytes on a read */
	put_hdr(t, VIRTIO_T_IN, 0);
	put_desc(t, 0, G_HDR, 8, VIRTIO_DESC_F_NEXT, 1);
	put_desc(t, 1, G_STATUS, 1, VIRTIO_DESC_F_WRITE, 0);
	assert_int_equal(kick(t, 0, 1), VIRTIO_S_IOERR);
	put_desc(t, 0, G_HDR, 24, VIRTIO_DESC_F_NEXT, 1);
	put_desc(t, 1, G_DATA, 512, VIRTIO_DESC_F_NEXT | VIRTIO_DESC_F_WRITE, 2);
	put_desc(t, 2, G_STATUS, 1, VIRTIO_DESC_F_WRITE, 0);
	assert_int_equal(kick(t, 0, 1), VIRTIO_S_IOERR);
	/* header descriptor outside RAM */
	put_desc(t, 0, RAM_SIZE, 16, VIRTIO_DESC_F_NEXT, 1);
	put_desc(t, 1, G_STATUS, 1, VIRTIO_DESC_F_WRITE, 0);
	assert_int_equal(kick(t, 0, 1), VIRTIO_S_IOERR);
	/* a request bigger than the device takes at once */
	assert_int_equal(req(t, VIRTIO_T_OUT, 0, G_DATA, INSTAR_BLK_MAX_REQ_BYTES + 512, false),
			 VIRTIO_S_IOERR);
	assert_int_equal(req(t, VIRTIO_T_IN, 0, G_DATA, INSTAR_BLK_MAX_REQ_BYTES + 512, true),
			 VIRTIO_S_IOERR);
	assert_int_equal(req(t, VIRTIO_T_IN, 0, G_DATA, INSTAR_BLK_MAX_REQ_BYTES, true),
			 VIRTIO_S_OK);
	/* flush carrying data, GET_ID with a read-only buffer */
	assert_int_equal(req(t, VIRTIO_T_FLUSH, 0, G_DATA, 512, false), VIRTIO_S_IOERR);
	assert_int_equal(req(t, VIRTIO_T_GET_ID, 0, G_DATA, 20, false), VIRTIO_S_IOERR);

	/* the device carries on after all of that, and staged nothing */
	assert_false(vmm_blk_needs_reset(t->b));
	assert_int_equal(req(t, VIRTIO_T_IN, 0, G_DATA, 512, true), VIRTIO_S_OK);
	assert_memory_equal(t->ram + G_DATA, t->orig, 512);
	assert_int_equal(t_commit(t), 0);
	assert_file_untouched(t, FILE_SIZE);
	t_free(t);
}

/* Rings the device cannot answer put it in DEVICE_NEEDS_RESET. */
enum ring_case {
	RC_HEAD_OOR,	 /* head index >= queue size */
	RC_NEXT_OOR,	 /* next index >= queue size */
	RC_SELF_LOOP,	 /* 0 -> 0 */
	RC_LOOP,	 /* 0 -> 1 -> 2 -> 1 */
	RC_TOO_LONG,	 /* every slot chained, then back to the start */
	RC_STATUS_RO,	 /* the last buffer is device-readable */
	RC_STATUS_OOR,	 /* the status byte lies outside RAM */
	RC_STATUS_EMPTY, /* zero-length last buffer */
	RC_INDIRECT,	 /* indirect descriptor, never negotiated */
	RC_AVAIL_JUMP,	 /* avail idx more than a queue ahead */
	RC_COUNT
};

static void test_hostile_rings(void **state)
{
	struct t *t = t_new("/tmp", FILE_SIZE, 0);
	int c;

	(void)state;
	for (c = 0; c < RC_COUNT; c++) {
		uint16_t head = 0, ai, before;
		unsigned i;

		driver_setup(t, 8);
		/* something staged before the bad ring must survive it */
		pattern(t->ram + G_DATA, 512, 20 + (uint32_t)c);
		assert_int_equal(req(t, VIRTIO_T_OUT, (uint64_t)c, G_DATA, 512, false),
				 VIRTIO_S_OK);
		memcpy(t->model + c * 512, t->ram + G_DATA, 512);

		put_hdr(t, VIRTIO_T_IN, 0);
		put_desc(t, 0, G_HDR, 16, VIRTIO_DESC_F_NEXT, 1);
		put_desc(t, 1, G_DATA, 512, VIRTIO_DESC_F_NEXT | VIRTIO_DESC_F_WRITE, 2);
		put_desc(t, 2, G_STATUS, 1, VIRTIO_DESC_F_WRITE, 0);
		switch (c) {
		case RC_HEAD_OOR:
			head = 8;
			break;
		case RC_NEXT_OOR:
			put_desc(t, 1, G_DATA, 512, VIRTIO_DESC_F_NEXT | VIRTIO_DESC_F_WRITE, 200);
			break;
		case RC_SELF_LOOP:
			put_desc(t, 0, G_HDR, 16, VIRTIO_DESC_F_NEXT, 0);
			break;
		case RC_LOOP:
			put_desc(t, 2, G_STATUS, 1, VIRTIO_DESC_F_NEXT | VIRTIO_DESC_F_WRITE, 1);
			break;
		case RC_TOO_LONG:
			for (i = 1; i < 8; i++)
				put_desc(t, i, G_DATA, 512,
					 VIRTIO_DESC_F_NEXT | VIRTIO_DESC_F_WRITE,
					 (uint16_t)((i + 1) % 8));
			break;
		case RC_STATUS_RO:
			put_desc(t, 2, G_STATUS, 1, 0, 0);
			break;
		case RC_STATUS_OOR:
			put_desc(t, 2, UINT64_MAX, 1, VIRTIO_DESC_F_WRITE, 0);
			break;
		case RC_STATUS_EMPTY:
			put_desc(t, 2, G_STATUS, 0, VIRTIO_DESC_F_WRITE, 0);
			break;
		case RC_INDIRECT:
			put_desc(t, 1, G_DATA, 512,
				 VIRTIO_DESC_F_NEXT | VIRTIO_DESC_F_WRITE | VIRTIO_DESC_F_INDIRECT,
				 2);
			break;
		case RC_AVAIL_JUMP:
			break;
		}
		before = used_idx(t);
		if (c == RC_AVAIL_JUMP) {
			t->ram[G_STATUS] = NO_STATUS;
			ai = (uint16_t)(t->avail_idx + 9);
			memcpy(t->ram + G_AVAIL + 2, &ai, 2);
			wr32(t, VIRTIO_R_QUEUE_NOTIFY, 0);
		} else {
			assert_int_equal(kick(t, head, 0), NO_STATUS);
		}
		assert_true(vmm_blk_needs_reset(t->b));
		assert_true(rd32(t, VIRTIO_R_STATUS) & VIRTIO_ST_NEEDS_RESET);
		assert_true(rd32(t, VIRTIO_R_INTERRUPT_STATUS) & 2);
		assert_int_equal(used_idx(t), before);
		assert_int_equal(t->ram[G_STATUS], NO_STATUS);
		/* further notifies are ignored until a reset */
		wr32(t, VIRTIO_R_QUEUE_NOTIFY, 0);
		assert_int_equal(used_idx(t), before);
	}
	/* after a reset everything staged before is still there */
	driver_setup(t, 8);
	assert_false(vmm_blk_needs_reset(t->b));
	assert_device_shows_model(t);
	assert_file_untouched(t, FILE_SIZE);
	t_free(t);
}

/* ---- commit ---- */

static void test_commit_stop_after(void **state)
{
	struct t *t = t_new("/tmp", FILE_SIZE, 0);
	uint8_t buf[512], expect[512];

	(void)state;
	driver_setup(t, 8);
	pattern(t->ram + G_DATA, 512, 30);
	memcpy(expect, t->ram + G_DATA, 512);
	assert_int_equal(req(t, VIRTIO_T_OUT, 0, G_DATA, 512, false), VIRTIO_S_OK);
	assert_int_equal(req(t, VIRTIO_T_FLUSH, 0, 0, 0, false), VIRTIO_S_OK);
	pattern(t->ram + G_DATA, 512, 31);
	assert_int_equal(req(t, VIRTIO_T_OUT, 1, G_DATA, 512, false), VIRTIO_S_OK);
	assert_int_equal(req(t, VIRTIO_T_OUT, 2, G_DATA, 512, false), VIRTIO_S_OK);

	assert_int_equal(setenv("INSTAR_TEST_COMMIT_STOP_AFTER", "0", 1), 0);
	assert_int_equal(t_commit(t), -ECANCELED);
	assert_file_untouched(t, FILE_SIZE);

	assert_int_equal(setenv("INSTAR_TEST_COMMIT_STOP_AFTER", "1", 1), 0);
	assert_int_equal(t_commit(t), -ECANCELED);
	unsetenv("INSTAR_TEST_COMMIT_STOP_AFTER");
	assert_int_equal(pread(t->fd, buf, 512, 0), 512);
	assert_memory_equal(buf, expect, 512);
	assert_int_equal(pread(t->fd, buf, 512, 512), 512);
	assert_memory_equal(buf, t->orig + 512, 512);

	assert_int_equal(t_commit(t), 0);
	assert_int_equal(pread(t->fd, buf, 512, 1024), 512);
	assert_memory_equal(buf, t->ram + G_DATA, 512);
	t_free(t);
}

/* Random overlapping writes, zeroes and discards: the extent map must agree
 * with a byte model at every step, and the commit with it at the end. Run on
 * /tmp and on tmpfs, where FALLOC_FL_ZERO_RANGE is not supported. */
static void random_ops(const char *dir)
{
	struct t *t = t_new(dir, FILE_SIZE, 0);
	uint32_t rng = 12345;
	uint8_t *buf;
	struct stat st;
	uint64_t size = FILE_SIZE;
	unsigned i;

	driver_setup(t, 16);
	for (i = 0; i < 3000; i++) {
		uint32_t kind, sec, n;

		rng = rng * 1103515245u + 12345u;
		kind = (rng >> 16) % 10;
		rng = rng * 1103515245u + 12345u;
		sec = (rng >> 8) % (CAPACITY / 512);
		rng = rng * 1103515245u + 12345u;
		n = 1 + (rng >> 8) % 16;
		if (sec + n > CAPACITY / 512)
			n = CAPACITY / 512 - sec;
		if (kind < 6) {
			pattern(t->ram + G_DATA, n * 512, i);
			assert_int_equal(req(t, VIRTIO_T_OUT, sec, G_DATA, n * 512, false),
					 VIRTIO_S_OK);
			memcpy(t->model + sec * 512, t->ram + G_DATA, n * 512);
		} else if (kind < 8) {
			assert_int_equal(zreq(t, VIRTIO_T_WRITE_ZEROES, sec, n, 0), VIRTIO_S_OK);
			memset(t->model + sec * 512, 0, n * 512);
		} else if (kind < 9) {
			assert_int_equal(zreq(t, VIRTIO_T_DISCARD, sec, n, 0), VIRTIO_S_OK);
			memset(t->model + sec * 512, 0, n * 512);
			/* a discard never extends the file */
			continue;
		} else {
			/* barriers are bounded (VMM_OVL_MAX_FLUSH): one in 50 ops */
			if (i % 50 < 45)
				continue;
			assert_int_equal(req(t, VIRTIO_T_FLUSH, 0, 0, 0, false), VIRTIO_S_OK);
			continue;
		}
		if ((uint64_t)(sec + n) * 512 > size)
			size = (uint64_t)(sec + n) * 512;
		if (i % 500 == 0)
			assert_device_shows_model(t);
	}
	assert_device_shows_model(t);
	assert_file_untouched(t, FILE_SIZE);
	assert_int_equal(t_commit(t), 0);
	assert_int_equal(fstat(t->fd, &st), 0);
	assert_int_equal(st.st_size, size);
	buf = calloc(1, CAPACITY);
	assert_non_null(buf);
	assert_int_equal(pread(t->fd, buf, CAPACITY, 0), (ssize_t)size);
	/* Discards on a file system without holes may keep old bytes; both
	 * file systems used here punch holes, so the bytes must be exact. */
	assert_memory_equal(buf, t->model, CAPACITY);
	free(buf);
	t_free(t);
}

static void test_random_ops_tmp(void **state)
{
	(void)state;
	random_ops("/tmp");
}

static void test_random_ops_shm(void **state)
{
	struct stat st;

	(void)state;
	if (stat("/dev/shm", &st) < 0 || !S_ISDIR(st.st_mode))
		skip();
	random_ops("/dev/shm");
}

/* Many small writes in the worst order for the extent map stay fast. */
/* The budget (SECURITY.md, "Budgets"): write-zeroes inside the file cost
 * their bytes, past the end nothing without preallocation (and the commit
 * leaves a hole), against the preallocation allowance with it; barriers are
 * bounded. */
static void test_zero_budget(void **state)
{
	struct vmm_overlay o;
	struct vmm_ovl_where w;
	struct stat st;
	char path[] = "/tmp/instar-budget-XXXXXX";
	uint8_t *d;
	bool unsynced;
	int fd;

	(void)state;
	/* 64 KiB of budget over a 1 MiB file */
	vmm_overlay_init(&o, 64 << 10, VMM_BLK_OVERLAY_MAX_OPS);
	vmm_overlay_set_base(&o, 1 << 20, 0);
	assert_int_equal(vmm_overlay_zero(&o, 0, 32 << 10), 0);
	assert_int_equal(o.data_bytes, 32 << 10);
	/* 1 GiB of zeros past the end costs nothing: a hole */
	assert_int_equal(vmm_overlay_zero(&o, (1 << 20) - 4096, 1ull << 30), 0);
	assert_int_equal(o.data_bytes, (32 << 10) + 4096);
	assert_int_equal(o.eof, (1 << 20) - 4096 + (1ull << 30));
	/* but 64 KiB more inside the file is over the budget, and sticky */
	assert_int_equal(vmm_overlay_zero(&o, 65536, 65536), -ENOSPC);
	assert_true(o.exceeded);
	vmm_overlay_fini(&o);

	/* with preallocation the zeros past the end count against its limit */
	vmm_overlay_init(&o, 64 << 10, VMM_BLK_OVERLAY_MAX_OPS);
	vmm_overlay_set_base(&o, 4096, 1 << 20);
	assert_int_equal(vmm_overlay_zero(&o, 4096, 1 << 20), 0);
	assert_int_equal(vmm_overlay_zero(&o, (1 << 20) + 4096, 4096), -ENOSPC);
	vmm_overlay_fini(&o);

	/* barriers: VMM_OVL_MAX_FLUSH, then every op fails */
	vmm_overlay_init(&o, 1 << 20, VMM_BLK_OVERLAY_MAX_OPS);
	for (unsigned i = 0; i < VMM_OVL_MAX_FLUSH; i++) {
		d = malloc(512);
		assert_non_null(d);
		memset(d, (int)i, 512);
		assert_int_equal(vmm_overlay_write(&o, 0, d, 512), 0);
		assert_int_equal(vmm_overlay_flush(&o), 0);
	}
	d = malloc(512);
	assert_non_null(d);
	assert_int_equal(vmm_overlay_write(&o, 0, d, 512), 0);
	assert_int_equal(vmm_overlay_flush(&o), -ENOSPC);
	vmm_overlay_fini(&o);

	/* the commit: zeros past the end without preallocation leave a hole,
	 * with it they are allocated */
	for (int pre = 0; pre < 2; pre++) {
		fd = mkstemp(path);
		assert_true(fd >= 0);
		unlink(path);
		strcpy(path, "/tmp/instar-budget-XXXXXX");
		assert_int_equal(ftruncate(fd, 4096), 0);
		vmm_overlay_init(&o, 1 << 20, VMM_BLK_OVERLAY_MAX_OPS);
		vmm_overlay_set_base(&o, 4096, pre ? 8 << 20 : 0);
		assert_int_equal(vmm_overlay_zero(&o, 4096, 4 << 20), 0);
		assert_int_equal(vmm_overlay_reserve(&o, fd, (4 << 20) + 4096, &w), 0);
		assert_int_equal(vmm_overlay_commit(&o, fd, VMM_OVL_NO_STOP, &unsynced, &w), 0);
		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal(st.st_size, (4 << 20) + 4096);
		if (pre)
			assert_true((uint64_t)st.st_blocks * 512 >= 4 << 20);
		else
			assert_true((uint64_t)st.st_blocks * 512 < 1 << 20);
		vmm_overlay_fini(&o);
		close(fd);
	}
}

static void test_overlay_many_ops(void **state)
{
	struct vmm_overlay o;
	uint8_t out[16];
	unsigned i;

	(void)state;
	vmm_overlay_init(&o, 1ull << 30, VMM_BLK_OVERLAY_MAX_OPS);
	for (i = 0; i < VMM_BLK_OVERLAY_MAX_OPS; i++) {
		uint8_t *d = malloc(8);

		assert_non_null(d);
		memset(d, (int)(i & 0xff), 8);
		/* descending and interleaved, each splitting a neighbour */
		assert_int_equal(
		    vmm_overlay_write(&o, (uint64_t)(VMM_BLK_OVERLAY_MAX_OPS - i) * 4, d, 8), 0);
	}
	assert_int_equal(vmm_overlay_flush(&o), -ENOSPC);
	assert_true(o.exceeded);
	memset(out, 0x55, sizeof(out));
	vmm_overlay_read(&o, 8, out, 16);
	/* byte b was last written by the write at (b & ~3) - 4, i.e. by
	 * i = MAX - b / 4 + 1: newest wins */
	assert_int_equal(out[0], (VMM_BLK_OVERLAY_MAX_OPS - 1) & 0xff);
	assert_int_equal(out[4], (VMM_BLK_OVERLAY_MAX_OPS - 2) & 0xff);
	assert_int_equal(out[8], (VMM_BLK_OVERLAY_MAX_OPS - 3) & 0xff);
	assert_int_equal(out[15], (VMM_BLK_OVERLAY_MAX_OPS - 4) & 0xff);
	vmm_overlay_fini(&o);
}

/* A backing device: read-only. It offers VIRTIO_BLK_F_RO and neither
 * discard nor write-zeroes; reads see the file; a write, write-zeroes or
 * discard fails with IOERR, stages nothing and is remembered (the run is
 * then refused); a flush is harmless. */
static void test_read_only(void **state)
{
	struct t *t = t_new("/tmp", FILE_SIZE, 0);
	struct vmm_blk_opts o = {
	    .fd = t->fd, .file_size = FILE_SIZE, .capacity_bytes = CAPACITY, .read_only = true};
	struct vmm_blk_staged st;
	uint64_t feat;

	(void)state;
	vmm_blk_destroy(t->b);
	assert_int_equal(vmm_blk_create(&t->b, &t->mem, &o), 0);
	wr32(t, VIRTIO_R_DEVICE_FEATURES_SEL, 0);
	feat = rd32(t, VIRTIO_R_DEVICE_FEATURES);
	assert_true(feat & VIRTIO_F_BLK_RO);
	assert_false(feat & (VIRTIO_F_BLK_DISCARD | VIRTIO_F_BLK_WRITE_ZEROES));
	driver_setup(t, 8);
	assert_device_shows_model(t);
	assert_int_equal(req(t, VIRTIO_T_FLUSH, 0, 0, 0, false), VIRTIO_S_OK);
	assert_false(vmm_blk_write_refused(t->b));

	pattern(t->ram + G_DATA, 4096, 9);
	assert_int_equal(req(t, VIRTIO_T_OUT, 3, G_DATA, 4096, false), VIRTIO_S_IOERR);
	assert_true(vmm_blk_write_refused(t->b));
	assert_int_equal(zreq(t, VIRTIO_T_WRITE_ZEROES, 0, 8, 0), VIRTIO_S_IOERR);
	assert_int_equal(zreq(t, VIRTIO_T_DISCARD, 0, 8, 0), VIRTIO_S_IOERR);
	assert_false(vmm_blk_needs_reset(t->b));
	vmm_blk_staged(t->b, &st);
	assert_int_equal(st.nops, 0);
	assert_device_shows_model(t);
	assert_file_untouched(t, FILE_SIZE);
	t_free(t);

	/* a read-write device refuses the feature */
	t = t_new("/tmp", FILE_SIZE, 0);
	wr32(t, VIRTIO_R_DEVICE_FEATURES_SEL, 0);
	assert_false(rd32(t, VIRTIO_R_DEVICE_FEATURES) & VIRTIO_F_BLK_RO);
	t_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_registers),	      cmocka_unit_test(test_bad_queue_setup),
	    cmocka_unit_test(test_staged_rw),	      cmocka_unit_test(test_multi_descriptor),
	    cmocka_unit_test(test_zero_discard),      cmocka_unit_test(test_zero_budget),
	    cmocka_unit_test(test_zero_unnegotiated), cmocka_unit_test(test_overlay_limit),
	    cmocka_unit_test(test_op_count_limit),    cmocka_unit_test(test_hostile_requests),
	    cmocka_unit_test(test_hostile_rings),     cmocka_unit_test(test_commit_stop_after),
	    cmocka_unit_test(test_random_ops_tmp),    cmocka_unit_test(test_random_ops_shm),
	    cmocka_unit_test(test_overlay_many_ops),  cmocka_unit_test(test_read_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
