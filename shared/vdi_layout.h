/* shared/vdi_layout.h — the VirtualBox VDI (header version 1.1) layout that
 * both the host probe (shared/probe.c) and the guest planner
 * (guest/plan/vdi.c) read. Header only and freestanding. Every field is
 * little-endian; offsets are from the start of the file (docs/formats.md §8).
 * Each side applies its own rules (the probe is advisory; the planner
 * refuses anything it cannot rewrite safely); only the layout and the
 * limits qemu 7.2 applies live here. */
#ifndef INSTAR_VDI_LAYOUT_H
#define INSTAR_VDI_LAYOUT_H

#include <stdint.h>

#define INSTAR_VDI_HEADER_LEN 512u	   /* what qemu reads and writes at 0 */
#define INSTAR_VDI_SIGNATURE 0xbeda107fu   /* le32 @0x40 */
#define INSTAR_VDI_VERSION_1_1 0x00010001u /* le32 @0x44; the only one qemu opens */
#define INSTAR_VDI_TYPE_DYNAMIC 1u
#define INSTAR_VDI_TYPE_STATIC 2u
#define INSTAR_VDI_BLOCK_SIZE (1u << 20)   /* the only block size qemu opens */
#define INSTAR_VDI_UNALLOCATED 0xffffffffu /* block map: never written (reads zero) */
#define INSTAR_VDI_ZERO 0xfffffffeu	   /* block map: discarded, reads zero */
#define INSTAR_VDI_BLOCKS_MAX 0x1fffff80u  /* qemu 7.2's bound on blocks_in_image */
#define INSTAR_VDI_SIZE_MAX ((uint64_t)INSTAR_VDI_BLOCKS_MAX * INSTAR_VDI_BLOCK_SIZE)

/* Header fields (byte offsets). 0x00 is the text line ("<<< ... >>>\n"). */
#define INSTAR_VDI_H_SIGNATURE 0x40
#define INSTAR_VDI_H_VERSION 0x44
#define INSTAR_VDI_H_HEADER_SIZE 0x48 /* bytes of header after @0x48 */
#define INSTAR_VDI_H_TYPE 0x4c
#define INSTAR_VDI_H_FLAGS 0x50
#define INSTAR_VDI_H_OFFSET_BMAP 0x154 /* le32: the block map */
#define INSTAR_VDI_H_OFFSET_DATA 0x158 /* le32: block n lies at offset_data + n MiB */
#define INSTAR_VDI_H_SECTOR_SIZE 0x168
#define INSTAR_VDI_H_DISK_SIZE 0x170 /* le64: the virtual size */
#define INSTAR_VDI_H_BLOCK_SIZE 0x178
#define INSTAR_VDI_H_BLOCK_EXTRA 0x17c
#define INSTAR_VDI_H_BLOCKS 0x180	 /* blocks_in_image: block map entries */
#define INSTAR_VDI_H_ALLOCATED 0x184	 /* blocks_allocated */
#define INSTAR_VDI_H_UUID_LINK 0x1a8	 /* 16 bytes; qemu refuses non-zero */
#define INSTAR_VDI_H_UUID_PARENT 0x1b8	 /* 16 bytes; qemu refuses non-zero */
#define INSTAR_VDI_H_LCHS 0x1c8		 /* VirtualBox's logical C/H/S/sector size */
#define INSTAR_VDI_HEADER_SIZE_MIN 0x180 /* qemu writes 0x180, VirtualBox 0x190 */
#define INSTAR_VDI_HEADER_SIZE_LCHS 0x190

#endif
