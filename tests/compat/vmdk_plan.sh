#!/bin/bash
# tests/compat/vmdk_plan.sh — the VMDK planner against qemu-img/qemu-io as the
# oracle: monolithicSparse around grain-directory sector boundaries, adapter
# types (geometry), zeroed grains, qemu's streamOptimized (and a compressed
# grain cut by a resize, rewritten whole), multi-file
# refusals, and a crash run (--stop-after K for every K) per kind of plan.
# After each resize: check clean, virtual size, data (old bytes below
# min(old,new), zeros above), geometry equal to a fresh qemu-img image of the
# new size, and a qemu-io write into the grown area that must not touch the
# header or the descriptor (qemu writes at offset 0 on a GD entry of 0).
# A 64 TiB grow must leave its new grain tables as holes (`du` bound), also
# end to end with `instar resize` when /dev/kvm is usable. Streams with the
# grain directory at the end (footer) from VMware (tests/samples), VMDKstream
# and vmdk_stream.py: grown and shrunk, read by qemu, libvmdk and `instar
# info`, and crash-run with both readers.
#   vmdk_plan.sh PLAN_APPLY QEMU_IMG [INSTAR]
# (INSTAR defaults to the build's vmm/instar beside PLAN_APPLY's tests/tools)
set -euo pipefail
[ -n "${VMDK_DEBUG:-}" ] && set -x
. "$(dirname "$0")/lib.sh"

compat_init "$@"
INSTAR=${3:-$(dirname "$PA")/../../vmm/instar}
[ -x "$INSTAR" ] || fail "no instar at $INSTAR"
INSTAR_INFO=$INSTAR # (instar info needs no guest)
if ! kvm_usable; then
	INSTAR=
	guest_part_left_out "the end-to-end 64T grow"
fi
# The harness itself does not free its op recorder; only the planner matters.
export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0

# (the extents of a vmdk have their own virtual-size: the first is the disk's)
vsize() {
	qi_vsize vmdk "$1" | head -n1
}

# hdr IMG: the 512-byte sparse header as hex.
hdr() {
	od -An -v -tx1 -N512 "$1" | tr -d ' \n'
}

# desc IMG: the embedded descriptor text (sectors 1..20 in qemu's layout).
desc() {
	dd if="$1" bs=512 skip=1 count=20 status=none | tr -d '\0'
}

# geom IMG: extent sectors and geometry lines of the descriptor.
geom() {
	desc "$1" | sed -n -e 's/^RW \([0-9]*\) SPARSE.*/RW \1/p' -e '/^ddb.geometry/p'
}

# mkimg IMG SIZE OPTS WRITES...: creates a vmdk and writes "PAT OFF LEN".
mkimg() {
	local img=$1 size=$2 opts=$3
	shift 3
	"$QI" create -q -f vmdk ${opts:+-o "$opts"} "$img" "$size"
	qio_write vmdk "$img" "$@"
}

# expect_raw IMG SIZE OUT: IMG's current bytes cut or zero-extended to SIZE.
expect_raw() {
	"$QI" convert -f vmdk -O raw "$1" "$3"
	truncate -s "$2" "$3"
}

check_clean() {
	local out
	out=$("$QI" check -f vmdk "$1" 2>&1) || fail "$1: qemu-img check failed: $out"
	case $out in
	*"No errors were found"*) ;;
	*) fail "$1: qemu-img check: $out" ;;
	esac
}

# verify IMG EXPRAW SIZE: qemu opens IMG at SIZE with exactly EXPRAW's bytes,
# and so does the second oracle, libvmdk (libyal_read.py).
verify() {
	local img=$1 exp=$2 size=$3 got
	check_clean "$img"
	got=$(vsize "$img")
	[ "$got" = "$size" ] || fail "$img: virtual size $got, want $size"
	"$QI" compare -q -f vmdk -F raw "$img" "$exp" || fail "$img: data differs from $exp"
	NCHECK=$((NCHECK + 1))
	libyal_check vmdk "$img" "$size" "$exp"
}

# geometry_like IMG SIZE OPTS: descriptor geometry equals a fresh qemu image.
geometry_like() {
	"$QI" create -q -f vmdk ${3:+-o "$3"} "$T/ref.vmdk" "$2"
	[ "$(geom "$1")" = "$(geom "$T/ref.vmdk")" ] ||
		fail "$1: geometry '$(geom "$1" | tr '\n' ' ')' != qemu's '$(geom "$T/ref.vmdk" | tr '\n' ' ')'"
}

