#!/bin/bash
# tests/compat/qed_plan.sh — the QED planner against qemu-img 7.2 on copies of
# the same image: grows (default and small clusters, with data, up to the
# largest size the tables map) give the same header and the same data as
# `qemu-img resize` (byte-identical files); every refusal qemu's driver makes
# (shrink, preallocation, sizes) carries qemu's message; a crash run of the
# grow leaves the old or the new image. `instar resize` end to end as well
# (exit code, stdout, stderr against qemu-img's) where the guest can boot
# (tests/kvm_gate.sh: elsewhere those cases are left out and the run ends
# as a skip saying why).
#   qed_plan.sh PLAN_APPLY QEMU_IMG [INSTAR]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

INSTAR=${3:-}
compat_init "$1" "$2"

vsize() {
	qi_vsize qed "$1"
}

# plan-apply takes sizes in bytes.
b() {
	numfmt --from=iec "$1"
}

# grow NAME CREATE-OPTS OLD NEW: plan-apply on one copy, qemu-img resize on
# another: same exit, same file bytes, check clean, data kept.
grow() {
	local name=$1 opts=$2 old=$3 new=$4
	"$QI" create -q -f qed ${opts:+-o "$opts"} "$T/$name.orig.qed" "$old"
	qio_write qed "$T/$name.orig.qed" "0xa5 0 64k" "0x5a $(($(b "$old") / 2)) 4k"
	cp "$T/$name.orig.qed" "$T/$name.q.qed"
	cp "$T/$name.orig.qed" "$T/$name.i.qed"
	"$QI" resize -q -f qed "$T/$name.q.qed" "$new" || fail "$name: qemu-img resize"
	apply_ok "$name" "$(b "$new")" qed "$T/$name.i.qed" "$(b "$new")"
	cmp "$T/$name.q.qed" "$T/$name.i.qed" || fail "$name: files differ from qemu-img's"
	"$QI" check -q -f qed "$T/$name.i.qed" || fail "$name: qemu-img check"
	[ "$(vsize "$T/$name.i.qed")" = "$(b "$new")" ] || fail "$name: virtual size"
	if [ "$(b "$new")" -le $((1 << 40)) ]; then
		"$QI" convert -f qed -O raw "$T/$name.orig.qed" "$T/$name.exp.raw"
		truncate -s "$new" "$T/$name.exp.raw"
		"$QI" compare -q -f raw -F qed "$T/$name.exp.raw" "$T/$name.i.qed" ||
			fail "$name: data differs from the old data and zeros"
		rm -f "$T/$name.exp.raw"
	else # qemu-img 7.2 compare asserts on such sizes (its own resize's too)
		local out
		out=$("$QIO" -f qed -c "read -q -P 0xa5 0 64k" -c "read -q -P 0x5a $(($(b "$old") / 2)) 4k" \
			-c "read -q -P 0 $(($(b "$new") - (1 << 20))) 1M" "$T/$name.i.qed" 2>&1) || true
		[ -z "$out" ] || fail "$name: data differs from the old data and zeros: $out"
	fi
	NCHECK=$((NCHECK + 1))
}

grow default "" 1G 2G
grow plus-one-sector "" 1G $((1024 * 1024 * 1024 + 512))
grow small-clusters "cluster_size=4096,table_size=2" 64M 1G
# cluster 4 KiB, table 2 clusters: (2 * 4096 / 8)^2 * 4096 = 4 GiB at most
grow to-max "cluster_size=4096,table_size=2" 64M 4G
grow big-clusters "cluster_size=1M" 1G 10T

# Autoclear bits: qemu clears them on a writable open; so does the planner.
"$QI" create -q -f qed "$T/ac.qed" 1G
printf '\x01' | dd of="$T/ac.qed" bs=1 seek=32 conv=notrunc status=none
cp "$T/ac.qed" "$T/ac.q.qed"
"$QI" resize -q -f qed "$T/ac.q.qed" 2G
apply_ok autoclear $((2 << 30)) qed "$T/ac.qed" $((2 << 30))
cmp "$T/ac.q.qed" "$T/ac.qed" || fail "autoclear: files differ from qemu-img's"

