#!/usr/bin/env bash
# tests/compat/cli_external.sh INSTAR QEMU_IMG — qcow2 images with a backing
# chain or an external data file, `instar resize` against `qemu-img resize`
# on copies of the same files (each tool in its own directory, so relative
# names resolve alike): exit code, stdout, stderr (program name aside),
# `qemu-img check`, virtual size, `qemu-img compare`, `qemu-img map`, and the
# data file's length. Plus instar's deliberate refusal of a data file outside
# the working directory, with the image left byte-identical.
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
# name from an untrusted header may not reach outside the working directory.
for name in "$T/outside.raw" "../outside.raw"; do
	fresh "data file outside the working directory ($name)"
	mkdir -p src
	(cd src && "$QI" create -q -f qcow2 -o data_file="$name" t.qcow2 1G)
	split
	before=$(stat -c %s outside.raw)
	rc=0
	(cd i && "$instar" resize t.qcow2 2G) >i.out 2>i.err || rc=$?
	[ "$rc" = 1 ] || fail "rc=$rc"
	grep -q "instar opens an external data file only beneath the working directory" i.err ||
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
	grep -q "Could not open backing file: Could not open '.*': Not a regular file or block device" i.err ||
		fail "message: $(cat i.err)"
	cmp -s src/t.qcow2 i/t.qcow2 || fail "image changed"
done

echo "$cases cases, $fails failures"
[ "$fails" -eq 0 ]
