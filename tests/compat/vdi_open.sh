#!/bin/bash
# tests/compat/vdi_open.sh — what qemu-img 7.2 says when it cannot open a
# VDI image, against the vdi planner's detail and, end to end, instar's own
# message (tests/compat/open_lib.sh says how each case is judged). Every
# check of qemu's vdi_open (block/vdi.c), in its order: the disk size
# against qemu's limit, the signature, the version, the block map's and the
# data's alignment, sector size, block size, a block map with room for the
# disk, the link and parent UUIDs, the number of blocks; files shorter than
# the header (qemu reads zeros past the end); two faults, where qemu's
# order decides. Then what qemu opens (its driver cannot resize) and the
# planner refuses (README): other image types, block extra data, a header
# size out of range, a block map on the header, a map entry past
# blocks_allocated.
#
#   vdi_open.sh PLAN_APPLY QEMU_IMG INSTAR
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/open_lib.sh"

open_init vdi_open "$@"
FMT=vdi

# header (shared/vdi_layout.h): signature @0x40, version @0x44, header size
# @0x48, type @0x4c, block map @0x154, data @0x158, sector size @0x168,
# disk size @0x170, block size @0x178, block extra @0x17c, blocks @0x180,
# allocated @0x184, link UUID @0x1a8, parent UUID @0x1b8 (qemu-img's 64 MiB
# image: 64 blocks, the map at 0x200, the data at 0x400)
mk && w64 0x170 $((1 << 49)) && same "disk size past qemu's limit" probed
mk && w32 0x40 0x12345678 && same "signature"
mk && w32 0x44 0x00010000 && same "version 1.0" probed
mk && w32 0x44 0x00020003 && same "version 2.3"
mk && w32 0x154 0x201 && same "block map unaligned"
mk && w32 0x158 0x401 && same "data unaligned"
mk && w32 0x168 4096 && same "sector size 4096"
mk && w32 0x178 $((2 << 20)) && same "block size 2 MiB"
mk && w64 0x170 $((64 * M + 1)) && same "disk size past the block map"
mk && w32 0x180 63 && same "block map one block short"
mk && w32 0x1a8 1 && same "link UUID"
mk && w32 0x1b8 1 && same "parent UUID"
mk && w32 0x180 0x20000000 && w64 0x170 $((64 * M)) && same "too many blocks"
: >i.img && same "empty file"
mk && truncate -s 300 i.img && same "file shorter than the header"
# two faults: qemu's order decides
mk && w32 0x40 0 && w64 0x170 $((1 << 50)) && same "no signature, disk size past the limit"
mk && w32 0x44 0 && w32 0x154 1 && same "version and block map"
mk && w32 0x168 0 && w32 0x1b8 1 && same "sector size and parent UUID"
mk && w32 0x1a8 1 && w32 0x1b8 1 && same "link and parent UUID"

# ---- beyond qemu: it opens these (its driver does not resize) ----
mk && w32 0x4c 3 && beyond "undo image" UNSUPPORTED_SUBFORMAT 0 \
	"vdi image type other than dynamic or static" "vdi image type other than dynamic or static"
mk && w32 0x17c 512 && beyond "block extra data" UNSUPPORTED_FEATURE 0 \
	"vdi block extra data" "vdi block extra data"
mk && w32 0x48 0x100 && beyond "header size" CORRUPT 1 \
	"vdi header size out of range" \
	"Could not open 'q.img': vdi header size out of range"
mk && w32 0x154 0 && beyond "block map on the header" CORRUPT 1 \
	"vdi block map overlaps the header" \
	"Could not open 'q.img': vdi block map overlaps the header"
mk && w32 0x200 5 && beyond "map entry past blocks_allocated" CORRUPT 0 \
	"vdi block map entry past blocks_allocated" "vdi block map entry past blocks_allocated"

open_end