# refusal WHAT ERROR QEMU-ARGS -- PLAN-APPLY-FLAGS: both refuse the size
# (last word: qemu-img gets it as written, plan-apply in bytes); the planner
# names ERROR and gives qemu's message as its detail — or, for a refused
# preallocation mode, no detail: the CLI prints "Unsupported preallocation
# mode 'MODE'" for that error itself (vmm/cli_resize.c), as qemu-img does.
# The image is unchanged.
refusal() {
	local what=$1 err=$2 qerr pout size want
	shift 2
	take_flags "$@"
	size=${REST[-1]}
	cp "$T/r.qed" "$T/r.before"
	if "$QI" resize -f qed "${FLAGS[@]}" "$T/r.qed" "$size" 2>"$T/q.err"; then
		fail "$what: qemu-img resized"
	fi
	qerr=$(sed 's/^qemu-img: //' "$T/q.err")
	pout=$("$PA" "${REST[@]:0:${#REST[@]}-1}" qed "$T/r.qed" "$(b "$size")") &&
		fail "$what: plan-apply succeeded"
	want=$qerr
	if [ "$err" = PREALLOCATION_UNSUPPORTED ]; then
		case "$qerr" in "Unsupported preallocation mode '"*"'") ;; *) fail "$what: qemu-img: $qerr" ;; esac
		want=
	fi
	case "$pout" in
	"error=$err "*"detail=$want") ;;
	*) fail "$what: qemu-img said '$qerr', plan-apply: $pout" ;;
	esac
	cmp -s "$T/r.qed" "$T/r.before" || fail "$what: image changed"
	NCHECK=$((NCHECK + 1))
}
"$QI" create -q -f qed "$T/r.qed" 1G
refusal shrink UNSUPPORTED_SHRINK --shrink -- --shrink 512M
refusal falloc PREALLOCATION_UNSUPPORTED --preallocation=falloc -- --prealloc falloc 2G
refusal full PREALLOCATION_UNSUPPORTED --preallocation=full -- --prealloc full 2G
refusal metadata PREALLOCATION_UNSUPPORTED --preallocation=metadata -- --prealloc metadata 2G
refusal "not a sector multiple" INVALID_NEW_SIZE -- 2147483649
refusal "past the tables" INVALID_NEW_SIZE -- 65T
refusal "past the tables, falloc" PREALLOCATION_UNSUPPORTED --preallocation=falloc -- --prealloc falloc 65T

# Open-time refusals, worded as qemu's "Could not open" details.
opened() {
	local what=$1 off=$2 bytes=$3 want=$4 out
	"$QI" create -q -f qed "$T/o.qed" 1G
	printf "$bytes" | dd of="$T/o.qed" bs=1 seek="$off" conv=notrunc status=none
	if "$QI" resize -f qed "$T/o.qed" 2G 2>"$T/q.err"; then fail "$what: qemu-img resized"; fi
	grep -qF "$want" "$T/q.err" || fail "$what: qemu-img said $(cat "$T/q.err")"
	out=$("$PA" qed "$T/o.qed" $((2 << 30))) && fail "$what: plan-apply succeeded"
	case "$out" in *"detail=$want") ;; *) fail "$what: $out" ;; esac
	NCHECK=$((NCHECK + 1))
}
opened "unknown feature" 16 '\x10' "Unsupported QED features: 10"
opened "cluster size" 4 '\x00\x30' "QED cluster size is invalid"
opened "table size" 8 '\x03' "QED table size is invalid"
opened "image size" 48 '\x01' "QED image size is invalid"
opened "table offset" 40 '\x01' "QED table offset is invalid"
"$QI" create -q -f qed -o table_size=1 "$T/t1.qed" 1G
out=$("$PA" qed "$T/t1.qed" $((2 << 30))) && fail "table_size=1: plan-apply succeeded"
case "$out" in *"detail=QED table offset is invalid") ;; *) fail "table_size=1: $out" ;; esac

# A crash after any op of the grow: the old or the new image.
crash_verify() {
	"$QI" check -q -f qed "$2" || fail "$1: check after a crash"
}
"$QI" create -q -f qed "$T/c.orig.qed" 1G
crash_run qed qed c $((2 << 30))