# hazard IMG OLD NEW [LEN]: write LEN bytes (default 4096; a stream takes only
# whole grains) past the old end and at the new end with qemu-io; the header
# and the descriptor (but for qemu's CID update) must survive.
hazard() {
	local img=$1 old=$2 new=$3 len=${4:-4096} h d
	h=$(hdr "$img")
	d=$(desc "$img" | grep -v '^CID=')
	"$QIO" -f vmdk -c "write -P 0x5a $old $len" -c "write -P 0xa5 $((new - len)) $len" \
		"$img" >/dev/null || fail "$img: qemu-io write into the grown area failed"
	"$QIO" -f vmdk -r -c "read -P 0x5a $old $len" -c "read -P 0xa5 $((new - len)) $len" \
		-c "read -P 0 $((old + len)) $len" "$img" | grep 'Pattern verification failed' >/dev/null &&
		fail "$img: read back after a write into the grown area"
	[ "$(hdr "$img")" = "$h" ] || fail "$img: header changed by a qemu write (offset-0 hazard)"
	[ "$(desc "$img" | grep -v '^CID=')" = "$d" ] || fail "$img: descriptor damaged by a qemu write"
	check_clean "$img"
}

# resize IMG NEWSIZE [ARGS]: plan-apply, expecting success.
resize() {
	local img=$1 size=$2
	shift 2
	"$PA" "$@" vmdk "$img" "$size" >"$T/pa.out" || fail "$img -> $size: $(cat "$T/pa.out")"
}

# expect_err IMG NEWSIZE ERROR DETAIL-SUBSTRING [ARGS]: refused, image untouched.
expect_err() {
	local img=$1 size=$2 err=$3 sub=$4 out sum
	shift 4
	sum=$(md5sum <"$img")
	out=$("$PA" "$@" vmdk "$img" "$size") && fail "$img -> $size: expected $err, got: $out"
	case $out in
	*"error=$err "*"$sub"*) ;;
	*) fail "$img -> $size: expected $err ($sub), got: $out" ;;
	esac
	[ "$(md5sum <"$img")" = "$sum" ] || fail "$img changed by a refused resize"
	NCHECK=$((NCHECK + 1))
}

# case_grow NAME SIZE NEW OPTS WRITES...: grow, verify, geometry, hazard.
case_grow() {
	local name=$1 size=$2 new opts=$4 img=$T/$1.vmdk old
	new=$(numfmt --from=iec "$3")
	shift 4
	mkimg "$img" "$size" "$opts" "$@"
	old=$(vsize "$img")
	expect_raw "$img" "$new" "$T/$name.exp"
	resize "$img" "$new"
	grep -q 'action=grow' "$T/pa.out" || fail "$name: $(cat "$T/pa.out")"
	verify "$img" "$T/$name.exp" "$new"
	geometry_like "$img" "$new" "$opts"
	hazard "$img" "$old" "$new"
}

# du_below IMG KIB: IMG has fewer than KIB KiB allocated (new tables are holes).
du_below() {
	local kib
	kib=$(du -k "$1" | cut -f1)
	[ "$kib" -lt "$2" ] || fail "$1: $kib KiB allocated, want < $2"
	echo "  $1: $kib KiB allocated"
}

# ---- grow: in place, GD sector boundary, relocation, adapters ----
case_grow small 1G $((G + M)) "" "0x11 0 64k" "0x22 $((G - 4096)) 4096"
case_grow m100 100M 1G "" "0x11 0 64k" "0x22 50M 64k" "0x33 $((100 * M - 512)) 512"
case_grow g4to5 4G 5G "" "0x44 $((4 * G - 64 * 1024)) 64k" "0x45 1G 4k"
case_grow reloc8 1G 8G "adapter_type=lsilogic" "0x11 0 64k" "0x22 $((G - 512)) 512"
case_grow reloc100 1G 100G "adapter_type=buslogic" "0x11 0 64k" "0x22 $((G - 512)) 512"
# its 2 x 3168 new grain tables (12 MiB) are holes: checked, compared and
# read by libvmdk above, and the file holds little more than before
du_below "$T/reloc100.vmdk" 1024
case_grow zg 1G 3G "zeroed_grain=on,adapter_type=ide" "0x11 0 64k" "0x22 $((G - 4096)) 4096"
# a 5G image has a two-sector GD: growing to 6G stays in place
case_grow g5to6 5G 6G "adapter_type=lsilogic" "0x55 $((5 * G - 4096)) 4096"

