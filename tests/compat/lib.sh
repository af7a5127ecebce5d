# tests/compat/lib.sh — helpers shared by the planner compat scripts
# (vhd_plan.sh, vhdx_plan.sh, vmdk_plan.sh, qcow2_plan.sh, qcow2_luks_plan.sh
# and others) and the CLI scripts that share them (cli_staged.sh,
# cli_external.sh); sourced, not run:
#   . "$(dirname "$0")/lib.sh"
# The caller sets PA (plan-apply), QI (qemu-img), QIO (qemu-io) and T, most
# simply with compat_init, and defines vsize IMG before it uses crash_run.

M=$((1 << 20))
G=$((1 << 30))
NCHECK=0

# qemu_io_for QEMU_IMG: the qemu-io next to QEMU_IMG, else the one on PATH.
qemu_io_for() {
	local qio
	qio=$(dirname "$(command -v "$1")")/qemu-io
	[ -x "$qio" ] || qio=qemu-io
	echo "$qio"
}

# require_kvm: tests that boot the guest follow tests/kvm_gate.sh's rule
# (skip, saying why, on a machine without /dev/kvm).
. "$(dirname "${BASH_SOURCE[0]}")/../kvm_gate.sh"
require_kvm() {
	kvm_gate
}

# lacking WHAT: a part of a test needs a tool (WHAT) this machine lacks.
# Under CI that is a failure (scripts/deps.sh installs every tool); elsewhere
# the part is left out, and the output says so.
lacking() {
	if [ -n "${CI:-}" ]; then
		echo "FAIL: $1 missing under CI" >&2
		exit 1
	fi
	echo "note: $1 missing: the checks that need it are left out"
}

# guest_part_left_out WHAT: the guest cannot boot here (tests/kvm_gate.sh's
# rule): the part WHAT of a mixed test is left out and counted; the test ends
# with guest_skips_end, which turns such a run into a skip saying why.
guest_part_left_out() {
	GUEST_SKIPPED=$((GUEST_SKIPPED + 1))
	echo "note: $1 left out: $(kvm_why)"
}

# e2e_or_left_out WHAT: E2E=1 when the guest can boot here (the suite also
# runs `instar resize` end to end), else E2E empty and WHAT counted as left
# out (guest_part_left_out).
e2e_or_left_out() {
	E2E=
	if kvm_usable; then
		E2E=1
		echo "end to end: ${INSTAR:-instar}"
	else
		guest_part_left_out "$1"
	fi
}

# libyal_check FMT IMG SIZE EXPRAW [LIMIT]: the second oracle: libyal's reader
# (libyal_read.py) opens IMG at SIZE and reads EXPRAW's bytes (what qemu
# read). Needs Debian's python3-libvhdi, -libvmdk, -libqcow (scripts/deps.sh);
# without them: lacking.
LIBYAL_PY=
LIBYAL_READ=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/libyal_read.py
libyal_check() {
	local out p
	if [ -z "$LIBYAL_PY" ]; then
		LIBYAL_PY=none
		for p in /usr/bin/python3 python3; do
			if "$p" -c 'import pyvhdi, pyvmdk, pyqcow' 2>/dev/null; then
				LIBYAL_PY=$p
				break
			fi
		done
		[ "$LIBYAL_PY" != none ] || lacking "python3-libvhdi/-libvmdk/-libqcow (the libyal reader)"
	fi
	[ "$LIBYAL_PY" != none ] || return 0
	out=$("$LIBYAL_PY" "$LIBYAL_READ" "$@" 2>&1) || {
		fail "$2: $out"
		return 0
	}
	echo "  $2: $out"
	NCHECK=$((NCHECK + 1))
}

# require_strace: tests that trace instar need strace (a failure if it is
# missing). Under strace, LeakSanitizer (sanitizer builds) cannot ptrace the
# process at exit and fails it, so it is off for these runs; every other
# run of instar checks for leaks.
require_strace() {
	command -v strace >/dev/null || { echo "FAIL: strace is needed"; exit 1; }
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
}

