#!/bin/bash
# tests/compat/vhd_plan.sh — the VHD (vpc) planner against qemu-img/qemu-io as
# the oracle: fixed and dynamic disks, several creators, grow (in place and
# with BAT relocation), shrink (data past the cut, a cut block), and a crash
# run (--stop-after K for every K) for each kind of plan.
# Other products' footers (creators "vpc ", "vs  ", "d2v\0", "win ", "qem2";
# CHS != current_size; the maximum geometry): qemu-img, the host probe
# (`instar info`) and the planner agree on the size before and after, and a
# second reader, libvhdi (libyal_read.py: it reads original_size, which
# instar writes with current_size), reports the new size and reads the same
# data. With /dev/kvm, `instar resize` end to end too.
#   vhd_plan.sh PLAN_APPLY QEMU_IMG [INSTAR]
# (INSTAR defaults to the build's vmm/instar beside PLAN_APPLY's tests/tools)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

compat_init "$@"
INSTAR=${3:-$(dirname "$PA")/../../vmm/instar}
[ -x "$INSTAR" ] || fail "no instar at $INSTAR"
e2e_or_left_out "the end-to-end resizes (plan-apply does them)"

vsize() {
	qi_vsize vpc "$1"
}

# Size qemu-img create -f vpc gives for a request (the CHS round-up).
create_size() {
	"$QI" create -q -f vpc "$T/cs.vhd" "$1"
	vsize "$T/cs.vhd"
}

# set_footer IMG [creator=CR] [type=N] [size=BYTES] [chs=C/H/S]: sets these
# fields in both footer copies (size: current_size and original_size alike)
# and fixes the checksum, to make other products' images. A "0" in CR is a
# NUL ("d2v0" is disk2vhd's "d2v\0"); a short CR is padded with NULs.
set_footer() {
	python3 - "$@" <<'EOF'
import struct, sys
f, kv = sys.argv[1], dict(a.split('=', 1) for a in sys.argv[2:])
with open(f, 'r+b') as fh:
    fh.seek(0, 2)
    offs = [fh.tell() - 512]
    fh.seek(0)
    if fh.read(8) == b'conectix':
        offs.append(0)
    for o in offs:
        fh.seek(o)
        d = bytearray(fh.read(512))
        if 'creator' in kv:
            d[28:32] = kv['creator'].replace('0', '\0').encode().ljust(4, b'\0')[:4]
        if 'size' in kv:
            d[40:48] = d[48:56] = struct.pack('>Q', int(kv['size']))
        if 'chs' in kv:
            d[56:60] = struct.pack('>HBB', *map(int, kv['chs'].split('/')))
        if 'type' in kv:
            d[60:64] = struct.pack('>I', int(kv['type']))
        d[64:68] = b'\0' * 4
        d[64:68] = struct.pack('>I', ~sum(d) & 0xffffffff)
        fh.seek(o)
        fh.write(d)
EOF
}

# mkimg IMG SUBFORMAT SIZE CREATOR WRITES...: creates and fills an image.
mkimg() {
	local img=$1 sub=$2 size=$3 cr=$4
	shift 4
	"$QI" create -q -f vpc -o subformat="$sub" "$img" "$size"
	[ "$cr" = qemu ] || set_footer "$img" creator="$cr"
	qio_write vpc "$img" "$@"
}

# verify IMG ORIGRAW SIZE: qemu opens IMG at SIZE with the expected bytes.
verify() {
	qemu_reads vpc "$1" "$2" "$3"
	NCHECK=$((NCHECK + 1))
}

# vhdi_check IMG SIZE: the second oracle (libvhdi, lib.sh's libyal_check)
# reads IMG at SIZE with what the last verify expected ($T/exp.raw).
vhdi_check() {
	libyal_check vpc "$1" "$2" "$T/exp.raw"
}

# probe_size IMG: the host probe's size (`instar info`), or qemu's without
# instar.
probe_size() {
	if [ -n "$INSTAR" ]; then
		"$INSTAR" info --output=json "$1" | sed -n 's/.*"virtual_size":\([0-9]*\).*/\1/p'
	else
		vsize "$1"
	fi
}

