#!/usr/bin/env bash
# tests/iotests/run.sh BUILD — QEMU's own iotests that call `qemu-img resize`,
# run twice: with the real qemu-img (the baseline), then through the shipped
# qemu-img front (BUILD/contrib/shim/qemu-img) pointed at BUILD/vmm/instar.
# Prints both tallies and every (test, format) run that passes with qemu-img
# and fails through instar; exits 1 if there is one (or if nothing ran).
# A documented difference (README, "QEMU's own iotests") is a file
# differences/TEST.FORMAT.diff beside this script: the `diff -u` of QEMU's
# expected output against instar's, without its two header lines (and
# TEST.FORMAT.WHERE.diff where QEMU's own tools print something else on
# another file system). Such a run counts as "differs as documented" only
# when its diff is exactly one of those files;
# any other output is a failure.
#
# The tests come from QEMU's Debian source package at the version of the
# installed qemu-utils (tests/iotests/fetch.sh), unpacked under IOTESTS_CACHE
# (default BUILD/iotests). Environment:
#   IOTESTS_CACHE    where the source and the scratch directories go
#   IOTESTS          test numbers to run (default: every test that calls resize)
#   IOTESTS_FORMATS  image formats (default: raw qcow2 qed luks)
#   IOTESTS_MODES    baseline and/or instar (default: both); with one, the
#                    other's results from an earlier run in the cache are
#                    compared
#   IOTESTS_SCRATCH  where the tests' images go while they run (default:
#                    /dev/shm when it is a writable tmpfs, else under
#                    IOTESTS_CACHE); their .out.bad files are copied back.
#                    On tmpfs, 125's allocation checks hold as QEMU's
#                    expected output assumes (on ext4 125 fails with
#                    qemu-img too), and qemu-img check's output in 060 is
#                    the one differences/060.qcow2.diff holds. In
#                    tests/vm/run.sh's VM give /tmp: on 9p fallocate, fifos
#                    and sockets fail and the tests notice.
# As root, the packages it needs (qemu-system-x86 for the tests that start a
# VM, dpkg-dev for apt-get source) are installed if missing.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: run.sh BUILD}" && pwd) || exit 1
cache=${IOTESTS_CACHE:-$build/iotests}
# absolute: the tests run in QEMU's tree and find their programs by these paths
mkdir -p "$cache" && cache=$(cd "$cache" && pwd) || exit 1
formats=${IOTESTS_FORMATS:-raw qcow2 qed luks}
modes=${IOTESTS_MODES:-baseline instar}
instar=$build/vmm/instar
shim=$build/contrib/shim/qemu-img
die() { echo "iotests: $*" >&2; exit 1; }
if [[ -z ${IOTESTS_SCRATCH:-} && -d /dev/shm && -w /dev/shm ]] &&
	[[ $(stat -f -c %T /dev/shm) == tmpfs ]]; then
	IOTESTS_SCRATCH=/dev/shm
fi

# ---- packages ------------------------------------------------------------
pkgs=(qemu-utils qemu-system-x86 qemu-system-common dpkg-dev xz-utils python3)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -eq 0 ]]; then
		echo "iotests: installing ${missing[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq && apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
	else
		die "missing packages: ${missing[*]} (run as root, or apt-get install them)"
	fi
fi
for b in qemu-img qemu-io qemu-nbd qemu-storage-daemon qemu-system-x86_64; do
	command -v "$b" >/dev/null || die "$b not found on PATH"
done
[[ -x $instar ]] || die "$instar is not built"
[[ -x $shim ]] || die "$shim is not built"
if [[ " $modes " == *" instar "* && ! ( -c /dev/kvm && -w /dev/kvm ) ]]; then
	# Run anyway: the tally must show it, not hide it.
	echo "iotests: warning: no usable /dev/kvm: instar resizes only raw images here," \
		"every other run through instar fails"
fi

# ---- QEMU's source, and the tests that call resize --------------------------
tree=$(bash "$here/fetch.sh" "$cache") || die "could not fetch QEMU's source"
iot=$tree/tests/qemu-iotests
if [[ -n ${IOTESTS:-} ]]; then
	read -ra tests <<<"$IOTESTS"
