/* tests/unit/test_vdi_plan.c — the vdi planner on synthetic in-memory images:
 * plans are applied (whole, and cut after every op as a crash would cut
 * them) and the result is read back by this file's own VDI reader, which
 * checks qemu's rules (entries below blocks_allocated, no block named
 * twice, the count equal to blocks_allocated or, for a crash between two
 * header writes, larger: a leak) and the disk's bytes. Hostile headers and
 * block maps must give an error and no op. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plan.h"
#include "plan_testlib.h"
#include "vdi_layout.h"

#define MiB (1ull << 20)
#define FREE 0xffffffffu

/* ---- images ---- */

struct img {
	uint8_t *b;
	size_t len, cap;
};

/* Bytes past len are zero: a new buffer comes from calloc (large ones are
 * fresh zero pages, untouched until written), and len only grows. */
static void img_reserve(struct img *m, size_t len)
{
	if (len > m->cap) {
		size_t cap = len + len / 2;
		uint8_t *nb = calloc(1, cap);

		assert_non_null(nb);
		if (m->len)
			memcpy(nb, m->b, m->len);
		free(m->b);
		m->b = nb;
		m->cap = cap;
	}
	if (len > m->len)
		m->len = len;
}

static void img_free(struct img *m)
{
	free(m->b);
	memset(m, 0, sizeof(*m));
}

/* The byte a virtual block of the original image holds. */
static uint8_t fill(uint32_t vblock)
{
	return (uint8_t)(vblock * 7 + 1);
}

struct spec {
	uint32_t type;
	uint64_t disk;
	uint32_t blocks, bmap, data, nalloc;
	uint32_t hsize;
	const uint32_t *map; /* blocks entries */
};

/* Builds the image: header, map (rest of the map area 0 as qemu pads), the
 * data blocks; block e holds fill(i) for the entry i naming it. */
static void build(struct img *m, const struct spec *s)
{
	uint8_t *h;

	memset(m, 0, sizeof(*m));
	img_reserve(m, s->data + (size_t)s->nalloc * MiB);
	h = m->b;
	memcpy(h, "<<< QEMU VM Virtual Disk Image >>>\n", 35);
	put_le32(h + 0x40, INSTAR_VDI_SIGNATURE);
	put_le32(h + 0x44, INSTAR_VDI_VERSION_1_1);
	put_le32(h + 0x48, s->hsize ? s->hsize : 0x180);
	put_le32(h + 0x4c, s->type);
	put_le32(h + 0x154, s->bmap);
	put_le32(h + 0x158, s->data);
	put_le32(h + 0x168, 512);
	put_le64(h + 0x170, s->disk);
	put_le32(h + 0x178, (uint32_t)MiB);
	put_le32(h + 0x180, s->blocks);
	put_le32(h + 0x184, s->nalloc);
	memset(h + 0x188, 0x5a, 32); /* image and modification uuids */
	put_le32(h + 0x1c8, 1000);   /* LCHS (VirtualBox) */
	put_le32(h + 0x1cc, 16);
	put_le32(h + 0x1d0, 63);
	put_le32(h + 0x1d4, 512);
	for (uint32_t i = 0; i < s->blocks; i++) {
		put_le32(m->b + s->bmap + 4 * i, s->map[i]);
		if (s->map[i] < s->nalloc)
			memset(m->b + s->data + (size_t)s->map[i] * MiB, fill(i), MiB);
	}
}

/* ---- applying a plan ---- */

struct apply {
	struct img *m;
	uint32_t stop; /* apply the first stop write/zero/discard ops */
	uint32_t n;
	uint32_t flushes;
	void (*after)(struct img *m); /* called after each op applied, or NULL */
};

/* plan_on's next top-level call runs this after every op it applies. */
static void (*walk_hook)(struct img *m);

static int apply_sink(void *ctx, const struct plan_op *op)
{
	struct apply *a = ctx;

	if (op->kind == PLAN_OP_FLUSH) {
		a->flushes++;
		return 0;
	}
	if (a->n++ >= a->stop)
		return 0;
	switch (op->kind) {
	case PLAN_OP_WRITE:
		img_reserve(a->m, op->off + op->len);
		memcpy(a->m->b + op->off, op->data, op->len);
		break;
	case PLAN_OP_ZERO: /* what lies past the length is zero already */
		if (op->off < a->m->len)
			memset(a->m->b + op->off, 0,
			       op->off + op->len < a->m->len ? op->len : a->m->len - op->off);
		img_reserve(a->m, op->off + op->len);
		break;
	case PLAN_OP_DISCARD: /* punched: reads zeros */
		assert_true(op->off + op->len <= a->m->len);
		memset(a->m->b + op->off, 0, op->len);
		break;
	default:
		fail();
	}
	if (a->after)
		a->after(a->m);
	return 0;
}

