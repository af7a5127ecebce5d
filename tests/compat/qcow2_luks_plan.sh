#!/bin/bash
# tests/compat/qcow2_luks_plan.sh — the qcow2 planner on encrypted qcow2
# (encrypt.format=luks, and the old aes) against qemu-img 7.2 on copies of
# the same image. qemu-img resizes its copy with the secret (--object and
# --image-opts: it needs the key to open the image), plan-apply without it
# (the header, the tables and the LUKS header are not encrypted). Then:
# qemu-img check (with the secret) clean on ours, the same virtual size,
# qemu-img compare (both opened with the secret, so the data decrypts)
# identical, and qemu-io reads of the written patterns. Preallocation is
# refused (qemu-img's new clusters read as noise: checked here), and a
# malformed encryption header extension or LUKS header carries qemu's
# message. Crash order: every prefix of a grow and a shrink leaves the old
# or the new image, the data still decrypting.
#   qcow2_luks_plan.sh PLAN_APPLY QEMU_IMG
set -euo pipefail
. "$(dirname "$0")/lib.sh"

compat_init "$1" "$2"
OBJ=(--object secret,id=s0,data=instar-test)
opts() { # the --image-opts string of an encrypted qcow2 file
	echo "driver=qcow2,encrypt.key-secret=s0,file.filename=$1"
}
vsize() {
	qi_vsize qcow2 "$1"
}
# reads FILE "QEMU-IO-COMMAND"...: the commands through the secret print
# nothing (qemu-io prints a verification failure or an error otherwise).
reads() {
	local f=$1 out args=()
	shift
	for c in "$@"; do
		args+=(-c "$c")
	done
	out=$("$QIO" "${OBJ[@]}" --image-opts "${args[@]}" "$(opts "$f")" 2>&1) || true
	[ -z "$out" ] || {
		echo "$out"
		return 1
	}
}
check_clean() { # check_clean FILE [allow-leaks]
	local rc=0 out
	out=$("$QI" check "${OBJ[@]}" --image-opts "$(opts "$1")" 2>&1) || rc=$?
	[ $rc -eq 0 ] || { [ "${2:-}" = leaks ] && [ $rc -eq 3 ]; } ||
		fail "qemu-img check rc=$rc: $out"
}
b() {
	numfmt --from=iec "$1"
}

# One image per encryption format (a key derivation takes a while), copied
# for every case: patterns at both ends of 64 MiB and across 33 MiB (a cut
# at 33M+512 goes through an allocated cluster).
for fmt in luks aes; do
	o=encrypt.format=$fmt,encrypt.key-secret=s0
	[ $fmt = aes ] || o=$o,encrypt.iter-time=10
	qi_create_keyed "$T/base.$fmt" 64M -f qcow2 "${OBJ[@]}" -o "$o"
	"$QIO" "${OBJ[@]}" --image-opts -c "write -q -P 0xa5 0 1M" -c "write -q -P 0x77 32M 2M" \
		-c "write -q -P 0x5a 63M 1M" "$(opts "$T/base.$fmt")"
done

# same FMT NAME SIZE [SIZE2]: qemu-img (with --shrink) and plan-apply resize
# copies of base.FMT to SIZE, then to SIZE2 when given.
same() {
	local fmt=$1 name="$1: $2" s out
	shift 2
	cp "$T/base.$fmt" "$T/q.qcow2"
	cp "$T/base.$fmt" "$T/i.qcow2"
	for s in "$@"; do
		"$QI" resize -q "${OBJ[@]}" --shrink --image-opts "$(opts "$T/q.qcow2")" "$s" ||
			fail "$name: qemu-img resize $s"
		out=$("$PA" --shrink qcow2 "$T/i.qcow2" "$(b "$s")") || fail "$name: $out"
		echo "$name: $out"
	done
	check_clean "$T/i.qcow2"
	[ "$(vsize "$T/i.qcow2")" = "$(vsize "$T/q.qcow2")" ] || fail "$name: virtual size"
	out=$("$QI" compare "${OBJ[@]}" --image-opts "$(opts "$T/q.qcow2")" \
		"$(opts "$T/i.qcow2")" 2>&1) || fail "$name: qemu-img compare: $out"
	reads "$T/i.qcow2" "read -q -P 0xa5 0 1M" || fail "$name: the data at 0 does not decrypt"
	NCHECK=$((NCHECK + 1))
}
for fmt in luks aes; do
	same $fmt grow 128M
	reads "$T/i.qcow2" "read -q -P 0x77 32M 2M" "read -q -P 0x5a 63M 1M" "read -q -P 0 64M 64M" ||
		fail "$fmt: grow: the data does not read back"
	same $fmt "grow, the L1 table moves" 1G
	same $fmt "grow to a size inside a cluster" 100000256
	same $fmt shrink 32M
	# the cut cluster's tail is left as qemu leaves it: a grow shows it again
	same $fmt "shrink inside a cluster, grow" $((33 * M + 512)) 64M
	reads "$T/i.qcow2" "read -q -P 0x77 32M $((M + 64 * 1024))" \
		"read -q -P 0 $((33 * M + 64 * 1024)) $((31 * M - 64 * 1024))" ||
		fail "$fmt: shrink, grow: not the kept data, the old tail, then zeros"
	same $fmt noop 64M
