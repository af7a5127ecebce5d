#!/usr/bin/env bash
# tests/compat/cli_external.sh INSTAR QEMU_IMG — qcow2 images with a backing
# chain or an external data file, `instar resize` against `qemu-img resize`
# on copies of the same files (each tool in its own directory, so relative
# names resolve alike): exit code, stdout, stderr (program name aside),
# `qemu-img check`, virtual size, `qemu-img compare`, `qemu-img map`, and the
# data file's length. Plus instar's deliberate refusals (the policy of
# vmm/external.h): a data file outside the image's directory, through a
# symbolic link, of another owner, with two links, not a regular file; a
# backing file that is not a regular file, or outside --confine's
# directories; the image and every other file left byte-identical. And
# control characters in names printed escaped.
set -u
. "$(dirname "$0")/lib.sh"
instar=$(realpath "$1")
QI=$2
QIO=$(qemu_io_for "$QI")
require_kvm
scratch_dir
cd "$T"
fails=0
cases=0
fail() { echo "FAIL [$CASE]: $*"; fails=$((fails + 1)); }
vsize() { qi_vsize "" "$1"; }
# Allocation shape without host offsets (those legitimately differ).
map_shape() { "$QI" map --output=json "$1" | sed 's/, "offset": [0-9]*//'; }
# The same without the "zero" hint (a hole or not in the host file), with
# adjacent extents of the same kind merged: "start length kind" lines.
map_nozero() {
	map_shape "$1" | tr -d '[]' | sed 's/"zero": [a-z]*, //' | awk -F'[:,}]' '
		/start/ {
			s = $2 + 0; l = $4 + 0; k = $0; sub(/.*"depth"/, "", k); sub(/[},]+$/, "", k)
			if (n && k == pk && ps + pl == s) { pl += l; next }
			if (n) print ps, pl, pk
			ps = s; pl = l; pk = k; n = 1
		}
		END { if (n) print ps, pl, pk }'
}

# setup: run in src/ to make the files; copies go to i/ (instar) and q/ (qemu).
fresh() {
	CASE=$1
	cases=$((cases + 1))
	rm -rf src i q
	mkdir src
}
split() {
	cp -a --sparse=always src i
	cp -a --sparse=always src q
}

# both IMG SIZE [OPTIONS...]: run each tool in its own copy; compare what
# they say. Every case here expects the resize to succeed unless it says
# otherwise with EXPECT_FAIL=1.
both() {
	local img=$1 size=$2 qrc=0 irc=0
	shift 2
	(cd q && "$QI" resize "$@" "$img" "$size") >q.out 2>q.err || qrc=$?
	(cd i && "$instar" resize "$@" "$img" "$size") >i.out 2>i.err || irc=$?
	if [ "${EXPECT_FAIL:-0}" = 1 ]; then
		[ "$qrc" = 1 ] || fail "qemu-img succeeded"
	else
		[ "$qrc" = 0 ] || fail "qemu-img failed: $(cat q.err)"
	fi
	[ "$irc" = "$qrc" ] || fail "exit $irc, qemu-img $qrc ($(cat i.err))"
	cmp -s q.out i.out || fail "stdout: '$(cat i.out)' vs '$(cat q.out)'"
	sed 's/^qemu-img: /instar: /' q.err >q.err2
	cmp -s q.err2 i.err || fail "stderr: '$(cat i.err)' vs '$(cat q.err2)'"
	return "$irc"
}

# same IMG: both results open clean, same size, same contents, same map.
same() {
	local img=$1 out
	out=$(cd i && "$QI" check "$img" 2>&1) || fail "check: $out"
	[ "$(cd i && vsize "$img")" = "$(cd q && vsize "$img")" ] || fail "virtual size"
	(cd i && "$QI" compare -q "$img" "$T/q/$img") || fail "compare differs"
	[ "$(cd i && map_shape "$img")" = "$(cd q && map_shape "$img")" ] ||
		fail "map: $(cd i && map_shape "$img") VS $(cd q && map_shape "$img")"
}

# ---- backing chains ----
fresh "backing shorter than the image: 1G -> 64T is header-only"
(cd src && "$QI" create -q -f qcow2 base.qcow2 1G &&
	"$QIO" -c 'write -q -P 0x5a 0 1M' -c 'write -q -P 0x5b 1023M 1M' base.qcow2 >/dev/null &&
	"$QI" create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 1G)
