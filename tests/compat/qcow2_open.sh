#!/bin/bash
# tests/compat/qcow2_open.sh — what qemu-img 7.2 says when it cannot open a
# qcow2 image, against the qcow2 planner's detail (the guest's open of the
# header) and, end to end, instar's own message. Every header field qemu's
# qcow2_do_open checks (block/qcow2.c: magic, version, cluster_bits,
# header_length, the backing file offset and name, compression type,
# incompatible features and their feature table names, refcount_order,
# the refcount table, snapshot table and L1 table sizes and offsets, the
# image size, the crypt method and its header extension, the extensions
# walk, the bitmaps extension and directory, data-file-raw) is damaged in a
# copy of an image qemu-img created; then:
# - qemu-img resize -f qcow2 fails with "Could not open 'F': DETAIL";
# - plan-apply fails with the same DETAIL, marks it an open failure
#   (open=1: the CLI prints qemu's "Could not open 'F': " before it) and
#   leaves the file as it was;
# - instar resize -f qcow2 prints exactly qemu-img's stderr (program name
#   read as "instar") with its exit code 1. The host's probe answers the
#   magic and the version before any guest; the rest is the guest's, which
#   only runs where it can boot (tests/kvm_gate.sh's rule: the cases left
#   out are counted and said).
# Then the images instar refuses beyond qemu (documented in the README):
# refused with open=1, nothing written.
#
#   qcow2_open.sh PLAN_APPLY QEMU_IMG INSTAR
set -uo pipefail
. "$(dirname "$0")/lib.sh"

open_init qcow2_open "$@"

# w32 OFF VAL / w64 OFF VAL / w8 OFF VAL: big-endian field writes into i.qcow2
wbytes() { put_hex i.qcow2 "$@"; } # OFF HEX
w8() { wbytes "$1" "$(printf '%02x' $(($2)))"; }
w32() { wbytes "$1" "$(printf '%08x' $(($2)))"; }
w64() { wbytes "$1" "$(printf '%016x' $(($2)))"; }
r32() { od -An -tx1 -j $(($1)) -N4 i.qcow2 | tr -d ' \n' | sed 's/^/0x/'; }
r64() { od -An -tx1 -j $(($1)) -N8 i.qcow2 | tr -d ' \n' | sed 's/^/0x/'; }

# ext_pos TYPE: the offset of the first header extension of TYPE, or fails
ext_pos() {
	local pos t l
	pos=$(($(r32 100)))
	while :; do
		t=$(($(r32 "$pos")))
		l=$(($(r32 $((pos + 4)))))
		[ "$t" = $(($1)) ] && {
			echo "$pos"
			return 0
		}
		[ "$t" = 0 ] && return 1
		pos=$((pos + 8 + ((l + 7) & ~7)))
	done
}

# mk [CREATE_OPTS]: i.qcow2, 64 MiB, made by qemu-img
mk() {
	rm -f i.qcow2
	"$QI" create -q -f qcow2 ${1:+-o "$1"} i.qcow2 64M
}
mkbm() {
	mk
	"$QI" bitmap --add i.qcow2 b0
}

# same NAME: qemu-img and instar on copies of i.qcow2 (as damaged by the
# caller), growing to 128 MiB.
same() {
	CASE=$1
	local qrc=0 prc=0 irc=0 want det
	cases=$((cases + 1))
	cp i.qcow2 q.qcow2
	cp i.qcow2 o.qcow2
	"$QI" resize -f qcow2 q.qcow2 128M >q.out 2>q.err || qrc=$?
	want=$(sed -n "s/^qemu-img: Could not open 'q.qcow2': //p" q.err)
	if [ "$qrc" != 1 ] || [ -z "$want" ]; then
		fail "qemu-img was expected to fail its open: rc=$qrc $(cat q.err)"
		return
	fi
	"$PA" qcow2 o.qcow2 $((128 << 20)) >pa.out || prc=$?
	det=$(sed -n 's/.* open=1 detail=//p' pa.out)
	[ "$prc" = 2 ] || fail "plan-apply rc=$prc: $(cat pa.out)"
	[ "$det" = "$want" ] || fail "detail: qemu '$want', plan-apply: $(cat pa.out)"
	cmp -s i.qcow2 o.qcow2 || fail "plan-apply changed the image"
	# end to end, under the same name qemu-img had
	cp i.qcow2 q.qcow2
	"$INSTAR" resize -f qcow2 q.qcow2 128M >i.out 2>i.err || irc=$?
	e2e_same i.qcow2 q.qcow2 "$irc"
}