# ---- a large grow qemu-img checks whole: 1G -> 4T, 2 x 131070 new grain
# tables (512 MiB) left as holes (qemu-img check 7 s; compare would take
# minutes over 4 TiB: qemu-io reads at both ends instead, and libvmdk) ----
img=$T/g4t.vmdk
mkimg "$img" 1G "" "0x11 0 64k" "0x22 $((G - 65536)) 64k"
"$QI" convert -f vmdk -O raw "$img" "$T/g4t.exp"
resize "$img" $((4 << 40))
check_clean "$img"
[ "$(vsize "$img")" = $((4 << 40)) ] || fail "g4t: virtual size $(vsize "$img")"
du_below "$img" 2048
libyal_check vmdk "$img" $((4 << 40)) "$T/g4t.exp"
"$QIO" -f vmdk -r -c "read -P 0x11 0 64k" -c "read -P 0x22 $((G - 65536)) 64k" \
	-c "read -P 0 $G 1M" -c "read -P 0 $(((4 << 40) - M)) $M" "$img" |
	grep -q 'Pattern verification failed' && fail "g4t: data after the grow"
NCHECK=$((NCHECK + 1))

# ---- a 64 TiB grow: the new grain tables (2 x 2^21 of 2 KiB: 8 GiB) lie
# past the old end of file and stay holes; only the moved GD copies (2 x 8
# MiB) and the last sector are written (issue 16) ----
# big_grow NAME HOW: HOW plan (plan-apply) or e2e (instar resize)
big_grow() {
	local img=$T/$1.vmdk how=$2 new=$((64 << 40)) kib out h
	mkimg "$img" 1G "" "0x11 0 64k" "0x22 $((G - 65536)) 64k"
	# (the expected bytes: the old disk; libyal_read.py reads zeros past
	# its end, and no file system here holds a 64 TiB sparse file)
	"$QI" convert -f vmdk -O raw "$img" "$T/$1.exp"
	if [ "$how" = e2e ]; then
		out=$("$INSTAR" resize -q -f vmdk "$img" 64T 2>&1) || fail "$1: instar: $out"
	else
		resize "$img" "$new"
	fi
	kib=$(du -k "$img" | cut -f1)
	[ "$kib" -lt $((24 * 1024)) ] || fail "$1: $kib KiB allocated after a 64 TiB grow"
	# (no qemu-img check: it reads all 8 GiB of tables, 80 s; the layout is
	# the one of the checked grows above, only larger)
	[ "$(vsize "$img")" = "$new" ] || fail "$1: virtual size $(vsize "$img")"
	libyal_check vmdk "$img" "$new" "$T/$1.exp"
	h=$(hdr "$img")
	"$QIO" -f vmdk -c "write -P 0x5a $G 4k" -c "write -P 0xa5 $((new - 4096)) 4k" "$img" \
		>/dev/null || fail "$1: qemu-io write into the grown area failed"
	"$QIO" -f vmdk -r -c "read -P 0x11 0 64k" -c "read -P 0x22 $((G - 65536)) 64k" \
		-c "read -P 0x5a $G 4k" -c "read -P 0 $((G + 4096)) 1M" \
		-c "read -P 0 $((new - M)) $((M - 4096))" -c "read -P 0xa5 $((new - 4096)) 4k" \
		"$img" | grep 'Pattern verification failed' >/dev/null && fail "$1: data after the grow"
	[ "$(hdr "$img")" = "$h" ] || fail "$1: header changed by a qemu write"
	NCHECK=$((NCHECK + 1))
	echo "grow to 64T ($how): $kib KiB allocated"
}
big_grow big plan
[ -z "$INSTAR" ] || big_grow big-e2e e2e

# ---- zeroed grains (GTE 1) survive a shrink and a grow ----
img=$T/zg2.vmdk
mkimg "$img" 1G "zeroed_grain=on" "0x11 0 128k" "0x22 900M 64k"
"$QIO" -f vmdk -c "write -z 800M 128k" -c "write -z 950M 64k" "$img" >/dev/null
expect_raw "$img" $((920 * M)) "$T/zg2.exp"
resize "$img" $((920 * M)) --shrink
verify "$img" "$T/zg2.exp" $((920 * M))
truncate -s $((2 * G)) "$T/zg2.exp"
resize "$img" $((2 * G))
verify "$img" "$T/zg2.exp" $((2 * G))