# scratch_dir [MKTEMP-TEMPLATE]: T is a new directory, removed on exit.
scratch_dir() {
	T=$(mktemp -d "$@")
	trap 'rm -rf "$T"' EXIT
}

# open_init NAME PLAN_APPLY QEMU_IMG INSTAR: the start of the *_open.sh
# tests: PA, QI, QIO, INSTAR; the scratch dir T, made the current one; the
# counters fails, cases, e2e and left_out; a fail() that counts (the
# script ends with its own verdict) instead of ending the script.
open_init() {
	PA=$(readlink -f "${2:?plan-apply}")
	QI=${3:-qemu-img}
	QIO=$(qemu_io_for "$QI")
	INSTAR=$(readlink -f "${4:?instar}")
	scratch_dir "/var/tmp/$1.XXXXXX"
	cd "$T" || exit 1
	fails=0
	cases=0
	e2e=0
	left_out=0
	fail() {
		echo "FAIL [$CASE]: $*" >&2
		fails=$((fails + 1))
	}
}

# e2e_same ORIG COPY IRC: the end of an open case, after `instar resize`
# ran on COPY (a file or a directory, a copy of ORIG; exit IRC, its output
# in i.out and i.err) and qemu-img on another copy (q.out, q.err): where
# the guest cannot boot the case is left out (counted); else instar's
# stdout and stderr are qemu-img's, "qemu-img: " read as "instar: ", with
# exit code 1, and COPY is unchanged.
e2e_same() {
	local orig=$1 copy=$2 irc=$3
	if guest_left_out i.err; then
		left_out=$((left_out + 1))
		return
	fi
	e2e=$((e2e + 1))
	sed 's/^qemu-img: /instar: /' q.err >q.errn
	[ "$irc" = 1 ] && cmp -s q.errn i.err && cmp -s q.out i.out ||
		fail "instar rc=$irc: $(diff q.errn i.err)"
	diff -r "$orig" "$copy" >/dev/null || fail "instar changed the image"
}

