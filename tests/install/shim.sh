#!/usr/bin/env bash
# tests/install/shim.sh SHIM INSTAR SRCDIR — the qemu-img front
# (contrib/shim): installed only with -Dqemu_img_shim=true, into
# libexecdir/instar/shim, running the instar of bindir; `qemu-img resize` goes
# to instar with qemu-img's "qemu-img: " wording, every other command reaches
# the real qemu-img and never the front itself, whatever PATH holds.
set -u
shim=$(realpath "${1:?usage: shim.sh SHIM INSTAR SRCDIR}")
instar=$(realpath "${2:?usage: shim.sh SHIM INSTAR SRCDIR}")
src=$(cd "${3:?usage: shim.sh SHIM INSTAR SRCDIR}" && pwd)
meson=${MESON:-meson}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
die() { echo "FAIL: $*"; exit 1; }
. "$src/tests/kvm_gate.sh"

real=$(command -v qemu-img) || die "qemu-img (qemu-utils) is needed as the real qemu-img"
realdir=$(dirname "$(realpath "$real")")
[[ $(basename "$shim") == qemu-img ]] || die "$shim is not named qemu-img"
shimdir=$(dirname "$shim")
export INSTAR_SHIM_INSTAR=$instar
cd "$tmp" || die "cd $tmp"

# run NAME CMD... : rc, stdout and stderr of CMD in $tmp/NAME.{rc,out,err}
run() {
	local name=$1
	shift
	timeout 60 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
	echo $? >"$tmp/$name.rc"
}
same() { # A B: same rc, stdout and stderr
	cmp -s "$tmp/$1.rc" "$tmp/$2.rc" && cmp -s "$tmp/$1.out" "$tmp/$2.out" &&
		cmp -s "$tmp/$1.err" "$tmp/$2.err"
}
show() { echo "  rc=$(cat "$tmp/$1.rc") out='$(head -c 400 "$tmp/$1.out")' err='$(head -c 400 "$tmp/$1.err")'"; }

# ---- installed only when asked ---------------------------------------------
installed() { # BUILDDIR: the installed paths
	"$meson" introspect --installed "$1" | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin).values()))'
}
prefix=$tmp/prefix
if "$meson" setup --prefix="$prefix" -Dtests=disabled "$tmp/b-off" "$src" >"$tmp/setup-off.log" 2>&1 &&
	"$meson" setup --prefix="$prefix" -Dtests=disabled -Dqemu_img_shim=true "$tmp/b-on" "$src" \
		>"$tmp/setup-on.log" 2>&1; then
	libexecdir=$("$meson" introspect --buildoptions "$tmp/b-on" |
		python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "libexecdir"][0])')
	want=$prefix/$libexecdir/instar/shim/qemu-img
	if installed "$tmp/b-off" | grep -q '/qemu-img$'; then
		fail "default build installs a qemu-img: $(installed "$tmp/b-off" | grep '/qemu-img$')"
	else
		ok "no qemu-img installed by default"
	fi
	if installed "$tmp/b-on" | grep -qxF "$want"; then
		ok "-Dqemu_img_shim=true installs $want"
	else
		fail "-Dqemu_img_shim=true does not install $want: $(installed "$tmp/b-on" | grep qemu-img)"
	fi
	# The installed front runs the installed instar: put a real instar there
	# (its guest given by INSTAR_GUEST_DIR) and install the front alone.
	if "$meson" compile -C "$tmp/b-on" qemu-img >"$tmp/compile.log" 2>&1; then
		mkdir -p "$(dirname "$want")" "$prefix/bin"
		cp "$tmp/b-on/contrib/shim/qemu-img" "$want"
		cp "$instar" "$prefix/bin/instar"
		qemu-img create -q -f raw inst.raw 1M
		run inst env -u INSTAR_SHIM_INSTAR INSTAR_GUEST_DIR="$(dirname "$instar")/../guest" \
			"$want" resize --output=json -f raw inst.raw +1M
		if [[ $(cat "$tmp/inst.rc") == 0 ]] && grep -q '"target_format": *"raw"' "$tmp/inst.out" &&
			(($(stat -c %s inst.raw) == 2097152)); then
			ok "the installed front runs $prefix/bin/instar"
		else
			fail "installed front: resize --output=json did not run the installed instar"
			show inst
		fi
		rm "$prefix/bin/instar"
		run inst2 env -u INSTAR_SHIM_INSTAR "$want" resize -f raw inst.raw +1M
		if [[ $(cat "$tmp/inst2.rc") == 1 ]] &&
			grep -qxF "qemu-img: Could not run instar ($prefix/bin/instar): No such file or directory" "$tmp/inst2.err"; then
			ok "without the installed instar: $(cat "$tmp/inst2.err")"
		else
			fail "installed front without instar"
			show inst2
		fi
	else
		tail -20 "$tmp/compile.log"
		fail "meson compile qemu-img with -Dqemu_img_shim=true"
	fi
