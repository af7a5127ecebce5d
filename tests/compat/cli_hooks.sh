#!/usr/bin/env bash
# tests/compat/cli_hooks.sh INSTAR INSTAR_TEST QEMU_IMG — the test-only hooks
# (INSTAR_TEST_COMMIT_STOP_AFTER, INSTAR_TEST_GUEST_HOLD_FD) exist only in
# instar-test, the binary built for the test suites. The installed `instar`
# ignores them: with the stop hook set it still commits the whole resize,
# and with the hold hook set it never reads the hold FIFO. instar-test, given the same
# environment, obeys both (so this test can tell the two apart).
set -u
. "$(dirname "$0")/lib.sh"
instar=$(realpath "$1")
instar_test=$(realpath "$2")
qemu_img=$3
require_kvm
require_strace
scratch_dir
cd "$T"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
vsize() { "$qemu_img" info -f qcow2 --output=json "$1" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p'; }

for bin in instar instar_test; do
	"$qemu_img" create -q -f qcow2 "$bin.qcow2" 1G
	INSTAR_TEST_COMMIT_STOP_AFTER=0 "${!bin}" resize -q "$bin.qcow2" +1G >/dev/null 2>"$bin.err"
	echo $? >"$bin.rc"
done
# the release binary: the whole resize, exit 0
[ "$(cat instar.rc)" = 0 ] || fail "instar exit $(cat instar.rc): $(cat instar.err)"
[ "$(vsize instar.qcow2)" = $((2 << 30)) ] || fail "instar left $(vsize instar.qcow2) bytes, want 2 GiB"
# the test binary: stopped before the first op, old image, failure reported
[ "$(cat instar_test.rc)" = 1 ] || fail "instar-test ignored the stop hook (exit $(cat instar_test.rc))"
[ "$(vsize instar_test.qcow2)" = $((1 << 30)) ] || fail "instar-test changed the size"

# The hold hook reads one byte from the FIFO on fd 9 before the guest runs
# (the byte is already there, so neither binary waits).
mkfifo hold
for bin in instar instar_test; do
	"$qemu_img" create -q -f qcow2 "d-$bin.qcow2" 1G
	exec 9<>hold
	printf h >&9
	INSTAR_TEST_GUEST_HOLD_FD=9 strace -f -qq -e trace=read -o "$bin.trace" \
		"${!bin}" resize -q "d-$bin.qcow2" +1G >/dev/null 2>&1 || fail "$bin: resize failed under strace"
	exec 9>&-
done
! grep -Eq 'read\(9, "h", 1\) += 1' instar.trace || fail "instar read the hold FIFO: $(grep 'read(9' instar.trace)"
grep -Eq 'read\(9, "h", 1\) += 1' instar_test.trace || fail "instar-test did not read the hold FIFO: $(grep 'read(9' instar_test.trace)"

[ "$fails" -eq 0 ] && echo "ok: the hooks live in instar-test only"
exit $((fails > 0))