static int img_read(void *ctx, uint64_t off, void *buf, uint32_t len)
{
	struct ptl_img pi = {.b = ((struct img *)ctx)->b, .len = ((struct img *)ctx)->len};

	return ptl_img_read(&pi, off, buf, len);
}

static uint8_t scratch[4 << 20];
static uint8_t scratch_nested[4 << 20]; /* a plan_on inside a walk_hook */
static unsigned plan_depth;

/* Plans m -> new_size; applies the first stop ops (all: UINT32_MAX) and, if
 * all were applied, sets the final length. Returns the planner's result. */
static int plan_on(struct img *m, uint64_t file_size, uint64_t new_size, uint32_t flags,
		   uint32_t stop, struct instar_resize_result *res, uint32_t *ret_nops)
{
	struct img copy = {0};
	struct apply a = {.m = m, .stop = stop, .after = walk_hook};
	struct plan_io io = {.read = img_read, .ctx = &copy, .file_size = file_size};
	struct plan_opts o = {
	    .new_size = new_size, .expected_old_size = UINT64_MAX, .flags = flags};
	struct plan_scratch s;
	struct plan p;
	int r;

	walk_hook = NULL; /* not for the plans the hook runs */
	/* the planner reads the original, as plan-apply's reads do */
	img_reserve(&copy, m->len);
	memcpy(copy.b, m->b, m->len);
	memset(res, 0, sizeof(*res));
	assert_true(plan_depth < 2);
	plan_scratch_init(&s, plan_depth ? scratch_nested : scratch, sizeof(scratch));
	plan_init(&p, apply_sink, &a, 0);
	plan_depth++;
	r = plan_resize(INSTAR_FMT_VDI, &o, &io, &s, &p, res);
	plan_depth--;
	assert_int_equal(r, (int)res->error);
	assert_true(a.flushes <= 64);
	if (ret_nops)
		*ret_nops = a.n;
	if (r == 0 && a.n <= stop) {
		img_reserve(m, p.file_size_after);
		m->len = p.file_size_after;
	}
	img_free(&copy);
	return r;
}

/* ---- this test's reader ---- */

struct view {
	uint64_t size;
	uint32_t blocks, nalloc, nref, bmap, data, type;
	uint32_t *map;
};

/* Reads m as qemu would and checks the allocation rules (qemu-img check's:
 * every entry below blocks_in_image, no block named twice, as many named
 * blocks as blocks_allocated; qemu's allocation's: every entry below
 * blocks_allocated; VirtualBox's: blocks_allocated <= blocks_in_image, the
 * map before the data). leak_ok allows a count below blocks_allocated.
 * noroom allows the one breach a relocating grow of a full block map
 * cannot avoid (docs/formats.md §8.3): up to noroom copies counted and
 * named past blocks_in_image. Returns true when the image needed it. */
static bool view_ex(const struct img *m, struct view *v, bool leak_ok, uint32_t noroom)
{
	const uint8_t *h = m->b;
	uint8_t *seen;
	bool breach;

	assert_true(m->len >= 512);
	v->size = get_le64(h + 0x170);
	v->blocks = get_le32(h + 0x180);
	v->nalloc = get_le32(h + 0x184);
	v->bmap = get_le32(h + 0x154);
	v->data = get_le32(h + 0x158);
	v->type = get_le32(h + 0x4c);
	assert_true(v->size % 512 == 0);
	assert_true(v->size <= (uint64_t)v->blocks * MiB);
	assert_true(v->nalloc <= v->blocks + noroom);
	breach = v->nalloc > v->blocks;
	assert_true(v->bmap >= 512 && v->bmap % 512 == 0 && v->data % 512 == 0);
	assert_true((uint64_t)v->bmap + 4ull * v->blocks <= v->data); /* VirtualBox's rule */
	assert_true(v->bmap + 4ull * v->blocks <= m->len);
	v->map = calloc(v->blocks + 1, 4);
	seen = calloc(v->nalloc + 1, 1);
	v->nref = 0;
	for (uint32_t i = 0; i < v->blocks; i++) {
		uint32_t e = get_le32(m->b + v->bmap + 4 * i);

		v->map[i] = e;
		if (e >= INSTAR_VDI_ZERO)
			continue;
		assert_true(e < v->nalloc);
		if (e >= v->blocks) { /* qemu-img check: "too large" */
			assert_true(e < v->blocks + noroom);
			breach = true;
		}
		assert_false(seen[e]);
		seen[e] = 1;
		v->nref++;
		assert_true(v->data + (uint64_t)(e + 1) * MiB <= m->len);
	}
	if (leak_ok || breach)
		assert_true(v->nref <= v->nalloc);
	else
		assert_int_equal(v->nref, v->nalloc);
	free(seen);
	return breach;
}

