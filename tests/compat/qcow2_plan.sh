#!/bin/bash
# tests/compat/qcow2_plan.sh — the qcow2 planner against qemu-img as the oracle.
# For each variant: one copy is resized by qemu-img, one by plan-apply (the
# planner + the host commit's way of applying ops); then qemu-img check must
# be clean on ours, virtual sizes must match, qemu-img compare must find the
# copies identical, and for preallocation qemu-img map must agree on what is
# allocated. Crash order: every prefix (--stop-after K) of a grow and of a
# shrink leaves the old or the new image, with no corruption (leaks allowed).
# After a complete plan no case needs leaks allowed: qemu-img check must be
# fully clean (ALLOW_LEAKS stays 0; qemu itself leaks nothing here either).
#
#   qcow2_plan.sh PLAN_APPLY QEMU_IMG
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PA=$(readlink -f "${1:?plan-apply}")
QI=${2:-qemu-img}
QIO=$(qemu_io_for "$QI")
command -v "$QIO" >/dev/null || { echo "qemu-io missing"; exit 77; }

scratch_dir /var/tmp/qcow2_plan.XXXXXX
cd "$T"

fails=0
cases=0
# Unlike lib.sh's, a failed check is counted and the run goes on.
fail() {
	echo "FAIL [$CASE]: $*" >&2
	fails=$((fails + 1))
}

bytes() { # qemu-style size -> bytes
	local v=$1 n u
	n=${v%[KMGTP]}
	u=${v#"$n"}
	case $u in
	K) echo $((n << 10)) ;; M) echo $((n << 20)) ;; G) echo $((n << 30)) ;;
	T) echo $((n << 40)) ;; P) echo $((n << 50)) ;; *) echo "$n" ;;
	esac
}

vsize() { qi_vsize "" "$1"; }
csize() { "$QI" info --output=json "$1" | sed -n 's/.*"cluster-size": \([0-9]*\).*/\1/p'; }

# qemu-img check: 0 clean. Leaks (rc 3) only where allowed.
check_ours() {
	local img=$1 allow_leaks=${2:-0} rc=0 out
	out=$("$QI" check "$img" 2>&1) || rc=$?
	if [ $rc -eq 3 ] && [ "$allow_leaks" = 1 ] && ! grep -q -i corrupt <<<"$out"; then
		return 0
	fi
	if [ $rc -ne 0 ]; then
		fail "qemu-img check rc=$rc: $out"
	fi
}

# Allocation map without host offsets (those legitimately differ), merged.
# With metadata preallocation "zero" only tells holes from written zeros in
# the host file, which depends on the host layout: dropped (NOZERO=1).
map_shape() {
	"$QI" map --output=json "$1" | tr -d '[]' | sed 's/, "offset": [0-9]*//' |
		if [ "${2:-0}" = 1 ]; then sed 's/"zero": [a-z]*, //'; else cat; fi |
		awk -F'[:,}]' '
		/start/ {
			s=$2+0; l=$4+0; key=$0; sub(/.*"depth"/, "", key); sub(/[},]+$/, "", key)
			if (n && key == pk && ps + pl == s) { pl += l; next }
			if (n) print ps, pl, pk
			ps=s; pl=l; pk=key; n=1
		}
		END { if (n) print ps, pl, pk }'
}

# mkbase CREATE_OPTS SIZE PREP: creates base.qcow2 and runs the shell snippet
# PREP on it ($B).
mkbase() {
	"$QI" create -q -f qcow2 ${1:+-o "$1"} base.qcow2 "$2"
	B=base.qcow2
	eval "$3"
}

# run_case NAME CREATE_OPTS SIZE PREP NEWSIZE [resize flags...]
# PREP is a shell snippet run with $B as the base image.
run_case() {
	CASE=$1
	local opts=$2 size=$3 prep=$4 new=$5 t0=$SECONDS
	shift 5
	local flags=("$@") paflags=() nb cs
	[ -z "${VERBOSE:-}" ] || echo "  $CASE" >&2
	cases=$((cases + 1))
	rm -f base.qcow2 q.qcow2 o.qcow2 back.img
	mkbase "$opts" "$size" "$prep"
	cp --sparse=always base.qcow2 q.qcow2
	cp --sparse=always base.qcow2 o.qcow2
	for f in "${flags[@]}"; do
		case $f in
		--shrink) paflags+=(--shrink) ;;
		--preallocation=*) paflags+=(--prealloc "${f#--preallocation=}") ;;
		esac
	done
	nb=$(bytes "$new")
	"$QI" resize -q "${flags[@]}" q.qcow2 "$nb" || { fail "qemu-img resize failed"; return; }
	"$PA" "${paflags[@]}" qcow2 o.qcow2 "$nb" >pa.out || { fail "plan-apply: $(cat pa.out)"; return; }
	check_ours o.qcow2 "${ALLOW_LEAKS:-0}"
	[ "$(vsize o.qcow2)" = "$nb" ] || fail "virtual size $(vsize o.qcow2) != $nb"
	"$QI" compare -q -f qcow2 -F qcow2 q.qcow2 o.qcow2 || fail "qemu-img compare differs"
	second_oracle o.qcow2 "$nb"
	case " ${flags[*]} " in
	*--preallocation=metadata*)
		[ "$(map_shape q.qcow2 1)" = "$(map_shape o.qcow2 1)" ] ||
			fail "map differs: $(map_shape q.qcow2 1) VS $(map_shape o.qcow2 1)"
		;;
	*--preallocation=*)
		[ "$(map_shape q.qcow2)" = "$(map_shape o.qcow2)" ] ||
			fail "map differs: $(map_shape q.qcow2) VS $(map_shape o.qcow2)"
		;;
	esac
	# Shrink to a partial cluster: qemu keeps the stale tail, we zero it.
	cs=$(csize o.qcow2)
	if [ $((nb % cs)) -ne 0 ] && [ "${CHECK_TAIL:-1}" = 1 ]; then
		local up=$(((nb / cs + 1) * cs))
		cp --sparse=always o.qcow2 t.qcow2
		"$QI" resize -q t.qcow2 "$up"
		"$QIO" -f qcow2 -c "read -q -P 0 $nb $((up - nb))" t.qcow2 >/dev/null ||
			fail "kept tail of the cut cluster is not zero"
		rm -f t.qcow2
	fi
}

