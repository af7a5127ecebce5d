#!/bin/bash
# tests/fs/cli.sh — instarfs' command line: --help, --version, and clear
# messages for a missing source directory, a bad mount point, a stale
# mount, a missing /dev/fuse and a bad config; -o settings beat the ini.
. "$TESTS_FS/lib.sh"

"$INSTARFS" --help >"$T/help" 2>&1 || fail "--help exit status"
grep -q "usage: .*SOURCE_DIR MOUNTPOINT" "$T/help" || fail "--help: no usage"
grep -q "max_jobs" "$T/help" || fail "--help: no instarfs options"
grep -q -- "-o allow_other" "$T/help" || fail "--help: no allow_other"
"$INSTARFS" --version | grep -q "^instarfs version " || fail "--version"

write_ini "instar = $FAKE_INSTAR"
run() { "$INSTARFS" -f -o "config=$T/instarfs.ini" "$@" >"$T/out" 2>&1; }

run "$T/nope" "$MNT" && fail "missing source dir accepted"
grep -q "source directory $T/nope: No such file or directory" "$T/out" || fail "source msg: $(cat "$T/out")"
run "$SRC" "$T/nope" && fail "missing mountpoint accepted"
grep -q "$T/nope'\?: No such file or directory" "$T/out" || fail "mountpoint msg: $(cat "$T/out")"
touch "$T/file"
run "$SRC" "$T/file" && fail "file as mountpoint accepted"
grep -q "not a directory" "$T/out" || fail "file mountpoint msg: $(cat "$T/out")"
run "$SRC" && fail "missing mountpoint argument accepted"
grep -q "usage:" "$T/out" || fail "usage msg: $(cat "$T/out")"
"$INSTARFS" -f -o config="$T/missing.ini" "$SRC" "$MNT" >"$T/out" 2>&1 && fail "missing config accepted"
grep -q "missing.ini" "$T/out" || fail "missing config msg: $(cat "$T/out")"
run -o timeout=0 "$SRC" "$MNT" && fail "timeout=0 accepted"
grep -q "invalid value for timeout: '0'" "$T/out" || fail "bad -o msg: $(cat "$T/out")"
write_ini "instar = $T/no-such-instar"
run "$SRC" "$MNT" && fail "missing instar accepted"
grep -q "no-such-instar" "$T/out" || fail "missing instar msg: $(cat "$T/out")"
write_ini "[instarfs" "instar = $FAKE_INSTAR"
run "$SRC" "$MNT" && fail "broken ini accepted"
grep -q "instarfs.ini:[0-9]*: syntax error" "$T/out" || fail "ini syntax msg: $(cat "$T/out")"

# /dev/fuse missing: hide it in a private mount namespace (needs root).
write_ini "instar = $FAKE_INSTAR"
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
	unshare -m bash -c "mount -t tmpfs none /dev && exec '$INSTARFS' -f -o config='$T/instarfs.ini' '$SRC' '$MNT'" >"$T/out" 2>&1 &&
		fail "mounted without /dev/fuse"
	grep -q "/dev/fuse is missing" "$T/out" || fail "/dev/fuse msg: $(cat "$T/out")"
fi

# The shipped example config is valid and its defaults are what it says.
mkraw a.raw 1M
"$INSTARFS" -f -o "config=$CONTRIB/instarfs.ini" -o "instar=$FAKE_INSTAR" -o log_level=debug \
	"$SRC" "$MNT" >"$T/out" 2>&1 &
P2=$!
for _ in $(seq 100); do grep -q " $MNT fuse" /proc/mounts && break; sleep 0.05; done
grep -q " $MNT fuse" /proc/mounts || fail "example config: $(cat "$T/out")"
expect_eq "$(cat "$MNT/a.raw/size")" "1048576" "size with the example config"
fusermount3 -u "$MNT"
wait $P2
grep -q "timeout 30 s, max_jobs 4" "$T/out" || fail "example config defaults: $(cat "$T/out")"
rm "$SRC/a.raw"

# -o settings override the ini; the mount works; a second mount on top warns.
mkraw a.raw 1M
write_ini "instar = $FAKE_INSTAR" "timeout = 7" "log_level = debug"
start_fs -o timeout=9
expect_eq "$(cat "$MNT/a.raw/size")" "1048576" "size"
expect_eq "$(wr a.raw +1M)" "OK" "resize"
grep -q -- "--timeout 9 " "$FAKE/log" || fail "-o timeout did not override the ini: $(cat "$FAKE/log")"
"$INSTARFS" -f -o "config=$T/instarfs.ini" "$SRC" "$MNT" >"$T/out" 2>&1 &
P2=$!
for _ in $(seq 50); do grep -q "already a mount point" "$T/out" && break; sleep 0.1; done
grep -q "already a mount point" "$T/out" || fail "no warning for a stacked mount: $(cat "$T/out")"
fusermount3 -u "$MNT" 2>/dev/null # the stacked one
wait $P2
expect_eq "$(cat "$MNT/a.raw/size")" "2097152" "first mount still serving"

# A daemon that dies leaves a stale mount: say so.
{
	kill -KILL "$PID"
	wait "$PID"
} 2>/dev/null
PID=
run "$SRC" "$MNT" && fail "mounted on a stale mount"
grep -q "fusermount3 -u" "$T/out" || fail "stale mount msg: $(cat "$T/out")"
echo "PASS"
