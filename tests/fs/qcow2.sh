#!/bin/bash
# tests/fs/qcow2.sh — a qcow2 resize through instarfs with the real instar
# (the guest path): it must work (qemu-img agrees and check is clean), and
# names in the header resolve only inside the source directory.
. "$TESTS_FS/lib.sh"

need_qemu_img
need_kvm
need_instar_json
M=$((1024 * 1024))
qemu-img create -q -f qcow2 "$SRC/d.qcow2" 1M
write_ini "timeout = 30"
start_fs
expect_eq "$(cat "$MNT/d.qcow2/format")" "qcow2" "format"
expect_eq "$(cat "$MNT/d.qcow2/size")" "$M" "size"
expect_eq "$(json "$MNT/d.qcow2/info.json" 'j["filename"], j["format"], j["virtual_size"]')" \
	"('d.qcow2', 'qcow2', $M)" "info.json"
r=$(wr d.qcow2 +1M)
expect_eq "$r" OK "qcow2 +1M"
expect_eq "$(cat "$MNT/d.qcow2/size")" "$((2 * M))" "size after +1M"
expect_eq "$(qemu-img info --output=json "$SRC/d.qcow2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" \
	"$((2 * M))" "qemu-img virtual size"
qemu-img check -q "$SRC/d.qcow2" || fail "qemu-img check after resize"
expect_eq "$(json "$MNT/d.qcow2/result.json" 'j["filename"], j["target_format"], j["action"]')" \
	"('d.qcow2', 'qcow2', 'grow')" "result.json"

# Relative names in the header (a backing file, a data file) resolve in the
# source directory, although instar gets the image as /dev/fd/3. A data file
# lives in a subdirectory: one directly in the source directory would be an
# image of this mount itself (refused: tests/fs/names.sh).
qemu-img create -q -f qcow2 "$SRC/base.qcow2" 4M
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$SRC/top.qcow2" 4M
mkdir "$SRC/data"
(cd "$SRC" && qemu-img create -q -f qcow2 -o data_file=data/ext.raw ext.qcow2 4M)
expect_eq "$(wr top.qcow2 +4M)" OK "backed qcow2 +4M"
expect_eq "$(cat "$MNT/top.qcow2/size")" "$((8 * M))" "backed size"
qemu-img check -q "$SRC/top.qcow2" || fail "qemu-img check of the backed image"
expect_eq "$(wr ext.qcow2 +4M)" OK "qcow2 with a data file +4M"
expect_eq "$(stat -c %s "$SRC/data/ext.raw")" "$((8 * M))" "data file length"
rm "$SRC/base.qcow2"
expect_eq "$(wr top.qcow2 +4M)" EIO "missing backing file"
expect_eq "$(json "$MNT/top.qcow2/result.json" 'j["error"]["message"]')" \
	"Could not open '/dev/fd/3': Could not open backing file: Could not open 'base.qcow2': No such file or directory" \
	"result.json names the missing backing file"
echo "PASS"
