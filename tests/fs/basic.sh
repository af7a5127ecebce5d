#!/bin/bash
# tests/fs/basic.sh — instarfs end to end on raw images: listing, control
# files, resize through `size`, the errno map, sysfs write manners.
# BACKEND=fake runs instar's test double (tests/fs/fake-instar); BACKEND=real
# the instar built next to instarfs (found without any instar= setting).
. "$TESTS_FS/lib.sh"

case "${BACKEND:-fake}" in
fake)
	write_ini "instar = $FAKE_INSTAR" "timeout = 20"
	;;
real)
	# The real raw path needs no guest, but the CLI must speak JSON.
	need_instar_json
	write_ini "timeout = 20"
	;;
esac

M=$((1024 * 1024))
mkraw a.raw $((2 * M))
mkraw b.img $((1 * M))
mkraw .hidden.raw $M
ln -s a.raw "$SRC/link.raw"
ln -s /etc/passwd "$SRC/passwd"
mkdir "$SRC/subdir"
mkfifo "$SRC/fifo"
start_fs

# ---- listing: regular, non-hidden files only; live ----
expect_eq "$(ls "$MNT" | tr '\n' ' ')" "a.raw b.img " "listing"
for n in .hidden.raw link.raw passwd subdir fifo; do
	[ -e "$MNT/$n" ] && fail "$n must not be exposed"
done
expect_eq "$(ls "$MNT/a.raw" | tr '\n' ' ')" "format info.json result.json size " "folder"
mkraw c.raw $M
expect_eq "$(ls "$MNT" | tr '\n' ' ')" "a.raw b.img c.raw " "listing after add"
expect_eq "$(cat "$MNT/c.raw/size")" "$M" "size of a new image"
rm "$SRC/c.raw"
expect_eq "$(ls "$MNT" | tr '\n' ' ')" "a.raw b.img " "listing after remove"
[ -e "$MNT/c.raw/size" ] && fail "removed image still reachable"
mkdir "$MNT/x" 2>/dev/null && fail "mkdir must be refused"

# ---- read-only files ----
expect_eq "$(cat "$MNT/a.raw/size")" "$((2 * M))" "size"
expect_eq "$(cat "$MNT/a.raw/format")" "raw" "format"
expect_eq "$(json "$MNT/a.raw/info.json" 'j["format"], j["virtual_size"], j["filename"]')" \
	"('raw', $((2 * M)), 'a.raw')" "info.json"
expect_eq "$(cat "$MNT/a.raw/result.json")" "{}" "result.json before any resize"
expect_eq "$(python3 "$TESTS_FS/ifs-write" "$MNT/a.raw/format" x)" "EACCES" "write to format"

# ---- permissions follow the image ----
chmod 640 "$SRC/b.img"
chown 1234:5678 "$SRC/b.img"
expect_eq "$(stat -c '%a %u %g' "$MNT/b.img/size")" "640 1234 5678" "size mode/owner"
expect_eq "$(stat -c '%a' "$MNT/b.img/result.json")" "440" "result.json mode"
if command -v setpriv >/dev/null; then
	out=$(setpriv --reuid=4321 --regid=4321 --clear-groups bash -c "echo +1M > '$MNT/b.img/size'" 2>&1) &&
		fail "an unprivileged user could resize a 0640 root-owned image"
	case "$out" in *"ermission denied"*) ;; *) fail "unprivileged write: '$out'" ;; esac
fi
chown 0:0 "$SRC/b.img"

# ---- a grow, the shell way ----
echo +1M >"$MNT/a.raw/size" || fail "echo +1M > size"
expect_eq "$(stat -c %s "$SRC/a.raw")" "$((3 * M))" "image length after +1M"
expect_eq "$(cat "$MNT/a.raw/size")" "$((3 * M))" "size after +1M"
expect_eq "$(json "$MNT/a.raw/result.json" 'j["filename"], j["action"], j["old_virtual_size"], j["resolved_new_virtual_size"], "error" in j')" \
	"('a.raw', 'grow', $((2 * M)), $((3 * M)), False)" "result.json after +1M"