static void view(const struct img *m, struct view *v, bool leak_ok)
{
	view_ex(m, v, leak_ok, 0);
}

/* Byte off of the disk v describes. */
static uint8_t vbyte(const struct img *m, const struct view *v, uint64_t off)
{
	uint32_t e = v->map[off / MiB];

	if (e >= INSTAR_VDI_ZERO)
		return 0;
	return m->b[v->data + (uint64_t)e * MiB + off % MiB];
}

/* The disk holds the original's bytes below min(old, size) (orig_map: which
 * virtual blocks were allocated) and zeros above, checked at both ends and
 * the middle of every block and at the sector around old. */
static void check_data(const struct img *m, const struct view *v, const uint32_t *orig_map,
		       uint32_t orig_blocks, uint64_t old)
{
	uint64_t keep = v->size < old ? v->size : old;

	for (uint64_t b = 0; b * MiB < v->size; b++) {
		uint64_t offs[] = {b * MiB, b * MiB + MiB / 2, b * MiB + MiB - 1, old - 1, old};

		for (size_t j = 0; j < sizeof(offs) / sizeof(offs[0]); j++) {
			uint64_t o = offs[j];
			uint8_t want;

			if (o >= v->size || o / MiB != b)
				continue;
			want =
			    o < keep && o / MiB < orig_blocks && orig_map[o / MiB] < INSTAR_VDI_ZERO
				? fill((uint32_t)(o / MiB))
				: 0;
			assert_int_equal(vbyte(m, v, o), want);
		}
	}
}

/* ---- cases ---- */

/* Plans s -> new_size; checks the whole plan and, for every K, the plan cut
 * after K ops: the old or the new disk with its data, allocation-safe (a
 * leak allowed), and the resize run again finishes a clean image. */
static void roundtrip(const struct spec *s, uint64_t new_size, uint32_t flags, uint64_t want_size,
		      uint32_t want_action)
{
	struct instar_resize_result res;
	struct img m;
	struct view v;
	uint32_t nops;
	uint64_t old = (s->disk + 511) / 512 * 512;

	build(&m, s);
	assert_int_equal(plan_on(&m, m.len, new_size, flags, UINT32_MAX, &res, &nops), 0);
	assert_int_equal(res.action, want_action);
	assert_int_equal(res.old_virtual_size, old);
	assert_int_equal(res.new_virtual_size, want_size);
	assert_int_equal(res.file_size_after, m.len);
	view(&m, &v, false);
	assert_int_equal(v.size, want_size);
	assert_int_equal(v.blocks, (want_size + MiB - 1) / MiB);
	assert_int_equal(v.type, s->type);
	if (s->type == INSTAR_VDI_TYPE_STATIC)
		for (uint32_t i = 0; i < v.blocks; i++)
			assert_true(v.map[i] < v.nalloc);
	check_data(&m, &v, s->map, s->blocks, old);
	free(v.map);
	img_free(&m);

	for (uint32_t k = 0; k <= nops; k++) {
		struct img c;

		build(&c, s);
		assert_int_equal(plan_on(&c, c.len, new_size, flags, k, &res, NULL), 0);
		view(&c, &v, true);
		assert_true(v.size == old || v.size == want_size);
		check_data(&c, &v, s->map, s->blocks, old);
		free(v.map);
		/* the same resize run again finishes a clean image */
		assert_int_equal(plan_on(&c, c.len, new_size, flags, UINT32_MAX, &res, NULL), 0);
		view(&c, &v, false);
		assert_int_equal(v.size, want_size);
		check_data(&c, &v, s->map, s->blocks, old);
		free(v.map);
		img_free(&c);
	}
}

/* A cheaper crash run for large images: one plan applied op by op, the
 * image checked after each op (what a cut after it leaves) and, where it
 * needed noroom, the resize run again on a copy. walk_state is the run. */
static struct {
	const struct spec *s;
	uint64_t old, want;
	uint32_t flags, noroom, nbreach, nstates;
	bool leak_ok;
} walk_state;

static void walk_check(struct img *m)
{
	struct instar_resize_result res;
	struct view v;
	bool breach = view_ex(m, &v, walk_state.leak_ok, walk_state.noroom);

	assert_true(v.size == walk_state.old || v.size == walk_state.want);
	check_data(m, &v, walk_state.s->map, walk_state.s->blocks, walk_state.old);
	free(v.map);
	walk_state.nstates++;
	if (breach) {
		struct img c = {0};

		walk_state.nbreach++;
		img_reserve(&c, m->len);
		memcpy(c.b, m->b, m->len);
		assert_int_equal(
		    plan_on(&c, c.len, walk_state.want, walk_state.flags, UINT32_MAX, &res, NULL),
		    0);
		view(&c, &v, false);
		assert_int_equal(v.size, walk_state.want);
		check_data(&c, &v, walk_state.s->map, walk_state.s->blocks, walk_state.old);
		free(v.map);
		img_free(&c);
	}
}

