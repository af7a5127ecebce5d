#!/bin/bash
# tests/compat/vhdx_plan.sh — the VHDX planner against qemu-img/qemu-io as the
# oracle (libvhdi the second one after each resize: libyal_read.py):
# dynamic and fixed disks, block sizes 1M/32M, logical sectors 512/4096,
# grow (in place, past a sector-bitmap boundary, with BAT region
# relocation), shrink (data past the cut, a cut block), refusals, and a crash
# run (--stop-after K for every K) of each plan: qemu-img check is clean and
# the disk is the old or the new one with its data.
#   vhdx_plan.sh PLAN_APPLY QEMU_IMG
set -euo pipefail
. "$(dirname "$0")/lib.sh"

compat_init "$@"

vsize() {
	qi_vsize vhdx "$1"
}

# patch_lss IMG 4096: sets the Logical Sector Size item (qemu 7.2 cannot).
patch_lss() {
	python3 - "$@" <<'PY'
import struct, sys, uuid
f = open(sys.argv[1], 'r+b')
f.seek(192 * 1024)
rt = f.read(65536)
meta = uuid.UUID('8B7CA206-4790-4B9A-B8FE-575F050F886E').bytes_le
lss = uuid.UUID('8141BF1D-A96F-4709-BA47-F233A8FAAB5F').bytes_le
for i in range(struct.unpack('<I', rt[8:12])[0]):
    e = rt[16 + 32 * i:48 + 32 * i]
    if e[:16] == meta:
        mo = struct.unpack('<Q', e[16:24])[0]
f.seek(mo)
mt = f.read(65536)
for i in range(struct.unpack('<H', mt[10:12])[0]):
    e = mt[32 + 32 * i:64 + 32 * i]
    if e[:16] == lss:
        f.seek(mo + struct.unpack('<I', e[16:20])[0])
        f.write(struct.pack('<I', int(sys.argv[2])))
PY
}

# set_logguid IMG: marks the log non-empty in the current header.
set_logguid() {
	python3 - "$1" <<'PY'
import struct, sys
def crc32c(b):
    crc = 0xffffffff
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
f = open(sys.argv[1], 'r+b')
for o in (65536, 131072):
    f.seek(o)
    h = bytearray(f.read(4096))
    h[48:64] = b'\x42' * 16
    h[4:8] = b'\0' * 4
    h[4:8] = struct.pack('<I', crc32c(h))
    f.seek(o)
    f.write(h)
PY
}

# mkimg IMG SUBFORMAT SIZE BLOCKSIZE LSS WRITES...
mkimg() {
	local img=$1 sub=$2 size=$3 bs=$4 lss=$5
	shift 5
	"$QI" create -q -f vhdx -o subformat="$sub",block_size="$bs" "$img" "$size"
	[ "$lss" = 512 ] || patch_lss "$img" "$lss"
	qio_write vhdx "$img" "$@"
}

# verify IMG EXPRAW SIZE: clean check, SIZE, and the expected bytes.
verify() {
	local img=$1 raw=$2 size=$3 got out
	"$QI" check -f vhdx "$img" >"$T/check.out" 2>&1 || fail "$img: check: $(cat "$T/check.out")"
	got=$(vsize "$img")
	[ "$got" = "$size" ] || fail "$img: virtual size $got, want $size"
	if [ "$size" -le $((2 * G)) ]; then
		"$QI" compare -q -f vhdx -F raw "$img" "$raw" || fail "$img: data differs"
	else
		# qemu's vhdx has no block status: reading 200 GiB of zeros is
		# too slow, so compare a 128 MiB prefix and read the end as zero
		"$QI" dd -f vhdx -O raw bs=1M count=128 if="$img" of="$T/pre.img" ||
			fail "$img: dd"
		head -c $((128 * M)) "$raw" | cmp -s - "$T/pre.img" || fail "$img: prefix differs"
		out=$("$QIO" -f vhdx -c "read -P 0 $((size - 64 * M)) 64M" "$img")
		case "$out" in *failed*) fail "$img: end is not zero" ;; esac
	fi
	NCHECK=$((NCHECK + 1))
}

# crash_verify NAME IMG SIZE OLD: the crash run's disk is the old or the new
# one, with its data.
crash_verify() {
	local s2
	if [ "$3" = "$4" ]; then
		verify "$2" "$T/$1.old.raw" "$3"
	else
		verify "$2" "$T/$1.new.raw" "$3"
	fi
	# a reader that trusts the other header copy (issue 15): the current
	# one (higher sequence number) is hidden from qemu in a copy
	cp --sparse=always "$2" "$T/oh.vhdx"
	python3 - "$T/oh.vhdx" <<'PY' || return 0
import struct, sys
f = open(sys.argv[1], 'r+b')
h = []
for off in (64 << 10, 128 << 10):
    f.seek(off); b = f.read(16)
    h.append((b[:4] == b'head', struct.unpack('<Q', b[8:16])[0], off))
if not (h[0][0] and h[1][0]) or h[0][1] == h[1][1]:
    sys.exit(1)  # only one copy, or both equal: no second view
f.seek(max(h, key=lambda x: x[1])[2]); f.write(b'\0' * 4)
PY
	s2=$(vsize "$T/oh.vhdx")
	if [ "$s2" = "$4" ]; then
		verify "$T/oh.vhdx" "$T/$1.old.raw" "$s2"
	else
		verify "$T/oh.vhdx" "$T/$1.new.raw" "$s2"
	fi
}