# A backing file (the host opens it and gives its length: --backing-len).
# qemu 7.2 grows the image when the backing file is not longer than it (the
# grown range reads zeros past the backing file's end): the same bytes as
# qemu-img's. A longer one: qemu's block layer asks for zero writes the QED
# driver does not take; both refuse with its words, before the driver's own
# checks (preallocation, size). (A header whose name is not the one the host
# opened is refused: unit qed_plan.)
backing() { # WHAT BASE-SIZE OLD NEW [qemu-img flags] -- [plan-apply flags]
	local what=$1 bsize=$2 old=$3 new=$4 qrc=0 prc=0 pout blen
	shift 4
	take_flags "$@"
	"$QI" create -q -f raw "$T/base.raw" "$bsize"
	qio_write raw "$T/base.raw" "0x77 0 $bsize"
	"$QI" create -q -f qed -b base.raw -F raw "$T/bk.orig.qed" "$old"
	qio_write qed "$T/bk.orig.qed" "0xa5 0 4k"
	cp "$T/bk.orig.qed" "$T/bk.q.qed"
	cp "$T/bk.orig.qed" "$T/bk.i.qed"
	"$QI" resize -f qed "${FLAGS[@]}" "$T/bk.q.qed" "$new" >/dev/null 2>"$T/q.err" || qrc=$?
	blen=$(((($(stat -c %s "$T/base.raw") + 511) / 512) * 512))
	pout=$("$PA" --backing-len "$blen" "${REST[@]}" qed "$T/bk.i.qed" "$(b "$new")") || prc=$?
	echo "$what: $pout"
	cmp -s "$T/bk.q.qed" "$T/bk.i.qed" || fail "$what: files differ from qemu-img's"
	if [ "$qrc" = 0 ]; then
		[ "$prc" = 0 ] || fail "$what: qemu-img grew it, plan-apply: $pout"
		"$QI" check -q -f qed "$T/bk.i.qed" || fail "$what: qemu-img check"
		# the old image's data (its backing file's bytes where it has
		# none) and zeros past the old end
		"$QI" convert -f qed -O raw "$T/bk.orig.qed" "$T/bk.exp.raw"
		truncate -s "$new" "$T/bk.exp.raw"
		"$QI" compare -q -f raw -F qed "$T/bk.exp.raw" "$T/bk.i.qed" ||
			fail "$what: data differs from the old data and zeros"
	else
		[ "$prc" != 0 ] || fail "$what: qemu-img refused ($(cat "$T/q.err")), plan-apply grew it"
		case "$pout" in
		*"detail=$(sed 's/^qemu-img: //' "$T/q.err")") ;;
		*) fail "$what: qemu-img said '$(cat "$T/q.err")', plan-apply: $pout" ;;
		esac
		cmp -s "$T/bk.orig.qed" "$T/bk.i.qed" || fail "$what: image changed"
	fi
	NCHECK=$((NCHECK + 1))
}
backing "backing shorter" 512k 1M 2M --
backing "backing as long" 1M 1M 3M --
backing "backing not a sector multiple" $((1024 * 1024 - 100)) 1M 2M --
backing "backing longer" 2M 1M 3M --
backing "backing longer, preallocation" 2M 1M 3M --preallocation=full -- --prealloc full
backing "backing longer, bad size" 2M 1M 3145729 --
backing "backing longer, shrink" 2M 1M 512K --shrink -- --shrink
"$QI" create -q -f qed "$T/n.qed" 1G
printf '\x02' | dd of="$T/n.qed" bs=1 seek=16 conv=notrunc status=none
refused "needs check" REQUIRES_CHECK qed "$T/n.qed" $((2 << 30))