# second_oracle IMG SIZE: libqcow reads IMG as qemu does (lib.sh's
# libyal_check against qemu's raw; above 1 TiB, which no file system here
# holds as one file, against its first GiB).
second_oracle() {
	if [ "$2" -le $((1 << 40)) ]; then
		"$QI" convert -O raw "$1" so.raw || { fail "qemu-img convert"; return; }
		libyal_check qcow2 "$1" "$2" so.raw
	else
		"$QI" dd -f qcow2 -O raw bs=1M count=1024 if="$1" of=so.raw || { fail "qemu-img dd"; return; }
		libyal_check qcow2 "$1" "$2" so.raw $((1 << 30))
	fi
	rm -f so.raw
}

# expect_error NAME CREATE_OPTS SIZE PREP NEWSIZE ERRNAME [plan-apply flags]
expect_error() {
	CASE=$1
	local opts=$2 size=$3 prep=$4 new=$5 err=$6 rc=0
	shift 6
	cases=$((cases + 1))
	rm -f base.qcow2
	mkbase "$opts" "$size" "$prep"
	cp base.qcow2 o.qcow2
	"$PA" "$@" qcow2 o.qcow2 "$(bytes "$new")" >pa.out || rc=$?
	[ $rc -eq 2 ] && grep -q "error=$err " pa.out || fail "want $err, got rc=$rc $(cat pa.out)"
	cmp -s base.qcow2 o.qcow2 || fail "image changed by a failed plan"
}

# crash_case NAME CREATE_OPTS SIZE PREP NEWSIZE [plan-apply flags]
crash_case() {
	CASE="crash $1"
	local opts=$2 size=$3 prep=$4 new=$5 n k rc old ref
	shift 5
	cases=$((cases + 1))
	rm -f base.qcow2
	mkbase "$opts" "$size" "$prep"
	old=$(vsize base.qcow2)
	cp --sparse=always base.qcow2 final.qcow2
	"$PA" "$@" qcow2 final.qcow2 "$(bytes "$new")" >/dev/null || { fail "plan failed"; return; }
	n=$(plan_nops qcow2 base.qcow2 "$(bytes "$new")" "$@")
	[ "$n" -ge 3 ] || fail "suspiciously short plan ($n ops)"
	for ((k = 0; k <= n; k++)); do
		cp --sparse=always base.qcow2 c.qcow2
		"$PA" --stop-after "$k" "$@" qcow2 c.qcow2 "$(bytes "$new")" >/dev/null ||
			{ fail "stop-after $k: plan-apply failed"; continue; }
		rc=0
		out=$("$QI" check c.qcow2 2>&1) || rc=$?
		if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
			fail "stop-after $k: check rc=$rc $out"
			continue
		fi
		grep -qi corrupt <<<"$out" && fail "stop-after $k: $out"
		# the sizes are equal here: the old size must come with the old data over the
		# whole old range, the new size with the new image (issue 15)
		case $(vsize c.qcow2) in
		"$old") ref=base.qcow2 ;;
		"$(bytes "$new")") ref=final.qcow2 ;;
		*)
			fail "stop-after $k: size $(vsize c.qcow2)"
			continue
			;;
		esac
		"$QI" compare -q -f qcow2 -F qcow2 "$ref" c.qcow2 2>/dev/null ||
			fail "stop-after $k: size $(vsize c.qcow2) but not $ref's data"
	done
	echo "  $CASE: $((n + 1)) prefixes"
}

wr() { "$QIO" -f qcow2 -c "write -q -P $1 $2 $3" "$B" >/dev/null; }

# ---- grow ----
run_case "v3 64K header-only" "" 64M "wr 0xab 0 1M" 128M
run_case "v3 64K same size" "" 64M "wr 0xab 0 1M" 64M
run_case "v3 64K L1 relocation 1G->2G" "" 1G "wr 0xab 1000M 2M" 2G
run_case "v3 64K 1G->64T" "" 1G "wr 0xab 0 64K; wr 0xcd 1023M 1M" 64T
run_case "v2 64K grow" "compat=0.10" 1G "wr 0xab 512M 1M" 3G
run_case "v3 512B reftable growth 64M->8G" "cluster_size=512,refcount_bits=64" 64M \
	"wr 0xab 0 256K; wr 0x11 63M 1M" 8G
