#!/bin/bash
# tests/compat/vmdk_flat.sh — descriptor files with one flat extent:
# monolithicFlat as qemu-img writes it (fresh, and NUL-padded as qemu
# rewrites it after a write) and ESXi's vmfs layout (descriptor +
# -flat.vmdk, a VMFS extent), also with the stale tail qemu leaves past the
# NUL when a new CID is shorter. The planner (plan-apply) rewrites the
# descriptor; the host's part, sizing the extent to the new size, is done
# here as the host does it (truncate). qemu-img info/check/compare and
# libvmdk read the result. Host-only: `instar info` reads qemu's size, and
# `instar resize` refuses extents its name policy forbids (outside the
# image's directory, a symbolic link, a FIFO, a second link, the descriptor
# itself, missing) before anything runs, changing nothing. With /dev/kvm,
# `instar resize` end to end gives the same files.
#   vmdk_flat.sh PLAN_APPLY QEMU_IMG INSTAR
set -euo pipefail
. "$(dirname "$0")/lib.sh"

compat_init "$1" "$2"
INSTAR=$(realpath "$3")
[ -x "$INSTAR" ] || fail "no instar at $INSTAR"
NCHECK=0
M=$((1 << 20))
e2e_or_left_out "the end-to-end resizes (plan-apply and the host's truncate do them)"

# the image's size (qemu-img info also lists the extent's, after it)
vsize() {
	qi_vsize vmdk "$1" | head -n1
}

info_size() {
	"$INSTAR" info --output=json "$1" | sed -n 's/.*"virtual_size":\([0-9]*\).*/\1/p'
}

# The three starting points, each in its own directory with orig.raw.
mkdir "$T/fresh" "$T/written" "$T/esxi"
"$QI" create -q -f vmdk -o subformat=monolithicFlat "$T/fresh/d.vmdk" 64M
"$QI" create -q -f vmdk -o subformat=monolithicFlat "$T/written/d.vmdk" 64M
qio_write vmdk "$T/written/d.vmdk" "0xab 0 1M" "0xcd $((63 * M)) 1M"
cat >"$T/esxi/d.vmdk" <<'EOF'
# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=fffffffe
parentCID=ffffffff
isNativeSnapshot="no"
createType="vmfs"

# Extent description
RW 131072 VMFS "d-flat.vmdk"

# The Disk Data Base
#DDB

ddb.adapterType = "lsilogic"
ddb.geometry.cylinders = "8"
ddb.geometry.heads = "255"
ddb.geometry.sectors = "63"
ddb.longContentID = "8e1b0a3a0b0c0d0e0f1011121314fffe"
ddb.uuid = "60 00 C2 9a 3b 4c 5d 6e-7f 80 91 a2 b3 c4 d5 e6"
ddb.virtualHWVersion = "13"
EOF
truncate -s 64M "$T/esxi/d-flat.vmdk"
qio_write vmdk "$T/esxi/d.vmdk" "0x5a 0 1M" "0xa5 $((63 * M)) 1M"
# (qemu left the written descriptors NUL-padded to 512 bytes)
[ "$(stat -c %s "$T/written/d.vmdk")" = 512 ] || fail "qemu did not pad the descriptor"
# qemu's vmdk_write_cid, when the new CID has fewer hex digits than the
# old, leaves the old text's tail past the new NUL (seen 1 run in 16 above);
# qemu reads up to the NUL. Made here deterministically: CID=adea52.
mkdir "$T/stale"
cp "$T/esxi/d-flat.vmdk" "$T/stale/"
python3 - "$T/esxi/d.vmdk" "$T/stale/d.vmdk" <<'PY'
import re, sys
d = open(sys.argv[1], "rb").read()
text = re.sub(rb"(?m)^CID=[0-9a-f]+$", b"CID=fffffffe", d.split(b"\0", 1)[0])
new = re.sub(rb"(?m)^CID=[0-9a-f]+$", b"CID=adea52", text)
assert len(new) == len(text) - 2
out = new + b"\0" + text[len(new) + 1:]
open(sys.argv[2], "wb").write(out + b"\0" * (len(d) - len(out)))
PY
for d in fresh written esxi stale; do
	[ "$(info_size "$T/$d/d.vmdk")" = $((64 * M)) ] || fail "$d: instar info"
	[ "$(vsize "$T/$d/d.vmdk")" = $((64 * M)) ] || fail "$d: qemu-img info"
	"$QI" convert -f vmdk -O raw "$T/$d/d.vmdk" "$T/$d.raw"