# End to end through instar where the guest can boot here.
if [ -n "$INSTAR" ] && kvm_usable; then
	for args in "2G" "--shrink 512M" "--preallocation=full 2G" "2147483649" "+1G"; do
		"$QI" create -q -f qed "$T/e.q.qed" 1G
		qio_write qed "$T/e.q.qed" "0x33 0 1M"
		cp "$T/e.q.qed" "$T/e.i.qed"
		# shellcheck disable=SC2086
		qrc=0 && "$QI" resize $args "$T/e.q.qed" >"$T/q.out" 2>"$T/q.err" || qrc=$?
		irc=0 && "$INSTAR" resize $args "$T/e.i.qed" >"$T/i.out" 2>"$T/i.err" || irc=$?
		sed -i 's/^qemu-img: /instar: /' "$T/q.err"
		[ "$qrc" = "$irc" ] || fail "instar resize $args: exit $irc, qemu-img $qrc"
		cmp -s "$T/q.out" "$T/i.out" || fail "instar resize $args: stdout"
		cmp -s "$T/q.err" "$T/i.err" || fail "instar resize $args: stderr $(cat "$T/i.err")"
		cmp "$T/e.q.qed" "$T/e.i.qed" || fail "instar resize $args: files differ"
		NCHECK=$((NCHECK + 1))
	done
	# With a backing file, which the host opens (qemu-img's messages when
	# it is missing or longer than the image); the backing names are
	# relative to the image's directory.
	mkdir -p "$T/e2e"
	# BACKING-SIZE (- for none) OLD NEW BACKING-FORMAT (probed: raw, its
	# format not in the header) [FLAGS]
	for c in "512k 1M +1M raw" "1M 1M 3M raw" "2M 1M +1M raw" "2M 1M 512k raw --shrink" \
		"512k 1M +1M probed" "- 1M +1M raw" "512k 1M +1M qcow2" "2M 1M +1M qcow2"; do
		read -r bsize old size fmt flags <<<"$c"
		rm -f "$T/e2e"/*
		case $bsize:$fmt in
		-:*) opts=(-u -b missing.raw -F raw) ;;
		*:probed) opts=(-b base -F raw) && fmt=raw ;;
		*) opts=(-b base -F "$fmt") ;;
		esac
		if [ "$bsize" != - ]; then
			"$QI" create -q -f "$fmt" "$T/e2e/base" "$bsize"
			qio_write "$fmt" "$T/e2e/base" "0x77 0 $bsize"
		fi
		"$QI" create -q -f qed "${opts[@]}" "$T/e2e/e.q.qed" "$old"
		# probed: features = backing file only (qemu-img create writes
		# bit 2, "backing is raw", with -F raw and refuses no -F)
		[[ $c != *probed* ]] ||
			printf '\x01' | dd of="$T/e2e/e.q.qed" bs=1 seek=16 conv=notrunc status=none
		cp "$T/e2e/e.q.qed" "$T/e2e/e.i.qed"
		# shellcheck disable=SC2086 # flags: words
		qrc=0 && "$QI" resize $flags "$T/e2e/e.q.qed" "$size" >"$T/q.out" 2>"$T/q.err" || qrc=$?
		# shellcheck disable=SC2086
		irc=0 && "$INSTAR" resize $flags "$T/e2e/e.i.qed" "$size" >"$T/i.out" 2>"$T/i.err" || irc=$?
		sed -i 's/^qemu-img: /instar: /; s/e\.q\.qed/e.i.qed/g' "$T/q.err"
		[ "$qrc" = "$irc" ] || fail "backing $c: exit $irc, qemu-img $qrc"
		cmp -s "$T/q.out" "$T/i.out" || fail "backing $c: stdout"
		cmp -s "$T/q.err" "$T/i.err" || fail "backing $c: stderr $(diff "$T/q.err" "$T/i.err")"
		cmp "$T/e2e/e.q.qed" "$T/e2e/e.i.qed" || fail "backing $c: files differ"
		echo "backing $c: exit $irc $(cat "$T/i.out" "$T/i.err")"
		NCHECK=$((NCHECK + 1))
	done
	# instarfs's policy (--confine): a backing file outside the image's
	# directory is not opened; nothing changes.
	"$QI" create -q -f raw "$T/outside.raw" 512k
	"$QI" create -q -f qed -b ../outside.raw -F raw "$T/e2e/c.qed" 1M
	cp "$T/e2e/c.qed" "$T/e2e/c.before"
	irc=0 && "$INSTAR" resize --confine "$T/e2e/c.qed" +1M 2>"$T/i.err" || irc=$?
	[ "$irc" = 1 ] && grep -q "instar opens backing files only beneath the image's directory" "$T/i.err" ||
		fail "--confine: exit $irc: $(cat "$T/i.err")"
	cmp -s "$T/e2e/c.qed" "$T/e2e/c.before" || fail "--confine: the image changed"
	NCHECK=$((NCHECK + 1))
else
	GUEST_SKIPPED=14 # tests/kvm_gate.sh: reported last
fi
echo "qed: $NCHECK checks passed"
guest_skips_end
