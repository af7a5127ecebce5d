#!/bin/bash
# tests/compat/vmdk_open.sh — what qemu-img 7.2 says when it cannot open a
# vmdk image, against the vmdk planner's detail and, end to end, instar's
# own message. Copies of images qemu-img created (monolithicSparse,
# streamOptimized, monolithicFlat) are damaged where qemu's vmdk_open
# refuses them (block/vmdk.c: vmdk_open_vmdk4's version, L2 table size, L1
# entry size, grain offset and footer checks, vmdk_add_extent's granularity
# and L1 size, a capacity-0 header opened as a descriptor file,
# vmdk_open_desc_file's createType, vmdk_parse_extents' extent lines,
# vmdk_read_desc's empty file); then:
# - qemu-img resize -f vmdk fails with "Could not open 'F': DETAIL";
# - plan-apply fails with the same DETAIL, marks it an open failure
#   (open=1) and leaves the file as it was;
# - instar resize -f vmdk prints exactly qemu-img's stderr (program name
#   read as "instar") with exit code 1. The host's probe answers the empty
#   file, the footer, a descriptor file's createType and extent lines
#   before any guest; the rest is the guest's, which only runs where it can
#   boot (tests/kvm_gate.sh's rule: the cases left out are counted).
# Then headers qemu opens and instar refuses beyond it (README): refused in
# instar's own words, as a failed open where the header is damaged, nothing
# written.
#
#   vmdk_open.sh PLAN_APPLY QEMU_IMG INSTAR
set -uo pipefail
. "$(dirname "$0")/lib.sh"

open_init vmdk_open "$@"

# little-endian field writes into i/i.vmdk
wbytes() { put_hex i/i.vmdk "$@"; } # OFF HEX
le() { # BYTES VAL
	local v=$(($2)) i out=""
	for ((i = 0; i < $1; i++)); do
		out+=$(printf '%02x' $(((v >> (8 * i)) & 255)))
	done
	echo "$out"
}
w16() { wbytes "$1" "$(le 2 "$2")"; }
w32() { wbytes "$1" "$(le 4 "$2")"; }
w64() { wbytes "$1" "$(le 8 "$2")"; }
# ed SED_EXPR: edit a descriptor file's text
ed() { sed -i "$1" i/i.vmdk; }

# mk SUBFORMAT: i/i.vmdk (and its extent), 64 MiB, made by qemu-img
mk() {
	rm -rf i
	mkdir i
	"$QI" create -q -f vmdk -o subformat="$1" i/i.vmdk 64M
}

# same NAME: qemu-img and instar on copies of i/ (as damaged by the
# caller), growing to 2 GiB.
same() {
	CASE=$1
	local qrc=0 prc=0 irc=0 want det
	cases=$((cases + 1))
	rm -rf q o
	cp -a i q
	cp -a i o
	(cd q && "$QI" resize -f vmdk i.vmdk 2G >../q.out 2>../q.err) || qrc=$?
	want=$(sed -n "s/^qemu-img: Could not open 'i.vmdk': //p" q.err)
	if [ "$qrc" != 1 ] || [ -z "$want" ] || [ "$(wc -l <q.err)" != 1 ]; then
		fail "qemu-img was expected to fail its open in one line: rc=$qrc $(cat q.err)"
		return
	fi
	(cd o && "$PA" vmdk i.vmdk $((2 << 30)) >../pa.out) || prc=$?
	det=$(sed -n 's/.* open=1 detail=//p' pa.out)
	[ "$prc" = 2 ] || fail "plan-apply rc=$prc: $(cat pa.out)"
	[ "$det" = "$want" ] || fail "detail: qemu '$want', plan-apply: $(cat pa.out)"
	diff -r i o >/dev/null || fail "plan-apply changed the image"
	rm -rf q
	cp -a i q
	(cd q && "$INSTAR" resize -f vmdk i.vmdk 2G >../i.out 2>../i.err) || irc=$?
	e2e_same i q "$irc"
}