split
both top.qcow2 64T && same top.qcow2
# qemu writes a 1 MiB L1 and no L2 table: so must we (no --max-staged failure)
[ "$(stat -c %s i/top.qcow2)" -le $((2 << 20)) ] || fail "file grew to $(stat -c %s i/top.qcow2)"

fresh "backing longer than the image: the new range reads zeros"
(cd src && "$QI" create -q -f raw back.img 3G &&
	"$QIO" -f raw -c 'write -q -P 0x5c 1G 64M' -c 'write -q -P 0x5d 2047M 1M' back.img >/dev/null &&
	"$QI" create -q -f qcow2 -b back.img -F raw top.qcow2 1G &&
	"$QIO" -c 'write -q -P 0x11 0 1M' top.qcow2 >/dev/null)
split
both top.qcow2 5G && same top.qcow2
(cd i && "$QIO" -c 'read -q -P 0 1G 64M' -c 'read -q -P 0 2047M 1M' top.qcow2 >/dev/null) ||
	fail "grown range not zero"

fresh "v2, backing shorter: grows (nothing to zero)"
(cd src && "$QI" create -q -f qcow2 base.qcow2 512M &&
	"$QI" create -q -f qcow2 -o compat=0.10 -b base.qcow2 -F qcow2 top.qcow2 1G)
split
both top.qcow2 3G && same top.qcow2

fresh "v2, backing longer: qemu's refusal"
(cd src && "$QI" create -q -f qcow2 base.qcow2 4G &&
	"$QI" create -q -f qcow2 -o compat=0.10 -b base.qcow2 -F qcow2 top.qcow2 1G)
split
EXPECT_FAIL=1 both top.qcow2 3G
cmp -s src/top.qcow2 i/top.qcow2 || fail "image changed by a refused resize"

fresh "chain of three, shrink"
(cd src && "$QI" create -q -f qcow2 a.qcow2 2G &&
	"$QI" create -q -f qcow2 -b a.qcow2 -F qcow2 b.qcow2 2G &&
	"$QI" create -q -f qcow2 -b b.qcow2 -F qcow2 c.qcow2 2G &&
	"$QIO" -c 'write -q -P 0x22 100M 1M' c.qcow2 >/dev/null)
split
both c.qcow2 1G --shrink && same c.qcow2

# issue 19: a grow whose old size ends inside an unallocated cluster over a
# longer backing file copies the kept part of that cluster from the backing
# file (read by the guest from a read-only device) and zeroes the rest, as
# qemu-img does. iotests 125 (raw backing), 274 (qcow2 over qcow2).
# grown IMG OLD NEW BYTE: the kept part reads BYTE, the grown part zeros.
grown() {
	(cd i && "$QIO" -c "read -q -P $4 0 $2" -c "read -q -P 0 $2 $(($3 - $2))" "$1" >/dev/null) ||
		fail "contents after the grow"
}
K=1024
fresh "partial cluster over a raw backing file (the reproduction)"
(cd src && "$QI" create -q -f raw base.raw 128k &&
	"$QIO" -f raw -c 'write -q -P 1 0 128k' base.raw >/dev/null &&
	"$QI" create -q -f qcow2 -F raw -b base.raw t.qcow2 31k)
split
both t.qcow2 96k && same t.qcow2
grown t.qcow2 $((31 * K)) $((96 * K)) 1
cmp -s src/base.raw i/base.raw || fail "the backing file changed"
for old in 31k 33k; do
	for new in 96k 128k; do
		for p in off metadata full; do
			fresh "125: raw backing, $old -> $new, --preallocation=$p"
			(cd src && "$QI" create -q -f raw base.raw 128k &&
				"$QIO" -f raw -c 'write -q -P 0x2a 0 128k' base.raw >/dev/null &&
				"$QI" create -q -f qcow2 -F raw -b base.raw t.qcow2 "$old")
			split
			both t.qcow2 "$new" --preallocation="$p" && same t.qcow2
			grown t.qcow2 $((${old%k} * K)) $((${new%k} * K)) 0x2a
		done
	done
done
fresh "274: qcow2 backing, 253k -> 512k"
(cd src && "$QI" create -q -f qcow2 base.qcow2 384k &&
	"$QIO" -c 'write -q -P 1 253k 64k' base.qcow2 >/dev/null &&
	"$QI" create -q -f qcow2 -F qcow2 -b base.qcow2 top.qcow2 253k)
