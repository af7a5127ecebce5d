#!/bin/bash
# tests/compat/twogb_flat.sh — vmdk descriptor files split into flat
# extents of 2 GiB (twoGbMaxExtentFlat, as `qemu-img create -o
# subformat=twoGbMaxExtentFlat` writes them: NAME-f001.vmdk, -f002, ...).
# The planner (plan-apply) rewrites the descriptor; the host's part (the
# extent files: the last one sized, new ones created, dropped ones removed)
# is done here by what the new descriptor names. qemu-img info, check and
# compare, and libvmdk, read the result; the extent files on disk are
# exactly those the descriptor names. Host-only: `instar resize` refuses
# hostile extent names (outside the directory, symbolic links, a second
# link, another owner, a file where a new extent would go) before anything
# changes, and without /dev/kvm puts back what it prepared. With /dev/kvm,
# `instar resize` end to end gives the same files.
#   twogb_flat.sh PLAN_APPLY QEMU_IMG INSTAR
set -euo pipefail
. "$(dirname "$0")/lib.sh"

compat_init "$1" "$2"
INSTAR=$(realpath "$3")
[ -x "$INSTAR" ] || fail "no instar at $INSTAR"
NCHECK=0
M=$((1 << 20))
G=$((1 << 30))
e2e_or_left_out "the end-to-end resizes (plan-apply and the script do them)"

vsize() {
	qi_vsize vmdk "$1" | head -n1
}

# extents DIR: "name length" of every extent the descriptor names, by the
# descriptor, then the same list from the directory (files but d.vmdk).
named() {
	sed -n 's/^RW \([0-9]*\) FLAT "\(.*\)" 0$/\2 \1/p' "$1/d.vmdk" |
		while read -r n s; do echo "$n $((s * 512))"; done | sort
}
on_disk() {
	(cd "$1" && for f in *; do [ "$f" = d.vmdk ] || echo "$f $(stat -c %s "$f")"; done) | sort
}

# mk NAME SIZE: a twoGbMaxExtentFlat image in $T/NAME with data written
# near its start, around 2 GiB and near its end; $T/NAME.raw its disk.
mk() {
	local size=$1 name=$2 w=("0xab 0 64k")
	mkdir "$T/$name"
	"$QI" create -q -f vmdk -o subformat=twoGbMaxExtentFlat "$T/$name/d.vmdk" "$size"
	[ "$size" -gt $((2 * G)) ] && w+=("0xcd $((2 * G - 32768)) 64k")
	w+=("0xef $((size - 65536)) 64k")
	qio_write vmdk "$T/$name/d.vmdk" "${w[@]}"
	"$QI" convert -f vmdk -O raw -S 4k "$T/$name/d.vmdk" "$T/$name.raw"
}
mk $M s1m
mk $((2 * G)) s2g
mk $((3 * G)) s3g
mk $((5 * G)) s5g
# what qemu-img writes: 2 GiB extents, the last one shorter
[ "$(named "$T/s5g" | tr '\n' ' ')" = "d-f001.vmdk $((2 * G)) d-f002.vmdk $((2 * G)) d-f003.vmdk $G " ] ||
	fail "qemu-img's 5G layout: $(named "$T/s5g")"
grep -q '^createType="twoGbMaxExtentFlat"$' "$T/s5g/d.vmdk" || fail "createType"
out=$("$QI" resize -f vmdk "$T/s1m/d.vmdk" 2M 2>&1) && fail "qemu-img resized it"
echo "qemu-img resize: $out"

# split_case NAME DIR NEW [--shrink]
split_case() {
	local name=$1 dir=$2 new=$3 out n s
	shift 3
	rm -rf "$T/c" "$T/e"
	cp -r --sparse=always "$T/$dir" "$T/c"
	[ -n "$E2E" ] && cp -r --sparse=always "$T/$dir" "$T/e"
	out=$("$PA" "$@" vmdk "$T/c/d.vmdk" "$new") || fail "$name: plan-apply: $out"
	echo "$name: $out"
	case "$out" in *" new=$new "*) ;; *) fail "$name: reported size" ;; esac
	# the host's part, by what the new descriptor names
	named "$T/c" | while read -r n s; do truncate -s "$s" "$T/c/$n"; done
	for n in $(on_disk "$T/c" | cut -d' ' -f1); do
		named "$T/c" | grep "^$n " >/dev/null || rm "$T/c/$n"
	done
	cp "$T/c/d.vmdk" "$T/c.desc"
	[ "$(named "$T/c")" = "$(on_disk "$T/c")" ] || fail "$name: extent files"
	[ "$(vsize "$T/c/d.vmdk")" = "$new" ] || fail "$name: qemu-img info"
	"$QI" check -q -f vmdk "$T/c/d.vmdk" || fail "$name: qemu-img check"
	mkexp "$T/$dir.raw" "$new" "$T/exp.raw"
	"$QI" compare -q -f vmdk -F raw "$T/c/d.vmdk" "$T/exp.raw" || fail "$name: data"
	libyal_check vmdk "$T/c/d.vmdk" "$new" "$T/exp.raw"
	if [ -n "$E2E" ]; then
		"$INSTAR" resize -q -f vmdk "$@" "$T/e/d.vmdk" "$new" || fail "$name: instar resize"
		cmp "$T/e/d.vmdk" "$T/c.desc" || fail "$name: instar and plan-apply differ"
		[ "$(named "$T/e")" = "$(on_disk "$T/e")" ] || fail "$name: instar's extent files"
		[ "$(vsize "$T/e/d.vmdk")" = "$new" ] || fail "$name: instar's result"
		"$QI" check -q -f vmdk "$T/e/d.vmdk" || fail "$name: instar's qemu-img check"
		"$QI" compare -q -f vmdk -F raw "$T/e/d.vmdk" "$T/exp.raw" ||
			fail "$name: instar's data"
	fi
	NCHECK=$((NCHECK + 1))
}

