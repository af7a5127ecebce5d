#!/bin/bash
# tests/fs/names.sh — what instarfs lets an image reach and hand to its
# child: backing files only in the source dir or backing_dirs, a data file
# or vmdk extent never another exposed image (nor one of another owner,
# even through a tenant's own image on an allow_other mount; a split vmdk
# with its extents in a subdirectory grows and shrinks), -f from a name that says the
# format (a probe that disagrees: EMEDIUMTYPE), a fixed child environment,
# and image names escaped in the log.
. "$TESTS_FS/lib.sh"

need_qemu_img
M=$((1024 * 1024))
OUT=$T/outside
chmod 755 "$T" # the tenant below reaches the mount through it
mkdir -p "$OUT"

# hdr_rename IMG OLD NEW: the header's name OLD (a backing or data file name)
# replaced by NEW of the same length, so qemu-img never touches NEW's file.
hdr_rename() {
	python3 - "$@" <<'EOF'
import sys
img, old, new = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
assert len(old) == len(new)
with open(img, "r+b") as f:
    head = f.read(65536)
    assert head.count(old) == 1, head.count(old)
    f.seek(head.index(old))
    f.write(new)
EOF
}
errno_of() { json "$MNT/$1/result.json" 'j["error"]["errno"] if j.get("error") else "none"'; }
msg_of() { json "$MNT/$1/result.json" 'j["error"]["message"] if j.get("error") else ""'; }

# ---- the fake instar: argv and environment of the child ----
touch "$FAKE/env"
write_ini "instar = $FAKE_INSTAR" "guest_dir = /nonexistent/guest" "backing_dirs = $OUT:/srv/x"
mkraw a.qcow2 1M
mkraw b.img 1M
mkraw c.VHD 1M
mkraw "$(printf 'evil\nname\033[31m.raw')" 1M
FOO_FROM_INSTARFS=1 INSTAR_TEST_GUEST_HOLD_FD=9 LD_LIBRARY_PATH=/nonexistent start_fs
expect_eq "$(wr a.qcow2 +1M)" OK "fake resize"
env_out=$(cat "$FAKE/env.out")
grep -qx "LC_ALL=C" <<<"$env_out" || fail "child environment lacks LC_ALL=C: $env_out"
grep -qx "INSTAR_GUEST_DIR=/nonexistent/guest" <<<"$env_out" ||
	fail "child environment lacks the configured guest dir: $env_out"
if grep -E "^(FOO_FROM_INSTARFS|INSTAR_TEST_[A-Z_]*|LD_LIBRARY_PATH)=" <<<"$env_out"; then
	fail "instarfs's own environment reached the child"
fi
args=$(tail -n 1 "$FAKE/log" | cut -d' ' -f4-)
grep -q -- "--confine --backing-dir $OUT --backing-dir /srv/x -f qcow2 --strict-format /dev/fd/3 +1M" <<<"$args" ||
	fail "argv of a.qcow2: $args"
