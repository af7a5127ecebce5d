#!/bin/bash
# tests/compat/twogb_sparse.sh — vmdk descriptor files split into hosted
# sparse extents (twoGbMaxExtentSparse, VMware Workstation's "split into
# multiple files", as `qemu-img create -o subformat=twoGbMaxExtentSparse`
# writes it: NAME-s001.vmdk, -s002, ..., each with its own header).
# qemu takes each extent's size from its header, so instar never changes an
# extent it keeps: a grow appends new extents, a shrink drops whole ones,
# and one that ends inside an extent replaces it with a copy under the next
# number whose header has the new size (docs/formats.md §2.3b).
# The planner (plan-apply) rewrites the descriptor; the host's part is done
# here by what the new descriptor names, with extents qemu-img creates. With
# /dev/kvm, `instar resize` end to end must give the same descriptor and
# extent files byte for byte (so its new extents are qemu-img's). qemu-img
# info, check and compare, and libvmdk, read every result. Refusals (a
# shrink inside an extent, an extent whose header disagrees with its line,
# hostile names) change no file.
#   twogb_sparse.sh PLAN_APPLY QEMU_IMG INSTAR
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

# named DIR: "name sectors" of every extent the descriptor names; on_disk
# DIR: every file but d.vmdk.
named() {
	tr -d '\0' <"$1/d.vmdk" | sed -n 's/^RW \([0-9]*\) SPARSE "\(.*\)"$/\2 \1/p'
}
on_disk() {
	(cd "$1" && for f in *; do [ "$f" = d.vmdk ] || echo "$f"; done) | sort
}

# host_part DIR OLD: what instar's host does, by the new descriptor in DIR
# (a copy of OLD, then resized by plan-apply): a named extent that is
# missing is, at the place of one of OLD's (a shrink inside it), a copy of
# that one with the new capacity in its header, else created as qemu-img
# creates one of its size; every file the descriptor no longer names is
# removed.
host_part() {
	local dir=$1 old=$2 n s i=0 o
	named "$dir" | while read -r n s; do
		i=$((i + 1))
		[ -e "$dir/$n" ] && continue
		o=$(named "$old" | sed -n "${i}p" | cut -d' ' -f1)
		if [ -n "$o" ]; then
			cp --sparse=always "$old/$o" "$dir/$n"
			python3 -c 'import struct,sys; f=open(sys.argv[1],"r+b"); f.seek(12); f.write(struct.pack("<Q", int(sys.argv[2])))' \
				"$dir/$n" "$s"
			continue
		fi
		rm -rf "$T/mk" && mkdir "$T/mk"
		"$QI" create -q -f vmdk -o subformat=twoGbMaxExtentSparse "$T/mk/t.vmdk" \
			$((s * 512))
		[ "$(ls "$T/mk")" = "$(printf 't-s001.vmdk\nt.vmdk')" ] || fail "qemu-img: $(ls "$T/mk")"
		mv "$T/mk/t-s001.vmdk" "$dir/$n"
	done
	for n in $(on_disk "$dir"); do
		named "$dir" | grep -q "^$n " || rm "$dir/$n"
	done
}

# mk NAME SIZE: a twoGbMaxExtentSparse image in $T/NAME with data near its
# start, around 2 GiB and near its end; $T/NAME.raw its disk.
mk() {
	local size=$1 name=$2 w=("0xab 0 64k")
	mkdir "$T/$name"
	"$QI" create -q -f vmdk -o subformat=twoGbMaxExtentSparse "$T/$name/d.vmdk" "$size"
	[ "$size" -gt $((2 * G)) ] && w+=("0xcd $((2 * G - 32768)) 64k")
	w+=("0xef $((size - 65536)) 64k")
	qio_write vmdk "$T/$name/d.vmdk" "${w[@]}"
	"$QI" convert -f vmdk -O raw -S 4k "$T/$name/d.vmdk" "$T/$name.raw"
}
mk $M s1m
mk $((3 * G)) s3g
mk $((5 * G)) s5g
[ "$(named "$T/s3g" | tr '\n' ' ')" = "d-s001.vmdk 4194304 d-s002.vmdk 2097152 " ] ||
	fail "qemu-img's 3G layout: $(named "$T/s3g")"
out=$("$QI" resize -f vmdk "$T/s1m/d.vmdk" 2M 2>&1) && fail "qemu-img resized it"
echo "qemu-img resize: $out"