/* As roundtrip (want_size = new_size), by walk_check; leak_ok and noroom as
 * in view_ex. Returns how many states needed noroom. */
static uint32_t crash_walk(const struct spec *s, uint64_t new_size, uint32_t flags,
			   uint32_t want_action, bool leak_ok, uint32_t noroom)
{
	struct instar_resize_result res;
	struct img m;
	struct view v;
	uint32_t nops;

	walk_state.s = s;
	walk_state.old = (s->disk + 511) / 512 * 512;
	walk_state.want = new_size;
	walk_state.flags = flags;
	walk_state.noroom = noroom;
	walk_state.leak_ok = leak_ok;
	walk_state.nbreach = 0;
	walk_state.nstates = 0;
	build(&m, s);
	walk_check(&m); /* a cut before the first op */
	walk_hook = walk_check;
	assert_int_equal(plan_on(&m, m.len, new_size, flags, UINT32_MAX, &res, &nops), 0);
	assert_int_equal(walk_state.nstates, nops + 1);
	assert_int_equal(res.action, want_action);
	view(&m, &v, false);
	assert_int_equal(v.size, new_size);
	assert_int_equal(v.blocks, (new_size + MiB - 1) / MiB);
	check_data(&m, &v, s->map, s->blocks, walk_state.old);
	free(v.map);
	img_free(&m);
	return walk_state.nbreach;
}

/* qemu's layout for a 10 MiB dynamic disk: map at 512, data at 1024 (room
 * for 128 entries); virtual blocks 0, 1, 2 and 9 written in the order 9, 0,
 * 1, 2 (block 0 of the data holds virtual block 9). */
static const uint32_t map10[10] = {1, 2, 3, FREE, FREE, FREE, FREE, FREE, FREE, 0};
static const struct spec dyn10 = {INSTAR_VDI_TYPE_DYNAMIC, 10 * MiB, 10, 512, 1024, 4, 0, map10};

static void test_grow_in_place(void **state)
{
	(void)state;
	roundtrip(&dyn10, 100 * MiB, 0, 100 * MiB, INSTAR_ACTION_GROW);
	/* rounds up to 512 as qemu-img create does */
	roundtrip(&dyn10, 20 * MiB + 1, 0, 20 * MiB + 512, INSTAR_ACTION_GROW);
}

static void test_grow_relocating(void **state)
{
	struct instar_resize_result res;
	struct img m;
	struct view v;

	(void)state;
	/* 300 entries: the map moves to 1024, the data one block up */
	roundtrip(&dyn10, 300 * MiB, 0, 300 * MiB, INSTAR_ACTION_GROW);
	build(&m, &dyn10);
	assert_int_equal(plan_on(&m, m.len, 300 * MiB, 0, UINT32_MAX, &res, NULL), 0);
	view(&m, &v, false);
	assert_int_equal(v.bmap, 1024);
	assert_int_equal(v.data, 1024 + MiB);
	assert_int_equal(v.nalloc, 4);
	assert_int_equal(m.len, 1024 + 5 * MiB);
	/* LCHS marked not calculated only with a header that has it */
	assert_int_equal(get_le32(m.b + 0x1c8), 1000);
	free(v.map);
	img_free(&m);
}

/* More blocks in the map's way than allocated ones (300 GiB: a 1.2 MB map,
 * two blocks; one allocated block). */
static void test_grow_relocating_few(void **state)
{
	static const uint32_t map[3] = {FREE, 0, FREE};
	const struct spec s = {INSTAR_VDI_TYPE_DYNAMIC, 3 * MiB, 3, 512, 1024, 1, 0x190, map};
	struct instar_resize_result res;
	struct img m;
	struct view v;

	(void)state;
	build(&m, &s);
	assert_int_equal(plan_on(&m, m.len, 300ull << 30, 0, UINT32_MAX, &res, NULL), 0);
	view(&m, &v, false);
	assert_int_equal(v.size, 300ull << 30);
	assert_int_equal(v.data, 1024 + 2 * MiB);
	assert_int_equal(v.map[1], 0);
	assert_int_equal(v.nalloc, 1);
	assert_int_equal(vbyte(&m, &v, MiB + 5), fill(1));
	assert_int_equal(vbyte(&m, &v, 5), 0);
	assert_int_equal(get_le32(m.b + 0x1c8), 0); /* LCHS: not calculated */
	assert_int_equal(get_le32(m.b + 0x1d4), 512);
	free(v.map);
	img_free(&m);
}

