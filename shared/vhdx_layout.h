/* shared/vhdx_layout.h — the VHDX on-disk layout that both the host probe
 * (shared/probe.c) and the guest planner (guest/plan/vhdx.c) read: where the
 * tables are, how their entries are laid out, and the GUIDs naming regions
 * and metadata items. Header only and freestanding, so one copy serves both.
 * Each walks the tables by its own rules (the probe is advisory and skips
 * what it cannot use; the planner refuses a damaged or ambiguous table), so
 * only the layout lives here. */
#ifndef INSTAR_VHDX_LAYOUT_H
#define INSTAR_VHDX_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Region table 1 (the one qemu reads) and its copy, table 2. */
#define INSTAR_VHDX_RT1 (192 * 1024ull)
#define INSTAR_VHDX_RT2 (256 * 1024ull)
/* Length of a region table and of the metadata table; most entries either
 * may have. */
#define INSTAR_VHDX_TABLE_LEN 65536u
#define INSTAR_VHDX_TABLE_MAX 2047u

/* Region table: "regi", CRC-32C, entry count (le32 @8), then 32-byte entries
 * from byte 16: GUID, file offset (le64 @16), length (le32 @24), flags (le32
 * @28, bit 0: required). */
#define INSTAR_VHDX_RT_ENTRY(i) (16 + 32 * (size_t)(i))
/* Metadata table: "metadata", entry count (le16 @10), then 32-byte entries
 * from byte 32: GUID, offset in the region (le32 @16), length (le32 @20). */
#define INSTAR_VHDX_MD_ENTRY(i) (32 + 32 * (size_t)(i))

/* Regions. */
static const uint8_t instar_vhdx_guid_bat[16] = {0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42,
						 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08};
static const uint8_t instar_vhdx_guid_metadata[16] = {
    0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e};
/* Metadata items. */
static const uint8_t instar_vhdx_guid_file_params[16] = {
    0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d, 0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b};
static const uint8_t instar_vhdx_guid_disk_size[16] = {
    0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48, 0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8};
static const uint8_t instar_vhdx_guid_logical_sector[16] = {
    0x1d, 0xbf, 0x41, 0x81, 0x6f, 0xa9, 0x09, 0x47, 0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f};
static const uint8_t instar_vhdx_guid_page83[16] = {0xab, 0x12, 0xca, 0xbe, 0xe6, 0xb2, 0x23, 0x45,
						    0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46};
static const uint8_t instar_vhdx_guid_phys_sector[16] = {
    0xc7, 0x48, 0xa3, 0xcd, 0x5d, 0x44, 0x71, 0x44, 0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56};
static const uint8_t instar_vhdx_guid_parent_locator[16] = {
    0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45, 0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c};

static inline bool instar_vhdx_guid_eq(const uint8_t *a, const uint8_t *b)
{
	for (int i = 0; i < 16; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

#endif