# check_dir NAME DIR SIZE RAW: the descriptor names exactly the files there,
# and qemu-img and libvmdk read RAW's disk cut or padded to SIZE.
check_dir() {
	local name=$1 dir=$2 size=$3 raw=$4
	[ "$(named "$dir" | cut -d' ' -f1 | sort)" = "$(on_disk "$dir")" ] ||
		fail "$name: extent files: $(on_disk "$dir" | tr '\n' ' ')"
	[ "$(vsize "$dir/d.vmdk")" = "$size" ] || fail "$name: qemu-img info $(vsize "$dir/d.vmdk")"
	"$QI" check -q -f vmdk "$dir/d.vmdk" || fail "$name: qemu-img check"
	mkexp "$raw" "$size" "$T/exp.raw"
	"$QI" compare -q -f vmdk -F raw "$dir/d.vmdk" "$T/exp.raw" || fail "$name: data"
	# (LIBYAL_CANNOT: libvmdk cannot read this shape at all, shown on the
	# image before the resize)
	[ -n "${LIBYAL_CANNOT:-}" ] || libyal_check vmdk "$dir/d.vmdk" "$size" "$T/exp.raw"
}

# sparse_case NAME DIR NEW [ARGS...]: DIR resized to NEW by plan-apply and the
# script's host part, and (with /dev/kvm) by instar: the same files.
sparse_case() {
	local name=$1 dir=$2 new=$3 f
	shift 3
	rm -rf "$T/c" "$T/e"
	cp -r --sparse=always "$T/$dir" "$T/c"
	[ -n "$E2E" ] && cp -r --sparse=always "$T/$dir" "$T/e"
	out=$("$PA" "$@" vmdk "$T/c/d.vmdk" "$new") || fail "$name: plan-apply: $out"
	echo "$name: $out"
	case "$out" in *" new=$new "*) ;; *) fail "$name: reported size" ;; esac
	host_part "$T/c" "$T/$dir"
	check_dir "$name" "$T/c" "$new" "$T/$dir.raw"
	# the extents kept are untouched
	for f in $(on_disk "$T/c"); do
		[ -e "$T/$dir/$f" ] && { cmp "$T/$dir/$f" "$T/c/$f" || fail "$name: $f changed"; }
	done
	if [ -n "$E2E" ]; then
		"$INSTAR" resize -q -f vmdk "$@" "$T/e/d.vmdk" "$new" || fail "$name: instar resize"
		[ "$(on_disk "$T/e")" = "$(on_disk "$T/c")" ] || fail "$name: instar's files"
		for f in d.vmdk $(on_disk "$T/c"); do
			cmp "$T/e/$f" "$T/c/$f" || fail "$name: instar's $f differs"
		done
		check_dir "$name (instar)" "$T/e" "$new" "$T/$dir.raw"
	fi
	NCHECK=$((NCHECK + 1))
}

sparse_case "1M -> 3G" s1m $((3 * G))
sparse_case "3G -> 6G+512" s3g $((6 * G + 512))
sparse_case "5G -> 2G (an extent boundary)" s5g $((2 * G)) --shrink
sparse_case "5G -> 4G (an extent boundary)" s5g $((4 * G)) --shrink
# shrink and grow back: the dropped extent's data does not come back
rm -rf "$T/sg" && cp -r --sparse=always "$T/s3g" "$T/sg"
"$PA" --shrink vmdk "$T/sg/d.vmdk" $((2 * G)) >/dev/null || fail "3G -> 2G"
host_part "$T/sg" "$T/s3g"
cp --sparse=always "$T/s3g.raw" "$T/sg.raw" && truncate -s $((2 * G)) "$T/sg.raw"
sparse_case "3G -> 2G -> 3G" sg $((3 * G))
grep -q '^d-s002.vmdk 2097152$' <(named "$T/c") || fail "3G -> 2G -> 3G: $(named "$T/c")"
# shrinks inside an extent: the extent at the cut becomes a copy under the
# next number; the old file goes
sparse_case "3G -> 1G (inside the first extent)" s3g $G --shrink
[ "$(named "$T/c" | tr '\n' ' ')" = "d-s003.vmdk 2097152 " ] || fail "3G -> 1G: $(named "$T/c")"
sparse_case "5G -> 3G (inside the second extent)" s5g $((3 * G)) --shrink
[ "$(named "$T/c" | tr '\n' ' ')" = "d-s001.vmdk 4194304 d-s004.vmdk 2097152 " ] ||
	fail "5G -> 3G: $(named "$T/c")"
