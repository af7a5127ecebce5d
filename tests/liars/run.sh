#!/usr/bin/env bash
# tests/liars/run.sh INSTAR QEMU_IMG CORE_BIN LIAR_DIR — each lying guest
# (LIAR_DIR/liar-NAME.bin) runs as resize.bin under the real instar on a
# fresh qcow2 image. The host must refuse the claim with the expected error
# code, exit 1, and leave the image byte-identical (contents, length, and no
# more blocks allocated than before); backing_write's backing file too.
set -u
instar=$(realpath "$1")
qemu_img=$2
core=$(realpath "$3")
liars=$(realpath "$4")
. "$(dirname "$0")/../compat/lib.sh"
require_kvm
scratch_dir
cd "$T"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# run NAME WANT_CODE DETAIL_RE [INSTAR OPTIONS...] -- SIZE
run() {
	local name=$1 want=$2 re=$3 img sum blocks rc code msg
	shift 3
	mkdir -p "g-$name"
	cp "$core" "g-$name/core.bin"
	cp "$liars/liar-$name.bin" "g-$name/resize.bin"
	img="$name.qcow2"
	if [ "$name" = backing_write ]; then
		# a backing file the guest can read but must not write
		"$qemu_img" create -q -f raw base.raw 2G
		"$qemu_img" create -q -f qcow2 -F raw -b base.raw "$img" 1G
		base_sum=$(sha256sum <base.raw)
	else
		"$qemu_img" create -q -f qcow2 "$img" 1G
	fi
	if [ "$name" = zero_flood ]; then
		# 4 MiB of data: the file is larger than the 1 MiB budget
		"$(qemu_io_for "$qemu_img")" -f qcow2 -c 'write -P 0x5a 0 4M' "$img" >/dev/null
	fi
	sum=$(sha256sum <"$img")
	blocks=$(stat -c %b "$img")
	"$instar" resize --output=json --guest-dir "g-$name" "$@" "$img" +1G >out 2>err
	rc=$?
	[ "$rc" = 1 ] || fail "$name: exit $rc, want 1"
	code=$(python3 -c 'import json,sys; print(json.load(open("out"))["error"]["code"])' 2>/dev/null)
	[ "$code" = "$want" ] || fail "$name: error code '$code', want $want: $(cat out)"
	msg=$(python3 -c 'import json,sys; print(json.load(open("out"))["error"]["message"])' 2>/dev/null)
	echo "$msg" | grep -Eq "$re" || fail "$name: message '$msg' does not match /$re/"
	[ "$(sha256sum <"$img")" = "$sum" ] || fail "$name: the image changed"
	[ "$(stat -c %b "$img")" -le "$blocks" ] || fail "$name: blocks $blocks -> $(stat -c %b "$img")"
	"$qemu_img" check -q "$img" || fail "$name: qemu-img check"
	if [ "$name" = backing_write ]; then
		[ "$(sha256sum <base.raw)" = "$base_sum" ] || fail "$name: the backing file changed"
	fi
	echo "ok $name: $code: $msg"
}

run garbage_header GUEST_MISBEHAVED 'staged image is (raw|unknown)'
run zero_length GUEST_MISBEHAVED 'final length 0 cuts off its own writes'
run other_size GUEST_MISBEHAVED 'new size of 1125899906842624'
run hidden_size GUEST_MISBEHAVED 'staged header says 1125899906842624'
run zero_flood OVERLAY_LIMIT '' --max-staged 1M
run flush_storm OVERLAY_LIMIT ''
run slow_commit TIMEOUT 'commit .* more than the time left' --timeout 1
run backing_write GUEST_MISBEHAVED 'tried to write to read-only backing device 1'

# split_liar OP SUBFORMAT SIZE NEW [ARGS]: a vmdk split descriptor of SIZE
# resized to NEW by the liar OP, which names another file than the host's
# rule. Refused before the commit; the descriptor is byte-identical and
# the extent files are as before (names and lengths).
# split_extent: twoGbMaxExtentFlat grown from 1M to 3G: the host prepares
# d-f001.vmdk (2G) and d-f002.vmdk (1G); the liar names evil.vmdk instead.
# split_sparse: twoGbMaxExtentSparse shrunk from 3G to 1G: the host copies
# d-s001.vmdk to d-s003.vmdk cut to 1G; the liar names d-s002.vmdk.
split_liar() {
	local op=$1 sub=$2 size=$3 new=$4 code msg
	shift 4
	rm -rf "g-$op" split
	mkdir -p "g-$op" split
	cp "$core" "g-$op/core.bin"
	cp "$liars/liar-$op.bin" "g-$op/resize.bin"
	"$qemu_img" create -q -f vmdk -o subformat="$sub" split/d.vmdk "$size"
	(cd split && stat -c '%n %s' * | sort) >split.before
	sha256sum <split/d.vmdk >split.sum
	"$instar" resize --output=json --guest-dir "g-$op" "$@" split/d.vmdk "$new" >out 2>err
	[ "$?" = 1 ] || fail "$op: exit status, want 1"
	code=$(python3 -c 'import json,sys; print(json.load(open("out"))["error"]["code"])' 2>/dev/null)
	[ "$code" = GUEST_MISBEHAVED ] || fail "$op: error code '$code': $(cat out err)"
	msg=$(python3 -c 'import json,sys; print(json.load(open("out"))["error"]["message"])' 2>/dev/null)
	echo "$msg" | grep -Eq 'names other backing or data files|twoGbMaxExtent' ||
		fail "$op: message '$msg'"
	sha256sum <split/d.vmdk | cmp -s - split.sum || fail "$op: the descriptor changed"
	(cd split && stat -c '%n %s' * | sort) | diff split.before - ||
		fail "$op: the extent files changed"
	echo "ok $op: $code: $msg"
}
split_liar split_extent twoGbMaxExtentFlat 1M 3G
split_liar split_sparse twoGbMaxExtentSparse 3G 1G --shrink

[ "$fails" = 0 ] && echo "all liars refused"
exit $((fails > 0))
