# tests/fs/lib.sh — sourced by the instarfs tests: a real mount on a temp
# dir, torn down by a trap whatever happens. Needs /dev/fuse: without it the
# test is skipped (77), unless CI is set, where that is a failure.
# Environment (set by tests/fs/meson.build): INSTARFS, INSTAR, FAKE_INSTAR,
# TESTS_FS.
set -u

fail() {
	echo "FAIL: $*" >&2
	if [ -s "${T:-/nonexistent}/instarfs.log" ]; then
		echo "--- instarfs log (tail)" >&2
		tail -n 40 "$T/instarfs.log" >&2
	fi
	exit 1
}

need_fuse() {
	if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
		if [ -n "${CI:-}" ]; then
			fail "/dev/fuse or fusermount3 missing under CI"
		fi
		echo "SKIP: /dev/fuse or fusermount3 missing"
		exit 77
	fi
}

need_fuse
# The test double and helpers are python; prefer the system interpreter to a
# version-manager shim that costs half a second per start.
[ -x /usr/bin/python3 ] && PATH=/usr/bin:$PATH
T=$(mktemp -d /tmp/instarfs-test.XXXXXX) || exit 1
SRC=$T/src
MNT=$T/mnt
FAKE=$T/fake
mkdir -p "$SRC" "$MNT" "$FAKE"
PID=
# instarfs's children get a fixed environment: the knobs of the test double
# (IFS_FAKE_DIR) reach it through this wrapper, set as instar=.
REAL_FAKE_INSTAR=$FAKE_INSTAR
FAKE_INSTAR=$T/fake-instar.sh
printf '#!/bin/sh\nPATH=/usr/bin:/bin IFS_FAKE_DIR=%s exec %s "$@"\n' "'$FAKE'" "'$REAL_FAKE_INSTAR'" >"$FAKE_INSTAR"
chmod 755 "$FAKE_INSTAR"

unmount_fs() {
	if mountpoint -q "$MNT" 2>/dev/null || grep -q " $MNT fuse" /proc/mounts; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null
	fi
	if [ -n "$PID" ]; then
		for _ in $(seq 50); do
			kill -0 "$PID" 2>/dev/null || break
			sleep 0.1
		done
		kill "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
		PID=
	fi
}

cleanup() {
	# Children still blocked in a write to the mount must not keep it busy.
	jobs -p | xargs -r kill 2>/dev/null
	unmount_fs
	rm -rf "$T"
}
trap cleanup EXIT

# write_ini KEY=VALUE... : the config file used by start_fs.
write_ini() {
	{
		echo "[instarfs]"
		for kv in "$@"; do echo "$kv"; done
	} >"$T/instarfs.ini"
}

# start_fs [instarfs options...]: mounts SRC on MNT in the foreground.
start_fs() {
	[ -f "$T/instarfs.ini" ] || write_ini
	IFS_FAKE_DIR=$FAKE "$INSTARFS" -f -o "config=$T/instarfs.ini" "$@" "$SRC" "$MNT" \
		>>"$T/instarfs.log" 2>&1 &
	PID=$!
	# 120 s bound a hang only: a loaded machine may take long to mount.
	for _ in $(seq 2400); do
		grep -q " $MNT fuse" /proc/mounts && return 0
		kill -0 "$PID" 2>/dev/null || fail "instarfs exited before mounting"
		sleep 0.05
	done
	fail "instarfs did not mount within 120 s"
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}

# wr IMAGE DATA [OFFSET]: one write to IMAGE's size file; prints OK/errno name.
wr() {
	python3 "$TESTS_FS/ifs-write" "$MNT/$1/size" "$2" ${3:+"$3"}
}

# json FILE EXPR: evaluates a python expression over the parsed JSON as 'j'.
json() {
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# need_qemu_img: qemu-img is the oracle. Without it the test is skipped (77),
# unless CI is set, where that is a failure.
need_qemu_img() {
	if ! command -v qemu-img >/dev/null; then
		[ -z "${CI:-}" ] || fail "qemu-img missing under CI"
		echo "SKIP: qemu-img missing"
		exit 77
	fi
}

# need_kvm: the real instar boots the guest (tests/kvm_gate.sh's rule).
. "$TESTS_FS/../kvm_gate.sh"
need_kvm() {
	kvm_gate
}

# wr_ok IMAGE DATA WHAT: a write that must resize IMAGE. Where the guest
# cannot boot (tests/kvm_gate.sh) and that is what the write failed on, the
# case is counted as left out and wr_ok returns 1 (guest_skips_end reports).
wr_ok() {
	local r
	r=$(wr "$1" "$2")
	if [ "$r" = EIO ] && ! kvm_usable && grep -q "cannot open /dev/kvm" "$MNT/$1/result.json"; then
		GUEST_SKIPPED=$((GUEST_SKIPPED + 1))
		return 1
	fi
	expect_eq "$r" OK "$3"
}

# need_instar_json: the real instar must answer info and resize with one JSON
# object each; anything else is a failure of instar, never a skip.
need_instar_json() {
	local probe=$T/json-probe.raw
	truncate -s 1M "$probe"
	"$INSTAR" info --output=json "$probe" | python3 -c 'import json,sys; assert isinstance(json.load(sys.stdin), dict)' ||
		fail "$INSTAR info --output=json did not print a JSON object"
	"$INSTAR" resize --output=json "$probe" +1M | python3 -c 'import json,sys; assert isinstance(json.load(sys.stdin), dict)' ||
		fail "$INSTAR resize --output=json did not print a JSON object"
	rm -f "$probe"
}

mkraw() { # mkraw NAME BYTES
	truncate -s "$2" "$SRC/$1"
}

# Waiting for events (jobs.sh, load.sh): HANG bounds every wait, it only
# turns a hang into a failure and never decides a pass.
HANG=120 # seconds
wait_for() { # wait_for WHAT COMMAND...: until COMMAND succeeds
	local what=$1 i
	shift
	for ((i = 0; i < HANG * 20; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	fail "$what (no progress in $HANG s)"
}
running() { # prints how many fake resizes are in progress
	local f n=0
	for f in "$FAKE"/running.*; do [ -e "$f" ] && n=$((n + 1)); done
	echo $n
}
running_is() { [ "$(running)" = "$1" ]; }