sparse_case "5G -> 2G+512 (one sector into an extent)" s5g $((2 * G + 512)) --shrink
# ... and a grow after it: the bytes past the cut read as zeros
rm -rf "$T/sc" && cp -r --sparse=always "$T/s5g" "$T/sc"
"$PA" --shrink vmdk "$T/sc/d.vmdk" $((2 * G + M)) >/dev/null || fail "5G -> 2G+1M"
host_part "$T/sc" "$T/s5g"
cp --sparse=always "$T/s5g.raw" "$T/sc.raw" && truncate -s $((2 * G + M)) "$T/sc.raw"
sparse_case "5G -> 2G+1M -> 5G" sc $((5 * G))
[ "$(named "$T/c" | tr '\n' ' ')" = "d-s001.vmdk 4194304 d-s004.vmdk 2048 d-s005.vmdk 4194304 d-s006.vmdk 2095104 " ] ||
	fail "5G -> 2G+1M -> 5G: $(named "$T/c")"

# createType after the extent lines (qemu reads it anywhere): the same
# rule, the host's files (before, the host's probe missed the split and
# the guest's new descriptor named extents nobody had created)
rm -rf "$T/late" && cp -r --sparse=always "$T/s3g" "$T/late"
python3 - "$T/late/d.vmdk" <<'PY'
import sys
lines = open(sys.argv[1]).read().rstrip("\0 ").split("\n")
ct = [l for l in lines if l.startswith("createType=")]
open(sys.argv[1], "w").write("\n".join([l for l in lines if l not in ct] + ct) + "\n")
PY
tail -n1 "$T/late/d.vmdk" | grep -q '^createType="twoGbMaxExtentSparse"$' || fail "late createType"
cp "$T/s3g.raw" "$T/late.raw"
# libvmdk 20200926 cannot open such a descriptor ("unsupported disk type"),
# not even before a resize: its reading is left out here, and only here
if /usr/bin/python3 -c 'import pyvmdk' 2>/dev/null; then
	/usr/bin/python3 "$LIBYAL_READ" vmdk "$T/late/d.vmdk" $((3 * G)) "$T/late.raw" >/dev/null 2>&1 &&
		fail "libvmdk now reads a descriptor with createType last: drop LIBYAL_CANNOT"
fi
LIBYAL_CANNOT=1
sparse_case "createType last: 3G -> 5G" late $((5 * G))
sparse_case "createType last: 3G -> 1G" late $G --shrink
LIBYAL_CANNOT=

# VMware's split (extents of 2047 MiB) keeps its size for what is appended
rm -rf "$T/vw" && mkdir "$T/vw"
for i in 1 2; do
	rm -rf "$T/mk" && mkdir "$T/mk"
	"$QI" create -q -f vmdk -o subformat=twoGbMaxExtentSparse "$T/mk/t.vmdk" $((4192256 * 512))
	mv "$T/mk/t-s001.vmdk" "$T/vw/d-s00$i.vmdk"
done
sed -e 's/^RW 4194304 SPARSE "d-s001.vmdk"$/RW 4192256 SPARSE "d-s001.vmdk"/' \
	-e 's/^RW 2097152 SPARSE "d-s002.vmdk"$/RW 4192256 SPARSE "d-s002.vmdk"/' \
	"$T/s3g/d.vmdk" >"$T/vw/d.vmdk"
qio_write vmdk "$T/vw/d.vmdk" "0x5a $((4192256 * 1024 - 65536)) 64k"
"$QI" convert -f vmdk -O raw -S 4k "$T/vw/d.vmdk" "$T/vw.raw"
sparse_case "VMware 4094M -> 6G" vw $((6 * G))
named "$T/c" | tr '\n' ' ' | grep -q '^d-s001.vmdk 4192256 d-s002.vmdk 4192256 d-s003.vmdk 4192256 d-s004.vmdk 6144 $' ||
	fail "VMware split: $(named "$T/c")"

# ---- refusals of the planner ----
refuse_pa "no --shrink" SHRINK_WITHOUT_FLAG vmdk "$T/s3g/d.vmdk" $((2 * G))
refuse_pa "size 3G+1" NOT_MULTIPLE_512 vmdk "$T/s3g/d.vmdk" $((3 * G + 1))
refuse_pa falloc PREALLOCATION_UNSUPPORTED --prealloc falloc vmdk "$T/s3g/d.vmdk" $((4 * G))
edit_split 's/"d-s002.vmdk"/"other.vmdk"/'
refuse_pa "a name off the rule" "is not named as the first with a higher number" vmdk \
	"$T/x/d.vmdk" $((4 * G))