run_case "v3 512B refbits16 grow" "cluster_size=512" 64M "wr 0xab 1M 64K" 2G
run_case "v3 4K refbits1 grow" "cluster_size=4096,refcount_bits=1" 256M "wr 0xab 0 3M" 64G
run_case "v3 4K refbits2 grow" "cluster_size=4096,refcount_bits=2" 256M "wr 0xab 0 3M" 16G
run_case "v3 2M refbits64 grow" "cluster_size=2M,refcount_bits=64" 1G "wr 0xab 5M 7M" 4T
run_case "v3 extended_l2 grow" "extended_l2=on,cluster_size=128K" 1G "wr 0xab 0 100K" 3G
run_case "v3 lazy_refcounts grow" "lazy_refcounts=on" 1G "wr 0xab 4M 1M" 5G
run_case "v3 unaligned old size grow" "" 1000000K "wr 0xab 999000K 1000K" 2G
run_case "v3 grow with snapshot" "" 1G "wr 0xab 0 2M; $QI snapshot -c s1 \$B; wr 0xcd 1M 2M" 3G

# Backing file longer than the old size: the new range must read zeros.
mkback() {
	"$QI" create -q -f raw back.img 2G
	"$QIO" -f raw -c "write -q -P 0x5a 0 1M" -c "write -q -P 0x5b 1G 64M" \
		-c "write -q -P 0x5c 1500M 1M" -c "write -q -P 0x5d 2047M 1M" back.img >/dev/null
	"$QI" rebase -q -u -b back.img -F raw "$B"
}
run_case "v3 backing grow" "" 1G "mkback; wr 0xab 0 1M" 3G
run_case "v3 ext_l2 backing grow" "extended_l2=on" 1G "mkback" 1536M
run_case "v3 backing grow shared L2" "" 700M "wr 0xab 600M 1M; $QI snapshot -c s1 \$B; mkback" 1536M
# qemu's shrink keeps l1_size: growing back links new L2 tables in place.
run_case "regrow after qemu shrink" "" 2G "wr 0xab 0 1M; wr 0xcd 1500M 1M; $QI resize -q --shrink \$B 600M" 2G
run_case "regrow after qemu shrink, backing" "" 2G \
	"wr 0xab 0 1M; wr 0xcd 1500M 1M; $QI resize -q --shrink \$B 600M; mkback" 1800M
run_case "v3 backing prealloc" "" 1G "mkback" 1536M --preallocation=metadata

# ---- persistent bitmaps ----
# Resized like qemu: tables follow the size, the bitmaps stay listed, their
# dirty bits (read through qemu-nbd) match qemu's, and after a regrow the
# bits past a shrink's cut read clean.
bm_info() { "$QI" info --output=json "$1" | sed -n '/"bitmaps"/,/]/p'; }
bm_map() { # IMG NAME: the dirty extents of bitmap NAME
	local sock=$T/nbd.sock pid out rc=0
	rm -f "$sock"
	qemu-nbd -r -t -k "$sock" -B "$2" -f qcow2 "$1" 2>/dev/null &
	pid=$!
	# The socket file appears at bind(), before listen(): until then (and
	# under load, a while) a connection is refused, so retry that alone.
	for _ in $(seq 200); do
		rc=0
		out=$("$QI" map --output=json --image-opts \
			"driver=nbd,server.type=unix,server.path=$sock,x-dirty-bitmap=qemu:dirty-bitmap:$2" 2>&1) || rc=$?
		case "$rc $out" in
		*"Connection refused"* | *"No such file or directory"*) sleep 0.1 ;;
		*) break ;;
		esac
	done
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	echo "rc=$rc $out" | sed 's/, "offset": [0-9]*//'
}
# bm_case NAME "BITMAPS" CREATE_OPTS SIZE PREP NEWSIZE [flags]
bm_case() {
	local name=$1 bms=$2 b up
	shift 2
	run_case "bitmaps $name" "$@"
	[ -f o.qcow2 ] || return 0
	[ "$(bm_info q.qcow2)" = "$(bm_info o.qcow2)" ] ||
		fail "bitmaps listed differently: $(bm_info o.qcow2)"
	command -v qemu-nbd >/dev/null || return 0
	up=$(($(vsize o.qcow2) + 65 * M))
	for b in $bms; do
		# two failed reads compare equal too: each side must be readable
		case "$(bm_map q.qcow2 "$b")" in rc=0*) ;; *) fail "cannot read qemu's bitmap $b" ;; esac
		[ "$(bm_map q.qcow2 "$b")" = "$(bm_map o.qcow2 "$b")" ] ||
			fail "bitmap $b differs: $(bm_map q.qcow2 "$b") VS $(bm_map o.qcow2 "$b")"
	done
	"$QI" resize -q q.qcow2 "$up"
	"$QI" resize -q o.qcow2 "$up"
	for b in $bms; do
		case "$(bm_map o.qcow2 "$b")" in rc=0*) ;; *) fail "cannot read our bitmap $b after a regrow" ;; esac
		[ "$(bm_map q.qcow2 "$b")" = "$(bm_map o.qcow2 "$b")" ] ||
			fail "bitmap $b differs after a regrow: $(bm_map o.qcow2 "$b")"
	done
}
bmadd() { "$QI" bitmap --add "$@" "$B" b0; }
BM3="$QI bitmap --add -g 512 \$B b0; $QI bitmap --add \$B b1; $QI bitmap --add --disable -g 64K \$B b2"
DIRTY="$QIO -c 'write -q -P 0xab 0 1M' -c 'write -q 700M 3M' -c 'write -q 1020M 4M' \$B >/dev/null"
bm_case "empty grow, table grows" "b0" "" 1G "bmadd -g 512" 2G
bm_case "empty grow, table same" "b0" "" 1G "bmadd" 2G
bm_case "three grow" "b0 b1 b2" "" 1G "$BM3; $DIRTY" 3G
bm_case "grow 16T" "b1" "" 1G "$QI bitmap --add \$B b1; $DIRTY" 16T
bm_case "three shrink" "b0 b1 b2" "" 1G "$BM3; $DIRTY" 600M --shrink
bm_case "shrink tail bits" "b0 b1 b2" "" 1G "$BM3; $DIRTY" $((1021 * M + 512)) --shrink
bm_case "shrink same table, tail bits" "b0" "" 1G "bmadd; $DIRTY" $((1022 * M)) --shrink
bm_case "512B clusters" "b0" "cluster_size=512" 64M \
	"bmadd -g 512; $QIO -c 'write -q 0 1M' -c 'write -q 60M 4M' \$B >/dev/null" $((33 * M + 512)) --shrink