split_case "1M -> 3G" s1m $((3 * G))
split_case "2G -> 2G+1M" s2g $((2 * G + M))
split_case "5G -> 1M" s5g $M --shrink
split_case "3G -> 5G" s3g $((5 * G))
split_case "5G -> 2G (an extent boundary)" s5g $((2 * G)) --shrink
split_case "3G -> 4G+512" s3g $((4 * G + 512))
split_case "5G -> 3G-512" s5g $((3 * G - 512)) --shrink
# the layout qemu-img would have written for that size
split_case "1M -> 5G" s1m $((5 * G))
# (qemu's first write padded both texts with NULs)
tr -d '\0' <"$T/c/d.vmdk" | grep -v '^CID=' >"$T/a.desc"
tr -d '\0' <"$T/s5g/d.vmdk" | grep -v '^CID=' >"$T/b.desc"
grep -q '^RW 2097152 FLAT "d-f003.vmdk" 0$' "$T/a.desc" || fail "1M -> 5G: $(cat "$T/a.desc")"
diff "$T/a.desc" "$T/b.desc" || fail "1M -> 5G: not qemu-img's descriptor for 5G"

# ---- refusals of the planner ----
refuse_pa "no --shrink" SHRINK_WITHOUT_FLAG vmdk "$T/s3g/d.vmdk" $G
refuse_pa "size 3G+1" NOT_MULTIPLE_512 vmdk "$T/s3g/d.vmdk" $((3 * G + 1))
refuse_pa metadata PREALLOCATION_UNSUPPORTED --prealloc metadata vmdk "$T/s3g/d.vmdk" $((4 * G))
edit_split 's/^RW 2097152 FLAT "d-f002.vmdk" 0/RW 2097152 FLAT "d-f002.vmdk" 2048/'
refuse_pa "offset 2048" UNSUPPORTED_SUBFORMAT vmdk "$T/x/d.vmdk" $((4 * G))
edit_split 's/^RW 2097152 FLAT "d-f002.vmdk" 0/RW 2097152 VMFS "d-f002.vmdk"/'
refuse_pa "a VMFS extent" UNSUPPORTED_SUBFORMAT vmdk "$T/x/d.vmdk" $((4 * G))
edit_split 's/^RW 2097152 FLAT "d-f002.vmdk" 0/RDONLY 2097152 FLAT "d-f002.vmdk" 0/'
refuse_pa "an RDONLY extent" UNSUPPORTED_SUBFORMAT vmdk "$T/x/d.vmdk" $((4 * G))
edit_split 's/"d-f002.vmdk"/"other.vmdk"/'
refuse_pa "a name off the rule" UNSUPPORTED_SUBFORMAT vmdk "$T/x/d.vmdk" $((4 * G))
edit_split 's/^RW 4194304 FLAT "d-f002.vmdk" 0/RW 4194000 FLAT "d-f002.vmdk" 0/' s5g
refuse_pa "a short middle extent" UNSUPPORTED_SUBFORMAT vmdk "$T/x/d.vmdk" $((6 * G))
edit_split 's/^RW 4194304 FLAT "d-f001.vmdk" 0/RW 4194816 FLAT "d-f001.vmdk" 0/'
refuse_pa "a first extent over 2 GiB" UNSUPPORTED_SUBFORMAT vmdk "$T/x/d.vmdk" $((4 * G))
# VMware's split (extents a little under 2 GiB) keeps its own size
edit_split 's/^RW 4194304 FLAT "d-f001.vmdk" 0/RW 4192256 FLAT "d-f001.vmdk" 0/'
truncate -s $((4192256 * 512)) "$T/x/d-f001.vmdk"
out=$("$PA" vmdk "$T/x/d.vmdk" $(((4192256 * 2 + 2097152 + 8) * 512))) || fail "VMware split: $out"
tr -d '\0' <"$T/x/d.vmdk" | grep '^RW 4192256 FLAT "d-f002.vmdk" 0$' >/dev/null || fail "VMware split: f002"
tr -d '\0' <"$T/x/d.vmdk" | grep '^RW 2097160 FLAT "d-f003.vmdk" 0$' >/dev/null || fail "VMware split: f003"
NCHECK=$((NCHECK + 1))

