#!/usr/bin/env bash
# tests/fault/commit_stop.sh INSTAR — fault injection into the host commit.
# INSTAR_TEST_COMMIT_STOP_AFTER=K (a test-only hook of vmm/virtio_blk.c) stops
# the commit after its K-th write; for every K of a grow and a shrink plan of
# each format, the image must afterwards be the old one or the new one: its
# virtual size is one of the two, the data below the smaller size reads back,
# and `qemu-img check` reports no corruption (leaks are allowed).
set -u
instar=$(realpath "$1")
. "$(dirname "$0")/../kvm_gate.sh"
kvm_gate
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail=0 total=0

vsize() { qemu-img info -f "$1" --output=json "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])'; }

# one_case NAME FMT "CREATE-OPTS" SIZE "RESIZE-OPTS" NEWSIZE
one_case() {
	local name=$1 fmt=$2 copts=$3 size=$4 ropt=$5 rsize=$6 k old new rc v completed=0
	rm -f base w
	qemu-img create -q -f "$fmt" ${copts:+-o "$copts"} base "$size"
	old=$(vsize "$fmt" base)
	# data at the start (kept) and near the end (cut by a shrink)
	qemu-io -f "$fmt" -c 'write -P 0x5a 0 64k' -c 'write -P 0xa5 1M 64k' \
		-c "write -P 0x77 $((old - 192 * 1024)) 128k" base >/dev/null
	# the uninterrupted resize tells the new size (vhd rounds to CHS)
	cp --sparse=always base w
	# shellcheck disable=SC2086
	if ! "$instar" resize -q -f "$fmt" $ropt w "$rsize" 2>err; then
		echo "FAIL $name: the uninterrupted resize failed"; cat err; fail=$((fail + 1)); return
	fi
	new=$(vsize "$fmt" w)
	for k in $(seq 0 400); do
		cp --sparse=always base w
		# shellcheck disable=SC2086
		INSTAR_TEST_COMMIT_STOP_AFTER=$k "$instar" resize -q -f "$fmt" $ropt w "$rsize" >/dev/null 2>"err"
		rc=$?
		total=$((total + 1))
		if [ "$rc" -gt 1 ]; then
			echo "FAIL $name k=$k: exit $rc"; cat err; fail=$((fail + 1)); return
		fi
		v=$(vsize "$fmt" w 2>/dev/null) || { echo "FAIL $name k=$k: image no longer opens"; fail=$((fail + 1)); return; }
		if [ "$v" != "$old" ] && [ "$v" != "$new" ]; then
			echo "FAIL $name k=$k: virtual size $v is neither old $old nor new $new"; fail=$((fail + 1))
		fi
		if [ "$rc" -eq 0 ] && [ "$v" != "$new" ]; then
			echo "FAIL $name k=$k: success but size $v"; fail=$((fail + 1))
		fi
		if ! qemu-io -f "$fmt" -c 'read -P 0x5a 0 64k' -c 'read -P 0xa5 1M 64k' w >/dev/null 2>&1; then
			echo "FAIL $name k=$k: data below the new size lost"; fail=$((fail + 1))
		fi
		case $fmt in
		qcow2|vmdk|vhdx)
			qemu-img check -f "$fmt" w >chk 2>&1
			case $? in 0|3) ;; *) echo "FAIL $name k=$k: check reports corruption"; sed 's/^/    /' chk | head -5; fail=$((fail + 1));; esac
			;;
		esac
		if [ "$rc" -eq 0 ]; then
			completed=1
			break
		fi
	done
	[ "$completed" = 1 ] || { echo "FAIL $name: never completed"; fail=$((fail + 1)); }
	echo "ok $name: stopped after every k in 0..$((k - 1)), completed at k=$k"
}

one_case qcow2-grow qcow2 "" 1G "" "2G"
one_case qcow2-grow-64t qcow2 "cluster_size=65536" 1G "" "64T"
one_case qcow2-512-grow qcow2 "cluster_size=512" 64M "" "1G"
one_case qcow2-shrink qcow2 "" 1G "--shrink" "2M"
one_case vmdk-grow vmdk "" 1G "" "8G"
one_case vmdk-shrink vmdk "" 1G "--shrink" "2M"
one_case vhd-grow vpc "" 64M "" "1G"
one_case vhd-shrink vpc "" 64M "--shrink" "4M"
one_case vhdx-grow vhdx "" 64M "" "2G"
one_case vhdx-shrink vhdx "" 64M "--shrink" "4M"
echo "fault: $total runs, $fail failures"
[ "$fail" -eq 0 ]