# ---- shrink without --shrink: EPERM, image untouched, result.json says why ----
out=$(bash -c "echo 1M > '$MNT/a.raw/size'" 2>&1) && fail "shrink without --shrink succeeded"
case "$out" in *"Operation not permitted"*) ;; *) fail "shell message: '$out'" ;; esac
expect_eq "$(wr a.raw 1M)" "EPERM" "shrink without --shrink"
expect_eq "$(stat -c %s "$SRC/a.raw")" "$((3 * M))" "image after refused shrink"
expect_eq "$(json "$MNT/a.raw/result.json" 'j["filename"], j["error"]["errno"]')" \
	"('a.raw', 'EPERM')" "result.json after EPERM"

# ---- the CLI's own words ----
expect_eq "$(wr a.raw $'--shrink 1M\n')" "OK" "--shrink 1M"
expect_eq "$(cat "$MNT/a.raw/size")" "$M" "size after --shrink 1M"
expect_eq "$(wr a.raw '--shrink -512K')" "OK" "--shrink -512K"
expect_eq "$(cat "$MNT/a.raw/size")" "$((M / 2))" "size after --shrink -512K"
expect_eq "$(json "$MNT/a.raw/result.json" 'j["action"]')" "shrink" "action"
expect_eq "$(wr a.raw '--preallocation=falloc +1M')" "OK" "--preallocation=falloc"
expect_eq "$(wr a.raw $'--preallocation falloc\t+1M')" "OK" "--preallocation falloc"
expect_eq "$(stat -c %s "$SRC/a.raw")" "$((5 * M / 2))" "image after preallocated grows"
[ "$(stat -c %b "$SRC/a.raw")" -ge $((2 * M / 512)) ] || fail "falloc did not allocate"
expect_eq "$(wr a.raw 3M)" "OK" "absolute grow"
expect_eq "$(wr a.raw '--shrink 2M')" "OK" "absolute shrink"
expect_eq "$(cat "$MNT/a.raw/size")" "$((2 * M))" "size after 3M, --shrink 2M"

# ---- errno map and write manners ----
expect_eq "$(wr a.raw 'banana')" "EINVAL" "bad syntax"
expect_eq "$(json "$MNT/a.raw/result.json" 'j["error"]["errno"], j["error"]["code"]')" \
	"('EINVAL', 'INVALID_NEW_SIZE')" "result.json after bad syntax"
expect_eq "$(wr a.raw '+1X')" "EINVAL" "bad suffix"
expect_eq "$(wr a.raw ' ')" "EINVAL" "blank write"
expect_eq "$(wr a.raw $'\n')" "EINVAL" "newline only"
expect_eq "$(wr a.raw '--frobnicate +1M')" "EINVAL" "unknown option"
expect_eq "$(wr a.raw '--preallocation=lots +1M')" "EINVAL" "bad preallocation mode"
expect_eq "$(wr a.raw $'+1M\n\n')" "EINVAL" "two newlines"
expect_eq "$(wr a.raw '+1M +2M')" "EINVAL" "two sizes"
expect_eq "$(wr a.raw '99999999999999999999999')" "ERANGE" "huge size"
# qemu-img's arithmetic: current + 8E wraps negative, "must be positive".
expect_eq "$(wr a.raw '+8E')" "EINVAL" "overflowing grow"
expect_eq "$(wr a.raw "$(head -c 5120 /dev/zero | tr '\0' 1)")" "E2BIG" "5 KiB write"
expect_eq "$(wr a.raw '+1M' 1)" "EINVAL" "write at offset 1"
expect_eq "$(cat "$MNT/a.raw/size")" "$((2 * M))" "size after refused writes"
truncate -s 0 "$MNT/a.raw/size" || fail "truncate on size"
expect_eq "$(cat "$MNT/a.raw/size")" "$((2 * M))" "size after truncate (no-op)"
expect_eq "$(stat -c %s "$SRC/a.raw")" "$((2 * M))" "image after truncate (no-op)"

# ---- one snapshot per open ----
python3 - "$MNT/a.raw" "$TESTS_FS/ifs-write" <<'PY' || fail "snapshot per open"
import os, subprocess, sys
d, w = sys.argv[1], sys.argv[2]
fd = os.open(d + "/size", os.O_RDONLY)
before = os.pread(fd, 100, 0)
assert subprocess.run([sys.executable, w, d + "/size", "+1M"], capture_output=True, text=True).stdout.strip() == "OK"
assert os.pread(fd, 100, 0) == before, "snapshot changed under an open fd"
os.close(fd)
assert open(d + "/size").read() != before.decode(), "new open did not see the resize"
PY
echo "PASS"
