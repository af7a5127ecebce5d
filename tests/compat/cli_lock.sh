#!/usr/bin/env bash
# tests/compat/cli_lock.sh INSTAR QEMU_IMG — image locks (docs/qemu.md §4): with
# another process holding OFD locks on given bytes, `instar resize` must fail
# (or succeed) exactly as `qemu-img resize`; and while instar holds its
# locks, qemu-img must be refused.
set -u
. "$(dirname "$0")/../kvm_gate.sh"
instar=$(realpath "$1")
qemu_img=$2
tmp=$(mktemp -d)
holder_pid=
cleanup() {
	[ -n "$holder_pid" ] && kill "$holder_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fails=0

cat >"$tmp/holdlock.py" <<'EOF'
# holdlock.py FILE r100 w150 ...: hold OFD locks until killed.
import fcntl, os, struct, sys, time
F_OFD_SETLK = 37
fd = os.open(sys.argv[1], os.O_RDWR)
for spec in sys.argv[2:]:
    kind = fcntl.F_RDLCK if spec[0] == 'r' else fcntl.F_WRLCK
    fl = struct.pack('hh4xqqi4x', kind, os.SEEK_SET, int(spec[1:]), 1, 0)
    fcntl.fcntl(fd, F_OFD_SETLK, fl)
print('ready', flush=True)
time.sleep(3600)
EOF

# hold FILE SPEC...: a process holding those OFD locks, once it says so (its
# "ready" line on fd 8: an event, however slow the machine).
hold() {
	local file=$1 line=
	shift
	exec 8< <(exec python3 "$tmp/holdlock.py" "$file" "$@")
	holder_pid=$!
	read -r line <&8
	[ "$line" = ready ] || { echo "lock holder did not start: '$line'"; exit 1; }
}

release() {
	kill "$holder_pid" 2>/dev/null
	wait "$holder_pid" 2>/dev/null
	exec 8<&-
	holder_pid=
}

norm() { sed -e 's/^qemu-img: /instar: /'; }

# check FMT BYTES...: same outcome as qemu-img with BYTES held elsewhere.
check() {
	local fmt=$1
	shift
	rm -f "$tmp/L"
	"$qemu_img" create -q -f "$fmt" "$tmp/L" 64M
	hold "$tmp/L" "$@"
	(cd "$tmp" && "$qemu_img" resize -f "$fmt" L 65M >q.out 2>q.err)
	local qrc=$?
	# qemu-img may have succeeded: undo so instar sees the same image
	(cd "$tmp" && "$qemu_img" resize -U -f "$fmt" --shrink L 64M >/dev/null 2>&1) || true
	(cd "$tmp" && "$instar" resize -f "$fmt" L 65M >i.out 2>i.err)
	local irc=$?
	release
	guest_left_out "$tmp/i.err" && return
	norm <"$tmp/q.err" >"$tmp/q.errn"
	if [ "$qrc" != "$irc" ] || ! cmp -s "$tmp/q.out" "$tmp/i.out" ||
	   ! cmp -s "$tmp/q.errn" "$tmp/i.err"; then
		fails=$((fails + 1))
		echo "FAIL $fmt held $*: rc $qrc vs $irc"
		diff "$tmp/q.errn" "$tmp/i.err"
	fi
}

for fmt in raw qcow2; do
	check "$fmt" r100 r101 r103 r201 r203
	check "$fmt" r200
	check "$fmt" r201
	check "$fmt" r203
	check "$fmt" r202 r204 w150 w0
	check "$fmt" r100
	check "$fmt" r102
	check "$fmt" r101
	check "$fmt" r103
	check "$fmt" w100
done

# While instar holds its locks (a slow full preallocation keeps a raw resize
# busy; the test hook holds a qcow2 one before its guest starts),
# /proc/locks must show qemu's bytes on the image, and for qcow2 (which
# unshares write) qemu-img info without -U must be refused. A raw image is
# shared with readers, as qemu does it.
slow_check() {
	local fmt=$1 want=$2 grow=$3 f="$tmp/S.$1" ino bytes seen= slow held
	rm -f "$f"
	"$qemu_img" create -q -f "$fmt" "$f" 1M
	ino=$(stat -c %i "$f")
	# hold the run (test-only hook) until the locks have been looked at; one
	# byte into the FIFO on fd 9 lets it go
	rm -f "$tmp/hold"
	mkfifo "$tmp/hold"
	exec 9<>"$tmp/hold"
	INSTAR_TEST_GUEST_HOLD_FD=9 "$instar" resize --timeout 300 -f "$fmt" --preallocation=full "$f" +$grow >/dev/null 2>"$tmp/slow.err" &
	slow=$!
	# Where the guest runs, instar stops in read(9) with its locks taken:
	# look once it is there. A raw resize has no guest (and no hold): look
	# until the locks show or it ends. meson's timeout bounds both waits.
	while :; do
		held=
		case $(cat "/proc/$slow/syscall" 2>/dev/null) in "0 0x9 "*) held=1 ;; esac
		bytes=$(grep ":$ino " /proc/locks | awk '{print $7 "-" $8}' | sort -n | tr '\n' ' ')
		if [ "$bytes" = "$want" ]; then
			seen=1
			break
		fi
		[ -n "$held" ] && break
		kill -0 "$slow" 2>/dev/null || break
		sleep 0.01
	done
	if [ -z "$seen" ]; then
		fails=$((fails + 1))
		echo "FAIL $fmt locks while resizing: '$bytes' (want '$want')"
	elif [ "$fmt" = qcow2 ]; then
		if "$qemu_img" info "$f" >/dev/null 2>"$tmp/info.err"; then
			kill -0 "$slow" 2>/dev/null &&
				{ fails=$((fails + 1)); echo "FAIL qemu-img info got in"; }
		else
			grep -q 'Failed to get shared "write" lock' "$tmp/info.err" ||
				{ fails=$((fails + 1)); echo "FAIL info said:"; cat "$tmp/info.err"; }
		fi
	fi
	printf go >&9
	exec 9>&-
	wait "$slow" || { fails=$((fails + 1)); echo "FAIL slow $fmt resize"; cat "$tmp/slow.err"; }
	if grep -q ":$ino " /proc/locks; then
		fails=$((fails + 1))
		echo "FAIL $fmt locks left behind"
	fi
	rm -f "$f"
}
slow_check raw "100-101 103-103 " 3G
# qcow2 holds its locks around the guest's run: only where the guest boots.
if kvm_usable; then
	slow_check qcow2 "100-101 103-103 201-201 203-203 " 256M
else
	GUEST_SKIPPED=$((GUEST_SKIPPED + 1))
fi

echo "lock tests: $fails failed"
[ "$fails" = 0 ] || exit 1
guest_skips_end