# ---- shrink: data beyond the cut, then grow back: the cut reads zeros ----
img=$T/shr.vmdk
mkimg "$img" 5G "" "0x11 0 64k" "0x22 $((3 * G)) 1M" "0x33 $((5 * G - 4096)) 4096"
expect_raw "$img" $((2 * G)) "$T/shr.exp"
resize "$img" $((2 * G)) --shrink
grep -q 'action=shrink' "$T/pa.out" || fail "shrink: $(cat "$T/pa.out")"
verify "$img" "$T/shr.exp" $((2 * G))
geometry_like "$img" $((2 * G)) ""
truncate -s $((5 * G)) "$T/shr.exp"
resize "$img" $((5 * G))
verify "$img" "$T/shr.exp" $((5 * G))

# a shrink cutting a grain (999,999,488 is not 64 KiB aligned) zeroes its tail
img=$T/cut.vmdk
mkimg "$img" 1G "" "0x77 $((999999488 - 65536)) 131072" "0x11 0 4096"
expect_raw "$img" 999999488 "$T/cut.exp"
resize "$img" 999999488 --shrink
verify "$img" "$T/cut.exp" 999999488
truncate -s $G "$T/cut.exp"
resize "$img" $G
verify "$img" "$T/cut.exp" $G
hazard "$img" 999999488 $G

# ---- streamOptimized (qemu's layout: GD pre-allocated, compressed grains) ----
qemu_raw=$T/so.raw
"$QI" create -q -f raw "$qemu_raw" 64M
"$QIO" -f raw -c "write -P 0x33 1M 1M" -c "write -P 0x44 $((63 * M)) 1M" "$qemu_raw" >/dev/null
"$QI" convert -O vmdk -o subformat=streamOptimized "$qemu_raw" "$T/so.vmdk"
cp "$T/so.vmdk" "$T/so0.vmdk"
expect_raw "$T/so.vmdk" $G "$T/so.exp"
resize "$T/so.vmdk" $G
verify "$T/so.vmdk" "$T/so.exp" $G
geometry_like "$T/so.vmdk" $G "subformat=streamOptimized"
# (no qemu-io write here: qemu 7.2 refuses any write to a stream made by
# qemu-img convert, resized or not — "write failed: Invalid argument")
cp "$T/so0.vmdk" "$T/so2.vmdk"
expect_raw "$T/so2.vmdk" $((32 * M)) "$T/so2.exp"
resize "$T/so2.vmdk" $((32 * M)) --shrink
verify "$T/so2.vmdk" "$T/so2.exp" $((32 * M))
# qemu-img create'd stream written by qemu-io, grown with GD relocation,
# then written again by qemu
mkimg "$T/so3.vmdk" 1G "subformat=streamOptimized" "0x11 0 64k" "0x22 $((G - 65536)) 64k"
expect_raw "$T/so3.vmdk" $((8 * G)) "$T/so3.exp"
resize "$T/so3.vmdk" $((8 * G))
verify "$T/so3.vmdk" "$T/so3.exp" $((8 * G))
hazard "$T/so3.vmdk" $G $((8 * G)) 65536
# (a compressed grain cut by the new or the old end: below, after the
# streams with a footer)

# ---- streams with the grain directory at the end (VMware's layout) ----
# Three writers: VMware (QEMU's sample, tests/samples), Debian's VMDKstream
# (python3-vmdkstream) and vmdk_stream.py (VMware's Virtual Disk Format 5.0
# layout, written here). qemu takes size and GD from the footer, libvmdk the
# GD from the footer and the size from the descriptor; instar info must say
# qemu's size. libvmdk opens the extent by the descriptor's name, so each
# image lives in its own directory under that name.
SAMPLES=$(cd "$(dirname "$0")/../samples" && pwd)

# fdesc IMG: the extent line's size in bytes (the size libvmdk reads).
fdesc() {
	local sec
	sec=$(dd if="$1" bs=512 skip=1 count=2 status=none | tr -d '\0' |
		sed -n 's/^\(RW\|RDONLY\) \([0-9]*\) SPARSE.*/\2/p')
	[ -n "$sec" ] || fail "$1: no extent line"
	echo $((sec * 512))
}