bm_case "with L1 relocation and snapshot" "b0 b1 b2" "" 1G "$BM3; $DIRTY; $QI snapshot -c s1 \$B" 5G
bm_case "prealloc" "b0" "" 64M "bmadd -g 512; $QIO -c 'write -q 0 1M' \$B >/dev/null" 200M \
	--preallocation=falloc

# ---- compressed ----
mkcomp() {
	"$QI" create -q -f qcow2 ${1:+-o "$1"} plain.qcow2 64M
	"$QIO" -f qcow2 -c "write -q -P 0xab 0 8M" -c "write -q -P 0x33 40M 20M" plain.qcow2 >/dev/null
	"$QI" convert -c -O qcow2 ${1:+-o "$1"} plain.qcow2 "$B"
	rm -f plain.qcow2
}
run_case "compressed grow" "" 64M "mkcomp" 3G
run_case "compressed shrink" "" 64M "mkcomp" 33M --shrink
# A compressed cluster cut in the middle: decompressed, its kept part stored
# in a new cluster of ours with the tail zeroed (deflate and zstd; the tail's
# L2 table straddling the cut, or ending right at it, or shared).
run_case "compressed shrink partial" "" 64M "mkcomp" $((45 * 1048576 + 4096 + 512)) --shrink
run_case "compressed shrink partial zstd" "" 64M "mkcomp compression_type=zstd" \
	$((45 * 1048576 + 4096 + 512)) --shrink
run_case "compressed shrink partial ext_l2" "" 64M "mkcomp extended_l2=on" \
	$((7 * 1048576 + 1024)) --shrink
run_case "compressed shrink partial, table ends at the cut" "" 64M "mkcomp cluster_size=4096" \
	$((4 * 1048576 - 4096 + 512)) --shrink
run_case "compressed shrink partial, snapshot" "" 64M "mkcomp; $QI snapshot -c s1 \$B" \
	$((45 * 1048576 + 4096 + 512)) --shrink

# ---- shrink ----
run_case "shrink data beyond cut" "" 1G "wr 0xab 0 1M; wr 0xcd 590M 40M; wr 0xef 1000M 24M" 600M --shrink
run_case "shrink partial cluster" "" 1G "wr 0xab 0 1M; wr 0x77 540M 20M" $((550 * 1048576 + 512)) --shrink
run_case "shrink partial 512B" "cluster_size=512,refcount_bits=4" 16M "wr 0x77 0 4M; wr 0x78 15M 1M" \
	$((3 * 1048576 + 1536)) --shrink
run_case "shrink v2" "compat=0.10" 1G "wr 0xab 100M 50M; wr 0xcd 280M 40M" 300M --shrink
run_case "shrink ext_l2" "extended_l2=on" 1G "wr 0xab 290M 20M; wr 0x1 300M 4K; wr 0x2 900M 1M" \
	$((300 * 1048576 + 2048)) --shrink
run_case "shrink refbits1 4K" "cluster_size=4096,refcount_bits=1" 256M "wr 0xab 90M 20M; wr 0x1 250M 6M" 100M --shrink
run_case "shrink 2M refbits64" "cluster_size=2M,refcount_bits=64" 1G "wr 0xab 40M 20M; wr 0xcd 900M 20M" \
	$((50 * 1048576 + 4096)) --shrink
# Snapshot-shared clusters keep their other reference; the straddling L2
# table is shared and must be copied before it is cut.
run_case "shrink with snapshot" "" 1G \
	"wr 0xab 0 8M; wr 0xab 290M 20M; wr 0x12 700M 4M; $QI snapshot -c s1 \$B; wr 0xcd 1M 1M; wr 0xce 295M 1M" \
	$((300 * 1048576 + 65536 * 3)) --shrink
# No write after the snapshot: the active L1 shares its L2 tables (no COPIED
# bit), so the straddling table is copied before it is cut. The kept partial
# cluster is shared with the snapshot too: its kept part goes to a new
# cluster of ours (tail zeroed), the snapshot keeps the old one.
run_case "shrink shared L2" "" 1G "wr 0xab 0 4M; wr 0xab 290M 20M; wr 0x3 900M 1M; $QI snapshot -c s1 \$B" \
	$((300 * 1048576 + 65536 * 3 + 512)) --shrink
# The same where the tail's table ends at the cut (not the straddling one)
# and is shared, and where it is ours but the cluster is shared.
run_case "shrink shared tail, table ends at the cut" "" 1G \
	"wr 0xab 510M 2M; $QI snapshot -c s1 \$B" $((512 * 1048576 - 65536 + 512)) --shrink
