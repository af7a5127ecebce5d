#!/usr/bin/env bash
# tests/hostile/run.sh INSTAR — every hostile image (mkhostile.py) through
# `instar resize`, growing and shrinking. Each run must end in exit 0 or 1
# (never a signal, a hang or a sanitizer report); a refusal must print an
# "instar: " message and leave the file byte-identical; a success must leave
# `qemu-img check` no worse than before.
set -u
instar=$(realpath "$1")
. "$(dirname "$0")/../kvm_gate.sh"
kvm_gate
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$here/mkhostile.py" "$tmp/corpus" >/dev/null || { echo "mkhostile failed"; exit 1; }

# severity of a qemu-img check exit code: 0 clean, 3 leaks, 2 corruption, 1 cannot check
sev() { case $1 in 0|63) echo 0;; 3) echo 1;; 2) echo 2;; *) echo 3;; esac; }

fail=0 n=0 refused=0 resized=0
while read -r img fmt; do
	for spec in "|+1G" "--shrink|-1M" "|64T"; do
		opt=${spec%|*} size=${spec#*|} args="$opt $size"
		n=$((n + 1))
		w=$tmp/w.$fmt
		cp --sparse=always "$tmp/corpus/$img" "$w"
		before=$(sha256sum <"$w")
		qemu-img check -f "$fmt" "$w" >/dev/null 2>&1
		cb=$?
		# shellcheck disable=SC2086
		timeout -s KILL 60 "$instar" resize -f "$fmt" $opt "$w" "$size" >"$tmp/out" 2>"$tmp/err"
		rc=$?
		if grep -qE 'AddressSanitizer|runtime error:|LeakSanitizer' "$tmp/err"; then
			echo "FAIL $img [$args]: sanitizer report"; sed 's/^/    /' "$tmp/err" | head -20; fail=$((fail + 1)); continue
		fi
		case $rc in
		0)
			resized=$((resized + 1))
			qemu-img check -f "$fmt" "$w" >"$tmp/chk" 2>&1
			ca=$?
			if [ "$(sev $ca)" -gt "$(sev $cb)" ]; then
				echo "FAIL $img [$args]: check got worse ($cb -> $ca)"; sed 's/^/    /' "$tmp/chk" | head -5; fail=$((fail + 1))
			fi
			;;
		1)
			refused=$((refused + 1))
			if [ "$(sha256sum <"$w")" != "$before" ]; then
				echo "FAIL $img [$args]: refused but the file changed"; fail=$((fail + 1))
			fi
			if ! grep -q '^instar: ' "$tmp/err"; then
				echo "FAIL $img [$args]: refused without an instar: message"; fail=$((fail + 1))
			fi
			;;
		*)
			echo "FAIL $img [$args]: exit $rc (signal, hang or crash)"; sed 's/^/    /' "$tmp/err" | head -5; fail=$((fail + 1))
			;;
		esac
	done
done <"$tmp/corpus/manifest.txt"
echo "hostile: $n runs, $resized resized, $refused refused, $fail failures"
[ "$fail" -eq 0 ] && [ "$n" -ge 180 ] && [ "$resized" -gt 0 ] && [ "$refused" -gt 0 ]