# opts_case DRIVER IMG WANT [CODE]: the name qemu gives under --image-opts
# (the option string), for IMG as the caller damaged it: qemu-img resize
# --image-opts "driver=DRIVER,file.filename=q.EXT" fails with exactly
# "qemu-img: Could not open 'OPTIONS': WANT"; instar says the same where
# the guest boots, and with CODE, `instar resize --output=json` reports
# that error code and "Could not open 'q.EXT': WANT". The copy is unchanged.
opts_case() {
	local drv=$1 img=$2 want=$3 code=${4:-} q o qrc=0 irc=0
	q=q.${img##*.}
	CASE="--image-opts${code:+ and --output=json}"
	cases=$((cases + 1))
	cp "$img" "$q"
	o="driver=$drv,file.filename=$q"
	"$QI" resize --image-opts "$o" 128M >q.out 2>q.err || qrc=$?
	[ "$qrc" = 1 ] && grep -qxF "qemu-img: Could not open '$o': $want" q.err ||
		fail "qemu-img: rc=$qrc $(cat q.err)"
	"$INSTAR" resize --image-opts "$o" 128M >i.out 2>i.err || irc=$?
	if guest_left_out i.err; then
		left_out=$((left_out + 1))
	else
		e2e=$((e2e + 1))
		sed 's/^qemu-img: /instar: /' q.err | cmp -s - i.err ||
			fail "instar rc=$irc: $(cat i.err)"
		if [ -n "$code" ]; then
			irc=0
			"$INSTAR" resize --output=json -f "$drv" "$q" 128M >i.out 2>i.err || irc=$?
			python3 - i.out "$code" "Could not open '$q': $want" <<'PY' ||
import json, sys
e = json.load(open(sys.argv[1]))["error"]
assert e["code"] == sys.argv[2], e
assert e["message"] == sys.argv[3], e
PY
				fail "JSON: rc=$irc $(cat i.out)"
		fi
	fi
	cmp -s "$img" "$q" || fail "the image changed"
}

# put_hex FILE OFF HEX: the bytes HEX (an even number of hex digits)
# written into FILE at OFF.
put_hex() {
	local hex=$3 esc=""
	while [ -n "$hex" ]; do
		esc+="\\x${hex:0:2}"
		hex=${hex:2}
	done
	printf "$esc" | dd of="$1" bs=1 seek=$(($2)) conv=notrunc status=none
}

# cli_init INSTAR QEMU_IMG: instar (absolute) and QI for the CLI scripts
# that compare with qemu-img case by case; runs in the scratch dir T, with
# the counters fails and ncases at 0.
cli_init() {
	instar=$(realpath "$1")
	QI=$2
	scratch_dir
	cd "$T" || exit 1
	fails=0
	ncases=0
}

# compat_init PLAN_APPLY [QEMU_IMG]: PA, QI, QIO and the scratch dir T.
compat_init() {
	PA=$1
	QI=${2:-qemu-img}
	QIO=$(qemu_io_for "$QI")
	scratch_dir
}


# fail MSG: the first failed check ends the script (qcow2_plan.sh counts
# failures instead and defines its own).
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# qi_create_keyed FILE SIZE QEMU-IMG-CREATE-ARGS...: qemu-img create of an
# encrypted (LUKS) FILE. qemu-img times its key derivation on the thread's CPU
# clock and gives up ("Unable to get accurate CPU usage") when a loaded machine
# lets that clock stand still: up to five tries, then the script fails.
qi_create_keyed() {
	local file=$1 size=$2 try
	shift 2
	for try in 1 2 3 4 5; do
		rm -f "$file"
		"$QI" create -q "$@" "$file" "$size" && return 0
	done
	fail "qemu-img could not create $file in $try tries"
}

# qi_vsize FMT IMG: IMG's virtual size as qemu-img info reports it (FMT
# empty: qemu-img probes the format).
qi_vsize() {
	"$QI" info ${1:+-f "$1"} --output=json "$2" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p'
}

# qio_write FMT IMG "PAT OFF LEN"...: one qemu-io run writing each pattern.
qio_write() {
	local fmt=$1 img=$2 w args=()
	shift 2
	for w in "$@"; do
		args+=(-c "write -P $w")
	done
	[ ${#args[@]} -eq 0 ] || "$QIO" -f "$fmt" "${args[@]}" "$img" >/dev/null
}

# mkexp ORIGRAW SIZE OUT: the expected raw for SIZE: the original bytes below
# min(old, SIZE), zeros above.
mkexp() {
	cp --sparse=always "$1" "$3"
	truncate -s "$2" "$3"
}

# qemu_reads FMT IMG ORIGRAW SIZE: qemu-img info gives IMG the virtual size
# SIZE, and qemu-img compare reads ORIGRAW's bytes below it, zeros above;
# the expected disk stays in $T/exp.raw for a second reader. (The sizes are
# equal, so compare's tolerance of a longer zero tail does not apply; it
# skips the sparse expected file's holes, unlike a convert + cmp.)
qemu_reads() {
	local got
	got=$(qi_vsize "$1" "$2")
	[ "$got" = "$4" ] || fail "$2: virtual size $got, want $4"
	mkexp "$3" "$4" "$T/exp.raw"
	"$QI" compare -q -f "$1" -F raw "$2" "$T/exp.raw" ||
		fail "$2: data differs from the expected bytes"
}

# take_flags WORDS... -- REST...: FLAGS = the words before "--", REST = the
# words after it.
take_flags() {
	FLAGS=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		FLAGS+=("$1")
		shift
	done
	shift
	REST=("$@")
}

# plan_nops FMT IMG NEW [plan-apply flags]: how many write/zero/discard ops
# the plan for IMG -> NEW has (the --stop-after K range of a crash run).
plan_nops() {
	local fmt=$1 img=$2 new=$3
	shift 3
	"$PA" --dry-run --ops "$@" "$fmt" "$img" "$new" | grep -cE '^[0-9]+ (write|zero|discard) '
}

# apply_ok NAME WANT PLAN-APPLY-ARGS...: plan-apply succeeds and reports the
# new virtual size WANT.
apply_ok() {
	local name=$1 want=$2 out
	shift 2
	out=$("$PA" "$@") || fail "$name: plan-apply: $out"
	echo "$name: $out"
	case "$out" in *" new=$want "*) ;; *) fail "$name: reported size, want $want" ;; esac
}

# refused WHAT ERROR PLAN-APPLY-ARGS...: plan-apply fails and names ERROR.
refused() {
	local what=$1 err=$2
	shift 2
	REFUSED_OUT=$("$PA" "$@") && fail "$what succeeded"
	case "$REFUSED_OUT" in *"$err"*) ;; *) fail "$what: $REFUSED_OUT" ;; esac
}