static void test_grow_static(void **state)
{
	static const uint32_t map[4] = {0, 1, 2, 3};
	const struct spec s = {INSTAR_VDI_TYPE_STATIC, 4 * MiB, 4, 512, 1024, 4, 0, map};

	(void)state;
	roundtrip(&s, 50 * MiB, 0, 50 * MiB, INSTAR_ACTION_GROW);
	roundtrip(&s, 200 * MiB + 512, 0, 200 * MiB + 512, INSTAR_ACTION_GROW);
}

/* A static image whose block map fills its room exactly (qemu's layout for
 * 128 MiB: 128 entries in the 512 bytes before the data): every entry names
 * a block, so no state the old header describes can free data block 0, over
 * which the new map goes, without counting and naming its copy past
 * blocks_in_image (docs/formats.md §8.3: impossible to avoid without
 * copying every block). The crash cuts that show it are exactly the four
 * between the count and the commit (the count, the repointed entry, the
 * new map, its free tail); every other cut is clean, leak-free; qemu reads
 * the old disk with its data in all of them and a rerun finishes. (A
 * static map with spare room relocates without it: test_grow_static.) */
static void test_grow_static_full(void **state)
{
	static uint32_t map[128];
	const struct spec s = {INSTAR_VDI_TYPE_STATIC, 128 * MiB, 128, 512, 1024, 128, 0, map};

	(void)state;
	for (uint32_t i = 0; i < 128; i++)
		map[i] = i;
	assert_int_equal(crash_walk(&s, 200 * MiB, 0, INSTAR_ACTION_GROW, false, 1), 4);
}

/* A cut last block whose bytes past the size are not zero: a grow must not
 * show them. */
static void test_grow_stale_tail(void **state)
{
	static const uint32_t map[2] = {0, 1};
	const struct spec s = {INSTAR_VDI_TYPE_DYNAMIC, MiB + 4096, 2, 512, 1024, 2, 0, map};

	(void)state;
	roundtrip(&s, 4 * MiB, 0, 4 * MiB, INSTAR_ACTION_GROW);
	roundtrip(&s, 400 * MiB, 0, 400 * MiB, INSTAR_ACTION_GROW);
}

static void test_shrink(void **state)
{
	static const uint32_t map[6] = {2, FREE, 3, 0, INSTAR_VDI_ZERO, 1};
	const struct spec s = {INSTAR_VDI_TYPE_DYNAMIC, 6 * MiB, 6, 512, 1024, 4, 0, map};
	static const uint32_t smap[8] = {0, 1, 2, 3, 4, 5, 6, 7};
	const struct spec st = {INSTAR_VDI_TYPE_STATIC, 8 * MiB, 8, 512, 1024, 8, 0, smap};
	struct instar_resize_result res;
	struct img m;

	(void)state;
	/* blocks 2 and 3 move down into 0 and 1 */
	roundtrip(&s, 3 * MiB, INSTAR_RESIZE_SHRINK_ALLOWED, 3 * MiB, INSTAR_ACTION_SHRINK);
	roundtrip(&s, 2 * MiB + 1000, INSTAR_RESIZE_SHRINK_ALLOWED, 2 * MiB + 1024,
		  INSTAR_ACTION_SHRINK);
	roundtrip(&s, 512, INSTAR_RESIZE_SHRINK_ALLOWED, 512, INSTAR_ACTION_SHRINK);
	roundtrip(&st, 3 * MiB + 512, INSTAR_RESIZE_SHRINK_ALLOWED, 3 * MiB + 512,
		  INSTAR_ACTION_SHRINK);
	build(&m, &st);
	assert_int_equal(
	    plan_on(&m, m.len, 3 * MiB, INSTAR_RESIZE_SHRINK_ALLOWED, UINT32_MAX, &res, NULL), 0);
	assert_int_equal(m.len, 1024 + 3 * MiB); /* the file gets shorter */
	img_free(&m);
}

/* A leak (blocks_allocated above the count, as a crash of qemu's own
 * allocation leaves) is accepted; a shrink removes it. */