run_case "shrink shared tail, own table" "" 1G \
	"wr 0xab 290M 20M; $QI snapshot -c s1 \$B; wr 0xcd 291M 64K" $((300 * 1048576 + 512)) --shrink
run_case "shrink then regrow" "" 128M "wr 0x77 0 128M" 65M --shrink
run_case "v3 lazy shrink" "lazy_refcounts=on" 1G "wr 0xab 0 8M; wr 0xcd 500M 30M" 512M --shrink

# snapshot still restores its own data after our shrink
CASE="snapshot apply after shrink"
cases=$((cases + 1))
rm -f s.qcow2
"$QI" create -q -f qcow2 s.qcow2 256M
"$QIO" -f qcow2 -c "write -q -P 0x42 0 256M" s.qcow2 >/dev/null
"$QI" snapshot -c s1 s.qcow2
"$PA" --shrink qcow2 s.qcow2 $((100 << 20)) >/dev/null || fail "plan-apply"
check_ours s.qcow2
"$QI" snapshot -a s1 s.qcow2
[ "$(vsize s.qcow2)" = $((256 << 20)) ] || fail "snapshot size"
"$QIO" -f qcow2 -c "read -q -P 0x42 0 256M" s.qcow2 >/dev/null || fail "snapshot data lost"

# Empty 64T -> 1G: qemu takes minutes (it allocates an L2 table per L1 entry);
# we skip unallocated L1 entries. Checked on its own, by the work the plan
# takes (not by a clock): a few reads (the 1 MiB L1 table, the refcount
# structures) and ops, where a walk of the 131072 L1 entries would read or
# write once per entry.
CASE="empty 64T shrink"
cases=$((cases + 1))
"$QI" create -q -f qcow2 e.qcow2 64T
"$PA" --shrink qcow2 e.qcow2 $((1 << 30)) >pa.out || fail "plan-apply: $(cat pa.out)"
check_ours e.qcow2
[ "$(vsize e.qcow2)" = $((1 << 30)) ] || fail "size"
read -r ops reads rbytes < <(sed -n 's/.* ops=\([0-9]*\) reads=\([0-9]*\) read_bytes=\([0-9]*\) .*/\1 \2 \3/p' pa.out)
[ "${ops:-X}" -le 8 ] && [ "$reads" -le 64 ] && [ "$rbytes" -le $((4 << 20)) ] ||
	fail "the plan walks the L1 table: $(cat pa.out)"
echo "  empty 64T -> 1G shrink: $ops ops, $reads reads ($rbytes bytes)"

# ---- preallocation ----
for m in metadata falloc full; do
	run_case "prealloc $m" "" 64M "wr 0xab 0 1M" 200M --preallocation=$m
	run_case "prealloc $m L1 growth" "" 64M "wr 0xab 60M 4M" 1600M --preallocation=$m
	run_case "prealloc $m unaligned" "" $((64 * 1048576 + 512)) "" $((100 * 1048576 + 1024)) \
		--preallocation=$m
	run_case "prealloc $m ext_l2" "extended_l2=on" 64M "" 130M --preallocation=$m
	run_case "prealloc $m v2 512B" "compat=0.10,cluster_size=512" 16M "wr 0xab 0 1M" 24M \
		--preallocation=$m
done

# ---- refusals ----
expect_error "v2 with snapshots" "compat=0.10" 64M "$QI snapshot -c s1 \$B" 128M UNSUPPORTED_FEATURE
expect_error "v2 backing grow" "compat=0.10" 1G "mkback" 2G UNSUPPORTED_FEATURE
expect_error "not multiple of 512" "" 64M "" 100000001 NOT_MULTIPLE_512
expect_error "shrink without flag" "" 64M "" 32M SHRINK_WITHOUT_FLAG
expect_error "prealloc not growing" "" 64M "" 64M PREALLOC_NOT_GROWING --prealloc falloc
expect_error "L1 too large" "cluster_size=512" 64M "" 128T TOO_LARGE
expect_error "in-use bitmap" "" 64M \
	"$QI bitmap --add \$B b0; { $QIO -c 'sigraise 9' \$B; } 2>/dev/null || true" 128M UNSUPPORTED_FEATURE
# qemu resizes and then drops the bitmap on close; we refuse.
expect_error "bitmap too large" "" 1G "$BM3" 16T TOO_LARGE
CASE="in-use bitmap message"
cases=$((cases + 1))
"$QI" create -q -f qcow2 iu.qcow2 64M
"$QI" bitmap --add iu.qcow2 b0
{ "$QIO" -c 'sigraise 9' iu.qcow2; } 2>/dev/null || true
"$PA" qcow2 iu.qcow2 $((128 << 20)) >pa.out || true
grep -q "detail=Bitmap 'b0' is inconsistent and cannot be used" pa.out || fail "$(cat pa.out)"
expect_error "corrupt bit" "" 64M "printf '\\x02' | dd of=\$B bs=1 seek=79 conv=notrunc status=none" \
	128M CORRUPT
expect_error "dirty bit" "" 64M "printf '\\x01' | dd of=\$B bs=1 seek=79 conv=notrunc status=none" \
	128M REQUIRES_CHECK

# ---- issue 19 ----
# 060: a corrupt refcount table entry is refused, nothing written, with
# qemu's corruption text (qemu marks the image corrupt after a partial
# shrink; we refuse up front).
RT_POKE="printf '\\x00\\xff\\xff\\xff\\x00\\x00\\x00\\x00' | dd of=\$B bs=1 seek=\$((0x10008)) conv=notrunc status=none"
expect_error "060 refblock past the end, shrink" "" 64M "$RT_POKE" 32M CORRUPT --shrink
grep -q "detail=Refblock at 0xffffff00000000 is not covered by the refcount structures" pa.out ||
	fail "$(cat pa.out)"
