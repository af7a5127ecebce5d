/* guest/plan/luks.c — the resize planner for raw LUKS containers (qemu's
 * "luks" format: a LUKS1 header, key material, then the encrypted payload).
 *
 * The layout and the rules are in docs/formats.md, "LUKS". The virtual disk
 * is the payload: the file's length minus the payload offset (reported
 * rounded up to whole 512-byte sectors, as qemu reports it). Resizing it
 * sets the file's length to payload offset + the size asked for, exactly
 * what qemu 7.2's driver does — and, since the header
 * and the key material are not encrypted, without the secret qemu needs to
 * open the image (a deliberate difference: README). Grown bytes are zeros
 * on disk (they decrypt to noise, as with qemu); with falloc/full they are
 * allocated.
 *
 * The header is checked as qemu checks it when it opens the image, with
 * qemu's messages, 32-bit key-slot arithmetic included, so that instar
 * resizes exactly the images qemu would open. Cipher, mode and hash names
 * are only checked for their terminating NUL: instar never decrypts. The
 * same checks serve the LUKS header of an encrypted qcow2 image
 * (plan_luks_header, from guest/plan/qcow2.c). */
#include "plan.h"

#define LUKS_HDR_LEN 592u
#define LUKS_OFF_VERSION 6
#define LUKS_OFF_CIPHER_NAME 8
#define LUKS_OFF_CIPHER_MODE 40
#define LUKS_OFF_HASH_SPEC 72
#define LUKS_NAME_LEN 32
#define LUKS_OFF_PAYLOAD 104   /* u32 BE, sectors */
#define LUKS_OFF_KEY_BYTES 108 /* u32 BE, the master key's length */
#define LUKS_OFF_MK_ITERS 164  /* u32 BE */
#define LUKS_OFF_SLOTS 208     /* 8 slots of 48 bytes */
#define LUKS_SLOT_LEN 48
#define LUKS_NSLOTS 8
#define LUKS_SLOT_ACTIVE 0	/* u32 BE */
#define LUKS_SLOT_ITERS 4	/* u32 BE */
#define LUKS_SLOT_KEY_OFFSET 40 /* u32 BE, sectors */
#define LUKS_SLOT_STRIPES 44	/* u32 BE */

#define LUKS_SECTOR 512u
#define LUKS_KEY_SLOT_OFFSET 4096u /* where key material may start */
#define LUKS_STRIPES 4000u
#define LUKS_SLOT_ENABLED 0x00AC71F3u
#define LUKS_SLOT_DISABLED 0x0000DEADu

static int luks_fail(struct instar_resize_result *ret, uint32_t err, const char *msg)
{
	ret->error = err;
	if (msg)
		plan_set_detail(ret, msg);
	return (int)err;
}

/* err with fmt, the decimal numbers a (and b) put where '#' stands. */
static int luks_fail_n(struct instar_resize_result *ret, uint32_t err, const char *fmt, uint32_t a,
		       uint32_t b)
{
	struct plan_msg m = {.n = 0};
	int used = 0;

	for (const char *f = fmt; *f; f++) {
		if (*f == '#')
			plan_msg_dec(&m, used++ ? b : a);
		else
			plan_msg_str(&m, (char[2]){*f, '\0'});
	}
	return luks_fail(ret, err, m.b);
}

/* qemu's length of a slot's key material in sectors: master key bytes x
 * stripes, in sectors, rounded up to the 8 sectors of the header area; kept
 * in 32 bits as qemu keeps it. */
static uint32_t luks_slot_sectors(uint32_t key_bytes, uint32_t stripes)
{
	uint64_t sectors = ((uint64_t)key_bytes * stripes + LUKS_SECTOR - 1) / LUKS_SECTOR;
	uint32_t hs = LUKS_KEY_SLOT_OFFSET / LUKS_SECTOR;

	return (uint32_t)((sectors + hs - 1) / hs * hs);
}

static bool luks_has_nul(const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!b[i])
			return true;
	return false;
}