static void test_leak(void **state)
{
	static const uint32_t map[4] = {0, 3, FREE, FREE};
	const struct spec s = {INSTAR_VDI_TYPE_DYNAMIC, 4 * MiB, 4, 512, 1024, 4, 0, map};
	struct instar_resize_result res;
	struct img m;
	struct view v;

	(void)state;
	build(&m, &s);
	assert_int_equal(plan_on(&m, m.len, 8 * MiB, 0, UINT32_MAX, &res, NULL), 0);
	view(&m, &v, true);
	assert_int_equal(v.nalloc, 4);
	free(v.map);
	img_free(&m);
	build(&m, &s);
	assert_int_equal(
	    plan_on(&m, m.len, 3 * MiB, INSTAR_RESIZE_SHRINK_ALLOWED, UINT32_MAX, &res, NULL), 0);
	view(&m, &v, false);
	assert_int_equal(v.nalloc, 2);
	assert_int_equal(vbyte(&m, &v, MiB), fill(1));
	free(v.map);
	img_free(&m);
	/* the same size: the leak goes, the file keeps its length */
	build(&m, &s);
	assert_int_equal(plan_on(&m, m.len, 4 * MiB, 0, UINT32_MAX, &res, NULL), 0);
	assert_int_equal(res.action, INSTAR_ACTION_NOOP);
	assert_int_equal(m.len, 1024 + 4 * MiB);
	view(&m, &v, false);
	assert_int_equal(v.nalloc, 2);
	assert_int_equal(vbyte(&m, &v, 0), fill(0));
	assert_int_equal(vbyte(&m, &v, MiB + 7), fill(1));
	free(v.map);
	img_free(&m);
}

static void test_noop_and_refusals(void **state)
{
	struct instar_resize_result res;
	struct img m;
	uint32_t n;

	(void)state;
	build(&m, &dyn10);
	assert_int_equal(plan_on(&m, m.len, 10 * MiB, 0, UINT32_MAX, &res, &n), 0);
	assert_int_equal(res.action, INSTAR_ACTION_NOOP);
	assert_int_equal(n, 0);
	assert_int_equal(plan_on(&m, m.len, 10 * MiB - 1000, 0, UINT32_MAX, &res, &n),
			 INSTAR_ERR_SHRINK_WITHOUT_FLAG);
	assert_int_equal(n, 0);
	assert_int_equal(plan_on(&m, m.len, INSTAR_VDI_SIZE_MAX + 1, 0, UINT32_MAX, &res, &n),
			 INSTAR_ERR_TOO_LARGE);
	assert_int_equal(plan_on(&m, m.len, UINT64_MAX, 0, UINT32_MAX, &res, &n),
			 INSTAR_ERR_TOO_LARGE);
	assert_int_equal(n, 0);
	img_free(&m);
}

static void test_prealloc_refused(void **state)
{
	struct instar_resize_result res;
	struct img m;
	struct ptl_img pi;
	struct plan_io io = {.read = ptl_img_read, .ctx = &pi};
	struct plan_opts o = {.new_size = 20 * MiB,
			      .expected_old_size = UINT64_MAX,
			      .prealloc = INSTAR_PREALLOC_FALLOC};
	struct plan_scratch s;
	struct plan p;
	int n = 0;

	(void)state;
	build(&m, &dyn10);
	pi = (struct ptl_img){.b = m.b, .len = m.len};
	io.file_size = m.len;
	plan_scratch_init(&s, scratch, sizeof(scratch));
	plan_init(&p, ptl_count_sink, &n, 0);
	assert_int_equal(plan_resize_vdi(&o, &io, &s, &p, &res),
			 INSTAR_ERR_PREALLOCATION_UNSUPPORTED);
	o.prealloc = INSTAR_PREALLOC_OFF;
	o.expected_old_size = 9 * MiB;
	assert_int_equal(plan_resize_vdi(&o, &io, &s, &p, &res), INSTAR_ERR_HEADER_MISMATCH);
	assert_int_equal(n, 0);
	img_free(&m);
}

/* One hostile change to the 10 MiB image; the planner must refuse with err
 * and emit nothing, growing and shrinking. */
enum { VDI_NOT_OPEN, VDI_QEMU, VDI_DAMAGE };
struct hostile {
	const char *what;
	uint32_t off; /* 0: no header change */
	uint32_t val;
	int err;
	/* a failed open (INSTAR_RESULT_OPEN): VDI_QEMU, qemu's vdi_open refuses
	 * it in its words; VDI_DAMAGE, the planner's own check of the header
	 * finds it damaged (docs/design.md §3.1) */
	int open;
};