expect_error "060 refblock past the end, grow" "" 64M "$RT_POKE" 128M CORRUPT
expect_error "060 unaligned refblock" "refcount_bits=1" 64M \
	"printf '\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00' | dd of=\$B bs=1 seek=\$((0x10010)) conv=notrunc status=none" \
	32M CORRUPT --shrink

# A data cluster past the cut whose L2 entry points at the active L1 table:
# releasing it would free the L1 (qemu does; qemu-img check then finds
# "refcount=0 reference=1"). Refused, nothing written.
expect_error "L2 entry on the L1 table" "" 64M \
	"wr 0x11 40M 64K; printf '\\x80\\x00\\x00\\x00\\x00\\x03\\x00\\x00' | dd of=\$B bs=1 seek=\$((0x40000 + 640 * 8)) conv=notrunc status=none" \
	32M CORRUPT --shrink
grep -q "detail=Data cluster at 0x30000 overlaps with active L1 table" pa.out || fail "$(cat pa.out)"

# 163: a shrink gives the space back: refblocks left counting only themselves
# leave the reftable, as qemu drops them, and the file ends no later than
# qemu's (512-byte clusters, 64-bit refcounts: a refblock per 32 KiB).
run_case "163 shrink drops refblocks" "cluster_size=512,refcount_bits=64" 3M "wr 0xff 0 3M" 1M --shrink
[ "$(stat -c %s o.qcow2)" -le "$(stat -c %s q.qcow2)" ] ||
	fail "file length $(stat -c %s o.qcow2) > qemu-img's $(stat -c %s q.qcow2)"
run_case "163 shrink drops refblocks, 16-bit" "cluster_size=512" 8M "wr 0xff 0 8M" 1M --shrink
[ "$(stat -c %s o.qcow2)" -le "$(stat -c %s q.qcow2)" ] ||
	fail "file length $(stat -c %s o.qcow2) > qemu-img's $(stat -c %s q.qcow2)"
# iotest 163's TestShrink512 layout (3M written in 256K pieces, in order and
# shuffled): some refblocks then lie in another refblock's range, and one
# left counting nothing must leave the reftable as well, its cluster freed
# where it is counted (163 reads every refblock the reftable names and wants
# none all zeros).
no_empty_refblock() { # FILE
	python3 - "$1" <<'PY' || fail "$1: the reftable names an all-zero refcount block"
import struct, sys
f = open(sys.argv[1], "rb")
h = f.read(64)
cb = struct.unpack(">I", h[20:24])[0]
rto, rtc = struct.unpack(">QI", h[48:60])
f.seek(rto)
rt = f.read(rtc << cb)
for i in range(0, len(rt), 8):
    o = struct.unpack(">Q", rt[i:i + 8])[0] & 0x00fffffffffffe00
    if o:
        f.seek(o)
        if not any(f.read(1 << cb)):
            sys.exit(1)
PY
}
for order in "0 1 2 3 4 5 6 7 8 9 10 11" "7 2 11 0 5 9 1 4 10 3 8 6"; do
	prep=
	for k in $order; do
		prep="$prep${prep:+; }wr 0xff $((k * 256))K 256K"
	done
	run_case "163 TestShrink512, pieces $order" "cluster_size=512,refcount_bits=64" 3M "$prep" 1M --shrink
	no_empty_refblock o.qcow2
	[ "$(stat -c %s o.qcow2)" -le "$(stat -c %s q.qcow2)" ] ||
		fail "file length $(stat -c %s o.qcow2) > qemu-img's $(stat -c %s q.qcow2)"
done

# 125, 271, 274: growing from inside a cluster over a longer backing file:
# the rest of that cluster reads as zeros, the kept part as before (copied
# from the backing file when unallocated, as qemu does); the new clusters'
# map as qemu's for every preallocation mode (falloc/full: data).
# bk_case NAME CREATE_OPTS OLD NEW PREALLOC PREP (PREP on $B)
bk_case() {
	CASE="backing $1 ($5)"
	local opts=$2 old=$3 new=$4 p=$5 prep=$6
	cases=$((cases + 1))
	rm -f q.qcow2 o.qcow2
	"$QI" create -q -f qcow2 ${opts:+-o "$opts"} -F raw -b back.raw q.qcow2 "$old"
	B=q.qcow2
	eval "$prep"
	cp --sparse=always q.qcow2 o.qcow2
	"$QI" resize -q --preallocation="$p" q.qcow2 "$(bytes "$new")" || { fail "qemu-img resize failed"; return; }
	"$PA" --prealloc "$p" --backing-data back.raw qcow2 o.qcow2 "$(bytes "$new")" >pa.out ||
		{ fail "plan-apply: $(cat pa.out)"; return; }
	check_ours o.qcow2
	"$QI" compare -q q.qcow2 o.qcow2 || fail "qemu-img compare differs"
	"$QIO" -c "read -q -P 0 $(bytes "$old") $(($(bytes "$new") - $(bytes "$old")))" o.qcow2 >/dev/null ||
		fail "the grown range does not read as zeros"
	[ "$(map_shape q.qcow2)" = "$(map_shape o.qcow2)" ] ||
		fail "map differs: $(map_shape q.qcow2) VS $(map_shape o.qcow2)"
}
"$QI" create -q -f raw back.raw 2M
"$QIO" -f raw -c "write -q -P 0x5a 0 2M" back.raw >/dev/null
bwr() { "$QIO" -f qcow2 -c "write -q -P $1 $2 $3" "$B" >/dev/null; }
for p in off metadata falloc full; do
	bk_case "unallocated" "" 31K 96K $p ""
	bk_case "ext_l2 unallocated" "extended_l2=on" 503K 1013K $p ""