# fverify IMG EXPRAW SIZE: verify, and the host probe and libvmdk's size.
fverify() {
	local got
	verify "$1" "$2" "$3"
	[ "$(fdesc "$1")" = "$3" ] || fail "$1: descriptor says $(fdesc "$1"), want $3"
	got=$("$INSTAR_INFO" info --output=json "$1" | sed -n 's/.*"virtual_size":\([0-9]*\).*/\1/p')
	[ "$got" = "$3" ] || fail "$1: instar info says $got, want $3"
}
# ftail IMG: the last three sectors (footer marker, footer, end of stream) as
# hex: they must stay the stream's last sectors.
ftail() {
	python3 -c "
import struct, sys
d = open(sys.argv[1], 'rb').read()
assert len(d) % 512 == 0, 'not whole sectors'
m, f, e = d[-1536:-1024], d[-1024:-512], d[-512:]
assert struct.unpack_from('<QII', m) [1:] == (0, 3), 'footer marker'
assert f[:4] == b'KDMV' and struct.unpack_from('<Q', f, 56)[0] != 2**64 - 1, 'footer'
assert e == bytes(512), 'end-of-stream marker'
h = d[:512]
assert struct.unpack_from('<Q', h, 56)[0] == 2**64 - 1, 'header gdOffset'
assert h[12:20] == f[12:20], 'header and footer capacity'
gd = struct.unpack_from('<Q', f, 56)[0]
assert struct.unpack_from('<QII', d, (gd - 1) * 512)[1:] == (0, 2), 'GD marker'
" "$1" || fail "$1: not a stream with a footer any more"
}

# fstream_case NAME IMG ORIGRAW GROW...: grow to each GROW size from the
# original, shrink to a third, grow back; every result checked by qemu,
# libvmdk and the probe; IMG is the original again at the end.
fstream_case() {
	local name=$1 img=$2 raw=$3 v s1 s2 s3
	shift 3
	v=$(vsize "$img")
	cp "$img" "$T/$name.orig"
	for s1 in "$@"; do
		cp "$T/$name.orig" "$img"
		mkexp "$raw" "$s1" "$T/$name.exp"
		resize "$img" "$s1"
		ftail "$img"
		fverify "$img" "$T/$name.exp" "$s1"
	done
	# shrink to a third (whole grains), grow back to the old size
	s2=$((v / 3 / 65536 * 65536))
	cp "$T/$name.orig" "$img"
	mkexp "$raw" "$s2" "$T/$name.exp"
	resize "$img" "$s2" --shrink
	ftail "$img"
	fverify "$img" "$T/$name.exp" "$s2"
	[ "$(stat -c %s "$img")" = "$(stat -c %s "$T/$name.orig")" ] || fail "$name: shrink changed the length"
	truncate -s "$v" "$T/$name.exp"
	resize "$img" "$v"
	ftail "$img"
	fverify "$img" "$T/$name.exp" "$v"
	s3=$(stat -c %s "$img")
	cp "$T/$name.orig" "$img"
	echo "stream $name: $v -> $*, shrink to $s2, grow back ok ($s3 bytes)"
}

# VMware's sample: 16 GiB, 512 GD entries in 4 sectors (every grow moves the
# GD), GD entries of 0 for its empty tables; qemu's test 059 reads a pattern
# at every 640 KiB + 512 bytes
mkdir "$T/vmw"
bzcat "$SAMPLES/iotest-version3.vmdk.bz2" >"$T/vmw/generated-stream.vmdk"
"$QI" convert -f vmdk -O raw "$T/vmw/generated-stream.vmdk" "$T/vmw.raw"
"$QIO" -f vmdk -r -c "read -P 0x35 $((5 * 655360 + 5 * 512)) 512" \
	"$T/vmw/generated-stream.vmdk" | grep 'Pattern verification failed' >/dev/null &&
	fail "VMware sample: not the data qemu's test 059 reads"
fstream_case vmw "$T/vmw/generated-stream.vmdk" "$T/vmw.raw" $((20 * G))

# vmdk_stream.py and VMDKstream on the same 100 MiB disk: 4 GD entries in a
# sector that holds 128, so 125 MiB grows the GD in place and 6400 MiB moves
# it
"$QI" create -q -f raw "$T/s.raw" 100M
qio_write raw "$T/s.raw" "0x11 0 64k" "0x22 50M 100k" "0x33 $((100 * M - 4096)) 4096"
mkdir "$T/gen" "$T/vds"
python3 "$(dirname "$0")/vmdk_stream.py" "$T/s.raw" "$T/gen/gen.vmdk"
fstream_case gen "$T/gen/gen.vmdk" "$T/s.raw" $((125 * M)) $((6400 * M))
VDS_PY=
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import VMDKstream' 2>/dev/null; then
		VDS_PY=$p
		break
	fi
done
if [ -n "$VDS_PY" ]; then
	"$VDS_PY" -c 'import sys, VMDKstream; VMDKstream.convert_to_stream(sys.argv[1], sys.argv[2])' \
		"$T/s.raw" "$T/vds/call-me-stream.vmdk"
	fstream_case vds "$T/vds/call-me-stream.vmdk" "$T/s.raw" $((125 * M)) $((6400 * M))