# refuse_pa NAME WANT PLAN-APPLY-ARGS...: refused (above), said and counted.
refuse_pa() {
	refused "$@"
	echo "refused $1: $REFUSED_OUT"
	NCHECK=$((NCHECK + 1))
}

# edit_split EXPR [DIR]: $T/x, a copy of $T/DIR (s3g) with its descriptor
# d.vmdk edited by sed EXPR.
edit_split() {
	rm -rf "$T/x" && cp -r --sparse=always "$T/${2:-s3g}" "$T/x" && sed -i "$1" "$T/x/d.vmdk"
}

# crash_run FMT EXT NAME NEW [plan-apply flags]: for every K, stop a copy of
# $T/NAME.orig.EXT after K ops; qemu must open it at the old or the new size,
# and the caller's crash_verify NAME IMG SIZE OLD checks the rest.
crash_run() {
	local fmt=$1 ext=$2 name=$3 new=$4
	shift 4
	local orig="$T/$name.orig.$ext" crash="$T/crash.$ext" old nops out size k
	old=$(vsize "$orig")
	nops=$(plan_nops "$fmt" "$orig" "$new" "$@")
	for ((k = 0; k <= nops; k++)); do
		cp --sparse=always "$orig" "$crash"
		out=$("$PA" --stop-after "$k" "$@" "$fmt" "$crash" "$new") ||
			fail "$name: stop-after $k: $out"
		size=$(vsize "$crash") || fail "$name: stop-after $k: qemu cannot open"
		[ "$size" = "$old" ] || [ "$size" = "$new" ] ||
			fail "$name: stop-after $k: size $size is neither $old nor $new"
		crash_verify "$name" "$crash" "$size" "$old"
	done
	echo "$name: crash order ok for K=0..$nops"
}

# refuse_untouched NAME DIR WANT ARGS...: `$INSTAR resize -f vmdk ARGS`, run
# in DIR, fails with WANT in its stderr (kept in LAST_ERR), and no file under
# $T (but $T/meta) changed its length, mtime, inode or, in DIR, contents;
# none appeared or went.
untouched_snap() {
	(cd "$T" && find . -path ./meta -prune -o -print0 | sort -z |
		xargs -0 stat -c '%n %s %Y %i')
}
refuse_untouched() {
	local name=$1 dir=$2 want=$3
	shift 3
	mkdir -p "$T/meta"
	untouched_snap >"$T/meta/before"
	(cd "$dir" && find . -maxdepth 1 -type f -size -65536k -exec md5sum {} + >"$T/meta/sums")
	if (cd "$dir" && "$INSTAR" resize -f vmdk "$@" >/dev/null 2>"$T/meta/err"); then
		fail "$name: resized"
	fi
	LAST_ERR=$(cat "$T/meta/err")
	case "$LAST_ERR" in *"$want"*) ;; *) fail "$name: $LAST_ERR" ;; esac
	untouched_snap >"$T/meta/after"
	diff "$T/meta/before" "$T/meta/after" >&2 || fail "$name: files changed"
	(cd "$dir" && md5sum -c --quiet "$T/meta/sums") || fail "$name: contents changed"
	echo "refused $name: $LAST_ERR"
	NCHECK=$((NCHECK + 1))
}
