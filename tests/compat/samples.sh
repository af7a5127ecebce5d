#!/bin/bash
# tests/compat/samples.sh — images other products wrote (tests/samples/, with
# their origin): Virtual PC, Hyper-V and disk2vhd VHDs, Windows and disk2vhd
# VHDX, and a VHDX whose log must be replayed first. For each: the host probe
# (`instar info`) reads qemu's size; a grow, a shrink and a shrink grown back
# (planner through plan-apply) give the size the creator's rule says, which
# qemu-img info reports; qemu-img check (vhdx) passes; qemu-img compare and
# libyal (the second reader) read the original bytes below the cut and zeros
# above. With /dev/kvm, `instar resize` gives the same files byte for byte.
#   samples.sh PLAN_APPLY QEMU_IMG INSTAR SAMPLES_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh"

compat_init "$1" "$2"
INSTAR=$3
SAMPLES=$4
[ -x "$INSTAR" ] || fail "no instar at $INSTAR"
NCHECK=0
G=$((1 << 30))
e2e_or_left_out "the end-to-end resizes of the samples (plan-apply does them)"

# info_size IMG: the host probe's virtual size.
info_size() {
	"$INSTAR" info --output=json "$1" | sed -n 's/.*"virtual_size":\([0-9]*\).*/\1/p'
}

# check_img FMT IMG SIZE ORIGRAW: qemu opens IMG at SIZE, vhdx passes its
# check, and qemu and libyal read ORIGRAW's bytes below SIZE, zeros above.
check_img() {
	local fmt=$1 img=$2 size=$3 raw=$4
	[ "$(info_size "$img")" = "$size" ] || fail "$img: instar info says $(info_size "$img")"
	if [ "$fmt" = vhdx ]; then
		"$QI" check -q -f vhdx "$img" || fail "$img: qemu-img check"
	fi
	qemu_reads "$fmt" "$img" "$raw" "$size"
	libyal_check "$fmt" "$img" "$size" "$T/exp.raw"
	NCHECK=$((NCHECK + 1))
}

# resized NAME FMT IMG REQ [--shrink]: plan-apply resizes IMG to REQ; prints
# the size it reports. With /dev/kvm, instar resize on a copy gives the
# same file.
resized() {
	local name=$1 fmt=$2 img=$3 req=$4 out new
	shift 4
	[ -z "$E2E" ] || cp "$img" "$T/e2e"
	out=$("$PA" "$@" "$fmt" "$img" "$req") || fail "$name: plan-apply: $out"
	echo "$name: $out" >&2
	new=$(sed -n 's/.* new=\([0-9]*\) .*/\1/p' <<<"$out")
	[ -n "$new" ] || fail "$name: no size in: $out"
	if [ -n "$E2E" ]; then
		"$INSTAR" resize -q -f "$fmt" "$@" "$T/e2e" "$req" || fail "$name: instar resize"
		cmp "$img" "$T/e2e" || fail "$name: instar resize and plan-apply differ"
	fi
	echo "$new"
}

# sample FILE FMT RULE: RULE is exact (the size asked for, in whole sectors:
# creators whose readers use current_size, and vhdx) or chs (Virtual PC: the
# size its CHS geometry gives, up to one cylinder more; past the largest
# geometry, current_size exactly).
sample() {
	local f=$1 fmt=$2 rule=$3 img="$T/$1" v req new
	bzcat "$SAMPLES/$f.bz2" >"$img"
	v=$(qi_vsize "$fmt" "$img")
	[ -n "$v" ] || fail "$f: qemu-img cannot open it"
	[ "$(info_size "$img")" = "$v" ] || fail "$f: instar info $(info_size "$img"), qemu $v"
	"$QI" convert -f "$fmt" -O raw "$img" "$T/orig.raw"
	cp "$img" "$T/orig"

	# grow by 1 GiB and 1000 bytes
	req=$((v + G + 1000))
	cp "$T/orig" "$img"
	new=$(resized "$f grow" "$fmt" "$img" "$req")
	want_size "$f grow" "$rule" "$req" "$new"
	check_img "$fmt" "$img" "$new" "$T/orig.raw"

	# shrink to a third, then grow back to the original size
	req=$((v / 3))
	cp "$T/orig" "$img"
	new=$(resized "$f shrink" "$fmt" "$img" "$req" --shrink)
	want_size "$f shrink" "$rule" "$req" "$new"
	check_img "$fmt" "$img" "$new" "$T/orig.raw"
	cp --sparse=always "$T/orig.raw" "$T/orig.raw.cut"
	truncate -s "$new" "$T/orig.raw.cut"
	new=$(resized "$f grow back" "$fmt" "$img" "$v")
	want_size "$f grow back" "$rule" "$v" "$new"
	# every rule gives the original size back: the samples' sizes are what
	# their own rule gives
	[ "$new" = "$v" ] || fail "$f: grown back to $new, not $v"
	check_img "$fmt" "$img" "$new" "$T/orig.raw.cut"
	echo "$f: grow, shrink, grow back ok"
}

# want_size WHAT RULE REQ NEW
want_size() {
	local what=$1 rule=$2 req=$3 new=$4 exact
	exact=$(((req + 511) / 512 * 512))
	case $rule in
	exact) [ "$new" = "$exact" ] || fail "$what: size $new, want $exact" ;;
	chs)
		[ "$new" -ge "$req" ] && [ "$new" -le $((req + 16 * 255 * 512)) ] ||
			fail "$what: size $new for a request of $req"
		;;
	esac
}

sample virtualpc-dynamic.vhd vpc chs
sample hyperv2012r2-dynamic.vhd vpc exact
sample d2v-zerofilled.vhd vpc exact
sample iotest-dynamic-1G.vhdx vhdx exact
sample test-disk2vhd.vhdx vhdx exact

# A VHDX with a log to replay: refused, unchanged, with qemu's advice; after
# qemu-img check -r all replays it, it resizes.
f=iotest-dirtylog-10G-4M.vhdx
bzcat "$SAMPLES/$f.bz2" >"$T/$f"
cp "$T/$f" "$T/dirty.orig"
out=$("$PA" vhdx "$T/$f" $((11 * G))) && fail "$f: a dirty log resized"
case "$out" in *"error=REQUIRES_CHECK "*"qemu-img check -r all"*) ;; *) fail "$f: $out" ;; esac
cmp -s "$T/$f" "$T/dirty.orig" || fail "$f: changed by a refused resize"
"$QI" check -q -r all -f vhdx "$T/$f" >/dev/null 2>&1 || fail "$f: qemu-img check -r all"
"$QI" convert -f vhdx -O raw "$T/$f" "$T/orig.raw"
new=$(resized "$f grow after replay" vhdx "$T/$f" $((11 * G)))
[ "$new" = $((11 * G)) ] || fail "$f: size $new"
check_img vhdx "$T/$f" "$new" "$T/orig.raw"
echo "$f: refused with its log, resized once replayed"

echo "samples: all ok ($NCHECK image checks)"
guest_skips_end