# beyond NAME OPEN DETAIL: qemu-img opens it (its resize then fails with
# "Image format driver does not support resize"); instar refuses it in its
# own words (README), changing nothing: with OPEN 1 as a failed open (the
# header damaged: "Could not open 'i.vmdk': DETAIL"), with 0 not (a feature
# instar does not resize: "DETAIL"; docs/design.md §3.1). End to end where
# the guest boots.
beyond() {
	CASE=$1
	local prc=0 irc=0 want=$3
	cases=$((cases + 1))
	[ "$2" = 1 ] && want="Could not open 'i.vmdk': $3"
	rm -rf q o
	cp -a i q
	cp -a i o
	(cd q && "$QI" resize -f vmdk i.vmdk 2G >../q.out 2>../q.err)
	grep -qxF "qemu-img: Image format driver does not support resize" q.err ||
		fail "qemu-img was expected to open it: $(cat q.err)"
	(cd o && "$PA" vmdk i.vmdk $((2 << 30)) >../pa.out) || prc=$?
	[ "$prc" = 2 ] && grep -qF " open=$2 detail=$3" pa.out ||
		fail "want open=$2 '$3', plan-apply rc=$prc: $(cat pa.out)"
	diff -r i o >/dev/null || fail "plan-apply changed the image"
	rm -rf q
	cp -a i q
	(cd q && "$INSTAR" resize -f vmdk i.vmdk 2G >../i.out 2>../i.err) || irc=$?
	guest_left_out i.err && return
	e2e=$((e2e + 1))
	[ "$irc" = 1 ] && [ "$(cat i.err)" = "instar: $want" ] ||
		fail "instar rc=$irc, want 'instar: $want': $(cat i.err)"
	diff -r i q >/dev/null || fail "instar changed the image"
}

# ---- a sparse header, in vmdk_open_vmdk4's order ----
S=monolithicSparse
mk $S && wbytes 0 58585858 && same "magic (read as a descriptor file)"
mk $S && w32 4 4 && same "version 4"
mk $S && w32 4 3 && same "version 3, read-write"
mk $S && w32 44 513 && same "numGTEsPerGT 513"
mk $S && w32 44 0 && same "numGTEsPerGT 0"
mk $S && w64 20 0 && same "grain size 0"
mk $S && w64 20 0x100000000 && same "grain size 2^32 (a 32-bit product of 0)"
mk $S && w32 44 256 && w64 20 0x1000000 && same "L1 entry size wraps to 0"
mk $S && w64 64 0x10000 && same "grain offset past the end (a truncated file)"
mk $S && w32 4 4 && w64 64 0x10000 && same "version before the grain offset"
mk $S && w64 20 0x400000 && same "grain size over 2^21 sectors"
mk $S && w64 64 0x10000 && w64 20 0x400000 && same "grain offset before granularity"
# (a shrink without --shrink for the host; the guest's open answers first)
mk $S && w64 12 0x100000000000 && same "L1 size too big"
mk $S && w64 12 0 && same "capacity 0: the descriptor opened as a file"
mk $S && w64 12 0 && wbytes 552 58585858 && same "capacity 0, no createType"
# ---- a stream: the footer ----
O=streamOptimized
mk $O && w64 56 0xffffffffffffffff && same "GD at the end without a footer"
mk $O && w64 56 0xffffffffffffffff && w32 4 4 && same "footer before the version"
mk $O && w32 4 3 && w16 77 0 && same "version 3 uncompressed"
# ---- a descriptor file ----
F=monolithicFlat
mk $F && ed 's/createType=/createTyp=/' && same "no createType"
mk $F && ed "s/monolithicFlat/$(printf '%0130d' 0)/" && same "createType over 127 bytes"
mk $F && ed 's/monolithicFlat/monolithicSparse/' && same "createType monolithicSparse"
mk $F && ed 's/monolithicFlat/streamOptimized/' && same "createType streamOptimized"
mk $F && ed 's/monolithicFlat/foo/' && same "createType foo"
mk $F && ed 's/ 0$//' && same "FLAT without an offset"
mk $F && ed 's/" 0$/" -1/' && same "FLAT at a negative offset"
mk $F && ed 's/FLAT/VMFS/' && same "VMFS with an offset"
mk $F && ed 's/FLAT/SPARSE/' && same "SPARSE with an offset"
mk $F && ed 's/FLAT/FLOT/' && same "unknown extent type with an offset"
mk $F && ed 's/ 0$//; s/FLAT/FLOT/; s/^RW.*/&\nRW 5 FLAT "x"/' && same "second line refused"
mk $F && ed 's/monolithicFlat/foo/; s/ 0$//' && same "createType before the extent lines"
# qemu's vmdk_read_cid after the open: "CID" and "parentCID" found by
# strstr, each followed by a hex number ("Could not open 'F': Invalid
# argument"; at 0x200 for a sparse header)
mk $F && ed '/parentCID/d' && same "no parentCID"
mk $F && ed 's/^CID=.*/CID=zz/' && same "CID not hex"
mk $F && ed 's/^parentCID=.*/parentCID= -/' && same "parentCID not hex"
mk $S && perl -0777 -pi -e 's/parentCID/parentXID/' i/i.vmdk && same "sparse: no parentCID"
mk $S && perl -0777 -pi -e 's/\nCID=[0-9a-f]+/\nCID=zzzzzzzz/' i/i.vmdk && same "sparse: CID not hex"
mk $F && : >i/i.vmdk && same "an empty file"
mk $F && printf 'ab' >i/i.vmdk && same "two bytes"