else
	lacking "python3-vmdkstream (VMDKstream, a second writer of VMware's stream layout)"
fi

# a footer that is not one (qemu: "Invalid footer"), and one GD too few
cp "$T/gen/gen.vmdk" "$T/gen/bad.vmdk"
printf '\001' | dd of="$T/gen/bad.vmdk" bs=1 seek=$(($(stat -c %s "$T/gen/bad.vmdk") - 1536 + 12)) \
	conv=notrunc status=none
expect_err "$T/gen/bad.vmdk" $G CORRUPT "Invalid footer"
"$QI" info "$T/gen/bad.vmdk" >/dev/null 2>&1 && fail "qemu opens a stream with a bad footer"

# crash order: stop after every K writes; qemu (footer) and libvmdk
# (descriptor size, footer GD) each see the old image or the new one
fcrash_case() {
	local name=$1 img=$2 raw=$3 new=$4 flag=${5:-} size n k got dsz
	size=$(vsize "$img")
	cp "$img" "$T/fc.orig"
	"$PA" --dry-run $flag vmdk "$img" "$new" >"$T/pa.out" || fail "$name: $(cat "$T/pa.out")"
	n=$(sed -n 's/.* ops=\([0-9]*\) .*/\1/p' "$T/pa.out")
	mkexp "$raw" "$size" "$T/fc.exp.$size"
	mkexp "$raw" "$new" "$T/fc.exp.$new"
	for ((k = 0; k <= n; k++)); do
		cp "$T/fc.orig" "$img"
		"$PA" --stop-after $k $flag vmdk "$img" "$new" >/dev/null || fail "$name K=$k: plan-apply"
		check_clean "$img"
		got=$(vsize "$img")
		[ "$got" = "$size" ] || [ "$got" = "$new" ] || fail "$name K=$k: qemu size $got"
		"$QI" compare -q -f vmdk -F raw "$img" "$T/fc.exp.$got" ||
			fail "$name K=$k: qemu sees size $got but not that image's data"
		dsz=$(fdesc "$img")
		[ "$dsz" = "$size" ] || [ "$dsz" = "$new" ] || fail "$name K=$k: descriptor size $dsz"
		libyal_check vmdk "$img" "$dsz" "$T/fc.exp.$dsz"
		NCHECK=$((NCHECK + 1))
	done
	cp "$T/fc.orig" "$img"
	echo "crash $name: K=0..$n"
}
fcrash_case stream-grow-inplace "$T/gen/gen.vmdk" "$T/s.raw" $G
fcrash_case stream-grow-moved "$T/gen/gen.vmdk" "$T/s.raw" $((20 * G))
fcrash_case stream-shrink "$T/gen/gen.vmdk" "$T/s.raw" $((40 * M)) --shrink
# VMware's own stream: a shrink by 64 MiB (two grain tables to clear, not
# forty; its grows take the path of stream-grow-moved)
fcrash_case vmware-shrink "$T/vmw/generated-stream.vmdk" "$T/vmw.raw" $((16 * G - 64 * M)) --shrink

# ---- a compressed grain cut by the new end (a shrink) or the old end (a
# grow) is written anew, whole: the kept part and zeros to the grain's end
# (qemu fails reads past a short compressed grain); qemu and libvmdk read
# the result, a grow back reads zeros past the cut ----
CUT=$((63 * M + 512))
# cut_case NAME IMG RAW NEW [--shrink]: resize to NEW, verify against RAW cut
# to NEW (fverify: qemu, libvmdk, instar info), grow back to the old size:
# zeros past NEW
cut_case() {
	local name=$1 img=$2 raw=$3 new=$4 flag=${5:-} v len
	v=$(vsize "$img")
	len=$(stat -c %s "$img")
	mkexp "$raw" "$new" "$T/$name.exp"
	resize "$img" "$new" $flag
	fverify "$img" "$T/$name.exp" "$new"
	[ "$(stat -c %s "$img")" -gt "$len" ] || fail "$name: no grain was written"
	if [ -n "$flag" ]; then
		truncate -s "$v" "$T/$name.exp"
		resize "$img" "$v"
		fverify "$img" "$T/$name.exp" "$v"
	fi
	echo "cut $name: $v -> $new${flag:+ -> $v} ok"
}
# qemu's layout: the issue's reproduction, 0x44 across the cut
cp "$T/so0.vmdk" "$T/so.vmdk"
cut_case so-shrink "$T/so.vmdk" "$qemu_raw" $CUT --shrink
# qemu's layout grown from a size that is not whole grains: qemu wrote its
# last grain short (4608 bytes)
"$QI" create -q -f raw "$T/sp.raw" $((M + 512))
"$QIO" -f raw -c "write -P 0x77 $((M - 4096)) 4608" "$T/sp.raw" >/dev/null
"$QI" convert -O vmdk -o subformat=streamOptimized "$T/sp.raw" "$T/sp.vmdk"
cp "$T/sp.vmdk" "$T/sp0.vmdk"
cut_case sp-grow "$T/sp.vmdk" "$T/sp.raw" $((2 * M))
# VMware's layout (vmdk_stream.py) of the same disk: shrunk at the cut
mkdir "$T/cut"
python3 "$(dirname "$0")/vmdk_stream.py" "$qemu_raw" "$T/cut/cut.vmdk"
cp "$T/cut/cut.vmdk" "$T/cut0.vmdk"
cut_case vmw-shrink "$T/cut/cut.vmdk" "$qemu_raw" $CUT --shrink
ftail "$T/cut/cut.vmdk"
# ... and a stream of capacity CUT whose last grain is whole, with the
# 0x44 bytes past the old end in it: a grow must not show them
mkdir "$T/gar"
python3 "$(dirname "$0")/vmdk_stream.py" --whole-grains --capacity $((CUT / 512)) \
	"$qemu_raw" "$T/gar/gar.vmdk"