done

# flat_case NAME DIR NEW [--shrink]: resize a copy of DIR to NEW.
flat_case() {
	local name=$1 dir=$2 new=$3 out ext
	shift 3
	rm -rf "$T/c" "$T/e"
	cp -r "$T/$dir" "$T/c"
	ext=$(sed -n 's/^RW [0-9]* [A-Z]* "\(.*\)".*/\1/p' "$T/c/d.vmdk")
	[ -n "$E2E" ] && cp -r "$T/$dir" "$T/e"
	out=$("$PA" "$@" vmdk "$T/c/d.vmdk" "$new") || fail "$name: plan-apply: $out"
	echo "$name: $out"
	case "$out" in *" new=$new "*) ;; *) fail "$name: reported size" ;; esac
	truncate -s "$new" "$T/c/$ext" # the host's part
	# the descriptor as resized (qemu's first write below gives it a new CID)
	cp "$T/c/d.vmdk" "$T/c.desc"
	[ "$(vsize "$T/c/d.vmdk")" = "$new" ] || fail "$name: qemu-img info"
	[ "$(info_size "$T/c/d.vmdk")" = "$new" ] || fail "$name: instar info"
	"$QI" check -q -f vmdk "$T/c/d.vmdk" || fail "$name: qemu-img check"
	mkexp "$T/$dir.raw" "$new" "$T/exp.raw"
	"$QI" compare -q -f vmdk -F raw "$T/c/d.vmdk" "$T/exp.raw" || fail "$name: data"
	libyal_check vmdk "$T/c/d.vmdk" "$new" "$T/exp.raw"
	# qemu writes past the old end
	if [ "$new" -gt $((64 * M)) ]; then
		out=$("$QIO" -f vmdk -c "write -P 0x77 $((new - M)) 512k" \
			-c "read -P 0x77 $((new - M)) 512k" "$T/c/d.vmdk")
		case "$out" in *failed*) fail "$name: write after the resize: $out" ;; esac
	fi
	if [ -n "$E2E" ]; then
		"$INSTAR" resize -q -f vmdk "$@" "$T/e/d.vmdk" "$new" || fail "$name: instar resize"
		cmp "$T/e/d.vmdk" "$T/c.desc" || fail "$name: instar and plan-apply differ"
		[ "$(stat -c %s "$T/e/$ext")" = "$new" ] || fail "$name: instar's extent length"
		[ "$(vsize "$T/e/d.vmdk")" = "$new" ] || fail "$name: instar's result"
		"$QI" compare -q -f vmdk -F raw "$T/e/d.vmdk" "$T/exp.raw" ||
			fail "$name: instar's data"
	fi
	NCHECK=$((NCHECK + 1))
}

for d in fresh written esxi stale; do
	flat_case "$d grow" "$d" $((1024 * M))
	flat_case "$d shrink" "$d" $((16 * M)) --shrink
	flat_case "$d grow 512" "$d" $((64 * M + 512))