edit_split 's/^RW 2097152 SPARSE "d-s002.vmdk"/RW 2097152 FLAT "d-s002.vmdk" 0/'
refuse_pa "a FLAT line" "is not RW N SPARSE" vmdk "$T/x/d.vmdk" $((4 * G))

# ---- the host, before anything changes ----
refuse() {
	refuse_untouched "$@"
}
# an extent whose header capacity is not its line's (qemu reads the header)
edit_split 's/^RW 2097152 SPARSE "d-s002.vmdk"/RW 2097024 SPARSE "d-s002.vmdk"/'
refuse "header and line disagree" "$T/x" \
	"extent 'd-s002.vmdk' is not a sparse extent of the 2097024 sectors" d.vmdk $((5 * G))
# an extent that is not a vmdk at all
edit_split 's/x/x/' && truncate -s 1G "$T/x/d-s002.vmdk.raw" && mv "$T/x/d-s002.vmdk.raw" "$T/x/d-s002.vmdk"
refuse "a raw extent" "$T/x" "is not a sparse extent" d.vmdk $((5 * G))
# a missing extent: qemu-img's open message, word for word
edit_split 's/x/x/' && rm "$T/x/d-s002.vmdk"
refuse "missing extent" "$T/x" "Could not open 'd.vmdk': Could not open 'd-s002.vmdk': No such file or directory" \
	d.vmdk $((5 * G))
q=$(cd "$T/x" && "$QI" resize -f vmdk d.vmdk $((5 * G)) 2>&1) && fail "qemu-img resized it"
[ "${q#qemu-img: }" = "${LAST_ERR#instar: }" ] || fail "missing extent: qemu-img says $q"
# a file where a new extent would go
edit_split 's/x/x/' && echo keep >"$T/x/d-s003.vmdk"
refuse "existing new extent" "$T/x" "Could not create 'd-s003.vmdk': File exists" \
	d.vmdk $((5 * G))
# a symbolic link as an extent, or outside the directory
edit_split 's/x/x/' && mv "$T/x/d-s002.vmdk" "$T/x/real.vmdk" && ln -s real.vmdk "$T/x/d-s002.vmdk"
refuse "symlink extent" "$T/x" "follows no symbolic link" d.vmdk $((5 * G))
refuse "symlink dropped" "$T/x" "follows no symbolic link" --shrink d.vmdk $((2 * G))
rm -rf "$T/p" "$T/q" && mkdir "$T/p" && cp -r --sparse=always "$T/s3g" "$T/q"
mv "$T/q/d.vmdk" "$T/p/d.vmdk" && sed -i 's|"d-s00|"../q/d-s00|' "$T/p/d.vmdk"
refuse outside "$T/p" "only beneath the image's directory" d.vmdk $((5 * G))
rm -rf "$T/p" "$T/q"
# a file where a shrink's copy would go (left by an earlier crash)
edit_split 's/x/x/' && echo keep >"$T/x/d-s003.vmdk"
refuse "existing copy name" "$T/x" "Could not create 'd-s003.vmdk': File exists" \
	--shrink d.vmdk $G
# a shrink inside an extent whose header does not hold its directory (a
# stream's footer would hold a second capacity)
edit_split 's/x/x/' && printf '\377\377\377\377\377\377\377\377' |
	dd of="$T/x/d-s002.vmdk" bs=1 seek=56 conv=notrunc status=none
"$QI" info "$T/x/d.vmdk" >/dev/null 2>&1 && fail "qemu opens an extent with gdOffset -1 and no footer"
refuse "an extent without its directory" "$T/x" "is not a sparse extent" --shrink d.vmdk \
	$((2500 * M))
# an extent padded with more data than its size holds: not copied
edit_split 's/x/x/' && dd if=/dev/urandom of="$T/x/d-s002.vmdk" bs=1M count=1 seek=$((1024 + 300)) \
	conv=notrunc status=none && fallocate -l $((1400 * M)) -o $((4 * M)) "$T/x/d-s002.vmdk"
refuse "an extent padded with data" "$T/x" "holds more data than an extent of its size" \
	--shrink d.vmdk $((2500 * M))
rm -rf "$T/x"
# preallocation: the guest's refusal, through instar
if [ -n "$E2E" ]; then
	refuse "preallocation (instar)" "$T/s3g" "preallocation" --preallocation=full d.vmdk \
		$((4 * G))
fi
echo "twogb_sparse: all ok ($NCHECK checks)"
guest_skips_end
