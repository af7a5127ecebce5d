#!/usr/bin/env bash
# tests/install/install.sh SRCDIR — configure SRCDIR with a temporary prefix,
# `meson install` it, then use only what was installed: instar --version, a
# raw resize (host only), a qcow2 resize (guest found in libexecdir/instar with
# no option and no INSTAR_GUEST_DIR), the man pages and the bash completion.
set -u
src=$(cd "${1:?usage: install.sh SRCDIR}" && pwd)
meson=${MESON:-meson}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
die() { echo "FAIL: $*"; exit 1; }
. "$src/tests/kvm_gate.sh"

# ---- build and install -------------------------------------------------
# Only what ships: no test suites in the inner build, to keep it fast.
"$meson" setup --prefix="$prefix" -Dtests=disabled "$tmp/build" "$src" \
	>"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log"; die "meson setup"; }

# We may run as root: refuse to install if anything would land outside the
# prefix (e.g. a path taken verbatim from some .pc file).
"$meson" introspect --installed "$tmp/build" >"$tmp/installed.json" ||
	die "meson introspect --installed"
outside=$(python3 - "$prefix" "$tmp/installed.json" <<'EOF'
import json, os, sys
prefix = os.path.realpath(sys.argv[1]) + os.sep
for dest in json.load(open(sys.argv[2])).values():
    if not os.path.realpath(dest).startswith(prefix):
        print(dest)
EOF
)
[[ -z $outside ]] || die "would install outside the prefix: $outside"
ok "every installed path is under the prefix"

"$meson" compile -C "$tmp/build" >"$tmp/compile.log" 2>&1 ||
	{ tail -40 "$tmp/compile.log"; die "meson compile"; }
"$meson" install -C "$tmp/build" --no-rebuild >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log"; die "meson install"; }