# resize_case NAME SUB SIZE CREATOR NEWREQ WANT [plan-apply flags] -- WRITES
resize_case() {
	local name=$1 sub=$2 size=$3 cr=$4 req=$5 want=$6
	shift 6
	take_flags "$@"
	local flags=("${FLAGS[@]}")
	local img="$T/$name.vhd" out
	mkimg "$img" "$sub" "$size" "$cr" "${REST[@]}"
	"$QI" convert -f vpc -O raw "$img" "$T/$name.orig.raw"
	cp "$img" "$T/$name.orig.vhd"
	apply_ok "$name" "$want" "${flags[@]}" vpc "$img" "$req"
	verify "$img" "$T/$name.orig.raw" "$want"
	vhdi_check "$img" "$want"
	# qemu can allocate and write past the resize (dynamic free offset, BAT)
	if [ "$want" -ge $((2 * M)) ]; then
		"$QIO" -f vpc -c "write -P 0x5a $((want - M)) 512k" "$img" >/dev/null
		out=$("$QIO" -f vpc -c "read -P 0x5a $((want - M)) 512k" "$img")
		case "$out" in *failed*) fail "$name: write after resize: $out" ;; esac
		truncate -s "$want" "$T/$name.orig.raw"
		python3 -c "
import sys
f = open(sys.argv[1], 'r+b'); f.seek(int(sys.argv[2])); f.write(b'\x5a' * 524288)
" "$T/$name.orig.raw" $((want - M))
		verify "$img" "$T/$name.orig.raw" "$want"
		"$QI" convert -f vpc -O raw "$T/$name.orig.vhd" "$T/$name.orig.raw"
	fi
	# crash run: for every K, stop after K ops; qemu must see the old or
	# the new disk with its data
	CRASH_NEW=$want
	crash_run vpc vhd "$name" "$want" "${flags[@]}"
}

# crash_verify NAME IMG SIZE OLD: the crash run's disk has its data at SIZE.
crash_verify() {
	local fsz s2
	verify "$2" "$T/$1.orig.raw" "$3"
	# dynamic: qemu reads the footer copy at 0; a reader that trusts the one
	# at EOF-512 (the spec's) is emulated by a copy with it moved to 0, and
	# must see the old or the new disk with its data as well (issue 15)
	[ "$(head -c 8 "$2")" = conectix ] || return 0
	fsz=$(stat -c %s "$2")
	# the same footer at both ends: the second view is the first one
	cmp -s <(head -c 512 "$2") <(tail -c 512 "$2") && return 0
	cp --sparse=always "$2" "$T/eof.vhd"
	dd if="$2" of="$T/eof.vhd" bs=512 skip=$((fsz / 512 - 1)) count=1 conv=notrunc \
		status=none
	s2=$(vsize "$T/eof.vhd")
	[ "$s2" = "$4" ] || [ "$s2" = "$CRASH_NEW" ] ||
		fail "$1: the EOF footer says $s2, neither $4 nor $CRASH_NEW"
	verify "$T/eof.vhd" "$T/$1.orig.raw" "$s2"
}

# --- dynamic disks ---
S10=$(create_size 10M)
resize_case dyn-grow-inplace dynamic 10M qemu $((20 * M)) "$(create_size 20M)" -- \
	"0xab 0 3M" "0xcd 9M 1M"
resize_case dyn-grow-reloc dynamic 10M qemu $((300 * M)) "$(create_size 300M)" -- \
	"0xab 0 3M" "0xcd $((S10 - 512)) 512"
resize_case dyn-grow-1g-unaligned dynamic 1G qemu 1500000000 "$(create_size 1500000000)" -- \
	"0x11 0 1M" "0x22 1000M 24M"
resize_case dyn-shrink-cut dynamic 10M qemu $((5 * M)) "$(create_size 5M)" --shrink -- \
	"0xab 0 1M" "0xcd 4M 2M" "0xef 8M 2M"
resize_case dyn-shrink-aligned dynamic 64M qemu $((8 * M)) "$(create_size 8M)" --shrink -- \
	"0xab 0 8M" "0xcd 20M 30M"