# beyond NAME DETAIL: qemu-img opens (and resizes) it, instar refuses it
# with DETAIL as a failed open, changing nothing.
beyond() {
	CASE=$1
	local prc=0
	cases=$((cases + 1))
	cp i.qcow2 o.qcow2
	"$PA" qcow2 o.qcow2 $((128 << 20)) >pa.out || prc=$?
	[ "$prc" = 2 ] && grep -qF " open=1 detail=$2" pa.out ||
		fail "want open=1 '$2', plan-apply rc=$prc: $(cat pa.out)"
	cmp -s i.qcow2 o.qcow2 || fail "plan-apply changed the image"
}

# ---- the header, in qcow2_do_open's order ----
mk && w32 0 0x12345678 && same "magic"
mk && w32 4 1 && same "version 1"
mk && w32 4 4 && same "version 4"
mk && w32 20 8 && same "cluster_bits 8"
mk && w32 20 22 && same "cluster_bits 22"
mk && w32 100 100 && same "header_length 100"
mk && w32 100 0x20000 && same "header_length past the cluster"
mk && w32 100 108 && same "header_length 108 (the walk meets garbage)"
mk && w64 8 0x10008 && w32 16 4 && same "backing file offset past the cluster"
mk && w8 104 2 && same "compression type 2"
mk && w8 104 1 && same "zstd without its incompatible bit"
mk && w64 72 8 && same "compression bit with zlib"
mk && w64 72 0x20 && same "unknown incompatible bit 5"
mk && w64 72 0x8000000000000020 && same "unknown incompatible bits 5, 63"
mk && w64 72 0x21 && same "unknown bit before dirty"
mk && w64 72 2 && same "corrupt bit"
# a named unknown feature: the feature table's first entry renamed
mk && p=$(ext_pos 0x6803f857) && w8 $((p + 8)) 0 && w8 $((p + 9)) 5 &&
	wbytes $((p + 10)) "$(printf 'future thing' | od -An -tx1 | tr -d ' \n')00" &&
	w64 72 $(((1 << 5) | (1 << 40))) && same "named unknown feature"
mk cluster_size=4096 && w64 72 16 && same "extended L2 with 4 KiB clusters"
mk && w32 96 7 && same "refcount_order 7"
mk && w32 56 0 && same "no refcount table"
mk && w32 56 129 && same "refcount table too large"
mk && w64 48 0x10008 && same "refcount table unaligned"
mk && w64 48 0x7fffffffffff0000 && same "refcount table past 2^63"
mk && w32 60 65537 && same "too many snapshots"
mk && w64 64 0x208 && same "snapshot table unaligned, no snapshots"
mk && w64 64 0x208 && w32 60 1 && same "snapshot table unaligned"
# qemu's error and its hint on a line of its own (error_append_hint)
mk && "$QI" snapshot -c s1 i.qcow2 &&
	w32 $(($(r64 64) + 36)) 1025 &&
	same "too much extra metadata in a snapshot entry (and qemu's hint)"
# a snapshot table over qemu's 64 MiB: 600 entries of 128 KiB (two 65535-byte
# names each, holes in a sparse 80 MiB file); qemu stops at entry 511 and
# hints at the 89 left
mk && python3 - <<'PY' && same "snapshot table over 64 MiB (and qemu's hint)"
import struct
with open("i.qcow2", "r+b") as f:
    f.truncate(80 << 20)
    off, n = 0x100000, 600
    for i in range(n):
        off = (off + 7) & ~7
        f.seek(off)
        f.write(struct.pack(">QIHHIIQII", 0, 0, 65535, 65535, 0, 0, 0, 0, 0))
        off += 40 + 2 * 65535
    f.seek(60)
    f.write(struct.pack(">IQ", n, 0x100000))