split
both top.qcow2 512k && same top.qcow2
(cd i && "$QIO" -c 'read -q -P 0 0 253k' -c 'read -q -P 0 253k 259k' top.qcow2 >/dev/null) ||
	fail "contents after the grow"
cmp -s src/base.qcow2 i/base.qcow2 || fail "the backing file changed"
fresh "274: raw under qcow2 under the image, a compressed and a zero cluster"
(cd src && "$QI" create -q -f raw a.raw 1M &&
	"$QIO" -f raw -c 'write -q -P 0x61 0 1M' a.raw >/dev/null &&
	"$QI" create -q -f qcow2 -o cluster_size=4k c.qcow2 1M &&
	"$QIO" -c 'write -q -P 0x62 0 8k' c.qcow2 >/dev/null &&
	"$QI" convert -q -c -O qcow2 -o cluster_size=4k -F raw -B a.raw c.qcow2 b.qcow2 &&
	"$QIO" -c 'write -q -z 4k 4k' b.qcow2 >/dev/null &&
	"$QI" create -q -f qcow2 -o cluster_size=64k -F qcow2 -b b.qcow2 top.qcow2 $((5 * K + 512)))
split
both top.qcow2 300k && same top.qcow2
(cd i && "$QIO" -c 'read -q -P 0x62 0 4k' -c 'read -q -P 0 4k 1536' \
	-c "read -q -P 0 5632 $((300 * K - 5632))" top.qcow2 >/dev/null) ||
	fail "contents after the grow"
fresh "274: qcow2 backing with extended L2, its unallocated subclusters from a raw file"
(cd src && "$QI" create -q -f raw a.raw 1M &&
	"$QIO" -f raw -c 'write -q -P 0x71 0 1M' a.raw >/dev/null &&
	"$QI" create -q -f qcow2 -o extended_l2=on -F raw -b a.raw b.qcow2 1M &&
	"$QIO" -c 'write -q -P 0x72 2k 1k' b.qcow2 >/dev/null &&
	"$QI" create -q -f qcow2 -F qcow2 -b b.qcow2 top.qcow2 $((5 * K)))
split
both top.qcow2 1M && same top.qcow2
(cd i && "$QIO" -c 'read -q -P 0x71 0 2k' -c 'read -q -P 0x72 2k 1k' -c 'read -q -P 0x71 3k 2k' \
	-c 'read -q -P 0 5k 1019k' top.qcow2 >/dev/null) ||
	fail "contents after the grow"
fresh "qcow2 backing with a zero-flagged cluster over old data (ZERO_ALLOC) at the old end"
(cd src && "$QI" create -q -f qcow2 base.qcow2 128k &&
	"$QIO" -c 'write -q -P 0x6c 0 64k' -c 'write -q -z 0 64k' base.qcow2 >/dev/null &&
	"$QI" create -q -f qcow2 -F qcow2 -b base.qcow2 top.qcow2 31k)
split
# as same, but qemu-img map's "zero" hint aside (a hole in the host file or
# not): in a VM run instar's new cluster began with a hole where qemu-img's
# was data throughout; contents, check and sizes as qemu-img's
if both top.qcow2 96k; then
	out=$(cd i && "$QI" check top.qcow2 2>&1) || fail "check: $out"
	[ "$(cd i && vsize top.qcow2)" = "$(cd q && vsize top.qcow2)" ] || fail "virtual size"
	(cd i && "$QI" compare -q top.qcow2 "$T/q/top.qcow2") || fail "compare differs"
	[ "$(cd i && map_nozero top.qcow2)" = "$(cd q && map_nozero top.qcow2)" ] ||
		fail "map: $(cd i && map_nozero top.qcow2) VS $(cd q && map_nozero top.qcow2)"
fi
grown top.qcow2 $((31 * K)) $((96 * K)) 0
cmp -s src/base.qcow2 i/base.qcow2 || fail "the backing file changed"