resize_case dyn-vpc-creator dynamic 10M "vpc " $((100 * M)) "$(create_size 100M)" -- "0x33 0 10M"
resize_case dyn-unknown-creator dynamic 10M xyzw 123456789 "$(create_size 123456789)" -- "0x34 1M 1M"
# creators whose readers use current_size: no CHS round-up, only to 512
resize_case dyn-win-grow dynamic 10M "win " 300000001 300000256 -- "0x44 0 10M"
resize_case dyn-win-shrink dynamic 10M "win " 3333121 3333632 --shrink -- "0x45 0 10M"
resize_case dyn-tap-grow dynamic 10M tap 50000000 50000384 -- "0x46 5M 1M"

# --- other products' footers (issue 16): one size rule for the probe and
# the planner, qemu 7.2's ---
# sizes_agree NAME IMG WANT: qemu-img, the probe and the planner (plan-apply
# --dry-run reports old=) all say WANT.
sizes_agree() {
	local q p a
	q=$(vsize "$2")
	p=$(probe_size "$2")
	a=$("$PA" --dry-run vpc "$2" "$3" | sed -n 's/.* old=\([0-9]*\) .*/\1/p')
	if [ "$q" != "$3" ] || [ "$p" != "$3" ] || [ "$a" != "$3" ]; then
		fail "$1: sizes: qemu $q, probe $p, planner $a; want $3"
	fi
	NCHECK=$((NCHECK + 1))
}

# resize_via HOW NAME IMG SIZE [--shrink]: HOW e2e is `instar resize` (with
# KVM; else plan-apply), plan is plan-apply.
resize_via() {
	local how=$1 name=$2 img=$3 size=$4 out
	shift 4
	if [ "$how" = e2e ] && [ -n "$E2E" ]; then
		out=$("$INSTAR" resize -q -f vpc "$@" "$img" "$size" 2>&1) ||
			fail "$name: instar resize $size: $out"
	else
		out=$("$PA" "$@" vpc "$img" "$size") || fail "$name: plan-apply $size: $out"
	fi
}

# creator_case NAME CREATOR C H S RULE: a 10 MiB dynamic disk whose footer
# says CREATOR, geometry C/H/S and current_size 10 MiB; RULE chs or exact:
# how a request rounds. Grow (plan-apply), then shrink and grow back to the
# first request (end to end when possible).
creator_case() {
	local name=$1 cr=$2 c=$3 h=$4 s=$5 rule=$6 img=$T/$1.vhd old want r how=plan
	"$QI" create -q -f vpc "$img" 10M
	set_footer "$img" creator="$cr" size=$((10 * M)) chs="$c/$h/$s"
	qio_write vpc "$img" "0x33 0 1M" "0x44 8M 1M"
	"$QI" convert -f vpc -O raw "$img" "$T/$name.orig.raw"
	old=$(vsize "$img")
	if [ $((c * h * s)) != $((65535 * 16 * 255)) ] && [ "$rule" = chs ]; then
		[ "$old" = $((c * h * s * 512)) ] || fail "$name: qemu reads $old, not CHS"
	else
		[ "$old" = $((10 * M)) ] || fail "$name: qemu reads $old, not current_size"
	fi
	sizes_agree "$name" "$img" "$old"
	for r in 50000001 5000000 50000001; do
		if [ "$rule" = chs ]; then
			want=$(create_size $r)
		else
			want=$(((r + 511) / 512 * 512))
		fi
		if [ "$r" -lt "$old" ]; then
			resize_via $how "$name" "$img" "$r" --shrink
		else
			resize_via $how "$name" "$img" "$r"
		fi
		how=e2e
		verify "$img" "$T/$name.orig.raw" "$want"
		vhdi_check "$img" "$want"
		sizes_agree "$name" "$img" "$want"
		head -c "$((want < old ? want : old))" "$T/$name.orig.raw" >"$T/$name.cut.raw"
		mv "$T/$name.cut.raw" "$T/$name.orig.raw"
		old=$want
	done
	# a current_size creator gets back exactly what it asked for
	[ "$rule" = chs ] || [ "$want" = 50000384 ] || fail "$name: grown back to $want"
	echo "creator $name: ok"
}
creator_case vpc-chs "vpc " 20 16 63 chs
creator_case vs-chs "vs  " 20 16 63 chs
creator_case d2v-chs d2v0 20 16 63 chs
creator_case win-chs "win " 20 16 63 exact
creator_case qem2-chs qem2 20 16 63 exact
creator_case d2v-max d2v0 65535 16 255 exact
creator_case vpc-max "vpc " 65535 16 255 chs