# Directory options as the build saw them (relative to the prefix here).
opt() {
	python3 -c 'import json,sys
for o in json.load(open(sys.argv[1])):
    if o["name"] == sys.argv[2]: print(o["value"])' "$tmp/options.json" "$1"
}
"$meson" introspect --buildoptions "$tmp/build" >"$tmp/options.json"
bindir=$prefix/$(opt bindir)
libexecdir=$prefix/$(opt libexecdir)
mandir=$prefix/$(opt mandir)
datadir=$prefix/$(opt datadir)
version=$("$meson" introspect --projectinfo "$tmp/build" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')

# From here on nothing may come from the build tree: remove it, so a binary
# that still looked there (for its guest, say) would fail instead of passing.
rm -rf "$tmp/build"

for f in "$bindir/instar" "$bindir/instarfs"; do
	[[ -x $f ]] && ok "installed $f" || fail "not installed: $f"
done
for f in core.bin resize.bin; do
	[[ -s $libexecdir/instar/$f ]] && ok "installed guest $f" ||
		fail "guest binary not installed: $libexecdir/instar/$f"
done

instar=$bindir/instar
work=$tmp/work
mkdir -p "$work"
cd "$work" || die "cd $work"
unset INSTAR_GUEST_DIR

# ---- instar --version ------------------------------------------------------
out=$("$instar" --version 2>"$tmp/err")
rc=$?
if ((rc == 0)) && [[ $out == "instar version $version" ]] && [[ ! -s $tmp/err ]]; then
	ok "instar --version: $out"
else
	fail "instar --version: rc=$rc stdout='$out' stderr='$(cat "$tmp/err")'"
fi

# The installed binary must know where its guest was installed: the build
# tree is gone, and no option or INSTAR_GUEST_DIR is given below.
if grep -aqF -- "$libexecdir/instar" "$instar"; then
	ok "instar has the installed guest dir $libexecdir/instar built in"
else
	fail "instar does not refer to the installed guest dir $libexecdir/instar"
fi

# ---- raw: resized by the host, no guest -----------------------------------
vsize() { qemu-img info -f "$1" --output=json "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])'; }

if ! command -v qemu-img >/dev/null; then
	fail "qemu-img (qemu-utils) is needed to check resized images"
else
	qemu-img create -q -f raw disk.raw 1M
	printf 'instar' | dd of=disk.raw conv=notrunc status=none
	out=$("$instar" resize -f raw disk.raw +1M 2>"$tmp/err")
	rc=$?
	size=$(stat -c %s disk.raw)
	if ((rc == 0)) && [[ $out == "Image resized." ]] && ((size == 2097152)) &&
		[[ $(head -c 6 disk.raw) == instar ]] && [[ ! -s $tmp/err ]]; then
		ok "raw: resize -f raw disk.raw +1M -> $size bytes"
	else
		fail "raw: rc=$rc stdout='$out' size=$size stderr='$(cat "$tmp/err")'"
	fi

	out=$("$instar" resize --output=json -f raw disk.raw --shrink -512k 2>"$tmp/err")
	rc=$?
	json_ok=$(python3 -c '
import json, sys
try:
    r = json.loads(sys.argv[1])
except ValueError:
    sys.exit("not one JSON object")
want = {"filename": "disk.raw", "target_format": "raw", "action": "shrink",
        "old_virtual_size": 2097152, "resolved_new_virtual_size": 1572864,
        "file_size_before": 2097152, "file_size_after": 1572864}
bad = {k: r.get(k) for k in want if r.get(k) != want[k]}
print("yes" if not bad and "error" not in r else bad)' "$out" 2>&1)
	if ((rc == 0)) && [[ $json_ok == yes ]] && (($(stat -c %s disk.raw) == 1572864)); then
		ok "raw: --output=json --shrink -512k"
	else
		fail "raw json: rc=$rc json=$json_ok stdout='$out' stderr='$(cat "$tmp/err")'"
	fi
fi

# ---- qcow2: needs the installed guest -------------------------------------
if ! kvm_usable; then
	GUEST_SKIPPED=1 # reported last, after every other check
elif command -v qemu-img >/dev/null; then
	qemu-img create -q -f qcow2 disk.qcow2 64M
	qemu-io -f qcow2 -c 'write -q -P 0xa5 0 1M' disk.qcow2 >/dev/null
	out=$("$instar" resize disk.qcow2 +64M 2>"$tmp/err")
	rc=$?
	new=$(vsize qcow2 disk.qcow2)
	if ((rc == 0)) && [[ $out == "Image resized." ]] && ((new == 134217728)) &&
		qemu-img check -q -f qcow2 disk.qcow2 &&
		qemu-io -f qcow2 -c 'read -q -P 0xa5 0 1M' -c 'read -q -P 0 64M 64M' disk.qcow2 >/dev/null; then
		ok "qcow2: resize disk.qcow2 +64M with the installed guest"
	else
		fail "qcow2: rc=$rc stdout='$out' virtual size=$new stderr='$(cat "$tmp/err")'"
		# Say whether the guest was found at all: with a guest dir that does
		# not exist the answer must differ if the installed one was used.
		mkdir -p "$tmp/noguest"
		"$instar" resize --guest-dir "$tmp/noguest" disk.qcow2 +64M >/dev/null 2>"$tmp/err2"
		if cmp -s "$tmp/err" "$tmp/err2"; then
			echo "note: same error as with an empty --guest-dir: the installed guest was not found or not started"
		else
			echo "note: the installed guest was found (an empty --guest-dir fails differently: $(cat "$tmp/err2"))"
		fi
	fi
fi

# ---- man pages -------------------------------------------------------------
for page in "$mandir/man1/instar.1" "$mandir/man8/instarfs.8"; do
	if [[ ! -s $page ]]; then
		fail "man page not installed: $page"
		continue
	fi
	MANWIDTH=80 man --warnings=all -l "$page" >"$tmp/man.out" 2>"$tmp/man.err"
	rc=$?
	if ((rc == 0)) && [[ ! -s $tmp/man.err ]] && grep -q '^NAME$' "$tmp/man.out" &&
		grep -q "instar $version" "$tmp/man.out"; then
		ok "man -l $page"
	else
		fail "man -l $page: rc=$rc $(cat "$tmp/man.err")"
	fi
done
# man finds them by name under the prefix
for name in instar instarfs; do
	where=$(man -M "$mandir" -w "$name" 2>/dev/null)
	[[ $where == "$mandir"/* ]] && ok "man -M finds $name at $where" ||
		fail "man -M $mandir -w $name: '$where'"
done

# ---- bash completion ---------------------------------------------------------
comp=$(find "$datadir/bash-completion/completions" -name instar -type f 2>/dev/null)
if [[ -z $comp ]]; then
	fail "bash completion not installed under $datadir/bash-completion/completions"
else
	if cmp -s "$comp" "$src/contrib/instar.bash-completion"; then
		ok "completion installed as $comp"
	else
		fail "$comp differs from contrib/instar.bash-completion"
	fi
	# bash-completion's own on-demand loader finds it through XDG_DATA_DIRS.
	loader=/usr/share/bash-completion/bash_completion
	if [[ -r $loader ]]; then
		got=$(XDG_DATA_DIRS=$datadir bash --norc --noprofile -c \
			". $loader; __load_completion instar; complete -p instar" 2>&1)
		[[ $got == *"-F _instar instar"* ]] && ok "bash-completion loads it: $got" ||
			fail "bash-completion did not load it: $got"
	fi
fi

if ((fails)); then
	echo "$fails install check(s) failed"
	exit 1
fi
guest_skips_end
echo "all install checks passed"
