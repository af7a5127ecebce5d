#!/bin/bash
# tests/compat/vdi_plan.sh — the VDI planner against qemu-img/qemu-io as the
# oracle (qemu-img cannot resize vdi, so the expected disk is the original
# raw data cut or extended to the new size): dynamic and static images made
# by `qemu-img create -f vdi [-o static=on]`, and one laid out as VirtualBox
# lays it out (header 0x190 bytes, block map and data at 1 MiB boundaries,
# built here from raw data); grow in place, grow past the block map's room
# (blocks move), shrink (blocks move down into freed ones), refusals. After
# each resize: `qemu-img check` clean, `qemu-img info` and the host probe
# (`instar info`) give the size, `qemu-img compare` the data, and a second
# reader that is not qemu, 7-Zip's VDI handler (Debian 7zip: 7zz), the size
# and, for disks up to 512 MiB, the bytes. A crash run (--stop-after K for
# every K) per kind of plan: qemu opens the old or the new disk with its
# data, `qemu-img check` finds nothing or only a block count above the
# named blocks (a leak, as qemu's own interrupted allocation leaves), and a
# second run of the resize finishes a clean image (the same size included:
# a same-size resize removes a leak).
#   vdi_plan.sh PLAN_APPLY QEMU_IMG [INSTAR]
# (INSTAR defaults to the build's vmm/instar beside PLAN_APPLY's tests/tools)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

compat_init "$@"
INSTAR=${3:-$(dirname "$PA")/../../vmm/instar}
[ -x "$INSTAR" ] || fail "no instar at $INSTAR (instar info is the probe under test)"
e2e_or_left_out "the end-to-end resizes (plan-apply does the rest)"
SZ=$(command -v 7zz || true)
[ -n "$SZ" ] || fail "7zz (Debian package 7zip, scripts/deps.sh) is needed: the second reader"

# vsize IMG: qemu's virtual size (lib.sh's crash_run asks for it).
vsize() {
	qi_vsize vdi "$1"
}

# check_clean IMG: qemu-img check finds nothing.
check_clean() {
	local out
	out=$("$QI" check -f vdi "$1" 2>&1) || fail "$1: qemu-img check: $out"
	case "$out" in *"No errors were found"*) ;; *) fail "$1: qemu-img check: $out" ;; esac
}

# probe_size IMG: the host probe's size.
probe_size() {
	"$INSTAR" info --output=json "$1" | sed -n 's/.*"virtual_size":\([0-9]*\).*/\1/p'
}

# sz_check IMG SIZE: 7-Zip reports SIZE and, up to 512 MiB, reads the bytes
# of the last verify ($T/exp.raw).
sz_check() {
	local got
	got=$("$SZ" l -slt "$1" | sed -n 's/^Size = //p' | tail -1)
	[ "$got" = "$2" ] || fail "$1: 7-Zip says size '$got', want $2"
	if [ "$2" -le $((512 * M)) ]; then
		"$SZ" e -so "$1" 2>/dev/null | cmp -s - "$T/exp.raw" ||
			fail "$1: 7-Zip reads other bytes"
	fi
	NCHECK=$((NCHECK + 1))
}

# verify IMG ORIGRAW SIZE: qemu opens IMG at SIZE with the expected bytes; the
# probe agrees on the size.
verify() {
	local got
	qemu_reads vdi "$1" "$2" "$3"
	got=$(probe_size "$1")
	[ "$got" = "$3" ] || fail "$1: instar info says $got, want $3"
	NCHECK=$((NCHECK + 1))
}

# mkimg IMG static|dynamic SIZE WRITES...
mkimg() {
	local img=$1 kind=$2 size=$3 opts=()
	shift 3
	[ "$kind" = static ] && opts=(-o static=on)
	"$QI" create -q -f vdi "${opts[@]}" "$img" "$size"
	qio_write vdi "$img" "$@"
}

