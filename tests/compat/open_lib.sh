# tests/compat/open_lib.sh — the cases of qed_open.sh and vdi_open.sh:
# damage a header field of a copy of an image qemu-img made, then compare
# qemu-img's open-time refusal with the planner's (plan-apply) and with
# instar's, end to end. Sourced after lib.sh; the script calls open_init
# (lib.sh: PA, QI, INSTAR, the counters, fail) and sets FMT; the image is
# i.img.

# w32 OFF VAL / w64 OFF VAL: little-endian field writes into i.img
wle() { # OFF BYTES VAL
	local i v=$3 esc=""
	for ((i = 0; i < $2; i++)); do
		esc+=$(printf '\\x%02x' $((v & 0xff)))
		v=$((v >> 8))
	done
	printf "$esc" | dd of=i.img bs=1 seek=$(($1)) conv=notrunc status=none
}
w32() { wle "$1" 4 "$2"; }
w64() { wle "$1" 8 "$2"; }

# mk [CREATE_OPTS]: i.img, 64 MiB, made by qemu-img create -f FMT
mk() {
	rm -f i.img
	"$QI" create -q -f "$FMT" ${1:+-o "$1"} i.img 64M
}

# same NAME [PROBED]: qemu-img fails to open the damaged image; plan-apply
# fails with the same DETAIL, marked as a failed open (open=1: the CLI
# prints "Could not open 'F': " before it), the file unchanged; instar
# resize -f FMT prints qemu-img's stderr and exit code exactly (the host's
# probe says these before any guest, so this runs on every machine). With
# PROBED also without -f, against qemu-img without -f.
same() {
	CASE=$1
	local qrc=0 prc=0 irc=0 want det args
	cases=$((cases + 1))
	cp i.img o.img
	cp i.img q.img
	"$QI" resize -f "$FMT" q.img 2G >q.out 2>q.err || qrc=$?
	want=$(sed -n "s/^qemu-img: Could not open 'q.img': //p" q.err)
	if [ "$qrc" != 1 ] || [ -z "$want" ]; then
		fail "qemu-img was expected to fail its open: rc=$qrc $(cat q.err)"
		return
	fi
	"$PA" "$FMT" o.img $((2 << 30)) >pa.out || prc=$?
	det=$(sed -n 's/.* open=1 detail=//p' pa.out)
	[ "$prc" = 2 ] || fail "plan-apply rc=$prc: $(cat pa.out)"
	[ "$det" = "$want" ] || fail "detail: qemu '$want', plan-apply: $(cat pa.out)"
	cmp -s i.img o.img || fail "plan-apply changed the image"
	for args in "-f $FMT" ${2:+""}; do
		cp i.img q.img
		qrc=0
		"$QI" resize $args q.img 2G >q.out 2>q.err || qrc=$?
		cp i.img q.img
		irc=0
		"$INSTAR" resize $args q.img 2G >i.out 2>i.err || irc=$?
		e2e=$((e2e + 1))
		sed 's/^qemu-img: /instar: /' q.err >q.errn
		[ "$irc" = "$qrc" ] && cmp -s q.errn i.err && cmp -s q.out i.out ||
			fail "instar ${args:-(probed)} rc=$irc (qemu-img $qrc): $(diff q.errn i.err)"
		cmp -s i.img q.img || fail "instar changed the image"
	done
}

# beyond NAME ERROR OPEN DETAIL CLI_LINE: qemu opens the image (qed:
# resizes it; vdi: says its driver cannot resize), instar refuses it:
# plan-apply fails with ERROR and DETAIL, as a failed open when OPEN is 1
# (the header damaged) and not when it is 0 (an image instar does not
# resize; docs/design.md §3.1), the file unchanged; end to end where the
# guest boots, instar resize -f FMT fails with exit code 1 and CLI_LINE,
# the file unchanged.
beyond() {
	CASE=$1
	local prc=0 irc=0
	cases=$((cases + 1))
	cp i.img o.img
	"$PA" "$FMT" o.img $((2 << 30)) >pa.out || prc=$?
	[ "$prc" = 2 ] && grep -q "^error=$2 .* open=$3 detail=$4\$" pa.out ||
		fail "want $2 open=$3 '$4', plan-apply rc=$prc: $(cat pa.out)"
	cmp -s i.img o.img || fail "plan-apply changed the image"
	cp i.img q.img
	"$QI" resize -f "$FMT" q.img 2G >q.out 2>q.err
	case "$FMT:$?:$(cat q.err)" in
	qed:0:) ;;
	vdi:1:"qemu-img: Image format driver does not support resize") ;;
	*) fail "qemu-img was expected to open it: $(cat q.err)" ;;
	esac
	cp i.img q.img
	"$INSTAR" resize -f "$FMT" q.img 2G >i.out 2>i.err || irc=$?
	guest_left_out i.err && return
	e2e=$((e2e + 1))
	[ "$irc" = 1 ] && [ "$(cat i.err)" = "instar: $5" ] ||
		fail "instar rc=$irc, want 'instar: $5': $(cat i.err)"
	cmp -s i.img q.img || fail "instar changed the image"
}

# open_end: the summary (as qcow2_open.sh: the cases that need the guest
# are counted and said where it cannot boot; the rest still judge the run)
open_end() {
	echo "$FMT open cases: $cases, $fails failed; end to end: $e2e compared, $GUEST_SKIPPED left out"
	[ "$GUEST_SKIPPED" = 0 ] || echo "note: $GUEST_SKIPPED end-to-end cases left out: $(kvm_why)"
	[ "$fails" = 0 ]
}
