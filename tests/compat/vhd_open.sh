#!/bin/bash
# tests/compat/vhd_open.sh — what qemu-img 7.2 says when it cannot open a
# VHD (vpc) image, against the vhd planner's detail and, end to end,
# instar's own message. Every check of qemu's vpc_open (block/vpc.c: where
# the footer is and its type, its checksum, the 2040 GiB size limit, the
# dynamic header's offset and magic, the block size, the table's size
# against the disk's, Max Table Entries, the table's offset, the end of the
# table and of every block against the file's length) is failed by a field
# written into a copy of an image qemu-img created; then:
# - qemu-img resize -f vpc fails with "Could not open 'F': DETAIL";
# - plan-apply fails with the same DETAIL, marks it an open failure
#   (open=1) and leaves the file as it was (the size limit: the host's
#   words, which name the file; the planner gives its own, open=1);
# - instar resize -f vpc prints exactly qemu-img's stderr (program name read
#   as "instar") with its exit code 1. The host's probe answers the footer
#   checks (vhd_size.h's rule) before any guest; the rest is the guest's,
#   which only runs where it can boot (tests/kvm_gate.sh's rule: the cases
#   left out are counted and said).
# Then what instar refuses beyond qemu (README, the vpc row): open=1,
# nothing written.
#
#   vhd_open.sh PLAN_APPLY QEMU_IMG INSTAR
set -uo pipefail
. "$(dirname "$0")/lib.sh"

open_init vhd_open "$@"

