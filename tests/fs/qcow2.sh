#!/bin/bash
# tests/fs/qcow2.sh — a qcow2 resize through instarfs with the real instar
# (the guest path): it either works (qemu-img agrees and check is clean) or
# fails cleanly with EOPNOTSUPP/EIO and a result.json that says why.
. "$TESTS_FS/lib.sh"

command -v qemu-img >/dev/null || { echo "SKIP: qemu-img missing"; exit 77; }
truncate -s 1M "$T/probe.raw"
if ! "$INSTAR" info --output=json "$T/probe.raw" 2>/dev/null | python3 -c 'import json,sys; assert isinstance(json.load(sys.stdin), dict)' 2>/dev/null; then
	echo "SKIP: $INSTAR does not yet implement info --output=json"
	exit 77
fi
M=$((1024 * 1024))
qemu-img create -q -f qcow2 "$SRC/d.qcow2" 1M
write_ini "timeout = 30"
start_fs
expect_eq "$(cat "$MNT/d.qcow2/format")" "qcow2" "format"
expect_eq "$(cat "$MNT/d.qcow2/size")" "$M" "size"
expect_eq "$(json "$MNT/d.qcow2/info.json" 'j["filename"], j["format"], j["virtual_size"]')" \
	"('d.qcow2', 'qcow2', $M)" "info.json"
r=$(wr d.qcow2 +1M)
case "$r" in
OK)
	expect_eq "$(cat "$MNT/d.qcow2/size")" "$((2 * M))" "size after +1M"
	expect_eq "$(qemu-img info --output=json "$SRC/d.qcow2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" \
		"$((2 * M))" "qemu-img virtual size"
	qemu-img check -q "$SRC/d.qcow2" || fail "qemu-img check after resize"
	expect_eq "$(json "$MNT/d.qcow2/result.json" 'j["filename"], j["target_format"], j["action"]')" \
		"('d.qcow2', 'qcow2', 'grow')" "result.json"
	;;
EOPNOTSUPP | EIO)
	expect_eq "$(json "$MNT/d.qcow2/result.json" 'j["filename"], j["error"]["errno"], bool(j["error"]["code"]) and bool(j["error"]["message"])')" \
		"('d.qcow2', '$r', True)" "result.json explains $r"
	expect_eq "$(qemu-img info --output=json "$SRC/d.qcow2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" \
		"$M" "image unchanged after $r"
	echo "note: qcow2 resize through instarfs: $r ($(json "$MNT/d.qcow2/result.json" 'j["error"]["message"]'))"
	;;
*) fail "qcow2 +1M: $r" ;;
esac
echo "PASS"