"$QIO" -f vmdk -r -c "read -P 0x44 $((CUT - 512)) 512" "$T/gar/gar.vmdk" |
	grep -q 'Pattern verification failed' && fail "gar: not the data below the cut"
cp "$T/gar/gar.vmdk" "$T/gar0.vmdk"
mkexp "$qemu_raw" $CUT "$T/gar.raw"
cut_case vmw-grow "$T/gar/gar.vmdk" "$T/gar.raw" $((64 * M))
ftail "$T/gar/gar.vmdk"
if [ -n "$VDS_PY" ]; then
	mkdir "$T/vdc"
	"$VDS_PY" -c 'import sys, VMDKstream; VMDKstream.convert_to_stream(sys.argv[1], sys.argv[2])' \
		"$qemu_raw" "$T/vdc/call-me-stream.vmdk"
	cut_case vds-shrink "$T/vdc/call-me-stream.vmdk" "$qemu_raw" $CUT --shrink
	ftail "$T/vdc/call-me-stream.vmdk"
fi
# every prefix of those plans: the old image or the new one, for qemu and
# libvmdk
cp "$T/so0.vmdk" "$T/so.vmdk"
fcrash_case so-cut-shrink "$T/so.vmdk" "$qemu_raw" $CUT --shrink
cp "$T/sp0.vmdk" "$T/sp.vmdk"
fcrash_case sp-cut-grow "$T/sp.vmdk" "$T/sp.raw" $((2 * M))
cp "$T/cut0.vmdk" "$T/cut/cut.vmdk"
fcrash_case vmw-cut-shrink "$T/cut/cut.vmdk" "$qemu_raw" $CUT --shrink
cp "$T/gar0.vmdk" "$T/gar/gar.vmdk"
fcrash_case vmw-cut-grow "$T/gar/gar.vmdk" "$T/gar.raw" $((64 * M))

# ---- refusals ----
img=$T/ref1.vmdk
mkimg "$img" 1G "" "0x11 0 4096"
expect_err "$img" $((G / 2)) SHRINK_WITHOUT_FLAG "--shrink"
expect_err "$img" $((2 * G + 1)) NOT_MULTIPLE_512 "multiple of 512"
expect_err "$img" $((2 * G)) PREALLOCATION_UNSUPPORTED "preallocation" --prealloc full
expect_err "$img" 0 INVALID_NEW_SIZE "capacity 0" --shrink
# (monolithicFlat is resized: vmdk_flat.sh; twoGbMaxExtentFlat: twogb_flat.sh;
# twoGbMaxExtentSparse: twogb_sparse.sh)
"$QI" create -q -f vmdk -o subformat=twoGbMaxExtentSparse "$T/twoGbMaxExtentSparse.vmdk" 100M
# an extent of a twoGbMaxExtentSparse image has no embedded descriptor:
# qemu's vmdk_read_cid finds no CID at 0x200, and its open fails as qemu-img
# says it
ext=$T/twoGbMaxExtentSparse-s001.vmdk
expect_err "$ext" $G PARSE_FAILED "open=1 detail=Could not open '$ext': Invalid argument"
"$QI" resize "$ext" $G 2>"$T/q.err" && fail "qemu-img resized a sparse extent"
[ "$(cat "$T/q.err")" = "qemu-img: Could not open '$ext': Could not open '$ext': Invalid argument" ] ||
	fail "qemu-img on a sparse extent: $(cat "$T/q.err")"