# ---- the host: hostile names, before anything changes (no guest needed) ----
# policy NAME DIR WANT ARGS...: instar resize refuses (stderr has WANT); no
# file in DIR or beside it changed, none appeared or went (lib.sh).
policy() {
	refuse_untouched "policy $1" "${@:2}"
}
# extents outside the image's directory (every name follows the first)
rm -rf "$T/p" "$T/q" && mkdir "$T/p" && cp -r --sparse=always "$T/s3g" "$T/q"
mv "$T/q/d.vmdk" "$T/p/d.vmdk" && sed -i 's|"d-f00|"../q/d-f00|' "$T/p/d.vmdk"
policy outside "$T/p" "instar opens a vmdk extent only beneath the image's directory" \
	d.vmdk $((5 * G))
policy "outside, shrink" "$T/p" "instar opens a vmdk extent only beneath" --shrink d.vmdk $G
sed -i "s|\"../q/d-f00|\"$T/q/d-f00|" "$T/p/d.vmdk"
policy "absolute outside" "$T/p" "instar opens a vmdk extent only beneath" d.vmdk $((5 * G))
rm -rf "$T/p" "$T/q"
# a symbolic link as the last extent (grow) or a dropped one (shrink)
cp -r --sparse=always "$T/s3g" "$T/p" && mv "$T/p/d-f002.vmdk" "$T/p/real.vmdk"
ln -s real.vmdk "$T/p/d-f002.vmdk"
policy "symlink last" "$T/p" "follows no symbolic link" d.vmdk $((5 * G))
policy "symlink dropped" "$T/p" "follows no symbolic link" --shrink d.vmdk $G
rm -rf "$T/p"
# a second link to a dropped extent
cp -r --sparse=always "$T/s5g" "$T/p" && ln "$T/p/d-f003.vmdk" "$T/p/other.vmdk"
policy "hard link dropped" "$T/p" "has more than one link" --shrink d.vmdk $G
rm -rf "$T/p"
# a file (or a dangling symbolic link) where a new extent would go
cp -r --sparse=always "$T/s3g" "$T/p" && echo keep >"$T/p/d-f003.vmdk"
policy "existing new extent" "$T/p" "Could not create 'd-f003.vmdk': File exists" \
	d.vmdk $((5 * G))
rm "$T/p/d-f003.vmdk" && ln -s /nonexistent-instar "$T/p/d-f003.vmdk"
policy "symlink new extent" "$T/p" "d-f003.vmdk" d.vmdk $((5 * G))
rm -rf "$T/p"
# an extent of another owner (root only)
if [ "$(id -u)" = 0 ]; then
	cp -r --sparse=always "$T/s3g" "$T/p" && chown 4242 "$T/p/d-f002.vmdk"
	policy "another owner" "$T/p" "owner is not the image's owner" d.vmdk $((5 * G))
	rm -rf "$T/p"
else
	echo "note: not root: the other-owner case is left out"
fi
# a missing extent the resize does not change: qemu-img's open message,
# word for word (every extent is opened first, as qemu opens them)
cp -r --sparse=always "$T/s5g" "$T/p" && rm "$T/p/d-f002.vmdk"
policy "missing middle" "$T/p" "Could not open 'd-f002.vmdk': No such file or directory" \
	d.vmdk $((7 * G))
q=$(cd "$T/p" && "$QI" resize -f vmdk d.vmdk $((7 * G)) 2>&1) && fail "qemu-img resized it"
[ "${q#qemu-img: }" = "${LAST_ERR#instar: }" ] || fail "missing middle: qemu-img says $q"
rm -rf "$T/p"
# a missing dropped extent
cp -r --sparse=always "$T/s5g" "$T/p" && rm "$T/p/d-f003.vmdk"
policy "missing dropped" "$T/p" "Could not open 'd-f003.vmdk': No such file or directory" \
	--shrink d.vmdk $G
rm -rf "$T/p"

# Without /dev/kvm the guest cannot start: the extents a grow prepared are
# put back (the last one's length, the new files removed).
if [ -z "$E2E" ]; then
	rm -rf "$T/k" && cp -r --sparse=always "$T/s3g" "$T/k"
	on_disk "$T/k" >"$T/k.list"
	(cd "$T/k" && md5sum d.vmdk >"$T/k.sum")
	(cd "$T/k" && "$INSTAR" resize d.vmdk 7G >/dev/null 2>"$T/err") && fail "resized without KVM"
	grep -q "Could not start the resize guest" "$T/err" || fail "no KVM: $(cat "$T/err")"
	(cd "$T/k" && md5sum -c --quiet "$T/k.sum") || fail "no KVM: the descriptor changed"
	on_disk "$T/k" | diff "$T/k.list" - || fail "no KVM: the extents were not put back"
	NCHECK=$((NCHECK + 1))
fi
echo "twogb_flat: all ok ($NCHECK checks)"
guest_skips_end