else
	cat "$tmp/setup-off.log" "$tmp/setup-on.log"
	fail "meson setup with and without -Dqemu_img_shim"
fi

# ---- resize goes to instar ----------------------------------------------------
# --help: the marker line, then instar's own help (qemu-img says "Not enough
# arguments").
run help "$shim" resize --help
if [[ $(cat "$tmp/help.rc") == 0 ]] &&
	[[ $(head -1 "$tmp/help.out") == "qemu-img resize: instar's qemu-img front runs $instar" ]] &&
	grep -q '^usage: instar resize' "$tmp/help.out" && [[ ! -s $tmp/help.err ]]; then
	ok "qemu-img resize --help: $(head -1 "$tmp/help.out")"
else
	fail "qemu-img resize --help"
	show help
fi

# --output=json is instar's alone (qemu-img resize refuses it); stdout passes
# through unchanged: the same bytes as instar's on a copy of the image.
qemu-img create -q -f raw a.raw 1M
cp a.raw b.raw
run json_shim "$shim" resize --output=json -f raw a.raw +1M
run json_instar "$instar" resize --output=json -f raw b.raw +1M
sed -i 's/b\.raw/a.raw/' "$tmp/json_instar.out"
if same json_shim json_instar && [[ $(cat "$tmp/json_shim.rc") == 0 ]] &&
	(($(stat -c %s a.raw) == 2097152)); then
	ok "resize --output=json runs instar (stdout as instar's)"
else
	fail "resize --output=json through the front differs from instar's"
	show json_shim
	show json_instar
fi

# vpc: qemu-img 7.2 cannot resize it ("Image format driver does not support
# resize"); instar grows it in its guest. qemu-img has no check for vpc
# ("This image format does not support checks"): the grown image must read
# as the untouched copy, zeros past its old end (qemu-img compare).
if ! kvm_usable; then
	GUEST_SKIPPED=1 # reported last, after every other check