static void test_hostile(void **state)
{
	static const struct hostile cases[] = {
	    {"signature", 0x40, 0, INSTAR_ERR_PARSE_FAILED, VDI_QEMU},
	    {"version 1.0", 0x44, 0x00010000, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, VDI_QEMU},
	    {"undo type", 0x4c, 3, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, VDI_NOT_OPEN},
	    {"differencing type", 0x4c, 4, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, VDI_NOT_OPEN},
	    {"parent uuid", 0x1b8, 1, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, VDI_QEMU},
	    {"link uuid", 0x1a8, 1, INSTAR_ERR_UNSUPPORTED_SUBFORMAT, VDI_QEMU},
	    {"sector size", 0x168, 4096, INSTAR_ERR_UNSUPPORTED_FEATURE, VDI_QEMU},
	    {"block size", 0x178, 4096, INSTAR_ERR_UNSUPPORTED_FEATURE, VDI_QEMU},
	    {"block extra", 0x17c, 512, INSTAR_ERR_UNSUPPORTED_FEATURE, VDI_NOT_OPEN},
	    {"header size small", 0x48, 0x100, INSTAR_ERR_CORRUPT, VDI_DAMAGE},
	    {"header size large", 0x48, 0x1000, INSTAR_ERR_CORRUPT, VDI_DAMAGE},
	    {"map in the header", 0x154, 0, INSTAR_ERR_CORRUPT, VDI_DAMAGE},
	    {"map unaligned", 0x154, 600, INSTAR_ERR_CORRUPT, VDI_QEMU},
	    {"data unaligned", 0x158, 1030, INSTAR_ERR_CORRUPT, VDI_QEMU},
	    {"map overlaps data", 0x158, 512, INSTAR_ERR_CORRUPT, VDI_DAMAGE},
	    {"data past the file", 0x158, 0x40000000, INSTAR_ERR_CORRUPT, VDI_DAMAGE},
	    {"blocks too few", 0x180, 9, INSTAR_ERR_CORRUPT, VDI_QEMU},
	    {"blocks beyond qemu's limit", 0x180, 0x40000000, INSTAR_ERR_CORRUPT, VDI_QEMU},
	    {"allocated > blocks", 0x184, 11, INSTAR_ERR_CORRUPT, VDI_DAMAGE},
	    {"allocated past the file", 0x184, 10, INSTAR_ERR_CORRUPT, VDI_DAMAGE},
	    {"allocated beyond the limit", 0x184, 0x40001000, INSTAR_ERR_CORRUPT, VDI_DAMAGE},
	    {"entry past blocks_allocated", 512 + 4 * 5, 4, INSTAR_ERR_CORRUPT, VDI_NOT_OPEN},
	    {"entry far out", 512 + 4 * 5, 0x7fffffff, INSTAR_ERR_CORRUPT, VDI_NOT_OPEN},
	    {"duplicate entry", 512 + 4 * 5, 2, INSTAR_ERR_CORRUPT, VDI_NOT_OPEN},
	};
	uint64_t sizes[] = {300 * MiB, 5 * MiB, 10 * MiB + 512};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
			struct instar_resize_result res;
			struct img m;
			uint32_t n;

			build(&m, &dyn10);
			put_le32(m.b + cases[i].off, cases[i].val);
			print_message("%s -> %llu\n", cases[i].what, (unsigned long long)sizes[j]);
			assert_int_equal(plan_on(&m, m.len, sizes[j], INSTAR_RESIZE_SHRINK_ALLOWED,
						 UINT32_MAX, &res, &n),
					 cases[i].err);
			assert_int_equal(n, 0);
			assert_non_null(memchr(res.detail, '\0', sizeof(res.detail)));
			assert_true(res.detail[0] != '\0');
			assert_int_equal((res.flags & INSTAR_RESULT_OPEN) != 0,
					 cases[i].open != VDI_NOT_OPEN);
			assert_true(cases[i].open != VDI_QEMU ||
				    !strncmp(res.detail, "unsupported VDI image (", 23) ||
				    !strncmp(res.detail, "Image not in VDI format", 23));
			assert_true(cases[i].open != VDI_DAMAGE || !strncmp(res.detail, "vdi ", 4));
			img_free(&m);
		}
	}
}

/* An image whose first 512 bytes are m's and whose 512-byte map lies at
 * map_off; zeros elsewhere. */
struct far {
	struct img *m;
	uint64_t map_off;
	uint8_t map[512];
};

static int far_read(void *ctx, uint64_t off, void *buf, uint32_t len)
{
	struct far *f = ctx;
	uint8_t *b = buf;

	memset(buf, 0, len);
	for (uint32_t i = 0; i < len; i++) {
		uint64_t o = off + i;

		if (o < 512)
			b[i] = f->m->b[o];
		else if (o >= f->map_off && o < f->map_off + sizeof(f->map))
			b[i] = f->map[o - f->map_off];
	}
	return 0;
}

