#!/bin/bash
# tests/compat/qed_open.sh — what qemu-img 7.2 says when it cannot open a
# QED image, against the qed planner's detail and, end to end, instar's own
# message (tests/compat/open_lib.sh says how each case is judged). Every
# check of qemu's bdrv_qed_do_open (block/qed.c) that a header can fail, in
# its order: the magic, unknown feature bits, cluster size, table size,
# image size, the L1 table's place (against the file's length), the header
# size, the backing file name's place and length; some with two faults,
# where qemu's order decides. Then what qemu opens and instar refuses
# (README): the "needs check" bit. (A backing file: tests/compat/qed_plan.sh.)
#
#   qed_open.sh PLAN_APPLY QEMU_IMG INSTAR
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/open_lib.sh"

open_init qed_open "$@"
FMT=qed

# header: magic @0, cluster_size @4, table_size @8, header_size @12,
# features @16, compat @24, autoclear @32, l1 @40, image_size @48,
# backing name offset @56, length @60 (qemu-img's default: 64 KiB clusters,
# table_size 4, the L1 table at 64 KiB)
mk && w32 0 0x00444552 && same "magic"
mk && w64 16 0x10 && same "unknown feature bit 4" probed
mk && w64 16 0x8000000000000013 && same "unknown feature bits 4, 63 with known ones"
mk && w32 4 0 && same "cluster size 0"
mk && w32 4 2048 && same "cluster size 2 KiB"
mk && w32 4 0x3000 && same "cluster size not a power of 2"
mk && w32 4 $((128 << 20)) && same "cluster size 128 MiB"
mk && w32 8 0 && same "table size 0"
mk && w32 8 3 && same "table size 3"
mk && w32 8 32 && same "table size 32"
mk && w64 48 $((64 * M + 1)) && same "image size not a sector multiple" probed
mk && w64 48 $((1 << 56)) && same "image size past what the tables map"
mk && w64 40 $((64 * 1024 + 8)) && same "L1 table unaligned"
mk && w64 40 0 && same "L1 table on the header"
mk && w64 40 $((256 << 20)) && same "L1 table past the end of the file"
mk && truncate -s 4096 i.img && same "file cut before the L1 table"
mk && truncate -s 32 i.img && same "file shorter than the header"
mk table_size=1 && same "table size 1 (qemu-img creates it, cannot open it)"
mk && w32 12 4 && same "header size covers the L1 table"
# header_size * cluster_size past 32 bits: qemu counts the header's bytes
# in 64 bits, so the L1 table at 64 KiB lies inside it
mk && w32 12 0x10000 && same "header size past 32 bits"
# header_size * cluster_size past 32 bits: the L1 table must lie past it
# (4 GiB) to reach this check; the file is sparse
mk && w32 12 0x10000 && w64 40 $((4 << 30)) && truncate -s $(((4 << 30) + (1 << 20))) i.img &&
	same "header size too large"
mk && w64 16 1 && w32 56 $((64 * 1024 - 4)) && w32 60 8 &&
	same "backing file name past the header"
# qemu reads a name shorter than PATH_MAX (4 KiB); a longer one fails the open
mk && w64 16 1 && w32 56 64 && w32 60 4096 && same "backing file name of 4 KiB"
mk && w64 16 1 && w32 56 64 && w32 60 $((64 * 1024 - 64)) &&
	same "backing file name filling the header"
# two faults: qemu's order decides
mk && w64 16 0x10 && w32 4 0 && same "unknown feature and cluster size"
mk && w32 4 0 && w32 8 0 && same "cluster and table size"
mk && w32 8 0 && w64 48 3 && same "table and image size"
mk && w64 48 3 && w64 40 1 && same "image size and L1 table"

# ---- beyond qemu: it opens these (and resizes them); instar refuses ----
mk && w64 16 2 && beyond "needs check" REQUIRES_CHECK 0 \
	"qed: image needs repair; run 'qemu-img check -r all'" \
	"qed: image needs repair; run 'qemu-img check -r all'"

open_end