done
for p in off falloc; do
	bk_case "allocated" "" 33K 128K $p "bwr 0x11 0 33K"
	bk_case "shared" "" 97K 1M $p "bwr 0x11 0 97K; $QI snapshot -c s1 \$B"
	bk_case "compressed" "" 97K 1M $p \
		"$QI create -q -f qcow2 c.qcow2 97K; $QIO -c 'write -q -P 0x33 0 97K' c.qcow2 >/dev/null; $QI convert -c -O qcow2 -F raw -B back.raw c.qcow2 \$B"
	bk_case "ext_l2 own subcluster" "extended_l2=on" 503K 1013K $p "bwr 0x11 500K 1K"
	bk_case "ext_l2 shared" "extended_l2=on" 503K 1013K $p "bwr 0x11 480K 1K; $QI snapshot -c s1 \$B"
	bk_case "ext_l2 aligned subcluster" "extended_l2=on" 502K 1013K $p "bwr 0x11 448K 54K"
done
CASE="backing not readable"
cases=$((cases + 1))
"$QI" create -q -f qcow2 -F raw -b back.raw n.qcow2 31K
cp n.qcow2 n0.qcow2
"$PA" --backing-len 2097152 qcow2 n.qcow2 98304 >pa.out && fail "grew without the backing data"
grep -q "error=UNSUPPORTED_FEATURE" pa.out || fail "$(cat pa.out)"
cmp -s n.qcow2 n0.qcow2 || fail "image changed by a failed plan"

# issue 19: a qcow2 backing file read as qcow2 (plan-apply --backing, the
# chain as the host gives it to the guest; guest/plan/backing.c reads it):
# a 31k overlay over a 128k qcow2 backing file whose cluster at the old end
# holds data (plain, compressed, zero-flagged over stale data, or none: its
# own raw backing file's) grows to 96k as qemu-img grows a copy.
# qb_case NAME BACKING_PREP CHAIN... (BACKING_PREP makes bq.qcow2)
qb_case() {
	CASE="qcow2 backing $1"
	local prep=$2
	shift 2
	local chain=() f
	for f in "$@"; do chain+=(--backing "$f"); done
	cases=$((cases + 1))
	rm -f bq.qcow2 bq0.qcow2 q.qcow2 o.qcow2
	eval "$prep"
	"$QI" create -q -f qcow2 -F qcow2 -b bq.qcow2 q.qcow2 31K
	cp q.qcow2 o.qcow2
	"$QI" resize -q q.qcow2 96K || { fail "qemu-img resize failed"; return; }
	"$PA" "${chain[@]}" qcow2 o.qcow2 98304 >pa.out || { fail "plan-apply: $(cat pa.out)"; return; }
	check_ours o.qcow2
	"$QI" check -q bq.qcow2 || fail "the backing file is no longer clean"
	"$QI" compare -q q.qcow2 o.qcow2 || fail "qemu-img compare differs"
	"$QIO" -c "read -q -P 0 31K 65K" o.qcow2 >/dev/null || fail "the grown range does not read as zeros"
	[ "$(map_shape q.qcow2)" = "$(map_shape o.qcow2)" ] ||
		fail "map differs: $(map_shape q.qcow2) VS $(map_shape o.qcow2)"
}
QB_DATA="$QI create -q -f qcow2 bq.qcow2 128K; $QIO -c 'write -q -P 0x6b 0 4K' -c 'write -q -P 0x6c 28K 8K' -c 'write -q -P 0x6d 64K 4K' bq.qcow2 >/dev/null"
qb_case "data at the old end" "$QB_DATA" qcow2:bq.qcow2
qb_case "compressed at the old end" "$QB_DATA; mv bq.qcow2 bq0.qcow2; $QI convert -c -O qcow2 bq0.qcow2 bq.qcow2" \
	qcow2:bq.qcow2
qb_case "zero-flagged at the old end" \
	"$QB_DATA; $QIO -c 'write -q -z 0 64K' bq.qcow2 >/dev/null" qcow2:bq.qcow2
qb_case "over its own raw backing file" \
	"$QI create -q -f qcow2 -F raw -b back.raw bq.qcow2 128K; $QIO -c 'write -q -P 0x6e 64K 4K' bq.qcow2 >/dev/null" \
	qcow2:bq.qcow2 raw:back.raw
CASE="qcow2 backing: refusals"
cases=$((cases + 1))
"$QI" create -q -f qcow2 -F raw -b back.raw bq.qcow2 128K
"$QI" create -q -f qcow2 -F qcow2 -b bq.qcow2 n.qcow2 31K
cp n.qcow2 n0.qcow2
# the chain ends short of the file bq.qcow2 would read from: refused
"$PA" --backing qcow2:bq.qcow2 qcow2 n.qcow2 98304 >pa.out && fail "grew without the whole chain"
grep -q "error=UNSUPPORTED_FEATURE" pa.out || fail "$(cat pa.out)"
cmp -s n.qcow2 n0.qcow2 || fail "image changed by a failed plan"
"$PA" --backing vmdk:bq.qcow2 qcow2 n.qcow2 98304 >pa.out 2>&1 && fail "--backing vmdk: accepted"
"$PA" --backing qcow2:back.raw qcow2 n.qcow2 98304 >pa.out 2>&1 && fail "--backing qcow2: a raw file accepted"
grep -q "Image is not in qcow2 format" pa.out || fail "$(cat pa.out)"
"$PA" --backing raw:back.raw --backing-data back.raw qcow2 n.qcow2 98304 >pa.out 2>&1 &&
	fail "--backing with --backing-data accepted"