# What the guest does not read: a backing file in another format than raw
# or qcow2, or a chain deeper than four files where the data lies below.
# qemu-img grows these; instar refuses (README), leaving every file as it was.
backing_refused() {
	local rc=0
	(cd i && "$instar" resize "$@") >r.out 2>r.err || rc=$?
	[ "$rc" = 1 ] || fail "rc=$rc ($(cat r.err))"
	grep -q "needs the backing file's data, which is not available" r.err ||
		fail "message: $(cat r.err)"
	for f in src/*; do
		cmp -s "$f" "i/${f#src/}" || fail "$f changed"
	done
}
fresh "vmdk backing file: refused"
(cd src && "$QI" create -q -f vmdk base.vmdk 128k &&
	"$QI" create -q -f qcow2 -F vmdk -b base.vmdk t.qcow2 31k)
split
backing_refused t.qcow2 96k
fresh "five qcow2 files over raw: refused"
(cd src && "$QI" create -q -f raw f.raw 128k &&
	"$QI" create -q -f qcow2 -F raw -b f.raw e.qcow2 128k &&
	"$QI" create -q -f qcow2 -F qcow2 -b e.qcow2 d.qcow2 128k &&
	"$QI" create -q -f qcow2 -F qcow2 -b d.qcow2 c.qcow2 128k &&
	"$QI" create -q -f qcow2 -F qcow2 -b c.qcow2 b.qcow2 128k &&
	"$QI" create -q -f qcow2 -F qcow2 -b b.qcow2 a.qcow2 31k)
split
backing_refused a.qcow2 96k
fresh "four qcow2 files over raw: grows"
(cd src && "$QI" create -q -f raw e.raw 128k &&
	"$QIO" -f raw -c 'write -q -P 0x5e 0 128k' e.raw >/dev/null &&
	"$QI" create -q -f qcow2 -F raw -b e.raw d.qcow2 128k &&
	"$QI" create -q -f qcow2 -F qcow2 -b d.qcow2 c.qcow2 128k &&
	"$QI" create -q -f qcow2 -F qcow2 -b c.qcow2 b.qcow2 128k &&
	"$QI" create -q -f qcow2 -F qcow2 -b b.qcow2 a.qcow2 31k)
split
both a.qcow2 96k && same a.qcow2
grown a.qcow2 $((31 * K)) $((96 * K)) 0x5e

fresh "backing file in another directory, image named by a path"
mkdir -p src/sub
(cd src && "$QI" create -q -f qcow2 sub/base.qcow2 1G &&
	"$QI" create -q -f qcow2 -b base.qcow2 -F qcow2 sub/top.qcow2 1G)
split
both sub/top.qcow2 +1G && same sub/top.qcow2

fresh "missing backing file"
(cd src && "$QI" create -q -f qcow2 -u -b gone.qcow2 -F qcow2 top.qcow2 1G)
split
EXPECT_FAIL=1 both top.qcow2 2G
cmp -s src/top.qcow2 i/top.qcow2 || fail "image changed"

fresh "missing file two links down"
(cd src && "$QI" create -q -f qcow2 -u -b gone.qcow2 -F qcow2 mid.qcow2 1G &&
	"$QI" create -q -f qcow2 -u -b mid.qcow2 -F qcow2 top.qcow2 1G)
split
EXPECT_FAIL=1 both top.qcow2 2G

fresh "backing format that does not match the file"
(cd src && "$QI" create -q -f raw base.img 1G &&
	"$QI" create -q -f qcow2 -u -b base.img -F qcow2 top.qcow2 1G)
split
EXPECT_FAIL=1 both top.qcow2 2G

# ---- external data files ----
for raw in off on; do
	for pre in off metadata falloc full; do
		fresh "data file, data_file_raw=$raw, grow, preallocation=$pre"
		(cd src && "$QI" create -q -f qcow2 -o data_file=d.raw,data_file_raw=$raw t.qcow2 1G &&
			"$QIO" -c 'write -q -P 0x33 0 1M' -c 'write -q -P 0x44 1023M 1M' t.qcow2 >/dev/null)
		split
		both t.qcow2 1536M --preallocation=$pre && same t.qcow2
		[ "$(stat -c %s i/d.raw)" = "$(stat -c %s q/d.raw)" ] ||
			fail "data file length $(stat -c %s i/d.raw) vs $(stat -c %s q/d.raw)"
		if [ "$pre" = falloc ] || [ "$pre" = full ]; then
			[ "$(stat -c %b i/d.raw)" -ge $((512 << 20 >> 9)) ] ||
				fail "data file not preallocated ($(stat -c %b i/d.raw) blocks)"
		fi
	done
	fresh "data file, data_file_raw=$raw, shrink"
	(cd src && "$QI" create -q -f qcow2 -o data_file=d.raw,data_file_raw=$raw t.qcow2 1G &&
		"$QIO" -c 'write -q -P 0x33 0 1M' -c 'write -q -P 0x44 700M 1M' t.qcow2 >/dev/null)
	split
	both t.qcow2 700M --shrink && same t.qcow2
	[ "$(stat -c %s i/d.raw)" = $((700 << 20)) ] || fail "data file length $(stat -c %s i/d.raw)"
	# and back: the cut range reads zeros in both
	both t.qcow2 1G && same t.qcow2
	(cd i && "$QIO" -c 'read -q -P 0 700M 4M' -c 'read -q -P 0 1020M 4M' t.qcow2 >/dev/null) ||
		fail "regrown range not zero"
done

fresh "data file missing"
(cd src && "$QI" create -q -f qcow2 -o data_file=d.raw t.qcow2 1G && rm d.raw)
split
EXPECT_FAIL=1 both t.qcow2 2G

# Deliberately stricter than qemu: resizing writes to the data file, so a
# name from an untrusted header may not reach outside the image's directory.
for name in "$T/outside.raw" "../outside.raw"; do
	fresh "data file outside the image's directory ($name)"
	mkdir -p src
	(cd src && "$QI" create -q -f qcow2 -o data_file="$name" t.qcow2 1G)
	split
	before=$(stat -c %s outside.raw)
	rc=0
	(cd i && "$instar" resize t.qcow2 2G) >i.out 2>i.err || rc=$?
	[ "$rc" = 1 ] || fail "rc=$rc"
	grep -q "instar opens an external data file only beneath the image's directory" i.err ||
		fail "message: $(cat i.err)"
	cmp -s src/t.qcow2 i/t.qcow2 || fail "image changed"
	[ "$(stat -c %s outside.raw)" = "$before" ] || fail "data file outside was resized"
	rm -f outside.raw
done

# Hostile names: a backing "file" that is a device or a FIFO is never opened
# (opening a FIFO would block, a device could act), and nothing changes.
for name in /dev/zero fifo; do
	fresh "backing file that is not a file ($name)"
	mkfifo src/fifo
	(cd src && "$QI" create -q -f qcow2 -u -b "$name" -F raw t.qcow2 1G)
	cp -a src i
	rc=0
	(cd i && timeout 20 "$instar" resize t.qcow2 2G) >i.out 2>i.err || rc=$?
	[ "$rc" = 1 ] || fail "rc=$rc"
	grep -q "Could not open backing file: Could not open '.*': Not a regular file" i.err ||
		fail "message: $(cat i.err)"
	cmp -s src/t.qcow2 i/t.qcow2 || fail "image changed"
done

# refused DIR CMD...: runs instar in DIR, expects exit 1, an errno in the
# JSON result ($ERRNO) and a message matching $MSG.
refused() {
	local dir=$1 rc=0
	shift
	(cd "$dir" && timeout 60 "$instar" resize --output=json "$@") >r.out 2>r.err || rc=$?
	[ "$rc" = 1 ] || fail "rc=$rc ($(cat r.err))"
	grep -q -- "$MSG" r.err || fail "message: $(cat r.err)"
	[ "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["error"]["errno"])' <r.out)" = "$ERRNO" ] ||
		fail "errno: $(cat r.out)"
}

# From the root directory (a service's working directory): the data file's
# name is resolved beneath the image's directory, never the working one.
BENEATH="only beneath the image's directory"
for name in "${T#/}/victim" "../victim"; do
	fresh "data file '$name', instar run in /"
	mkdir -p i
	(cd / && "$QI" create -q -f qcow2 -o data_file="$name" "$T/i/t.qcow2" 1G)
	head -c 65536 /dev/urandom >victim
	cp victim victim.before
	cp i/t.qcow2 t.before
	rm -f i/victim
	want=ENOENT
	case $name in ../*) want=EACCES ;; esac
	ERRNO=$([ $want = ENOENT ] && echo EIO || echo EACCES) \
		MSG=$([ $want = ENOENT ] && echo "No such file or directory" || echo "$BENEATH") \
		refused / "$T/i/t.qcow2" 2G
	cmp -s victim victim.before || fail "victim changed"
	cmp -s i/t.qcow2 t.before || fail "image changed"
done

fresh "absolute data file name beneath the image's directory"
mkdir -p i
(cd i && "$QI" create -q -f qcow2 -o data_file="$T/i/d.raw" t.qcow2 1G)
(cd / && "$instar" resize "$T/i/t.qcow2" 2G) >i.out 2>i.err || fail "refused: $(cat i.err)"
[ "$(stat -c %s i/d.raw)" = $((2 << 30)) ] || fail "data file length $(stat -c %s i/d.raw)"

# Each refused data file: made in i/ as d.raw, then spoiled by $1.
for how in symlink owner links fifo device dir; do
	fresh "data file refused: $how"
	mkdir -p i
	(cd i && "$QI" create -q -f qcow2 -o data_file=d.raw t.qcow2 1G)
	head -c 65536 /dev/urandom >target
	MSG=
	case $how in
	symlink) rm i/d.raw && ln -s "$T/target" i/d.raw ;;
	owner) cp target i/d.raw && chown nobody i/d.raw && MSG="owner is not the image's owner" ;;
	links) cp target i/d.raw && ln i/d.raw i/d2.raw && MSG="more than one link" ;;
	fifo) rm i/d.raw && mkfifo i/d.raw ;;
	device) rm i/d.raw && mknod i/d.raw c 1 3 ;;
	dir) rm i/d.raw && mkdir i/d.raw ;;
	esac
	cp target target.before
	cp i/t.qcow2 t.before
	ERRNO=EACCES MSG=${MSG:-$([ $how = symlink ] && echo "$BENEATH" || echo "not a regular file")} \
		refused i t.qcow2 2G
	cmp -s target target.before || fail "target changed"
	cmp -s i/t.qcow2 t.before || fail "image changed"
	[ $how = owner ] || [ $how = links ] || [ ! -f i/d.raw ] || [ -L i/d.raw ] ||
		fail "d.raw became a file"
done

# Backing files: the CLI follows qemu/OpenStack layouts (../_base/...);
# --confine keeps them beneath the image's directory or a --backing-dir.
fresh "backing in ../_base: the CLI follows it, --confine refuses it, --backing-dir lets it in"
mkdir -p src/_base src/inst
(cd src && "$QI" create -q -f qcow2 _base/base.qcow2 1G &&
	"$QI" create -q -f qcow2 -b ../_base/base.qcow2 -F qcow2 inst/disk.qcow2 1G)
cp -a src i
cp i/inst/disk.qcow2 t.before
ERRNO=EACCES MSG="instar opens backing files only beneath the image's directory" \
	refused i/inst --confine disk.qcow2 2G
cmp -s i/inst/disk.qcow2 t.before || fail "image changed"
(cd i/inst && "$instar" resize --confine --backing-dir "$T/i/_base" disk.qcow2 2G) >i.out 2>i.err ||
	fail "--backing-dir: $(cat i.err)"
(cd i/inst && "$instar" resize disk.qcow2 3G) >i.out 2>i.err || fail "CLI: $(cat i.err)"
[ "$(cd i/inst && vsize disk.qcow2)" = $((3 << 30)) ] || fail "virtual size"

# A name with a newline and an ESC is printed escaped (stderr and JSON).
fresh "control characters in names"
mkdir -p i
odd=$(printf 'odd\nname\033[31m')
(cd i && "$QI" create -q -f qcow2 -u -b "$odd.base" -F qcow2 "$odd.qcow2" 1G)
ERRNO=EIO MSG='odd\\nname\\e\[31m.qcow2' refused i "$odd.qcow2" 2G
grep -qF "Could not open 'odd\nname\e[31m.base'" r.err || fail "backing name: $(cat r.err)"
grep -q $'\033' r.err && fail "ESC reached stderr"
[ "$(wc -l <r.err)" = 1 ] || fail "message split over lines: $(cat r.err)"
python3 -c 'import json,sys; m=json.load(sys.stdin)["error"]["message"]; assert "\x1b" not in m and "\n" not in m, m' <r.out ||
	fail "JSON message: $(cat r.out)"

# --strict-format (instarfs's -f from the name): a probe that disagrees is
# refused both ways, -f raw included.
fresh "--strict-format"
mkdir -p i
"$QI" create -q -f qcow2 i/q.raw 1G
truncate -s 1M i/r.qcow2
cp i/q.raw q.before
ERRNO=EMEDIUMTYPE MSG="Image is not in raw format" refused i -f raw --strict-format q.raw 2G
cmp -s i/q.raw q.before || fail "qcow2 named raw changed"
ERRNO=EMEDIUMTYPE MSG="Image is not in qcow2 format" refused i -f qcow2 --strict-format r.qcow2 2M
[ "$(stat -c %s i/r.qcow2)" = $((1 << 20)) ] || fail "raw named qcow2 changed"

echo "$cases cases, $fails failures"
[ "$fails" -eq 0 ]