done
# the descriptor keeps its length on a shrink: NUL padding stays NULs
flat_case "written shrink" written $((16 * M)) --shrink
[ "$(stat -c %s "$T/c/d.vmdk")" = 512 ] || fail "written shrink: descriptor length"
[ "$(tr -d '\0' <"$T/c/d.vmdk" | wc -c)" -lt 512 ] || fail "written shrink: no NUL padding"
# the stale tail past the NUL is gone after a rewrite (NULs over it)
flat_case "stale grow 1G" stale $((1024 * M))
python3 - "$T/c/d.vmdk" <<'PY' || fail "stale: bytes left past the descriptor's NUL"
import sys
d = open(sys.argv[1], "rb").read()
sys.exit(1 if any(d[d.index(b"\0"):]) else 0)
PY
python3 - "$T/stale/d.vmdk" <<'PY' || fail "stale: the made image has no tail past its NUL"
import sys
d = open(sys.argv[1], "rb").read()
sys.exit(0 if any(d[d.index(b"\0"):]) else 1)
PY
# refusals of the planner
out=$("$PA" vmdk "$T/fresh/d.vmdk" $((16 * M))) && fail "a shrink without --shrink"
case "$out" in *SHRINK_WITHOUT_FLAG*) ;; *) fail "no --shrink: $out" ;; esac
out=$("$PA" vmdk "$T/fresh/d.vmdk" $((16 * M + 1))) && fail "a size of 16M + 1"
case "$out" in *NOT_MULTIPLE_512*) ;; *) fail "16M + 1: $out" ;; esac

# ---- the name policy, before anything runs (no guest needed) ----
# policy NAME EXTENT-NAME WANT: instar resize refuses, exit 1, stderr has
# WANT; the descriptor and every file beside it are unchanged.
policy() {
	local name=$1 ext=$2 want=$3 err
	sed -i "s|^RW \([0-9]*\) FLAT \".*\" 0|RW \1 FLAT \"$ext\" 0|" "$T/p/d.vmdk"
	(cd "$T/p" && find . -type f -exec md5sum {} + | sort) >"$T/before.sum"
	if (cd "$T/p" && "$INSTAR" resize -f vmdk d.vmdk 128M >/dev/null 2>"$T/err"); then
		fail "policy $name: resized"
	fi
	err=$(cat "$T/err")
	case "$err" in *"$want"*) ;; *) fail "policy $name: $err" ;; esac
	(cd "$T/p" && find . -type f -exec md5sum {} + | sort) >"$T/after.sum"
	cmp -s "$T/before.sum" "$T/after.sum" || fail "policy $name: files changed"
	echo "policy $name: $err"
	NCHECK=$((NCHECK + 1))
}
rm -rf "$T/p" && mkdir -p "$T/p/sub" && cp "$T/fresh/d.vmdk" "$T/fresh/d-flat.vmdk" "$T/p/"
truncate -s 64M "$T/outside-flat.vmdk"
policy outside ../outside-flat.vmdk "instar opens a vmdk extent only beneath the image's directory"
policy absolute-outside "$T/outside-flat.vmdk" "instar opens a vmdk extent only beneath"
ln -s d-flat.vmdk "$T/p/link-flat.vmdk"
policy symlink link-flat.vmdk "follows no symbolic link"
mkfifo "$T/p/fifo-flat.vmdk"
policy fifo fifo-flat.vmdk "the extent file is not a regular file"
ln "$T/p/d-flat.vmdk" "$T/p/sub/hard-flat.vmdk"
policy hardlink sub/hard-flat.vmdk "the extent file has more than one link"
policy itself d.vmdk "the extent file is the image itself"
policy missing none-flat.vmdk "Could not open 'none-flat.vmdk': No such file or directory"
policy protocol "nbd:localhost:10809" "instar opens only local extent files"
# Without /dev/kvm the guest cannot start: the extent, grown before the
# guest ran, is put back, and the descriptor is untouched.
if [ -z "$E2E" ]; then
	rm -rf "$T/k" && cp -r "$T/written" "$T/k"
	(cd "$T/k" && md5sum d.vmdk d-flat.vmdk >"$T/k.sum")
	(cd "$T/k" && "$INSTAR" resize d.vmdk 128M >/dev/null 2>"$T/err") && fail "resized without KVM"
	grep -q "Could not start the resize guest" "$T/err" || fail "no KVM: $(cat "$T/err")"
	(cd "$T/k" && md5sum -c --quiet "$T/k.sum") || fail "no KVM: the extent was not put back"
	NCHECK=$((NCHECK + 1))
fi
echo "vmdk_flat: all ok ($NCHECK checks)"
guest_skips_end
