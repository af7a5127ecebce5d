#!/usr/bin/env bash
# tests/compat/cli_staged.sh INSTAR QEMU_IMG — the bound on staged writes
# (--max-staged): a resize that would stage more is refused with a clear
# message and exit 1, leaves the image byte-identical, and goes through with
# a larger bound.
set -u
. "$(dirname "$0")/lib.sh"
instar=$(realpath "$1")
qemu_img=$2
require_kvm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$qemu_img" create -q -f qcow2 a.qcow2 1G
before=$(sha256sum <a.qcow2)
# growing to 64T writes a 1 MiB L1 table: more than 64 KiB
"$instar" resize --max-staged=64K a.qcow2 64T >out 2>err
rc=$?
[ "$rc" -eq 1 ] || fail "rc=$rc, want 1"
[ ! -s out ] || fail "stdout not empty: $(cat out)"
grep -qx "instar: Could not resize 'a.qcow2': the resize would stage more than --max-staged allows (65536 bytes)" err ||
	fail "message: $(cat err)"
[ "$(sha256sum <a.qcow2)" = "$before" ] || fail "the image changed"

"$instar" resize --output=json --max-staged=64K a.qcow2 64T >out 2>/dev/null
python3 -c 'import json,sys; r=json.load(open("out")); e=r["error"]; sys.exit(0 if (e["code"], e["errno"]) == ("OVERLAY_LIMIT", "EIO") else 1)' ||
	fail "json: $(cat out)"

"$instar" resize --max-staged=0 a.qcow2 64T 2>err
[ $? -eq 1 ] && grep -q "Invalid --max-staged '0'" err || fail "--max-staged=0 accepted: $(cat err)"

"$instar" resize --max-staged=2M a.qcow2 64T >out 2>err || fail "2M bound refused: $(cat err)"
grep -qx 'Image resized.' out || fail "no 'Image resized.'"
"$qemu_img" check -q a.qcow2 || fail "qemu-img check"
[ "$("$qemu_img" info --output=json a.qcow2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" = 70368744177664 ] ||
	fail "virtual size after the 2M-bounded resize"

echo "max-staged tests: $fails failed"
[ "$fails" -eq 0 ]
