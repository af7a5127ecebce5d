#!/usr/bin/env bash
# tests/install/man.sh PAGE — a built man page renders with man -l, without
# a single warning from man or groff, and has the sections a page needs.
set -u
page=${1:?usage: man.sh PAGE}
[[ -s $page ]] || { echo "FAIL: $page is missing or empty"; exit 1; }
command -v man >/dev/null || { echo "man not installed"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
MANWIDTH=80 man --warnings=all -l "$page" >"$tmp/out" 2>"$tmp/err"
rc=$?
fails=0
if ((rc != 0)); then
	echo "FAIL: man -l $page exited $rc"
	fails=1
fi
if [[ -s $tmp/err ]]; then
	echo "FAIL: man -l $page warned:"
	cat "$tmp/err"
	fails=1
fi
for section in NAME SYNOPSIS DESCRIPTION 'SEE ALSO'; do
	if ! grep -q "^$section\$" "$tmp/out"; then
		echo "FAIL: $page has no $section section"
		fails=1
	fi
done
# scdoc markup that leaked through unrendered, or an unsubstituted version
if grep -nE '@VERSION@|\*[a-z-]+\*|\[\[' "$tmp/out"; then
	echo "FAIL: $page contains unrendered markup"
	fails=1
fi
((fails)) && exit 1
echo "ok: $page renders cleanly ($(wc -l <"$tmp/out") lines)"