static int luks_check_slots(const uint8_t *h, struct instar_resize_result *ret)
{
	uint32_t key_bytes = get_be32(h + LUKS_OFF_KEY_BYTES);
	uint32_t payload = get_be32(h + LUKS_OFF_PAYLOAD);
	uint32_t min_start = (LUKS_KEY_SLOT_OFFSET + LUKS_SECTOR - 1) / LUKS_SECTOR;

	for (uint32_t i = 0; i < LUKS_NSLOTS; i++) {
		const uint8_t *s1 = h + LUKS_OFF_SLOTS + i * LUKS_SLOT_LEN;
		uint32_t active = get_be32(s1 + LUKS_SLOT_ACTIVE);
		uint32_t stripes = get_be32(s1 + LUKS_SLOT_STRIPES);
		uint32_t start1 = get_be32(s1 + LUKS_SLOT_KEY_OFFSET);
		uint32_t len1 = luks_slot_sectors(key_bytes, stripes);

		if (stripes != LUKS_STRIPES)
			return luks_fail_n(ret, INSTAR_ERR_CORRUPT,
					   "Keyslot # is corrupted (stripes # != 4000)", i,
					   stripes);
		if (active != LUKS_SLOT_DISABLED && active != LUKS_SLOT_ENABLED)
			return luks_fail_n(ret, INSTAR_ERR_CORRUPT,
					   "Keyslot # state (active/disable) is corrupted", i, 0);
		if (active == LUKS_SLOT_ENABLED && !get_be32(s1 + LUKS_SLOT_ITERS))
			return luks_fail_n(ret, INSTAR_ERR_CORRUPT,
					   "Keyslot # iteration count is zero", i, 0);
		if (start1 < min_start)
			return luks_fail_n(ret, INSTAR_ERR_CORRUPT,
					   "Keyslot # is overlapping with the LUKS header", i, 0);
		if (start1 + len1 > payload)
			return luks_fail_n(ret, INSTAR_ERR_CORRUPT,
					   "Keyslot # is overlapping with the encrypted payload", i,
					   0);
		for (uint32_t j = i + 1; j < LUKS_NSLOTS; j++) {
			const uint8_t *s2 = h + LUKS_OFF_SLOTS + j * LUKS_SLOT_LEN;
			uint32_t start2 = get_be32(s2 + LUKS_SLOT_KEY_OFFSET);
			uint32_t len2 =
			    luks_slot_sectors(key_bytes, get_be32(s2 + LUKS_SLOT_STRIPES));

			if (start1 + len1 > start2 && start2 + len2 > start1)
				return luks_fail_n(ret, INSTAR_ERR_CORRUPT,
						   "Keyslots # and # are overlapping in the header",
						   i, j);
		}
	}
	return 0;
}

/* The checks qemu makes when it opens a LUKS1 header at byte `base` with
 * `room` bytes for it and its key material, in its order; the payload
 * offset in bytes (from base) on success. A payload past the room fails
 * with `past`. */
int plan_luks_header(const struct plan_io *io, uint64_t base, uint64_t room, const char *past,
		     uint64_t *ret_payload, struct instar_resize_result *ret)
{
	uint8_t h[LUKS_HDR_LEN];
	uint32_t version;
	int r = plan_read(io, base, h, LUKS_HDR_LEN);

	if (r)
		return luks_fail(ret, (uint32_t)r, NULL);
	if (room < LUKS_HDR_LEN || plan_memcmp(h, "LUKS\xba\xbe", 6) != 0)
		return luks_fail(ret, INSTAR_ERR_PARSE_FAILED, "Volume is not in LUKS format");
	version = get_be16(h + LUKS_OFF_VERSION);
	if (version != 1)
		return luks_fail_n(ret, INSTAR_ERR_UNSUPPORTED_SUBFORMAT,
				   "LUKS version # is not supported", version, 0);
	if (!luks_has_nul(h + LUKS_OFF_CIPHER_NAME, LUKS_NAME_LEN))
		return luks_fail(ret, INSTAR_ERR_CORRUPT,
				 "LUKS header cipher name is not NUL terminated");
	if (!luks_has_nul(h + LUKS_OFF_CIPHER_MODE, LUKS_NAME_LEN))
		return luks_fail(ret, INSTAR_ERR_CORRUPT,
				 "LUKS header cipher mode is not NUL terminated");
	if (!luks_has_nul(h + LUKS_OFF_HASH_SPEC, LUKS_NAME_LEN))
		return luks_fail(ret, INSTAR_ERR_CORRUPT,
				 "LUKS header hash spec is not NUL terminated");
	if (get_be32(h + LUKS_OFF_PAYLOAD) < (LUKS_KEY_SLOT_OFFSET + LUKS_SECTOR - 1) / LUKS_SECTOR)
		return luks_fail(ret, INSTAR_ERR_CORRUPT,
				 "LUKS payload is overlapping with the header");
	if (!get_be32(h + LUKS_OFF_MK_ITERS))
		return luks_fail(ret, INSTAR_ERR_CORRUPT, "LUKS key iteration count is zero");
	r = luks_check_slots(h, ret);
	if (r)
		return r;
	*ret_payload = (uint64_t)get_be32(h + LUKS_OFF_PAYLOAD) * LUKS_SECTOR;
	if (*ret_payload > room)
		return luks_fail(ret, INSTAR_ERR_CORRUPT, past);
	return 0;
}

