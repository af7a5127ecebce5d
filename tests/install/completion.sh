#!/usr/bin/env bash
# tests/install/completion.sh SCRIPT — drive the bash completion of instar the
# way readline does (COMP_WORDS/COMP_CWORD) and check COMPREPLY.
set -u
script=${1:?usage: completion.sh PATH/TO/instar.bash-completion}
script=$(cd "$(dirname "$script")" && pwd)/$(basename "$script")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
mkdir guests guests2
touch disk.qcow2 disk.raw other.vhdx 'my disk.img'

# shellcheck source=/dev/null
. "$script" || { echo "FAIL: cannot source $script"; exit 1; }

fails=0
# check "EXPECTED (space-separated, any order; '|' separates entries if they
# contain spaces)" WORD...   — the last WORD is the one being completed.
check()
{
	local expected=$1
	shift
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE="$*"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	_instar instar "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
	local got want
	got=$(printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | LC_ALL=C sort | paste -sd'|')
	if [[ $expected == *'|'* ]]; then
		want=$(tr '|' '\n' <<<"$expected" | sed '/^$/d' | LC_ALL=C sort | paste -sd'|')
	else
		want=$(tr ' ' '\n' <<<"$expected" | sed '/^$/d' | LC_ALL=C sort | paste -sd'|')
	fi
	if [[ $got == "$want" ]]; then
		echo "ok: [$*] -> [$got]"
	else
		echo "FAIL: [$*]: expected [$want], got [$got]"
		fails=$((fails + 1))
	fi
}

# registration
if [[ $(complete -p instar 2>/dev/null) != *'-F _instar'*' instar' ]]; then
	echo "FAIL: 'complete -p instar' does not name _instar"
	fails=$((fails + 1))
fi

# subcommands
check '--help --version info resize' instar ''
check 'resize' instar re
check 'info' instar i
check '--help --version' instar --
# options per subcommand
check '-f --shrink --preallocation --object --image-opts -q --output --timeout --guest-dir --max-staged --confine --backing-dir --strict-format --help' instar resize -
check '--preallocation' instar resize --p
check '--shrink' instar resize --sh
check '-f --output --help' instar info -
# formats
check 'raw qcow2 vmdk vpc vhdx vdi qed luks' instar resize -f ''
check 'qcow2 qed' instar resize -f q
check 'vmdk vpc vhdx vdi' instar resize -f v
check 'luks' instar resize -f l
check 'raw qcow2 vmdk vpc vhdx vdi qed luks' instar info -f ''
# preallocation modes, separate word and both '=' forms
check 'off metadata falloc full' instar resize --preallocation ''
check 'falloc full' instar resize --preallocation f
check 'off metadata falloc full' instar resize --preallocation =
check 'falloc full' instar resize --preallocation = f
check '--preallocation=falloc --preallocation=full' instar resize --preallocation=f
check '' instar resize --preallocation x
# human/json
check 'human json' instar resize --output ''
check 'json' instar info --output j
check 'json' instar info --output = j
check '--output=human' instar resize --output=h
# free-text values: nothing offered
check '' instar resize --timeout ''
check '' instar resize --object ''
# files: the image name, also after options that take a value
check 'disk.qcow2 disk.raw' instar resize d
check 'disk.qcow2 disk.raw' instar resize -f qcow2 d
check 'disk.qcow2 disk.raw' instar resize --preallocation = full d
check 'disk.qcow2 disk.raw' instar resize --shrink --output json --timeout 5 d
check 'other.vhdx' instar info --output json o
check 'my disk.img|' instar resize my
check 'disk.qcow2|disk.raw|guests|guests2|my disk.img|other.vhdx' instar resize ''
check 'disk.qcow2|disk.raw|guests|guests2|my disk.img|other.vhdx' instar resize -- ''
# the size comes after the file name: no file names there
check '' instar resize disk.qcow2 ''
check '' instar resize --shrink disk.qcow2 ''
# an option after the file name is still an option (qemu-img permutes)
check '--shrink' instar resize disk.qcow2 --sh
# --guest-dir: directories only
check 'guests guests2' instar resize --guest-dir ''
check 'guests guests2' instar resize --guest-dir g
# unknown subcommand: nothing
check '' instar bogus ''

if ((fails)); then
	echo "$fails completion check(s) failed"
	exit 1
fi
echo "all completion checks passed"
