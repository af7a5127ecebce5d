#!/usr/bin/env bash
# tests/iotests/fetch.sh CACHE — QEMU's Debian source package, at the version
# of the installed qemu-utils, unpacked with Debian's patches applied (the
# v7.2.N stable fixes to the iotests among them) under CACHE. Uses a private
# apt configuration in CACHE/apt whose deb-src entries are made from the
# machine's own apt sources (tests/iotests/debsrc.py): /etc/apt is not
# changed. Prints the path of the unpacked tree on stdout; idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${1:?usage: fetch.sh CACHE}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

ver=$(dpkg-query -W -f='${source:Version}' qemu-utils 2>/dev/null) ||
	{ echo "fetch.sh: qemu-utils is not installed" >&2; exit 1; }
[[ -n $ver ]] || { echo "fetch.sh: no source version for qemu-utils" >&2; exit 1; }
tag=${ver//:/_}  # no colon in a path that may end up in PATH-like lists
stamp=$cache/src-$tag.done
if [[ -f $stamp ]]; then
	tree=$(cat "$stamp")
	if [[ -x $tree/tests/qemu-iotests/check ]]; then
		echo "$tree"
		exit 0
	fi
fi

apt=$cache/apt
rm -rf "$apt"
mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/cache/archives/partial"
# The URIs that serve qemu-utils, as apt itself lists them.
mapfile -t uris < <(apt-cache policy qemu-utils |
	awk '$1 ~ /^[0-9]+$/ && $2 ~ /^[a-z+]+:\/\// {print $2}' | sort -u)
python3 "$here/debsrc.py" "$apt/sources.list.d/qemu-src.sources" "${uris[@]}"
opts=(-o "Dir::Etc::SourceList=/dev/null"
	-o "Dir::Etc::SourceParts=$apt/sources.list.d"
	-o "Dir::State::Lists=$apt/lists"
	-o "Dir::Cache=$apt/cache"
	-o "Debug::NoLocking=1")
if [[ $(id -u) -eq 0 ]]; then
	# The download sandbox user must be able to write the private lists.
	opts+=(-o "APT::Sandbox::User=root")
fi
echo "fetch.sh: apt-get update (deb-src only, private lists in $apt)" >&2
apt-get "${opts[@]}" -q update >"$cache/apt-update.log" 2>&1 ||
	{ cat "$cache/apt-update.log" >&2; exit 1; }

src=$cache/src-$tag
rm -rf "$src"
mkdir -p "$src"
echo "fetch.sh: apt-get source qemu=$ver into $src" >&2
(cd "$src" && apt-get "${opts[@]}" -q source --only-source "qemu=$ver") \
	>"$cache/apt-source.log" 2>&1 || { tail -30 "$cache/apt-source.log" >&2; exit 1; }
tree=
for d in "$src"/qemu-*/; do
	[[ -x $d/tests/qemu-iotests/check ]] && tree=${d%/}
done
[[ -n $tree ]] || { echo "fetch.sh: no tests/qemu-iotests/check under $src" >&2; exit 1; }
echo "$tree" >"$stamp"
echo "$tree"
