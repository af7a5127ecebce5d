/* shared/vhd_size.c — the VHD size rule (see vhd_size.h). */
#include "byteorder.h"
#include "vhd_size.h"

static bool vs_creator_is(const uint8_t *footer, const char *name)
{
	for (unsigned i = 0; i < 4; i++)
		if (footer[INSTAR_VHD_F_CREATOR + i] != (uint8_t)name[i])
			return false;
	return true;
}

/* qemu 7.2's list of creators read from current_size. */
static bool vs_current_size_creator(const uint8_t *footer)
{
	return vs_creator_is(footer, "win ") || vs_creator_is(footer, "qem2") ||
	       vs_creator_is(footer, "d2v ") || vs_creator_is(footer, "CTXS") ||
	       vs_creator_is(footer, "tap\0");
}

static uint64_t vs_chs_sectors(const uint8_t *footer)
{
	return (uint64_t)get_be16(footer + INSTAR_VHD_F_CYL) * footer[INSTAR_VHD_F_HEADS] *
	       footer[INSTAR_VHD_F_SPT];
}

bool instar_vhd_reads_current_size(const uint8_t *footer)
{
	return vs_current_size_creator(footer) || vs_chs_sectors(footer) == INSTAR_VHD_MAX_GEOMETRY;
}

uint64_t instar_vhd_virtual_size(const uint8_t *footer)
{
	if (instar_vhd_reads_current_size(footer))
		return get_be64(footer + INSTAR_VHD_F_CUR_SIZE) / INSTAR_VHD_SECTOR *
		       INSTAR_VHD_SECTOR;
	return vs_chs_sectors(footer) * INSTAR_VHD_SECTOR;
}

/* The algorithm of the VHD spec's appendix (qemu's calculate_geometry). */
void instar_vhd_geometry(uint64_t ts, struct instar_vhd_chs *g)
{
	uint64_t cth;

	if (ts > INSTAR_VHD_MAX_GEOMETRY)
		ts = INSTAR_VHD_MAX_GEOMETRY;
	if (ts >= 65535ull * 16 * 63) {
		g->spt = 255;
		g->heads = 16;
		cth = ts / 255;
	} else {
		g->spt = 17;
		cth = ts / 17;
		g->heads = (uint32_t)((cth + 1023) / 1024);
		if (g->heads < 4)
			g->heads = 4;
		if (cth >= (uint64_t)g->heads * 1024 || g->heads > 16) {
			g->spt = 31;
			g->heads = 16;
			cth = ts / 31;
		}
		if (cth >= (uint64_t)g->heads * 1024) {
			g->spt = 63;
			g->heads = 16;
			cth = ts / 63;
		}
	}
	g->cyls = (uint32_t)(cth / g->heads);
}

static uint64_t vs_product(const struct instar_vhd_chs *g)
{
	return (uint64_t)g->cyls * g->heads * g->spt;
}

/* Round-up bound: for x sectors the geometry has h*s <= 16*255 sectors a
 * cylinder and C*H*S >= x - h*s + 1 (floor(x/s)*s > x - s, and
 * floor(cth/h)*h > cth - h), so geometry(ts + i) holds ts at the latest for
 * i = h*s - 1 < 16*255: the search below ends within 16*255 steps and the
 * size it picks is < (ts + 16*255) sectors. With ts*512 < request + 512,
 * new size - request < 16*255*512 = INSTAR_VHD_MAX_ROUNDING. */
int instar_vhd_resize_size(const uint8_t *footer, uint64_t req, uint64_t *ret_size,
			   struct instar_vhd_chs *g)
{
	uint64_t ts = req / INSTAR_VHD_SECTOR + (req % INSTAR_VHD_SECTOR != 0);
	bool max_geo = vs_chs_sectors(footer) == INSTAR_VHD_MAX_GEOMETRY;

	if (ts > INSTAR_VHD_MAX_SECTORS)
		return -1;
	if (vs_current_size_creator(footer) || (max_geo && vs_creator_is(footer, "d2v\0"))) {
		if (max_geo) {
			g->cyls = (uint32_t)get_be16(footer + INSTAR_VHD_F_CYL);
			g->heads = footer[INSTAR_VHD_F_HEADS];
			g->spt = footer[INSTAR_VHD_F_SPT];
		} else {
			instar_vhd_geometry(ts, g);
		}
		*ret_size = ts * INSTAR_VHD_SECTOR;
		return 0;
	}
	if (ts >= INSTAR_VHD_MAX_GEOMETRY) {
		instar_vhd_geometry(ts, g);
		*ret_size = ts * INSTAR_VHD_SECTOR;
		return 0;
	}
	for (uint64_t i = 0; i < 16 * 255; i++) {
		instar_vhd_geometry(ts + i, g);
		if (vs_product(g) >= ts) {
			*ret_size = vs_product(g) * INSTAR_VHD_SECTOR;
			return 0;
		}
	}
	return -2;
}

uint32_t instar_vhd_checksum(const uint8_t *b, uint32_t len, uint32_t csum_off)
{
	uint32_t sum = 0;

	for (uint32_t i = 0; i < len; i++)
		if (i < csum_off || i >= csum_off + 4)
			sum += b[i];
	return ~sum;
}

static bool vs_cookie(const uint8_t *f)
{
	static const char c[8] = "conectix";

	for (unsigned i = 0; i < 8; i++)
		if (f[i] != (uint8_t)c[i])
			return false;
	return true;
}

enum instar_vhd_footer_pick instar_vhd_footer_open(const uint8_t *first, const uint8_t *last,
						   const char **ret_msg)
{
	enum instar_vhd_footer_pick pick = INSTAR_VHD_FOOTER_FIRST;
	const uint8_t *f = first;
	uint32_t type = get_be32(first + INSTAR_VHD_F_TYPE);

	*ret_msg = 0;
	if (!vs_cookie(first)) {
		if (!last) {
			*ret_msg = "File too small for a VHD header";
			return INSTAR_VHD_FOOTER_REFUSED;
		}
		if (!vs_cookie(last) ||
		    get_be32(last + INSTAR_VHD_F_TYPE) != INSTAR_VHD_TYPE_FIXED) {
			*ret_msg = "invalid VPC image";
			return INSTAR_VHD_FOOTER_REFUSED;
		}
		pick = INSTAR_VHD_FOOTER_LAST;
	} else if (type != INSTAR_VHD_TYPE_DYNAMIC && type != INSTAR_VHD_TYPE_DIFF && last &&
		   vs_cookie(last)) {
		pick = INSTAR_VHD_FOOTER_LAST; /* instar's difference */
	}
	if (pick == INSTAR_VHD_FOOTER_LAST)
		f = last;
	if (get_be32(f + INSTAR_VHD_F_CSUM) != instar_vhd_checksum(f, 512, INSTAR_VHD_F_CSUM)) {
		*ret_msg = "Incorrect header checksum";
		return INSTAR_VHD_FOOTER_REFUSED;
	}
	if (instar_vhd_virtual_size(f) > INSTAR_VHD_MAX_SECTORS * INSTAR_VHD_SECTOR)
		return INSTAR_VHD_FOOTER_TOO_LARGE;
	return pick;
}
