#!/bin/bash
# tests/kvm/resize_roundtrip.sh — full round trip through the guest: qemu-img
# creates and fills an image, the guest grows it, qemu-img judges the result.
#   resize_roundtrip.sh HARNESS QEMU_IMG FORMAT [CREATE_OPTS]
set -euo pipefail
harness=$1
qemu_img=$2
fmt=$3
opts=${4:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
img=$dir/a.$fmt
old=$((64 << 20))
new=$((128 << 20))

vsize() {
	"$qemu_img" info -f "$fmt" --output=json "$1" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p'
}

"$qemu_img" create -q -f "$fmt" ${opts:+-o "$opts"} "$img" $old
if command -v qemu-io >/dev/null; then
	qemu-io -f "$fmt" -c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 60M 512k' "$img" >/dev/null
fi
cp "$img" "$dir/orig"
old=$(vsize "$img")

set +e
out=$("$harness" resize "$img" "$fmt" "$old" $new)
rc=$?
set -e
echo "$out"
# 77: the guest cannot boot here (the harness applies tests/kvm_gate.sh's rule).
[ $rc -ne 77 ] || exit 77
# Every format has a planner: any refusal, UNSUPPORTED_FORMAT included, fails.
if [ $rc -ne 0 ]; then
	echo "FAIL: resize $fmt exited $rc"
	exit 1
fi
case $fmt in
qcow2 | vmdk | vhdx) "$qemu_img" check -q -f "$fmt" "$img" ;;
esac
got=$(vsize "$img")
# VHD rounds to its CHS geometry: at least the requested size, within 1%.
if [ "$got" -lt $new ] || [ "$got" -gt $((new + new / 100)) ]; then
	echo "FAIL: virtual size $got, want $new"
	exit 1
fi
grep -q "after=$(stat -c %s "$img") " <<<"$out" || { echo "FAIL: file length"; exit 1; }
"$qemu_img" compare -q -f "$fmt" -F "$fmt" "$dir/orig" "$img"
echo "PASS resize round trip $fmt"
