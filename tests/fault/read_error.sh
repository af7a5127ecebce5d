#!/usr/bin/env bash
# tests/fault/read_error.sh INSTAR QEMU_IMG — a read of the image that fails
# (EIO injected with strace at each pread64 in turn) is reported with the
# operation and the errno, never as the guest's own error, and changes
# nothing: exit 1, the image byte-identical. At least one injected read must
# be one the guest asked for ("reading the image at offset N failed").
set -u
instar=$(realpath "$1")
qemu_img=$2
. "$(dirname "$0")/../compat/lib.sh"
require_kvm
require_strace
scratch_dir
cd "$T"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

for fmt in qcow2 vpc vmdk vhdx; do
	"$qemu_img" create -q -f "$fmt" img 64M
	"$(qemu_io_for "$qemu_img")" -f "$fmt" -c 'write -P 0x5a 0 1M' img >/dev/null
	sum=$(sha256sum <img)
	guest_reads=0
	for k in $(seq 1 40); do
		# errors are injected as a stand-in syscall: instar's seccomp filter
		# kills a process whose syscall strace turned into -1
		# -P: only reads of the image count (not the runtime's own)
		strace -f -qq -o /dev/null -P "$T/img" -e trace=pread64 \
			-e inject=pread64:error=EIO:syscall=getpid:when=$k \
			"$instar" resize -f "$fmt" img +64M >out 2>err
		rc=$?
		grep -q . err || break # the injection did not fire: past the last read
		[ "$rc" = 1 ] || fail "$fmt pread #$k: exit $rc, want 1"
		grep -q "Input/output error" err || fail "$fmt pread #$k: no errno in: $(cat err)"
		grep -q "reading the image at offset [0-9]* failed: Input/output error" err &&
			guest_reads=$((guest_reads + 1))
		[ "$(sha256sum <img)" = "$sum" ] || fail "$fmt pread #$k: the image changed"
	done
	[ "$guest_reads" -gt 0 ] || fail "$fmt: no injected read was one of the guest's"
	echo "ok $fmt: $((k - 1)) reads failed in turn, $guest_reads of them the guest's"
	rm -f img
done
exit $((fails > 0))