"$PA" --backing raw:back.raw --backing raw:back.raw --backing raw:back.raw --backing raw:back.raw \
	--backing raw:back.raw qcow2 n.qcow2 98304 >pa.out 2>&1 && fail "five backing files accepted"
cmp -s n.qcow2 n0.qcow2 || fail "image changed by a refused run"

# A shrink that crashed right after its commit leaves its cut entries
# mapped past the new end; a later grow must read zeros there.
CASE="grow after a shrink crashed past its commit"
cases=$((cases + 1))
"$QI" create -q -f qcow2 s.qcow2 64M
"$QIO" -c "write -q -P 0x77 40M 1M" -c "write -q -P 0x66 31M 2M" s.qcow2 >/dev/null
k=$("$PA" --dry-run --ops --shrink qcow2 s.qcow2 $((32 * M)) |
	awk 'NR > 1 && $2 != "flush" { n++ } $2 == "write" && $3 == "off=24" { print n; exit }')
"$PA" --stop-after "$k" --shrink qcow2 s.qcow2 $((32 * M)) >/dev/null
[ "$(vsize s.qcow2)" = $((32 * M)) ] || fail "the shrink did not commit at $k"
for g in "" "--prealloc metadata"; do
	cp s.qcow2 g.qcow2
	# shellcheck disable=SC2086
	"$PA" $g qcow2 g.qcow2 $((64 * M)) >/dev/null || fail "grow $g failed"
	check_ours g.qcow2 1
	"$QIO" -c "read -q -P 0 32M 32M" g.qcow2 >/dev/null || fail "grow $g: stale data past the old end"
done

# ---- crash order ----
crash_case "grow L1+reftable 512B" "cluster_size=512,refcount_bits=64" 16M "wr 0xab 0 1M" 2G
crash_case "grow L1 64K" "" 1G "wr 0xab 0 1M" 3G
crash_case "grow backing" "" 1G "mkback; wr 0xab 0 64K" 1536M
crash_case "grow prealloc" "" 64M "" 1600M --prealloc metadata
crash_case "shrink" "" 1G "wr 0xab 0 16M; wr 0xcd 290M 20M; wr 0xef 600M 8M" $((300 * 1048576 + 512)) --shrink
crash_case "shrink shared L2" "" 256M "wr 0xab 0 8M; wr 0xab 96M 64M; $QI snapshot -c s1 \$B" \
	$((100 * 1048576 + 65536 * 5)) --shrink
crash_case "grow backing shared L2" "" 700M "wr 0xab 600M 1M; $QI snapshot -c s1 \$B; mkback" 1536M
crash_case "shrink compressed partial" "" 64M "mkcomp" $((45 * 1048576 + 4096 + 512)) --shrink
crash_case "shrink shared tail" "" 256M "wr 0xab 90M 20M; $QI snapshot -c s1 \$B" \
	$((100 * 1048576 + 512)) --shrink
crash_case "shrink snapshot" "" 256M "wr 0xab 0 8M; wr 0xab 96M 64M; $QI snapshot -c s1 \$B; wr 0xcd 0 1M" \
	$((100 * 1048576 + 65536 * 5)) --shrink
crash_case "bitmaps grow" "" 1G "$BM3; $DIRTY" 3G
crash_case "bitmaps shrink" "" 1G "$BM3; $DIRTY" $((1021 * M + 512)) --shrink
# issue 15: every prefix of a shrink is the old image over the whole old
# range or the new one (the reproduction, 512-byte clusters, extended L2)
crash_case "shrink issue15" "" 1G "wr 0x5a 0 64k; wr 0x77 1073545216 128k" 1073577984 --shrink
crash_case "shrink 512B" "cluster_size=512" 16M "wr 0xab 0 64K; wr 0xcd 8M 64K; wr 0xef 15M 32K" \
	$((8 * M + 16 * 1024 + 512)) --shrink
crash_case "shrink extended L2" "extended_l2=on,cluster_size=128K" 256M \
	"wr 0xab 0 1M; wr 0xcd 100M 2M; wr 0xef 200M 256K" $((100 * M + 64 * 1024 + 512)) --shrink

# issue 19: the head copied from the backing file; entries a crashed shrink
# left past the old end cleared before the commit
crash_case "grow partial head over backing" "" 31K "$QI rebase -q -u -b back.raw -F raw \$B" 96K \
	--backing-data back.raw
crash_case "shrink drops refblocks (163)" "cluster_size=512,refcount_bits=64" 3M "wr 0xff 0 3M" 1M --shrink
STALE="wr 0x77 40M 1M; $PA --stop-after 1 --shrink qcow2 \$B $((32 * M)) >/dev/null"
crash_case "grow over a crashed shrink" "" 64M "$STALE" 64M

echo "qcow2_plan: $cases cases, $fails failures"
[ "$fails" -eq 0 ]