# resize_case NAME KIND SIZE NEWREQ WANT CRASH [plan-apply flags] -- WRITES
# CRASH: crash (a crash run) or nocrash.
resize_case() {
	local name=$1 kind=$2 size=$3 req=$4 want=$5 crash=$6
	shift 6
	take_flags "$@"
	local flags=("${FLAGS[@]}")
	local img="$T/$name.vdi" out
	mkimg "$img" "$kind" "$size" "${REST[@]}"
	resize_img "$name" "$img" "$req" "$want" "$crash" "${flags[@]}"
}

# resize_img NAME IMG NEWREQ WANT CRASH [plan-apply flags]: resizes IMG (its
# data is the original) and checks it.
resize_img() {
	local name=$1 img=$2 req=$3 want=$4 crash=$5
	shift 5
	check_clean "$img"
	"$QI" convert -f vdi -O raw "$img" "$T/$name.orig.raw"
	cp --sparse=always "$img" "$T/$name.orig.vdi"
	apply_ok "$name" "$want" "$@" vdi "$img" "$req"
	check_clean "$img"
	verify "$img" "$T/$name.orig.raw" "$want"
	sz_check "$img" "$want"
	# qemu allocates and writes past the resize
	if [ "$want" -ge $((2 * M)) ]; then
		out=$("$QIO" -f vdi -c "write -P 0x5a $((want - M - 4096)) 512k" \
			-c "read -P 0x5a $((want - M - 4096)) 512k" "$img")
		case "$out" in *failed* | *error*) fail "$name: write after resize: $out" ;; esac
		check_clean "$img"
	fi
	if [ "$crash" = crash ]; then
		CRASH_NEW=$want CRASH_REQ=$req CRASH_FLAGS=("$@")
		crash_run vdi vdi "$name" "$want" "$@"
	fi
}

# crash_verify NAME IMG SIZE OLD: the disk the crash left has its data; qemu-img
# check finds nothing or only a leak; running the resize again finishes it.
crash_verify() {
	local out rc=0 errs
	verify "$2" "$T/$1.orig.raw" "$3"
	out=$("$QI" check -f vdi "$2" 2>&1) || rc=$?
	if [ "$rc" != 0 ]; then
		errs=$(echo "$out" | grep '^ERROR' | grep -v 'allocated blocks mismatch' |
			{ if [ -n "$NOROOM" ]; then grep -v 'too large, is 128$'; else cat; fi } || true)
		[ -z "$errs" ] && grep -q 'allocated blocks mismatch' <<<"$out" ||
			fail "$1: after a crash, qemu-img check: $out"
		LEAKS=$((LEAKS + 1))
	fi
	cp --sparse=always "$2" "$T/rerun.vdi"
	out=$("$PA" "${CRASH_FLAGS[@]}" vdi "$T/rerun.vdi" "$CRASH_REQ") ||
		fail "$1: the resize run again after a crash: $out"
	check_clean "$T/rerun.vdi"
	verify "$T/rerun.vdi" "$T/$1.orig.raw" "$CRASH_NEW"
}
LEAKS=0
NOROOM=

# --- dynamic ---
resize_case dyn-grow-inplace dynamic 10M $((100 * M)) $((100 * M)) nocrash -- \
	"0xab 0 3M" "0xcd 9M 1M"
# 300 entries do not fit the 512 bytes qemu gives 10: the map moves and
# data block 0 (virtual block 9) is copied to the end
resize_case dyn-grow-reloc dynamic 10M $((300 * M)) $((300 * M)) crash -- \
	"0xcd 9M 1M" "0xab 0 3M"
# sizes round up to 512, as qemu-img create -f vdi rounds them; the cut
# last block's tail reads zeros
resize_case dyn-grow-unaligned dynamic 10000000 25000001 25000448 nocrash -- \
	"0x11 0 1M" "0x22 9999872 512"
# a 1.2 MB map: two blocks move
resize_case dyn-grow-300g dynamic 10M $((300 * G)) $((300 * G)) nocrash -- \
	"0xcd 9M 1M" "0xab 0 3M"