# ---- a delta disk: qemu's vmdk_parent_open ----
# both NAME: qemu-img and instar on copies of i/ (the image and the files it
# names), growing to 2 GiB: qemu-img fails (its open, or, having opened the
# image, "Image format driver does not support resize"); instar prints the
# same stderr with exit code 1 and changes nothing.
both() {
	CASE=$1
	local qrc=0 irc=0
	cases=$((cases + 1))
	rm -rf q o
	cp -a i q
	(cd q && "$QI" resize -f vmdk i.vmdk 2G >../q.out 2>../q.err) || qrc=$?
	[ "$qrc" = 1 ] || fail "qemu-img rc=$qrc: $(cat q.err)"
	cp -a i o
	(cd o && "$INSTAR" resize -f vmdk i.vmdk 2G >../i.out 2>../i.err) || irc=$?
	e2e_same i o "$irc"
}
# mkd: i/i.vmdk (sparse) over i/base.vmdk (parentFileNameHint="base.vmdk"),
# as qemu-img makes a delta disk
mkd() {
	mk $S && "$QI" create -q -f vmdk i/base.vmdk 64M &&
		"$QI" create -q -f vmdk -F vmdk -b base.vmdk i/i.vmdk 64M
}
# hint TEXT: a monolithicFlat descriptor (qemu-img makes no flat delta)
# with TEXT after its parentCID line, and i/base.vmdk
hint() {
	mk $F && ed "s/^parentCID=.*/&\n$1/" && "$QI" create -q -f vmdk i/base.vmdk 64M
}
# try NAME SETUP: eval SETUP, then both NAME; a setup that fails is a failure
try() {
	if eval "$2"; then
		both "$1"
	else
		CASE=$1
		cases=$((cases + 1))
		fail "setup failed: $2"
	fi
}
try "sparse delta disk" mkd
try "sparse delta disk, parent missing" 'mkd && rm i/base.vmdk'
try "sparse delta disk, parent not a vmdk (opened as one)" \
	'mkd && rm i/base.vmdk && "$QI" create -q -f raw i/base.vmdk 64M'
try "the parent's parent missing" \
	'mkd && rm i/base.vmdk && "$QI" create -q -f vmdk i/gone.vmdk 64M &&
	"$QI" create -q -f vmdk -F vmdk -b gone.vmdk i/base.vmdk 64M && rm i/gone.vmdk'
try "flat delta disk" "hint 'parentFileNameHint=\"base.vmdk\"'"
try "flat delta disk, parent missing" "hint 'parentFileNameHint=\"base.vmdk\"' && rm i/base.vmdk"
# qemu skips the two bytes after the key, whatever they are
try "two other bytes before the name" "hint 'parentFileNameHint  base.vmdk\"'"
try "two other bytes before a missing name" "hint 'parentFileNameHint  nothere\"'"
# no '"' after it: EINVAL
try "hint at the end, unclosed" "mk $F && printf 'parentFileNameHint=\"base' >>i/i.vmdk"
try "parentCID set, no hint" "mk $F && ed 's/^parentCID=.*/parentCID=12345678/'"

# ---- the block layer once qemu's driver has opened it ----
# the size in bytes, an unsigned product, past BDRV_MAX_LENGTH: the open
# fails; 2^54 sectors or more otherwise: qemu-img cannot read the length;
# 1 PiB: opened, and 2 GiB is a shrink (instar's 64 TiB limit comes later)
try "capacity 2^55 - 1 sectors" "mk $S && w64 12 0x7fffffffffffff"
try "capacity 2^55 sectors (2^64 bytes: 0)" "mk $S && w64 12 0x80000000000000"
try "capacity 2^62 sectors" "mk $S && w64 12 0x4000000000000000"
try "capacity 1 PiB, a shrink without --shrink" "mk $S && w64 12 0x20000000000"

# ---- beyond qemu: headers qemu opens, instar refuses ----
mk $S && w32 4 0 && beyond "version 0" 0 "vmdk sparse version 0 is not supported"
mk $S && w32 8 0x8 && beyond "unknown flag" 0 "vmdk: unknown header flags (8)"
mk $S && w64 20 3 && beyond "grain size 3" 1 \
	"vmdk grainSize 3 is not a power of two up to 2097152 sectors"
mk $S && w64 28 0x10000 && beyond "descriptor past the end" 1 \
	"vmdk descriptor lies beyond end of file"
mk $S && w64 56 0x10000 && beyond "grain directory past the end" 1 \
	"vmdk grain directory lies beyond end of file"
mk $S && w64 56 1 && beyond "grain directory on the descriptor" 1 \
	"vmdk grain directory overlaps the header or descriptor"

echo "vmdk open cases: $cases, $fails failed; end to end: $e2e compared, $left_out left out"
[ "$left_out" = 0 ] || echo "note: $left_out end-to-end cases left out: $(kvm_why)"
[ "$fails" = 0 ]