/* Sizes and lengths that overflow, truncated files, failing reads. */
static void test_hostile_sizes(void **state)
{
	struct instar_resize_result res;
	struct img m;
	uint32_t n;

	(void)state;
	build(&m, &dyn10);
	put_le64(m.b + 0x170, UINT64_MAX); /* disk size */
	assert_int_equal(plan_on(&m, m.len, 20 * MiB, 0, UINT32_MAX, &res, &n),
			 INSTAR_ERR_UNSUPPORTED_FEATURE);
	put_le64(m.b + 0x170, INSTAR_VDI_SIZE_MAX + 1);
	assert_int_equal(plan_on(&m, m.len, 20 * MiB, 0, UINT32_MAX, &res, &n),
			 INSTAR_ERR_UNSUPPORTED_FEATURE);
	/* an odd disk size reads as the next 512 up, as qemu reads it */
	put_le64(m.b + 0x170, 10 * MiB - 1000);
	assert_int_equal(plan_on(&m, m.len, 20 * MiB, 0, UINT32_MAX, &res, &n), 0);
	assert_int_equal(res.old_virtual_size, 10 * MiB - 512);
	img_free(&m);

	/* file shorter than the header (read as qemu reads it: zeros past the
	 * end), than the allocated blocks */
	build(&m, &dyn10);
	assert_int_equal(plan_on(&m, 300, 20 * MiB, 0, UINT32_MAX, &res, &n),
			 INSTAR_ERR_UNSUPPORTED_FEATURE);
	assert_string_equal(res.detail, "unsupported VDI image (sector size 0 is not 512)");
	assert_true(res.flags & INSTAR_RESULT_OPEN);
	assert_int_equal(plan_on(&m, m.len - 512, 20 * MiB, 0, UINT32_MAX, &res, &n),
			 INSTAR_ERR_CORRUPT);
	assert_int_equal(n, 0);
	img_free(&m);

	/* a full map just below offset_data near 4 GiB: the relocation would
	 * pass the 32-bit field (a 4 GiB file; the map is served apart) */
	build(&m, &dyn10);
	put_le32(m.b + 0x154, 0xfff00000u - 512);
	put_le32(m.b + 0x158, 0xfff00000u);
	put_le32(m.b + 0x184, 0);
	{
		struct far far = {.m = &m, .map_off = 0xfff00000u - 512};
		struct plan_io io = {.read = far_read, .ctx = &far, .file_size = 1ull << 32};
		struct plan_opts o = {.new_size = 300 * MiB, .expected_old_size = UINT64_MAX};
		struct plan_scratch s;
		struct plan p;
		int cnt = 0;

		memset(far.map, 0xff, sizeof(far.map));
		plan_scratch_init(&s, scratch, sizeof(scratch));
		plan_init(&p, ptl_count_sink, &cnt, 0);
		assert_int_equal(plan_resize_vdi(&o, &io, &s, &p, &res), INSTAR_ERR_TOO_LARGE);
		assert_int_equal(cnt, 0);
		o.new_size = 100 * MiB; /* fits: in place */
		plan_scratch_init(&s, scratch, sizeof(scratch));
		assert_int_equal(plan_resize_vdi(&o, &io, &s, &p, &res), INSTAR_OK);
	}
	img_free(&m);

	build(&m, &dyn10);
	{
		struct ptl_img pi = {.b = m.b, .len = m.len, .fail_read = true};
		struct plan_io io = {.read = ptl_img_read, .ctx = &pi, .file_size = m.len};
		struct plan_opts o = {.new_size = 20 * MiB, .expected_old_size = UINT64_MAX};
		struct plan_scratch s;
		struct plan p;
		int cnt = 0;

		plan_scratch_init(&s, scratch, sizeof(scratch));
		plan_init(&p, ptl_count_sink, &cnt, 0);
		assert_int_equal(plan_resize_vdi(&o, &io, &s, &p, &res), INSTAR_ERR_READ_FAILED);
		assert_int_equal(cnt, 0);
		/* scratch too small for the block bitmap: a refusal, not a crash */
		pi.fail_read = false;
		plan_scratch_init(&s, scratch, 2 * 512 + 2 * 65536);
		assert_int_not_equal(plan_resize_vdi(&o, &io, &s, &p, &res), INSTAR_OK);
		assert_int_equal(res.error, INSTAR_ERR_SCRATCH_TOO_SMALL);
	}
	img_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_grow_in_place),
	    cmocka_unit_test(test_grow_relocating),
	    cmocka_unit_test(test_grow_relocating_few),
	    cmocka_unit_test(test_grow_static),
	    cmocka_unit_test(test_grow_static_full),
	    cmocka_unit_test(test_grow_stale_tail),
	    cmocka_unit_test(test_shrink),
	    cmocka_unit_test(test_leak),
	    cmocka_unit_test(test_noop_and_refusals),
	    cmocka_unit_test(test_prealloc_refused),
	    cmocka_unit_test(test_hostile),
	    cmocka_unit_test(test_hostile_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