# blocks of the dropped range free holes below the kept count: the highest
# kept ones move down
resize_case dyn-shrink-move dynamic 64M 22000000 22000128 crash --shrink -- \
	"0x11 50M 1M" "0x22 0 1M" "0x33 20M 1536k"
resize_case dyn-shrink-aligned dynamic 64M $((8 * M)) $((8 * M)) nocrash --shrink -- \
	"0xab 0 8M" "0xcd 20M 30M"
resize_case dyn-grow-empty dynamic 10M $((400 * M)) $((400 * M)) nocrash --

# --- static ---
resize_case static-grow static 10M $((50 * M)) $((50 * M)) nocrash -- "0xab 0 1M" "0xcd 9M 1M"
resize_case static-grow-reloc static 10M $((200 * M)) $((200 * M)) nocrash -- "0xab 0 1M"
# 128 blocks fill qemu's map: no spare entry to count the moved copy
# under. Between the count and the commit qemu reads and writes the disk
# right but qemu-img check reports the copy's index as too large (it is past
# blocks_in_image; docs/formats.md §8); running the resize again ends it.
NOROOM=1
resize_case static-grow-full static 128M $((200 * M)) $((200 * M)) crash -- "0xab 0 1M" \
	"0xcd 127M 1M"
NOROOM=
resize_case static-shrink static 64M 20000000 20000256 nocrash --shrink -- \
	"0xab 0 1M" "0xcd 19M 2M"