# Virtual PC's 127 GB default disk (CHS 65535/16/254 < current_size, as in
# qemu's virtualpc-dynamic sample): every resize used to be HEADER_MISMATCH
V127=$((65535 * 16 * 254 * 512))
"$QI" create -q -f vpc "$T/vpc127.vhd" 127G
set_footer "$T/vpc127.vhd" creator="vpc " size=$((266338304 * 512)) chs=65535/16/254
sizes_agree vpc127 "$T/vpc127.vhd" $V127
resize_via e2e vpc127 "$T/vpc127.vhd" $((V127 + G))
sizes_agree vpc127 "$T/vpc127.vhd" $((V127 + G))
: >"$T/empty.raw" # the disk was never written: it reads as zeros
libyal_check vpc "$T/vpc127.vhd" $((V127 + G)) "$T/empty.raw"
resize_via e2e vpc127 "$T/vpc127.vhd" $((100 * G)) --shrink
sizes_agree vpc127 "$T/vpc127.vhd" "$(create_size 100G)"
libyal_check vpc "$T/vpc127.vhd" "$(create_size 100G)" "$T/empty.raw"
echo "creator vpc127: ok"

# shrink then grow back: the cut data must not come back
mkimg "$T/sg.vhd" dynamic 64M qemu "0x77 0 64M"
"$QI" convert -f vpc -O raw "$T/sg.vhd" "$T/sg.raw"
"$PA" --shrink vpc "$T/sg.vhd" 3000000 >/dev/null || fail "sg shrink"
"$PA" vpc "$T/sg.vhd" $((64 * M)) >/dev/null || fail "sg grow"
S3=$(create_size 3000000)
head -c "$S3" "$T/sg.raw" >"$T/sg.cut.raw"
verify "$T/sg.vhd" "$T/sg.cut.raw" "$(create_size 64M)"

# refusals: no shrink flag, differencing type, preallocation on dynamic
mkimg "$T/r.vhd" dynamic 10M qemu "0x12 0 1M"
cp "$T/r.vhd" "$T/r.orig"
refused "shrink without flag" SHRINK_WITHOUT_FLAG vpc "$T/r.vhd" $((5 * M))
refused "dynamic prealloc" PREALLOCATION_UNSUPPORTED --prealloc falloc vpc "$T/r.vhd" $((20 * M))
cmp -s "$T/r.vhd" "$T/r.orig" || fail "refused resize changed the image"
set_footer "$T/r.vhd" type=4
refused "differencing resize" UNSUPPORTED_SUBFORMAT vpc "$T/r.vhd" $((20 * M))

# --- fixed disks ---
resize_case fix-grow fixed 10M qemu $((20 * M)) "$(create_size 20M)" -- "0xab 0 1M" "0xcd 9M 1M"
resize_case fix-grow-falloc fixed 10M qemu $((30 * M)) "$(create_size 30M)" \
	--prealloc falloc -- "0xab 0 1M" "0xcd $((S10 - 4096)) 4096"
resize_case fix-shrink fixed 10M qemu $((4 * M)) "$(create_size 4M)" --shrink -- \
	"0xab 0 1M" "0xcd 3M 7M"
resize_case fix-win-grow fixed 10M "win " 20000000 20000256 -- "0xab 0 10M"
resize_case fix-win-shrink fixed 10M "win " 7000000 7000064 --shrink -- "0xab 0 10M"

# noop: same size
mkimg "$T/n.vhd" dynamic 10M qemu "0x12 0 1M"
cp "$T/n.vhd" "$T/n.orig"
out=$("$PA" vpc "$T/n.vhd" $((10 * M)))
case "$out" in *"action=noop"*) ;; *) fail "noop: $out" ;; esac
cmp -s "$T/n.vhd" "$T/n.orig" || fail "noop changed the image"

echo "vhd_plan: all ok ($NCHECK image checks)"
guest_skips_end