done

# Preallocation: qemu-img maps plaintext zeros (they decrypt to noise); the
# planner refuses, nothing changes.
for fmt in luks aes; do
	for mode in metadata falloc full; do
		cp "$T/base.$fmt" "$T/q.qcow2"
		cp "$T/base.$fmt" "$T/r.qcow2"
		"$QI" resize -q "${OBJ[@]}" --preallocation=$mode \
			--image-opts "$(opts "$T/q.qcow2")" 128M || fail "$fmt $mode: qemu-img resize"
		! reads "$T/q.qcow2" "read -q -P 0 64M 64M" >/dev/null ||
			fail "$fmt $mode: qemu-img's new clusters read as zeros (the refusal's reason is gone)"
		out=$("$PA" --prealloc $mode qcow2 "$T/r.qcow2" "$(b 128M)") &&
			fail "$fmt $mode: plan-apply succeeded"
		case "$out" in
		*error=PREALLOCATION_UNSUPPORTED*"needs the key"*) ;;
		*) fail "$fmt $mode: $out" ;;
		esac
		cmp -s "$T/r.qcow2" "$T/base.$fmt" || fail "$fmt $mode: image changed"
		NCHECK=$((NCHECK + 1))
	done
done

# Refusals: qemu-img's message (after "qemu-img: Could not open '...': ") is
# the planner's detail; nothing changes. The encryption header extension
# is the first one, at 112; the LUKS header at the offset it names.
fde=$(od -An -tx1 -j 120 -N 8 "$T/base.luks" | tr -d ' \n')
fde=$((16#$fde))
refusal() { # refusal WHAT OFFSET BYTES
	local what=$1 qerr out
	cp "$T/base.luks" "$T/r.qcow2"
	printf "$3" | dd of="$T/r.qcow2" bs=1 seek="$2" conv=notrunc status=none
	cp "$T/r.qcow2" "$T/r.before"
	if "$QI" resize "${OBJ[@]}" --image-opts "$(opts "$T/r.qcow2")" 128M 2>"$T/q.err"; then
		fail "$what: qemu-img resized"
	fi
	qerr=$(sed -e 's/^qemu-img: //' -e "s/^Could not open '[^']*': //" "$T/q.err")
	out=$("$PA" qcow2 "$T/r.qcow2" "$(b 128M)") && fail "$what: plan-apply succeeded"
	case "$out" in *"detail=$qerr") ;; *) fail "$what: qemu-img said '$qerr'; $out" ;; esac
	cmp -s "$T/r.qcow2" "$T/r.before" || fail "$what: image changed"
	echo "$what: $qerr"
	NCHECK=$((NCHECK + 1))
}
refusal "encryption method 3" 35 '\x03'
refusal "extension size" 119 '\x08'
refusal "unaligned header offset" 126 '\x02'
refusal "extension with aes" 35 '\x01'
refusal "LUKS magic" "$fde" 'XXXX'
# slot 3's stripes (u32 BE at 208 + 48 * 3 + 44 in the LUKS header)
refusal "slot stripes" $((fde + 208 + 48 * 3 + 46)) '\x0f\x9f'
refusal "LUKS version 2" $((fde + 7)) '\x02'

# A crash after K ops leaves the old image or the new one, leaks at most.
crash_verify() {
	check_clean "$2" leaks
	reads "$2" "read -q -P 0xa5 0 1M" "read -q -P 0x77 32M 1M" ||
		fail "$1: data lost after a crash"
}
for fmt in luks aes; do
	cp "$T/base.$fmt" "$T/g$fmt.orig.qcow2"
	crash_run qcow2 qcow2 "g$fmt" "$(b 1G)"
	cp "$T/base.$fmt" "$T/s$fmt.orig.qcow2"
	crash_run qcow2 qcow2 "s$fmt" "$(b 33M)" --shrink
done
echo "qcow2 encrypted: $NCHECK checks passed"