# resize_case NAME SUB SIZE BS LSS NEWREQ WANT [flags] -- WRITES
resize_case() {
	local name=$1 sub=$2 size=$3 bs=$4 lss=$5 req=$6 want=$7
	shift 7
	take_flags "$@"
	local flags=("${FLAGS[@]}")
	local img="$T/$name.vhdx" out
	mkimg "$img" "$sub" "$size" "$bs" "$lss" "${REST[@]}"
	"$QI" convert -f vhdx -O raw "$img" "$T/$name.old.raw"
	mkexp "$T/$name.old.raw" "$want" "$T/$name.new.raw"
	cp --sparse=always "$img" "$T/$name.orig.vhdx"
	apply_ok "$name" "$want" "${flags[@]}" vhdx "$img" "$req"
	verify "$img" "$T/$name.new.raw" "$want"
	libyal_check vhdx "$img" "$want" "$T/$name.new.raw"
	# qemu can allocate and write at the new end afterwards
	"$QIO" -f vhdx -c "write -P 0x5a $((want - 4096)) 4096" "$img" >/dev/null
	out=$("$QIO" -f vhdx -c "read -P 0x5a $((want - 4096)) 4096" "$img")
	case "$out" in *failed*) fail "$name: write after resize: $out" ;; esac
	"$QI" check -f vhdx "$img" >/dev/null || fail "$name: check after a write"
	crash_run vhdx vhdx "$name" "$want" "${flags[@]}"
}

resize_case dyn1m-grow-sb dynamic 64M 1M 512 $((5 * G)) $((5 * G)) -- \
	"0xab 0 3M" "0xcd 60M 4M"
resize_case dyn1m-grow-reloc dynamic 64M 1M 512 $((200 * G)) $((200 * G)) -- \
	"0xab 0 3M" "0xcd $((64 * M - 512)) 512"
resize_case dyn32m-grow-unaligned dynamic 1G 32M 512 1500000001 1500000256 -- \
	"0x11 0 1M" "0x22 $((G - 40 * M)) 40M"
resize_case dyn32m-shrink-cut dynamic 1G 32M 512 $((103 * M)) $((103 * M)) --shrink -- \
	"0x11 0 1M" "0x22 $((90 * M)) 40M" "0x33 $((900 * M)) 10M"
resize_case dyn1m-shrink-aligned dynamic 256M 1M 512 $((16 * M)) $((16 * M)) --shrink -- \
	"0x11 0 20M" "0x22 200M 40M"
# qemu 7.2 opens only 512-byte logical sectors: plan with 4096, then give
# qemu the image with 512 patched back (same BAT layout below 4096 blocks)
lss4k_case() {
	local name=$1 req=$2 want=$3
	shift 3
	mkimg "$T/$name.vhdx" dynamic 64M 1M 512 "0x44 0 64M"
	"$QI" convert -f vhdx -O raw "$T/$name.vhdx" "$T/$name.raw"
	mkexp "$T/$name.raw" "$want" "$T/$name.exp"
	patch_lss "$T/$name.vhdx" 4096
	apply_ok "$name" "$want" "$@" vhdx "$T/$name.vhdx" "$req"
	patch_lss "$T/$name.vhdx" 512
	verify "$T/$name.vhdx" "$T/$name.exp" "$want"
	libyal_check vhdx "$T/$name.vhdx" "$want" "$T/$name.exp"
}
lss4k_case dyn-lss4k-grow 3000001000 3000004608
lss4k_case dyn-lss4k-shrink 10000000 10002432 --shrink
resize_case fix1m-grow fixed 64M 1M 512 $((200 * M)) $((200 * M)) -- "0x55 0 64M"
resize_case fix1m-grow-falloc fixed 64M 1M 512 $((100 * M)) $((100 * M)) --prealloc falloc -- \
	"0x56 $((63 * M)) 1M"
resize_case fix32m-shrink-cut fixed 256M 32M 512 $((50 * M)) $((50 * M)) --shrink -- \
	"0x57 0 256M"

# shrink then grow back: the cut data must not come back
mkimg "$T/sg.vhdx" dynamic 64M 32M 512 "0x77 0 64M"
"$QI" convert -f vhdx -O raw "$T/sg.vhdx" "$T/sg.raw"
"$PA" --shrink vhdx "$T/sg.vhdx" 3000000 >/dev/null || fail "sg shrink"
"$PA" vhdx "$T/sg.vhdx" $((64 * M)) >/dev/null || fail "sg grow"
truncate -s 3000320 "$T/sg.raw"
truncate -s $((64 * M)) "$T/sg.raw"
verify "$T/sg.vhdx" "$T/sg.raw" $((64 * M))
libyal_check vhdx "$T/sg.vhdx" $((64 * M)) "$T/sg.raw"

# refusals leave the image untouched
mkimg "$T/r.vhdx" dynamic 64M 1M 512 "0x12 0 1M"
cp "$T/r.vhdx" "$T/r.orig"
refused "shrink without flag" SHRINK_WITHOUT_FLAG vhdx "$T/r.vhdx" $((5 * M))
refused "dynamic prealloc" PREALLOCATION_UNSUPPORTED --prealloc falloc vhdx "$T/r.vhdx" $((100 * M))
out=$("$PA" vhdx "$T/r.vhdx" $((64 * M)))
case "$out" in *"action=noop"*) ;; *) fail "noop: $out" ;; esac
cmp -s "$T/r.vhdx" "$T/r.orig" || fail "refused or noop resize changed the image"
set_logguid "$T/r.vhdx"
refused "resize with a log" REQUIRES_CHECK vhdx "$T/r.vhdx" $((100 * M))

echo "vhdx_plan: all ok ($NCHECK image checks)"