# --- an image laid out as VirtualBox lays it out (header 0x190 with LCHS,
# map at 1 MiB, data at 2 MiB; blocks in the order of the raw data) ---
vbox_vdi() {
	python3 - "$@" <<'EOF'
import struct, sys, uuid
raw, out = sys.argv[1], sys.argv[2]
data = open(raw, 'rb').read()
MiB = 1 << 20
size = len(data)
blocks = (size + MiB - 1) // MiB
bmap, offdata = MiB, MiB + ((4 * blocks + MiB - 1) // MiB) * MiB
m, chunks = [], []
for i in range(blocks):
    c = data[i * MiB:(i + 1) * MiB].ljust(MiB, b'\0')
    if c.strip(b'\0'):
        m.append(len(chunks))
        chunks.append(c)
    else:
        m.append(0xffffffff)
h = bytearray(512)
h[0:40] = b'<<< Oracle VM VirtualBox Disk Image >>>\n'
struct.pack_into('<IIIII', h, 0x40, 0xbeda107f, 0x00010001, 0x190, 1, 0)
struct.pack_into('<II', h, 0x154, bmap, offdata)
struct.pack_into('<IIIII', h, 0x15c, 0, 0, 0, 512, 0)
struct.pack_into('<QIIII', h, 0x170, size, MiB, 0, blocks, len(chunks))
h[0x188:0x198] = uuid.uuid4().bytes
h[0x198:0x1a8] = uuid.uuid4().bytes
struct.pack_into('<IIII', h, 0x1c8, 1024, 16, 63, 512)
with open(out, 'wb') as f:
    f.write(h)
    f.seek(bmap)
    f.write(b''.join(struct.pack('<I', e) for e in m))
    f.seek(offdata)
    for c in chunks:
        f.write(c)
EOF
}
truncate -s 32M "$T/vb.raw"
python3 -c "
import sys
f = open(sys.argv[1], 'r+b')
for off, b in ((0, 0x41), (7 << 20, 0x42), ((31 << 20) + 4096, 0x43)):
    f.seek(off); f.write(bytes([b]) * 300000)
" "$T/vb.raw"
vbox_vdi "$T/vb.raw" "$T/vb.vdi"
"$QI" compare -q -f vdi -F raw "$T/vb.vdi" "$T/vb.raw" || fail "vbox-style image: qemu reads other data"
resize_img vbox-grow "$T/vb.vdi" $((200 * G)) $((200 * G)) nocrash
lchs=$(od -A n -t u4 -j $((0x1c8)) -N 16 "$T/vb.vdi" | tr -s ' ')
[ "$lchs" = " 0 0 0 512" ] || fail "vbox-style image: LCHS '$lchs', want not calculated"
resize_img vbox-shrink "$T/vb.vdi" 10000000 10000384 crash --shrink

# shrink then grow back: the cut data must not come back
mkimg "$T/sg.vdi" dynamic 64M "0x77 0 64M"
"$QI" convert -f vdi -O raw "$T/sg.vdi" "$T/sg.raw"
"$PA" --shrink vdi "$T/sg.vdi" 3000000 >/dev/null || fail "sg shrink"
"$PA" vdi "$T/sg.vdi" $((64 * M)) >/dev/null || fail "sg grow"
head -c 3000320 "$T/sg.raw" >"$T/sg.cut.raw"
check_clean "$T/sg.vdi"
verify "$T/sg.vdi" "$T/sg.cut.raw" $((64 * M))
[ "$(stat -c %s "$T/sg.vdi")" -lt $((4 * M)) ] || fail "sg: the shrink left the file long"

# refusals change nothing
mkimg "$T/r.vdi" dynamic 10M "0x12 0 1M"
cp "$T/r.vdi" "$T/r.orig"
refused "shrink without flag" SHRINK_WITHOUT_FLAG vdi "$T/r.vdi" $((5 * M))
refused "preallocation" PREALLOCATION_UNSUPPORTED --prealloc falloc vdi "$T/r.vdi" $((20 * M))
refused "past qemu's limit" TOO_LARGE vdi "$T/r.vdi" $((0x1fffff80 * M + 512))
cmp -s "$T/r.vdi" "$T/r.orig" || fail "refused resize changed the image"
printf '\1' | dd of="$T/r.vdi" bs=1 seek=$((0x1b8)) conv=notrunc status=none
refused "differencing resize" UNSUPPORTED_SUBFORMAT vdi "$T/r.vdi" $((20 * M))
# a block map entry naming a block past blocks_allocated
cp "$T/r.orig" "$T/r.vdi"
printf '\7\0\0\0' | dd of="$T/r.vdi" bs=1 seek=$((512 + 4 * 3)) conv=notrunc status=none
refused "entry out of range" CORRUPT vdi "$T/r.vdi" $((20 * M))

# noop: same size
cp "$T/r.orig" "$T/n.vdi"
out=$("$PA" vdi "$T/n.vdi" $((10 * M)))
case "$out" in *"action=noop"*) ;; *) fail "noop: $out" ;; esac
cmp -s "$T/n.vdi" "$T/r.orig" || fail "noop changed the image"

# end to end: `instar resize` (the guest, the host's verify and commit)
if [ -n "$E2E" ]; then
	mkimg "$T/e.vdi" dynamic 10M "0xab 0 3M" "0xcd 9M 1M"
	"$QI" convert -f vdi -O raw "$T/e.vdi" "$T/e.raw"
	"$INSTAR" resize -q "$T/e.vdi" 300M || fail "e2e: grow"
	check_clean "$T/e.vdi"
	verify "$T/e.vdi" "$T/e.raw" $((300 * M))
	"$INSTAR" resize -q -f vdi --shrink "$T/e.vdi" 5000000 || fail "e2e: shrink"
	check_clean "$T/e.vdi"
	verify "$T/e.vdi" "$T/e.raw" 5000192
	out=$("$INSTAR" resize --output=json "$T/e.vdi" 1M 2>/dev/null) && fail "e2e: shrink without --shrink"
	case "$out" in *'"target_format":"vdi"'*SHRINK_WITHOUT_FLAG*) ;; *) fail "e2e json: $out" ;; esac
	echo "end to end: ok"
fi

echo "vdi_plan: all ok ($NCHECK image checks, $LEAKS crash states with a leak)"
guest_skips_end