static uint64_t luks_round(uint64_t v)
{
	return (v + LUKS_SECTOR - 1) / LUKS_SECTOR * LUKS_SECTOR;
}

int plan_resize_luks(const struct plan_opts *o, const struct plan_io *io, struct plan_scratch *s,
		     struct plan *p, struct instar_resize_result *ret)
{
	uint64_t payload = 0, old, end;
	int r;

	(void)s;
	plan_result_init(ret, p, o, io);
	r = plan_luks_header(io, 0, io->file_size,
			     "The LUKS payload starts past the end of the file", &payload, ret);
	if (r) {
		/* the header as qemu's luks driver reads it on open */
		ret->flags |= INSTAR_RESULT_OPEN;
		return r;
	}
	/* Sizes as qemu reports them: whole sectors, rounded up. */
	old = luks_round(io->file_size - payload);
	ret->old_virtual_size = old;
	if (o->expected_old_size != UINT64_MAX && o->expected_old_size != old)
		return luks_fail(ret, INSTAR_ERR_HEADER_MISMATCH, NULL);
	if (o->new_size > INT64_MAX - (LUKS_SECTOR - 1) ||
	    payload > INT64_MAX - luks_round(o->new_size))
		return luks_fail(ret, INSTAR_ERR_TOO_LARGE, "The requested file size is too large");
	ret->new_virtual_size = luks_round(o->new_size);
	if (o->new_size < old && !(o->flags & INSTAR_RESIZE_SHRINK_ALLOWED))
		return luks_fail(ret, INSTAR_ERR_SHRINK_WITHOUT_FLAG, NULL);
	if (o->prealloc == INSTAR_PREALLOC_METADATA)
		return luks_fail(ret, INSTAR_ERR_PREALLOCATION_UNSUPPORTED,
				 "Unsupported preallocation mode: metadata");
	if (o->new_size < old && o->prealloc != INSTAR_PREALLOC_OFF)
		return luks_fail(ret, INSTAR_ERR_PREALLOC_NOT_GROWING, NULL);
	/* qemu sets the file's length to payload + the size asked for, exactly
	 * (a size that is not whole sectors then reads as rounded up). */
	end = payload + o->new_size;
	p->file_size_after = end;
	ret->file_size_after = end;
	/* The action is the sizes' (what the host verifies), not the length's:
	 * within one sector the length moves while the size stays. */
	ret->action = ret->new_virtual_size > old   ? INSTAR_ACTION_GROW
		      : ret->new_virtual_size < old ? INSTAR_ACTION_SHRINK
						    : INSTAR_ACTION_NOOP;
	if (end == io->file_size)
		return 0;
	if (end > io->file_size && o->prealloc != INSTAR_PREALLOC_OFF) {
		r = plan_zero(p, io->file_size, end - io->file_size);
		if (!r)
			r = plan_flush(p);
		if (r)
			return luks_fail(ret, (uint32_t)r, NULL);
	}
	return 0;
}