else
	# Shell tests call "$QEMU_IMG resize", Python ones qemu_img*('resize', ...).
	mapfile -t tests < <(cd "$iot" && grep -lE \
		"QEMU_IMG[[:space:]]+resize|qemu_img[a-z_]*\([[:space:]]*['\"]resize['\"]" \
		[0-9][0-9][0-9] tests/* 2>/dev/null | sort)
fi
((${#tests[@]})) || die "no iotest calls resize under $iot"
echo "iotests: QEMU $(dpkg-query -W -f='${source:Version}' qemu-utils), ${#tests[@]} tests that call resize: ${tests[*]}"
echo "iotests: formats: $formats"

# The tests strip "<basename of QEMU_PROG>: " from qemu's messages, and qemu
# prefixes them with its own argv[0]: the TCG stand-in must carry the real
# binary's name.
mkdir -p "$cache/bin"
ln -sfn "$here/qemu-system-tcg.sh" "$cache/bin/qemu-system-x86_64"

# ---- run --------------------------------------------------------------------
# Each mode gets its own scratch directories under the cache; check(1) writes
# its .out.bad files there, so nothing lands in the source tree.
# run_check MODE FMT LOG TEST...: QEMU's check over TESTs in one format;
# prints "test format status" lines (status pass, fail or notrun).
run_check() {
	local mode=$1 fmt=$2 out=$3 img sock scratch
	local work=$cache/$mode
	shift 3
	case $mode in
	baseline) img=$(command -v qemu-img) ;;
	instar) img=$shim ;;
	*) die "unknown mode $mode" ;;
	esac
	# Sockets live in a short directory on a local file system: a
	# unix socket's path is at most 107 bytes, and 9p (tests/vm/run.sh)
	# cannot bind one (ENXIO).
	sock=$(mktemp -d "${TMPDIR:-/tmp}/iotests-sock.XXXXXX") || die "mktemp failed"
	mkdir -p "$work/scratch-$fmt"
	scratch=$work/scratch-$fmt
	if [[ -n ${IOTESTS_SCRATCH:-} ]]; then
		scratch=$(mktemp -d "$IOTESTS_SCRATCH/iotests-$mode-$fmt.XXXXXX") ||
			die "mktemp in $IOTESTS_SCRATCH failed"
	fi
	(cd "$iot" && env \
		QEMU_IMG_PROG="$img" \
		QEMU_IO_PROG="$(command -v qemu-io)" \
		QEMU_NBD_PROG="$(command -v qemu-nbd)" \
		QSD_PROG="$(command -v qemu-storage-daemon)" \
		QEMU_PROG="$cache/bin/qemu-system-x86_64" \
		IOTESTS_QEMU_SYSTEM="$(command -v qemu-system-x86_64)" \
		INSTAR_SHIM_INSTAR="$instar" \
		TEST_DIR="$scratch" SOCK_DIR="$sock" \
		./check -tap -"$fmt" "$@") >"$out" 2>&1
	# TAP: "ok FMT TEST", "not ok FMT TEST", "ok FMT TEST # SKIP".
	awk '$1 == "ok" && $4 == "#" { print $3, $2, "notrun"; next }
		$1 == "ok" && NF == 3 { print $3, $2, "pass"; next }
		$1 == "not" && $2 == "ok" && NF == 4 { print $4, $3, "fail" }' "$out"
	rm -rf "$sock"
	if [[ $scratch != "$work/scratch-$fmt" ]]; then
		cp "$scratch"/*.out.bad "$scratch"/*.notrun "$work/scratch-$fmt/" 2>/dev/null
		rm -rf "$scratch"
	fi
}

run_mode() { # MODE: writes $cache/MODE/results (test format status lines)
	local mode=$1 fmt
	local work=$cache/$mode
	rm -rf "$work"
	mkdir -p "$work"
	: >"$work/results"
	for fmt in $formats; do
		run_check "$mode" "$fmt" "$work/check-$fmt.log" "${tests[@]}" >>"$work/results"
	done
}

# QEMU's tests skip themselves on conditions of the moment (048 luks: "Unable
# to get accurate CPU usage" when qemu-img create times its PBKDF and the
# clock moved 0 ms); under load the same message can also end up in the
# output of a run that goes on (a fail). Either (not run, or failed with
# that line, which only qemu-img create prints) in one mode where the other
# mode passed is run again in that mode, up to 3 times. One still not run
# is not compared, and said so with its reason; one still failing fails.
CPU_FLAKE="Unable to get accurate CPU usage"
flaky() { # MODE TEST FMT STATUS
	[[ $4 == notrun ]] && return 0
	[[ $4 == fail ]] && grep -qF "$CPU_FLAKE" "$cache/$1/scratch-$3/$2.out.bad" 2>/dev/null
}
retry_flaky() {
	local mode other t f st try
	for mode in baseline instar; do
		other=baseline
		[[ $mode == baseline ]] && other=instar
		[[ -s $cache/$mode/results && -s $cache/$other/results ]] || continue
		grep -E ' (notrun|fail)$' "$cache/$mode/results" | while read -r t f st; do
			grep -qx "$t $f pass" "$cache/$other/results" || continue
			flaky "$mode" "$t" "$f" "$st" || continue
			local was=$st
			for try in 1 2 3; do
				st=$(run_check "$mode" "$f" "$cache/$mode/retry-$t-$f.log" "$t" |
					awk -v t="$t" '$1 == t { print $3 }')
				echo "iotests: $t $f $was in $mode mode ($(cat "$cache/$mode/scratch-$f/$t.notrun" 2>/dev/null || echo "$CPU_FLAKE")); again: ${st:-nothing}"
				flaky "$mode" "$t" "$f" "${st:-notrun}" || break
			done
			[[ -n $st ]] && sed -i "s/^$t $f $was\$/$t $f $st/" "$cache/$mode/results"
		done
	done
}

t0=$(date +%s)
for mode in $modes; do
	m0=$(date +%s)
	run_mode "$mode"
	echo "iotests: $mode took $(($(date +%s) - m0))s"
done
retry_flaky

tally() { # MODE
	local f=$cache/$1/results
	local pass fail
	pass=$(grep -c ' pass$' "$f")
	fail=$(grep -c ' fail$' "$f")
	echo "$1: $pass passed, $fail failed ($(grep -c ' notrun$' "$f") not run)"
	grep ' fail$' "$f" | sed 's/ fail$//; s/^/  failed: /'
}
# ref TEST FORMAT: QEMU's expected output; bad: instar's; known: the
# documented difference.
ref() {
	local r=$iot/$1.out
	[[ -f $r.$2 ]] && r=$r.$2
	echo "$r"
}
bad() { echo "$cache/instar/scratch-$2/$(basename "$1").out.bad"; }
# The documented diffs of TEST FORMAT: TEST.FORMAT.diff, and variants
# TEST.FORMAT.WHERE.diff where QEMU's own tools print what depends on the
# machine (060: qemu-img check's repair of the image instar left alone).
knowns() { compgen -G "$here/differences/$(basename "$1").$2.*diff"; }
documented() { # TEST FORMAT: the run's diff is exactly one documented diff
	local k d
	[[ -f $(bad "$1" "$2") ]] || return 1
	d=$({ diff -u "$(ref "$1" "$2")" "$(bad "$1" "$2")" || true; } | tail -n +3)
	while read -r k; do
		[[ -n $k ]] && cmp -s <(printf '%s\n' "$d") "$k" && { echo "$k"; return 0; }
	done < <(knowns "$1" "$2")
	return 1
}
rc=0
for mode in $modes; do
	[[ -s $cache/$mode/results ]] || { echo "$mode: no test ran"; rc=1; continue; }
	tally "$mode"
done
# The comparison also runs when one mode ran now and the other's results are
# in the cache from an earlier run (the instar mode alone in the VM).
if [[ -s $cache/baseline/results && -s $cache/instar/results ]]; then
	for mode in baseline instar; do
		[[ " $modes " == *" $mode "* ]] ||
			echo "iotests: $mode results from an earlier run ($cache/$mode/results)"
	done
	lost=$(grep ' pass$' "$cache/baseline/results" | sed 's/ pass$//' | while read -r t f; do
		grep -qx "$t $f pass" "$cache/instar/results" && continue
		# not run through instar even after retry_flaky: not compared
		grep -qx "$t $f notrun" "$cache/instar/results" && continue
		documented "$t" "$f" >/dev/null || echo "$t $f"
	done)
	grep ' pass$' "$cache/baseline/results" | sed 's/ pass$//' | while read -r t f; do
		grep -qx "$t $f notrun" "$cache/instar/results" &&
			echo "  not compared: $t $f, not run through instar ($(cat "$cache/instar/scratch-$f/$t.notrun" 2>/dev/null))"
	done
	grep ' pass$' "$cache/baseline/results" | sed 's/ pass$//' | while read -r t f; do
		grep -qx "$t $f fail" "$cache/instar/results" && k=$(documented "$t" "$f") &&
			echo "  differs as documented: $t $f (README; $(basename "$k"))"
	done
	if [[ -n $lost ]]; then
		echo "passing with qemu-img, failing through instar:"
		echo "$lost" | sed 's/^/  /'
		echo "$lost" | while read -r t f; do
			echo "---- $t $f: diff $(ref "$t" "$f") $(bad "$t" "$f") (first 40 lines)"
			diff -u "$(ref "$t" "$f")" "$(bad "$t" "$f")" | head -40
			knowns "$t" "$f" | sed 's/^/(not the documented difference /; s/$/)/'
		done
		echo "(full logs: $cache/instar/check-FORMAT.log)"
		rc=1
	elif ! grep -q ' pass$' "$cache/baseline/results"; then
		echo "no run passed with qemu-img"
		rc=1
	else
		echo "every run that passes with qemu-img passes through instar" \
			"(or differs exactly as documented)"
	fi
fi
echo "iotests: $(($(date +%s) - t0))s in all"
exit $rc