expect_eq "$(wr b.img +1M)" OK "fake resize .img"
args=$(tail -n 1 "$FAKE/log" | cut -d' ' -f4-)
grep -q -- " -f " <<<"$args" && fail ".img is ambiguous, yet -f was passed: $args"
expect_eq "$(wr c.VHD +1M)" OK "fake resize .VHD"
grep -q -- "-f vpc --strict-format" <<<"$(tail -n 1 "$FAKE/log")" || fail "argv of c.VHD: $(tail -n 1 "$FAKE/log")"
# A name with a newline and an ESC: one log line, escaped.
expect_eq "$(wr "$(printf 'evil\nname\033[31m.raw')" +1M)" OK "fake resize of the odd name"
grep -qF 'evil\nname\e[31m.raw: resize' "$T/instarfs.log" || fail "odd name not escaped in the log"
if grep -q $'\033' "$T/instarfs.log"; then fail "an ESC byte reached the log"; fi
if grep -qx "name.*" "$T/instarfs.log"; then fail "a newline from a name split a log line"; fi
unmount_fs
rm -f "$FAKE/env" "$SRC"/*

# ---- the real instar ----
need_instar_json

# Backing files outside the source dir: refused, unless in backing_dirs.
qemu-img create -q -f qcow2 "$OUT/base.qcow2" 4M
qemu-img create -q -f qcow2 -b "$OUT/base.qcow2" -F qcow2 "$SRC/abs.qcow2" 4M
qemu-img create -q -f qcow2 -b ../outside/base.qcow2 -F qcow2 "$SRC/rel.qcow2" 4M
mkdir "$SRC/sub"
qemu-img create -q -f qcow2 "$SRC/sub/inside.qcow2" 4M
qemu-img create -q -f qcow2 -b sub/inside.qcow2 -F qcow2 "$SRC/in.qcow2" 4M
ln -s "$OUT/base.qcow2" "$SRC/sub/link.qcow2"
qemu-img create -q -f qcow2 -u -b sub/link.qcow2 -F qcow2 "$SRC/link.qcow2" 4M
cp "$SRC/abs.qcow2" "$T/abs.before"
write_ini "timeout = 30" "allow_other = true"
start_fs
expect_eq "$(wr abs.qcow2 +4M)" EACCES "absolute backing name outside the source dir"
expect_eq "$(wr rel.qcow2 +4M)" EACCES "backing name ../ outside the source dir"
expect_eq "$(wr link.qcow2 +4M)" EACCES "backing name through a symlink"
grep -q "instar opens backing files only beneath the image's directory" <<<"$(msg_of rel.qcow2)" ||
	fail "message: $(msg_of rel.qcow2)"
cmp -s "$SRC/abs.qcow2" "$T/abs.before" || fail "refused image changed"
wr_ok in.qcow2 +4M "backing file in a subdirectory of the source dir"

# A tenant (nobody) resizes its own image through the mount; the header
# names a root-owned 0600 neighbour image as its data file.
qemu-img create -q -f qcow2 "$SRC/victim.qcow2" 8M
chmod 600 "$SRC/victim.qcow2"
cp "$SRC/victim.qcow2" "$T/victim.before"
(cd "$SRC" && qemu-img create -q -f qcow2 -o data_file=vixtim.qcow2 tenant.qcow2 8M)
rm "$SRC/vixtim.qcow2"
hdr_rename "$SRC/tenant.qcow2" vixtim.qcow2 victim.qcow2
chown nobody:nogroup "$SRC/tenant.qcow2"
cp "$SRC/tenant.qcow2" "$T/tenant.before"
r=$(setpriv --reuid=nobody --regid=nogroup --clear-groups \
	python3 "$TESTS_FS/ifs-write" "$MNT/tenant.qcow2/size" "--shrink 64K")
expect_eq "$r" EACCES "tenant's data file naming a neighbour image"
cmp -s "$SRC/victim.qcow2" "$T/victim.before" || fail "the neighbour image changed"
cmp -s "$SRC/tenant.qcow2" "$T/tenant.before" || fail "the tenant's image changed"
# Also in a subdirectory, where the name alone would pass: the owner differs.
mkdir -p "$SRC/data"
qemu-img create -q -f raw "$SRC/data/root.raw" 8M
chmod 600 "$SRC/data/root.raw"
(cd "$SRC" && qemu-img create -q -f qcow2 -o data_file=data/xoot.raw tenant2.qcow2 8M)
rm "$SRC/data/xoot.raw"
hdr_rename "$SRC/tenant2.qcow2" data/xoot.raw data/root.raw
chown nobody:nogroup "$SRC/tenant2.qcow2"
r=$(setpriv --reuid=nobody --regid=nogroup --clear-groups \
	python3 "$TESTS_FS/ifs-write" "$MNT/tenant2.qcow2/size" "+8M")
expect_eq "$r" EACCES "tenant's data file owned by root"
expect_eq "$(stat -c %s "$SRC/data/root.raw")" "$((8 * M))" "root's file length"
grep -q "owner is not the image's owner" <<<"$(msg_of tenant2.qcow2)" ||
	fail "message: $(msg_of tenant2.qcow2)"

# A data file directly in the source dir is another image of this mount.
(cd "$SRC" && qemu-img create -q -f qcow2 -o data_file=beside.raw beside.qcow2 4M)
expect_eq "$(wr beside.qcow2 +4M)" EACCES "data file beside the image"
expect_eq "$(stat -c %s "$SRC/beside.raw")" "$((4 * M))" "beside.raw length"
# ... unless its name is hidden (instarfs does not expose it).
(cd "$SRC" && qemu-img create -q -f qcow2 -o data_file=.hidden.raw hid.qcow2 4M)
wr_ok hid.qcow2 +4M "hidden data file beside the image" &&
	expect_eq "$(stat -c %s "$SRC/.hidden.raw")" "$((8 * M))" ".hidden.raw length"

# A split vmdk (twoGbMaxExtentSparse): its extents follow the same rule. In
# a subdirectory it grows (the new extent goes there) and shrinks inside an
# extent (a copy under the next number); beside the image it is refused.
mkdir -p "$SRC/vm"
(cd "$SRC" && qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse split.vmdk 3G &&
	mv split-s001.vmdk split-s002.vmdk vm/ && sed -i 's|"split-s00|"vm/split-s00|' split.vmdk)
if wr_ok split.vmdk +1G "split vmdk, extents in a subdirectory"; then
	expect_eq "$(ls "$SRC/vm" | tr '\n' ' ')" "split-s001.vmdk split-s002.vmdk split-s003.vmdk " \
		"the new extent's place"
	expect_eq "$(qemu-img info --output=json "$SRC/split.vmdk" |
		sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p' | head -n1)" $((4 << 30)) "grown size"
	wr_ok split.vmdk $'--shrink 1G\n' "split vmdk, shrink inside its first extent" &&
		expect_eq "$(ls "$SRC/vm" | tr '\n' ' ')" "split-s004.vmdk " "the copy's place"
	qemu-img check -q "$SRC/split.vmdk" || fail "split vmdk: qemu-img check"
fi
(cd "$SRC" && qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse near.vmdk 3G)
expect_eq "$(wr near.vmdk +1G)" EACCES "split vmdk, extents beside the image"
[ ! -e "$SRC/near-s003.vmdk" ] || fail "an extent was created beside the image"

# -f from the name, and a probe that disagrees.
qemu-img create -q -f qcow2 "$SRC/lies.raw" 4M
cp "$SRC/lies.raw" "$T/lies.before"
expect_eq "$(wr lies.raw +4M)" EMEDIUMTYPE ".raw whose sector 0 is a qcow2 header"
cmp -s "$SRC/lies.raw" "$T/lies.before" || fail ".raw with a qcow2 header changed"
truncate -s 4M "$SRC/plain.qcow2"
expect_eq "$(wr plain.qcow2 +4M)" EMEDIUMTYPE ".qcow2 that is raw"
expect_eq "$(stat -c %s "$SRC/plain.qcow2")" "$((4 * M))" "raw .qcow2 length"
unmount_fs

# backing_dirs lets the outside base in.
write_ini "timeout = 30" "backing_dirs = $OUT"
start_fs
wr_ok abs.qcow2 +4M "absolute backing name in backing_dirs" &&
	{ qemu-img check -q "$SRC/abs.qcow2" || fail "qemu-img check of abs.qcow2"; }
wr_ok rel.qcow2 +4M "../ backing name landing in backing_dirs"
expect_eq "$(wr link.qcow2 +4M)" EACCES "symlink is still refused"
guest_skips_end
echo "PASS"