else
	qemu-img create -q -f vpc d.vhd 16M
	cp d.vhd e.vhd
	run vpc_real "$real" resize -f vpc e.vhd +16M
	run vpc_shim "$shim" resize -f vpc d.vhd +16M
	size=$(qemu-img info -f vpc --output=json d.vhd |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
	if [[ $(cat "$tmp/vpc_real.rc") != 0 && $(cat "$tmp/vpc_shim.rc") == 0 ]] &&
		[[ $(cat "$tmp/vpc_shim.out") == "Image resized." ]] && ((size > 16 * 1048576)) &&
		qemu-img compare -q -f vpc -F vpc e.vhd d.vhd; then
		ok "vpc: the real qemu-img refuses, the front grows it to $size ($(cat "$tmp/vpc_real.err"))"
	else
		fail "vpc resize through the front (virtual size $size)"
		show vpc_real
		show vpc_shim
	fi
fi

# ---- messages: qemu-img's prefix and hint -------------------------------------
# Where instar and qemu-img say the same, the front says it byte for byte.
for args in "" "--bogus a.raw 1M" "-f"; do
	# shellcheck disable=SC2086 # the words of args are the arguments
	run m_real "$real" resize $args
	# shellcheck disable=SC2086
	run m_shim "$shim" resize $args
	if same m_real m_shim; then
		ok "qemu-img resize $args: as qemu-img ($(head -1 "$tmp/m_shim.err"))"
	else
		fail "qemu-img resize $args differs from the real qemu-img"
		show m_real
		show m_shim
	fi
done
# Whatever instar refuses (qemu-img may accept it) comes out worded as
# qemu-img's: instar's stderr with only its prefix and hint rewritten, and
# the same exit code.
qemu-img create -q -f raw c.raw 1M
for args in "--object secret,id=s0,data=x -f raw c.raw +1M" "--frobnicate c.raw +1M" \
	"-f raw c.raw 1M" "-f raw missing.raw +1M" "-f qcow2 c.raw +1M" "c.raw -1M" \
	"--preallocation=bogus -f raw c.raw +1M"; do
	# shellcheck disable=SC2086
	run r_shim "$shim" resize $args
	# shellcheck disable=SC2086
	run r_instar "$instar" resize $args
	sed -e 's/^instar: /qemu-img: /' -e "s/'instar --help'/'qemu-img --help'/" \
		"$tmp/r_instar.err" >"$tmp/r_want.err"
	if [[ $(cat "$tmp/r_shim.rc") == "$(cat "$tmp/r_instar.rc")" ]] &&
		cmp -s "$tmp/r_shim.err" "$tmp/r_want.err" && cmp -s "$tmp/r_shim.out" "$tmp/r_instar.out" &&
		! grep -q 'instar: ' "$tmp/r_shim.err" &&
		{ [[ $(cat "$tmp/r_shim.rc") == 0 ]] || grep -q '^qemu-img: ' "$tmp/r_shim.err"; }; then
		ok "qemu-img resize $args: rc=$(cat "$tmp/r_shim.rc") $(head -1 "$tmp/r_shim.err")"
	else
		fail "qemu-img resize $args: not instar's result in qemu-img's words"
		show r_shim
		show r_instar
	fi
done

# ---- every other command reaches the real qemu-img --------------------------
qemu-img create -q -f qcow2 q.qcow2 64M
for args in "--version" "info --output=json q.qcow2" "check q.qcow2" "map --output=json q.qcow2" \
	"create -f qcow2 r.qcow2 1M" "--help" "frobnicate"; do
	rm -f r.qcow2
	# shellcheck disable=SC2086
	run o_real "$real" $args
	rm -f r.qcow2
	# shellcheck disable=SC2086
	run o_shim "$shim" $args
	if [[ $args == create* && ! -s r.qcow2 ]]; then
		fail "qemu-img $args through the front made no r.qcow2"
	elif same o_real o_shim; then
		ok "qemu-img $args: the real qemu-img's answer (rc=$(cat "$tmp/o_shim.rc"))"
	else
		fail "qemu-img $args through the front differs from the real qemu-img"
		show o_real
		show o_shim
	fi
done

# ---- never itself, whatever PATH holds --------------------------------------
"$real" --version >"$tmp/version.want"
tmo=$(command -v timeout)
path_case() { # NAME PATH EXPECT(real|loop|none) [DIR]: qemu-img by name, in DIR
	local name=$1 p=$2 expect=$3 dir=${4:-$tmp} rc
	env -C "$dir" PATH="$p" "$tmo" 20 qemu-img --version >"$tmp/$name.out" 2>"$tmp/$name.err"
	rc=$?
	case $expect in
	real) [[ $rc == 0 ]] && cmp -s "$tmp/$name.out" "$tmp/version.want" ;;
	loop) [[ $rc == 1 ]] && grep -q "^qemu-img: instar's qemu-img front was started by itself" "$tmp/$name.err" ;;
	none) [[ $rc == 127 ]] && grep -q "^qemu-img: instar's qemu-img front found no other qemu-img on PATH" "$tmp/$name.err" ;;
	esac || {
		fail "PATH=$p: expected $expect, rc=$rc out='$(head -c 200 "$tmp/$name.out")' err='$(cat "$tmp/$name.err")'"
		return
	}
	ok "PATH=$p: $expect"
}
mkdir -p link copy
ln -s "$shim" link/qemu-img
cp "$shim" copy/qemu-img
ln "$shim" hard 2>/dev/null && mkdir -p hardlink && mv hard hardlink/qemu-img
path_case twice "$shimdir:$shimdir:$realdir:/usr/bin:/bin" real
path_case dotdot "$shimdir/../shim:$shimdir:$realdir:/usr/bin:/bin" real
path_case symlink "$tmp/link:$shimdir:$realdir:/usr/bin:/bin" real
path_case empty_entries "$shimdir::$shimdir:$realdir:/usr/bin:/bin" real
[[ -e hardlink/qemu-img ]] && path_case hardlink "$tmp/hardlink:$realdir:/usr/bin:/bin" real
path_case relative ".:$realdir:/usr/bin:/bin" real "$shimdir"
path_case copy "$shimdir:$tmp/copy:$realdir:/usr/bin:/bin" loop
path_case none "$shimdir:$tmp/link" none
# By name through PATH, resize still goes to instar
PATH="$shimdir:$PATH" timeout 60 qemu-img resize --help >"$tmp/byname.out" 2>&1
grep -q "^qemu-img resize: instar's qemu-img front runs" "$tmp/byname.out" &&
	ok "qemu-img resize --help by name on PATH reaches the front" ||
	fail "qemu-img resize --help by name: $(head -3 "$tmp/byname.out")"

if ((fails)); then
	echo "$fails shim check(s) failed"
	exit 1
fi
guest_skips_end
echo "all shim checks passed"