PY
mk && w32 36 4194305 && same "L1 table too large"
mk && w64 40 0x30008 && same "L1 table unaligned"
mk && w64 40 0x30008 && w32 36 0 && w64 24 0 && same "L1 table unaligned, empty"
# sizes the host's checks refuse (a shrink without --shrink) or cannot
# read: the guest's open checks answer first, as qemu's open does
mk && w64 24 $((1 << 62)) && same "image too big"
mk && w64 24 $((1 << 40)) && same "L1 table too small"
mk && w64 24 0xffffffffffffffff && same "size 2^64 - 1"
mk && w32 32 3 && same "crypt method 3"
mk && w32 32 2 && same "LUKS without its header extension"
mk && w32 116 0x10000 && same "extension past the cluster"
mk && w32 112 0xe2792aca && w32 116 16 && w32 136 0 && same "backing format name of 16"
mk && w64 8 0x8000 && w32 16 1024 && same "backing file name of 1024"
mk && w64 8 0xff00 && w32 16 0x200 && same "backing file name past the cluster"
mk && w64 88 2 && same "data-file-raw without a data file"
# ---- the bitmaps extension and directory ----
mkbm && p=$(ext_pos 0x23852875) && w32 $((p + 4)) 16 && same "bitmaps extension of 16"
mkbm && p=$(ext_pos 0x23852875) && w32 $((p + 4)) 32 && same "bitmaps extension of 32"
mkbm && p=$(ext_pos 0x23852875) && w32 $((p + 12)) 1 && same "bitmaps reserved field"
mkbm && p=$(ext_pos 0x23852875) && w32 $((p + 8)) 0 && same "no bitmaps"
mkbm && p=$(ext_pos 0x23852875) && w32 $((p + 8)) 65536 && same "65536 bitmaps"
mkbm && p=$(ext_pos 0x23852875) && w64 $((p + 24)) $(($(r64 $((p + 24)))+8)) &&
	same "bitmap directory unaligned"
mkbm && p=$(ext_pos 0x23852875) && w64 $((p + 16)) $((1 << 30)) &&
	same "bitmap directory too large"
mkbm && p=$(ext_pos 0x23852875) && w64 $((p + 16)) 0 && same "bitmap directory of 0 bytes"
mkbm && p=$(ext_pos 0x23852875) && w32 $((p + 8)) 2 && same "fewer bitmaps than counted"
mkbm && p=$(ext_pos 0x23852875) && d=$(($(r64 $((p + 24))))) && w8 $((d + 17)) 8 &&
	same "bitmap granularity 2^8"

# ---- the name qemu gives: --image-opts' option string; JSON's message ----
mk && w32 20 8 && opts_case qcow2 i.qcow2 "Unsupported cluster size: 2^8" PARSE_FAILED

# ---- beyond qemu: tables outside the file or on the header ----
mk && w64 40 0x100000 && beyond "L1 table past the end" "Active L1 table offset invalid"
mk && w64 40 0 && beyond "L1 table on the header" "Active L1 table offset invalid"
mk && w64 48 0x100000 && beyond "refcount table past the end" \
	"Reference count table offset invalid"
mk && w64 48 0 && beyond "refcount table on the header" "Reference count table offset invalid"
mk && w64 64 0x100000 && w32 60 1 && beyond "snapshot table past the end" \
	"Snapshot table offset invalid"

# ---- beyond qemu: a state instar does not resize, not a failed open ----
# (docs/design.md §3.1). A dirty image (lazy refcounts): qemu repairs it on
# open and resizes it; instar refuses it in its own words, changing nothing.
CASE="dirty (lazy refcounts)"
cases=$((cases + 1))
mk lazy_refcounts=on && w64 72 1 && {
	prc=0 irc=0
	dirty="qcow2: image is dirty (lazy refcounts); run 'qemu-img check -r all'"
	cp i.qcow2 q.qcow2
	"$QI" resize -f qcow2 q.qcow2 128M >q.out 2>q.err || fail "qemu-img: $(cat q.err)"
	cp i.qcow2 o.qcow2
	"$PA" qcow2 o.qcow2 $((128 << 20)) >pa.out || prc=$?
	[ "$prc" = 2 ] && grep -q "^error=REQUIRES_CHECK .* open=0 detail=$dirty\$" pa.out ||
		fail "want REQUIRES_CHECK open=0, plan-apply rc=$prc: $(cat pa.out)"
	cmp -s i.qcow2 o.qcow2 || fail "plan-apply changed the image"
	cp i.qcow2 q.qcow2
	"$INSTAR" resize -f qcow2 q.qcow2 128M >i.out 2>i.err || irc=$?
	if guest_left_out i.err; then
		left_out=$((left_out + 1))
	else
		e2e=$((e2e + 1))
		[ "$irc" = 1 ] && [ "$(cat i.err)" = "instar: $dirty" ] ||
			fail "instar rc=$irc: $(cat i.err)"
		cmp -s i.qcow2 q.qcow2 || fail "instar changed the image"
	fi
}

echo "qcow2 open cases: $cases, $fails failed; end to end: $e2e compared, $left_out left out"
[ "$left_out" = 0 ] || echo "note: $left_out end-to-end cases left out: $(kvm_why)"
[ "$fails" = 0 ]
