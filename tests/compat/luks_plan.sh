#!/bin/bash
# tests/compat/luks_plan.sh — the LUKS planner against qemu-img 7.2 on copies
# of the same LUKS1 container: grows (exact, rounded up to a sector,
# falloc/full), shrinks and a no-op give byte-identical files to
# `qemu-img resize --object secret,... --image-opts driver=luks,...` (qemu
# needs the secret to open the image; the planner does not: its header and
# key material are not encrypted); qemu's refusals (preallocation metadata,
# a corrupt key slot, LUKS version 2, a payload over the header) carry
# qemu's message; the data still decrypts with the secret afterwards.
#   luks_plan.sh PLAN_APPLY QEMU_IMG
set -euo pipefail
. "$(dirname "$0")/lib.sh"

compat_init "$1" "$2"
OBJ=(--object secret,id=s0,data=instar-test)
opts() { # the --image-opts string of a LUKS file
	echo "driver=luks,key-secret=s0,file.filename=$1"
}
vsize() {
	qi_vsize luks "$1"
}
# reads FILE "QEMU-IO-COMMAND": the command through the secret prints nothing
# (qemu-io prints a verification failure or an error otherwise).
reads() {
	local out
	out=$("$QIO" "${OBJ[@]}" --image-opts -c "$2" "$(opts "$1")" 2>&1) || true
	[ -z "$out" ] || { echo "$out"; return 1; }
}
b() {
	numfmt --from=iec "$1"
}

# One container (a key derivation takes a while), copied for every case,
# with recognisable data at both ends of its 64 MiB payload.
qi_create_keyed "$T/base.luks" 64M -f luks "${OBJ[@]}" -o key-secret=s0,iter-time=10
"$QIO" "${OBJ[@]}" --image-opts -c "write -q -P 0xa5 0 1M" -c "write -q -P 0x5a 63M 1M" \
	"$(opts "$T/base.luks")"

# same NAME QEMU-FLAGS -- PLAN-APPLY-FLAGS -- SIZE
same() {
	local name=$1 size
	shift
	take_flags "$@"
	local qflags=("${FLAGS[@]}")
	take_flags "${REST[@]}"
	size=${REST[0]}
	cp "$T/$BASE" "$T/q.luks"
	cp "$T/$BASE" "$T/i.luks"
	"$QI" resize -q "${OBJ[@]}" "${qflags[@]}" --image-opts "$(opts "$T/q.luks")" "$size" ||
		fail "$name: qemu-img resize"
	out=$("$PA" "${FLAGS[@]}" luks "$T/i.luks" "$(b "${size#+}")") || fail "$name: $out"
	echo "$name: $out"
	[ -z "$ACTION" ] || [[ "$out" == *" action=$ACTION "* ]] || fail "$name: not $ACTION"
	cmp "$T/q.luks" "$T/i.luks" || fail "$name: files differ from qemu-img's"
	[ "$(vsize "$T/i.luks")" = "$(vsize "$T/q.luks")" ] || fail "$name: virtual size"
	reads "$T/i.luks" "read -q -P 0xa5 0 512" || fail "$name: the data at 0 does not decrypt"
	NCHECK=$((NCHECK + 1))
}
BASE=base.luks ACTION=
same grow -- -- 128M
same "grow by a byte (the length exactly)" -- -- $((64 * 1024 * 1024 + 1))
same falloc --preallocation=falloc -- --prealloc falloc -- 256M
same full --preallocation=full -- --prealloc full -- 256M
same shrink --shrink -- --shrink -- 32M
same "shrink to one sector" --shrink -- --shrink -- 512
same noop -- -- 64M
reads "$T/i.luks" "read -q -P 0x5a 63M 1M" || fail "noop: the data at 63M does not decrypt"

# A payload that is not whole sectors (qemu-img left it 64M + 1 bytes long,
# which reads as 64M + 512): asking for the size as it reads sets the length
# to whole sectors, a --shrink within the sector shortens it; the size, and
# so the action the host verifies, stays in both.
cp "$T/base.luks" "$T/odd.luks"
"$QI" resize -q "${OBJ[@]}" --image-opts "$(opts "$T/odd.luks")" $((64 * 1024 * 1024 + 1))
BASE=odd.luks ACTION=noop
same "the size as it reads" -- -- $((64 * 1024 * 1024 + 512))
same "--shrink within the last sector" --shrink -- --shrink -- $((64 * 1024 * 1024 + 300))
BASE=odd.luks ACTION=grow
same "grow from a partial sector" -- -- 65M
BASE=base.luks ACTION=

# Refusals: qemu-img's message (after "qemu-img: " and, for open-time
# checks, "Could not open '...': ") is the planner's detail; nothing changes.
refusal() { # refusal WHAT OFFSET BYTES QEMU-FLAGS -- PLAN-APPLY-FLAGS -- SIZE
	local what=$1 off=$2 bytes=$3 qerr out
	shift 3
	take_flags "$@"
	local qflags=("${FLAGS[@]}")
	take_flags "${REST[@]}"
	cp "$T/base.luks" "$T/r.luks"
	[ -z "$bytes" ] || printf "$bytes" | dd of="$T/r.luks" bs=1 seek="$off" conv=notrunc status=none
	cp "$T/r.luks" "$T/r.before"
	if "$QI" resize "${OBJ[@]}" "${qflags[@]}" --image-opts "$(opts "$T/r.luks")" "${REST[0]}" \
		2>"$T/q.err"; then
		fail "$what: qemu-img resized"
	fi
	qerr=$(sed -e 's/^qemu-img: //' -e "s/^Could not open '[^']*': //" "$T/q.err")
	out=$("$PA" "${FLAGS[@]}" luks "$T/r.luks" "$(b "${REST[0]}")") &&
		fail "$what: plan-apply succeeded"
	case "$out" in *"detail=$qerr") ;; *) fail "$what: qemu-img said '$qerr'; $out" ;; esac
	cmp -s "$T/r.luks" "$T/r.before" || fail "$what: image changed"
	NCHECK=$((NCHECK + 1))
}
refusal "preallocation metadata" 0 "" --preallocation=metadata -- --prealloc metadata -- 128M
# slot 3's stripes (u32 BE at 208 + 48 * 3 + 44)
refusal "slot stripes" $((208 + 48 * 3 + 46)) '\x0f\x9f' -- -- 128M
refusal "LUKS version 2" 7 '\x02' -- -- 128M
refusal "payload over the header" 106 '\x00\x07' -- -- 128M
refusal "iteration count" 164 '\x00\x00\x00\x00' -- -- 128M

# A crash before the length is set leaves the old image; after, the new.
crash_verify() {
	reads "$2" "read -q -P 0xa5 0 1M" || fail "$1: data lost after a crash"
}
cp "$T/base.luks" "$T/c.orig.luks"
crash_run luks luks c "$(b 128M)" --prealloc falloc
echo "luks: $NCHECK checks passed"