# same size: nothing to do
resize "$img" $G
grep -q 'action=noop' "$T/pa.out" || fail "noop: $(cat "$T/pa.out")"

# ---- crash order: stop after every K writes; old or new image, never corrupt ----
# Two readers: qemu (size from the header's capacity) and one that trusts the
# descriptor's extent line (libvmdk, VMware), emulated by a copy whose header
# capacity is set to the extent line's. Each must see the old image over the
# whole old range or the new one below the new size (issue 15).

# reader_as_desc IMG OUT: OUT is IMG with the header capacity taken from the
# descriptor's extent line; prints that size in bytes.
reader_as_desc() {
	local sec
	sec=$(desc "$1" | sed -n 's/^RW \([0-9]*\) SPARSE.*/\1/p')
	[ -n "$sec" ] || fail "$1: no extent line"
	cp --sparse=always "$1" "$2"
	python3 -c "
import struct, sys
f = open(sys.argv[1], 'r+b'); f.seek(12); f.write(struct.pack('<Q', int(sys.argv[2])))
" "$2" "$sec"
	echo $((sec * 512))
}

# crash_case NAME SIZE NEWSIZE FLAG CREATE-OPTS WRITES...
crash_case() {
	local name=$1 size new flag=$4 opts=$5 img0=$T/crash0.vmdk n k got dsz
	size=$(numfmt --from=iec "$2")
	new=$(numfmt --from=iec "$3")
	shift 5
	mkimg "$img0" "$size" "$opts" "$@"
	"$PA" --dry-run $flag vmdk "$img0" "$new" >"$T/pa.out" || fail "$name: $(cat "$T/pa.out")"
	n=$(sed -n 's/.* ops=\([0-9]*\) .*/\1/p' "$T/pa.out")
	expect_raw "$img0" "$size" "$T/crash.exp.$size"
	expect_raw "$img0" "$new" "$T/crash.exp.$new"
	for ((k = 0; k <= n; k++)); do
		cp --sparse=always "$img0" "$T/crash.vmdk"
		"$PA" --stop-after $k $flag vmdk "$T/crash.vmdk" "$new" >/dev/null ||
			fail "$name K=$k: plan-apply failed"
		check_clean "$T/crash.vmdk"
		got=$(vsize "$T/crash.vmdk")
		[ "$got" = "$size" ] || [ "$got" = "$new" ] || fail "$name K=$k: size $got"
		"$QI" compare -q -f vmdk -F raw "$T/crash.vmdk" "$T/crash.exp.$got" ||
			fail "$name K=$k: qemu sees size $got but not that image's data"
		dsz=$(reader_as_desc "$T/crash.vmdk" "$T/crash.d.vmdk")
		[ "$dsz" = "$size" ] || [ "$dsz" = "$new" ] ||
			fail "$name K=$k: descriptor size $dsz"
		if [ "$dsz" != "$got" ]; then
			"$QI" compare -q -f vmdk -F raw "$T/crash.d.vmdk" "$T/crash.exp.$dsz" ||
				fail "$name K=$k: the descriptor's reader sees size $dsz but not its data"
		fi
		# a committed grow must already be safe for qemu to write into
		[ "$got" != "$new" ] || [ "$new" -le "$size" ] || hazard "$T/crash.vmdk" "$size" "$new"
		NCHECK=$((NCHECK + 1))
	done
	echo "crash $name: K=0..$n"
}
crash_case grow-inplace 100M 300M "" "" "0x11 0 64k" "0x22 $((100 * M - 512)) 512"
crash_case grow-reloc 100M $((5 * G)) "" "" "0x11 0 64k" "0x22 $((100 * M - 512)) 512"
crash_case shrink-cut 200M 99999744 --shrink "" "0x11 0 64k" "0x77 $((99999744 - 4096)) 1M" \
	"0x22 150M 64k"
# issue 15's reproduction: data at 1000M, shrink to 512M
crash_case shrink-issue15 1G 512M --shrink "" "0x5a 0 64k" "0x77 1000M 128k"
crash_case shrink-stream 256M 100M --shrink "subformat=streamOptimized" "0x11 0 64k" \
	"0x77 $((100 * M - 65536)) 1M" "0x22 200M 64k"

echo "vmdk_plan: $NCHECK checks passed"
guest_skips_end