# big-endian field writes into i.vhd
wbytes() { put_hex i.vhd "$@"; } # OFF HEX
w8() { wbytes "$1" "$(printf '%02x' $(($2)))"; }
w16() { wbytes "$1" "$(printf '%04x' $(($2)))"; }
w32() { wbytes "$1" "$(printf '%08x' $(($2)))"; }
w64() { wbytes "$1" "$(printf '%016x' $(($2)))"; }
# vsum OFF LEN CSUM_OFF: the VHD checksum (one's complement of the byte sum,
# the checksum's own 4 bytes left out) of [OFF, OFF+LEN), written at CSUM_OFF
vsum() {
	local s
	s=$(od -An -tu1 -v -j $(($1)) -N "$2" i.vhd | awk -v c="$3" '
		{ for (i = 1; i <= NF; i++) { if (n < c || n >= c + 4) s += $i; n++ } }
		END { printf "%u", 4294967295 - s % 4294967296 }')
	w32 $(($1 + $3)) "$s"
}
fsum() { vsum "$1" 512 64; }  # the footer at OFF
dsum() { vsum "$1" 1024 36; } # the dynamic header at OFF
last() { echo $(($(stat -c %s i.vhd) - 512)); }
D=512 # where qemu-img puts the dynamic header

# mkd / mkf: i.vhd, a dynamic / fixed 64 MiB disk made by qemu-img
mkd() {
	rm -f i.vhd
	"$QI" create -q -f vpc -o subformat=dynamic i.vhd 64M
}
mkf() {
	rm -f i.vhd
	"$QI" create -q -f vpc -o subformat=fixed i.vhd 64M
}

# same NAME [--host-only]: qemu-img and instar on copies of i.vhd (as damaged
# by the caller), growing to 128 MiB. --host-only: qemu's words name the
# file, which the planner cannot; it must still fail its open.
same() {
	CASE=$1
	local host_only=${2:-} qrc=0 prc=0 irc=0 want
	cases=$((cases + 1))
	cp i.vhd q.vhd
	cp i.vhd o.vhd
	"$QI" resize -f vpc q.vhd 128M >q.out 2>q.err || qrc=$?
	want=$(sed -n "s/^qemu-img: Could not open 'q.vhd': //p" q.err)
	if [ "$qrc" != 1 ] || [ -z "$want" ]; then
		fail "qemu-img was expected to fail its open: rc=$qrc $(cat q.err)"
		return
	fi
	"$PA" vpc o.vhd $((128 << 20)) >pa.out || prc=$?
	[ "$prc" = 2 ] && grep -q " open=1 detail=" pa.out || fail "plan-apply rc=$prc: $(cat pa.out)"
	if [ -z "$host_only" ]; then
		[ "$(sed -n 's/.* open=1 detail=//p' pa.out)" = "$want" ] ||
			fail "detail: qemu '$want', plan-apply: $(cat pa.out)"
	fi
	cmp -s i.vhd o.vhd || fail "plan-apply changed the image"
	# end to end, under the same name qemu-img had
	cp i.vhd q.vhd
	"$INSTAR" resize -f vpc q.vhd 128M >i.out 2>i.err || irc=$?
	e2e_same i.vhd q.vhd "$irc"
}

# beyond NAME DETAIL: qemu-img opens it, instar refuses it with DETAIL as a
# failed open, changing nothing.
beyond() {
	CASE=$1
	local prc=0 qrc=0
	cases=$((cases + 1))
	cp i.vhd q.vhd
	"$QI" resize -f vpc q.vhd 128M >q.out 2>q.err || qrc=$?
	grep -q "Could not open" q.err && fail "qemu-img does not open it: $(cat q.err)"
	cp i.vhd o.vhd
	"$PA" vpc o.vhd $((128 << 20)) >pa.out || prc=$?
	[ "$prc" = 2 ] && grep -qxF "$(sed 's/ detail=.*//' pa.out) detail=$2" pa.out &&
		grep -q " open=1 detail=" pa.out ||
		fail "want open=1 '$2', plan-apply rc=$prc: $(cat pa.out)"
	cmp -s i.vhd o.vhd || fail "plan-apply changed the image"
}

# ---- the footer, in vpc_open's order ----
mkd && w32 0 0x41414141 && w32 "$(last)" 0x41414141 && same "no cookie in either sector"
mkf && w32 "$(last)" 0x41414141 && same "fixed: no cookie"
mkd && w32 0 0x41414141 && same "dynamic: first sector's cookie broken, last intact"
mkf && e=$(last) && w32 $((e + 60)) 3 && fsum "$e" && same "last sector only, type dynamic"
mkf && e=$(last) && w32 $((e + 60)) 4 && fsum "$e" && same "last sector only, type differencing"
mkd && w32 64 0 && same "dynamic: checksum"
mkf && w32 $(($(last) + 64)) 0 && same "fixed: checksum"
# qemu's file length is in whole sectors: only an empty file is too small
: >i.vhd && same "empty file"
printf 'not a footer' | dd of=i.vhd bs=100 count=1 conv=sync status=none &&
	same "file of 100 bytes"
mkf && printf 'x%.0s' $(seq 100) >>i.vhd && same "fixed: 100 bytes after the footer"
mkd && w32 28 0x77696e20 && w64 48 $((2041 << 30)) && fsum 0 &&
	same "dynamic: current_size of 2041 GiB" --host-only
mkd && w16 56 65535 && w8 58 16 && w8 59 255 && w64 48 $((2041 << 30)) && fsum 0 &&
	same "dynamic: maximum geometry, 2041 GiB" --host-only
mkf && e=$(last) && w32 $((e + 28)) 0x77696e20 && w64 $((e + 48)) $((2041 << 30)) &&
	fsum "$e" && same "fixed: 2041 GiB" --host-only
# ---- the dynamic header and the block table ----
mkd && w64 16 0x7fffffffc0000000 && fsum 0 && same "header offset past qemu's largest"
mkd && w64 16 $((1 << 62)) && fsum 0 && same "header offset 2^62"
mkd && w64 16 $((1 << 30)) && fsum 0 && same "header offset past the end"
mkd && w64 16 0 && fsum 0 && same "header offset 0"
mkd && w64 16 513 && fsum 0 && same "header offset 513"
mkd && w32 $D 0x41414141 && same "header magic"
mkd && w32 $((D + 32)) 3000 && dsum $D && same "block size 3000"
mkd && w32 $((D + 32)) 256 && dsum $D && same "block size 256"
mkd && w32 $((D + 32)) 0 && dsum $D && same "block size 0"
mkd && w32 $((D + 28)) 1 && dsum $D && same "table of 1 entry"
mkd && w32 $((D + 28)) 0 && dsum $D && same "table of 0 entries"
mkd && w32 $((D + 28)) 536870912 && dsum $D && same "Max Table Entries 2^29"
mkd && w32 $((D + 28)) 0x80000000 && dsum $D && same "Max Table Entries 2^31"
mkd && w32 $((D + 28)) 100000 && dsum $D && same "table past the end"
mkd && w64 $((D + 16)) 0x7ffffffffffff000 && dsum $D && same "table offset past qemu's largest"
mkd && w64 $((D + 16)) $((1 << 62)) && dsum $D && same "table offset 2^62"
mkd && w64 $((D + 16)) 0 && dsum $D && same "table offset 0 (the footer as entries)"
mkd && w64 $((D + 16)) 1000 && dsum $D && same "table offset 1000"
mkd && w32 1536 $(($(last) / 512)) && same "block past the end"

# ---- the name qemu gives: --image-opts' option string; JSON's message ----
mkd && w32 $((D + 32)) 3000 && dsum $D && opts_case vpc i.vhd "Invalid block size 3000" CORRUPT
# the host's size limit under --image-opts: the file's name inside
mkd && w32 28 0x77696e20 && w64 48 $((2041 << 30)) && fsum 0
CASE="--image-opts, 2041 GiB"
cases=$((cases + 1))
cp i.vhd q.vhd
o="driver=vpc,file.filename=q.vhd"
qrc=0 irc=0
"$QI" resize --image-opts "$o" 128M >q.out 2>q.err || qrc=$?
"$INSTAR" resize --image-opts "$o" 128M >i.out 2>i.err || irc=$?
sed 's/^qemu-img: /instar: /' q.err | cmp -s - i.err && [ "$qrc" = 1 ] && [ "$irc" = 1 ] ||
	fail "qemu-img rc=$qrc $(cat q.err), instar rc=$irc $(cat i.err)"

# ---- beyond qemu ----
mkd && w32 $((D + 36)) 0 && beyond "dynamic header checksum" \
	"vhd dynamic header checksum mismatch"
mkd && w32 60 2 && fsum 0 && beyond "first sector says fixed, last dynamic" \
	"vhd footer copies disagree"
# blocks inside the file, where qemu finds them: one written block, then
# entry 1 pointed over the table, or over the footer
mkw() {
	mkd && "$QIO" -f vpc -c "write -P 7 0 1M" i.vhd >/dev/null
}
mkw && w32 $((1536 + 4)) 3 && beyond "block over the table" "vhd block overlaps the metadata"
mkw && w32 $((1536 + 4)) $((($(last) + 512 - (2 << 20) - 512) / 512)) &&
	beyond "block over the footer" "vhd block outside the file"

echo "vhd open cases: $cases, $fails failed; end to end: $e2e compared, $left_out left out"
[ "$left_out" = 0 ] || echo "note: $left_out end-to-end cases left out: $(kvm_why)"
[ "$fails" = 0 ]
