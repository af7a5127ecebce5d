#!/bin/bash
# tests/compat/vhdx_open.sh — what qemu-img 7.2 says when it cannot open a
# VHDX image, against the vhdx planner's detail and, end to end, instar's
# own message. The checks of qemu's vhdx_open (block/vhdx.c, vhdx-log.c: the
# file identifier, the two headers, the log's offset, version and length,
# region table 1, the metadata table and the items qemu reads, the BAT's
# size, and every fully present block against the file's end and the
# regions) are failed by fields written into a copy of an image qemu-img
# created; then:
# - qemu-img resize -f vhdx fails with "Could not open 'F': DETAIL" (most
#   of them without a message of the driver's own: the block layer's
#   "Could not open 'F': " and the errno's text);
# - plan-apply, on a copy under the same name, prints the same DETAIL,
#   marks it an open failure (open=1) and leaves the file as it was;
# - instar resize -f vhdx prints exactly qemu-img's stderr (program name
#   read as "instar") with its exit code 1, where the guest can boot
#   (tests/kvm_gate.sh's rule: the cases left out are counted and said).
# qemu prints a line of its own before some of these (an overlap of
# regions, a block past the end: "lines"): plan-apply gives that line
# (preline=) and instar prints it too.
# Then what instar refuses beyond qemu (README, the vhdx row): open=1,
# nothing written; and a 4096-byte logical sector, which instar resizes.
#
#   vhdx_open.sh PLAN_APPLY QEMU_IMG INSTAR
set -uo pipefail
. "$(dirname "$0")/lib.sh"

open_init vhdx_open "$@"

F=i.vhdx
wbytes() { put_hex "$F" "$@"; } # OFF HEX
le() { # OFF BYTES VAL: a little-endian field
	local h o="" k
	h=$(printf "%0$(($2 * 2))x" $(($3)))
	for ((k = ${#h} - 2; k >= 0; k -= 2)); do o+=${h:k:2}; done
	wbytes "$1" "$o"
}
l16() { le "$1" 2 "$2"; }
l32() { le "$1" 4 "$2"; }
l64() { le "$1" 8 "$2"; }
r32() { od -An -tu4 -j $(($1)) -N4 $F | tr -d ' '; }
# py SCRIPT ARGS: python on i.vhdx (CRC-32C, table lookups)
py() {
	python3 - "$F" "$@" <<'PY'
import struct, sys
f, cmd = sys.argv[1], sys.argv[2]
d = bytearray(open(f, 'rb').read())
def crc32c(b):
    c = 0xffffffff
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ (0x82f63b78 if c & 1 else 0)
    return c ^ 0xffffffff
if cmd == 'crc':  # OFF LEN: the CRC-32C at OFF+4
    off, ln = int(sys.argv[3]), int(sys.argv[4])
    b = bytearray(d[off:off + ln]); b[4:8] = b'\0' * 4
    with open(f, 'r+b') as fh:
        fh.seek(off + 4); fh.write(struct.pack('<I', crc32c(bytes(b))))
elif cmd == 'region':  # GUID: its offset in region table 1
    rt = 192 * 1024
    for i in range(struct.unpack_from('<I', d, rt + 8)[0]):
        e = rt + 16 + 32 * i
        if d[e:e + 16] == bytes.fromhex(sys.argv[3]):
            print(struct.unpack_from('<Q', d, e + 16)[0])
elif cmd == 'mdentry':  # MD GUID: the index of its metadata entry
    m = int(sys.argv[3])
    for i in range(struct.unpack_from('<H', d, m + 10)[0]):
        if d[m + 32 + 32 * i:m + 48 + 32 * i] == bytes.fromhex(sys.argv[4]):
            print(i)
PY
}
H1=$((64 << 10))
H2=$((128 << 10))
RT=$((192 << 10))
BATG=6677c22d23f600429d64115e9bfd4a08
MDG=06a27c8b90479a4bb8fe575f050f886e
FP=3767a1ca36fa434db3b633f0aa44e76b
VS=2442a52f1bcd7648b2115dbed83bf4b8
LS=1dbf41816fa90947ba47f233a8faab5f
P83=ab12cabee6b2234593efc309e000c746
PS=c748a3cd5d4471449cc9e9885251c556
PL=2d5fd3a80bb34d45abf7d3d84834ab0c
X=00112233445566778899aabbccddeeff

# mk: i.vhdx, a dynamic 64 MiB disk made by qemu-img; M: its metadata
# region, B: its BAT
mk() {
	rm -f $F
	"$QI" create -q -f vhdx $F 64M
	M=$(py region $MDG)
	B=$(py region $BATG)
}
hdrs() { # OFF BYTES VAL in both headers, their CRCs fixed
	le $((H1 + $1)) "$2" "$3"
	le $((H2 + $1)) "$2" "$3"
	py crc $H1 4096
	py crc $H2 4096
}
rtfix() { py crc $RT 65536; }
rte() { echo $((RT + 16 + 32 * $1)); }
mde() { echo $((M + 32 + 32 * $1)); }
item() { # GUID: the item's offset in the file
	echo $((M + $(r32 $(($(mde "$(py mdentry "$M" "$1")") + 16)))))
}

# same NAME [lines]: qemu-img and instar on copies of i.vhdx (as damaged by
# the caller), growing to 128 MiB; lines: qemu prints a line of its own
# before its last, and so must plan-apply (preline=) and instar (the whole
# stderr is compared).
same() {
	CASE=$1
	local lines=${2:-} qrc=0 prc=0 irc=0 want
	cases=$((cases + 1))
	rm -rf pa && mkdir pa
	cp $F q.vhdx
	cp $F pa/q.vhdx
	"$QI" resize -f vhdx q.vhdx 128M >q.out 2>q.err || qrc=$?
	want=$(tail -n1 q.err | sed -n "s/^qemu-img: Could not open 'q.vhdx': //p")
	if [ "$qrc" != 1 ] || [ -z "$want" ]; then
		fail "qemu-img was expected to fail its open: rc=$qrc $(cat q.err)"
		return
	fi
	if [ "$(wc -l <q.err)" != "$([ -n "$lines" ] && echo 2 || echo 1)" ]; then
		fail "qemu-img printed $(wc -l <q.err) lines: $(cat q.err)"
	fi
	(cd pa && "$PA" vhdx q.vhdx $((128 << 20))) >pa.out || prc=$?
	[ "$prc" = 2 ] && [ "$(sed -n 's/.* open=1 detail=//p' pa.out)" = "$want" ] ||
		fail "detail: qemu '$want', plan-apply rc=$prc: $(cat pa.out)"
	if [ -n "$lines" ]; then
		[ "$(sed -n 's/.* preline=\(.*\) open=1 detail=.*/\1/p' pa.out)" = \
			"$(head -n1 q.err | sed 's/^qemu-img: //')" ] ||
			fail "qemu's own line '$(head -n1 q.err)', plan-apply: $(cat pa.out)"
	fi
	cmp -s $F pa/q.vhdx || fail "plan-apply changed the image"
	# end to end, under the same name qemu-img had
	cp $F q.vhdx
	"$INSTAR" resize -f vhdx q.vhdx 128M >i.out 2>i.err || irc=$?
	e2e_same $F q.vhdx "$irc"
}

# beyond NAME DETAIL: qemu-img opens it, instar refuses it with DETAIL as a
# failed open, changing nothing.
beyond() {
	CASE=$1
	local prc=0
	cases=$((cases + 1))
	cp $F q.vhdx
	"$QI" resize -f vhdx q.vhdx 128M >q.out 2>q.err
	grep -q "Could not open" q.err && fail "qemu-img does not open it: $(cat q.err)"
	cp $F o.vhdx
	"$PA" vhdx o.vhdx $((128 << 20)) >pa.out || prc=$?
	[ "$prc" = 2 ] && grep -q " open=1 detail=$2\$" pa.out ||
		fail "want open=1 '$2', plan-apply rc=$prc: $(cat pa.out)"
	cmp -s $F o.vhdx || fail "plan-apply changed the image"
}

# ---- the file identifier, the headers and the log, in vhdx_open's order ----
mk && l32 0 0 && same "file identifier"
mk && l32 $H1 0 && l32 $H2 0 && same "both header signatures"
mk && hdrs 66 2 5 && same "version 5 in both headers"
mk && le $((H1 + 8)) 8 7 && py crc $H1 4096 && le $((H2 + 8)) 8 7 && l32 $((H2 + 1000)) 1 &&
	py crc $H2 4096 &&
	same "two different headers of one sequence number"
mk && hdrs 64 2 1 && same "log version 1"
mk && hdrs 72 8 $((1 << 19)) && same "log offset unaligned"
mk && hdrs 72 8 0 && same "log offset 0"
mk && hdrs 48 1 1 && hdrs 68 4 12345 && same "log length unaligned"
# (where the host's probe finds no size, or one above the request, the
# guest's open checks answer first, as qemu's open does)
# ---- region table 1 ----
mk && l32 $RT 0 && same "region table signature"
mk && l32 $((RT + 8)) 3000 && rtfix && same "3000 regions"
mk && l32 $((RT + 8)) 1 && rtfix && same "one region"
mk && l64 $(($(rte 0) + 16)) $((1 << 20)) && rtfix && same "region over the log" lines
mk && l64 $(($(rte 1) + 16)) "$(od -An -tu8 -j $(($(rte 0) + 16)) -N8 $F | tr -d ' ')" && rtfix &&
	same "region over the region before it" lines
mk && wbytes "$(rte 1)" $X && rtfix && same "unknown region instead of one"
mk && wbytes "$(rte 1)" $X && l32 $(($(rte 1) + 28)) 1 && rtfix && same "unknown required region"
mk && wbytes "$(rte 1)" "$(dd if=$F bs=1 skip="$(rte 0)" count=16 status=none | od -An -tx1 | tr -d ' \n')" &&
	rtfix && same "two regions of one kind"
# ---- the metadata table and items ----
mk && l32 "$M" 0 && same "metadata signature"
mk && l16 $((M + 10)) 3000 && same "3000 metadata entries"
mk && wbytes "$(mde "$(py mdentry "$M" $P83)")" $X && same "page 83 item missing"
mk && e=$(mde "$(py mdentry "$M" $P83)") && wbytes "$e" $X && l32 $((e + 24)) 4 &&
	same "unknown required item"
mk && wbytes "$(mde "$(py mdentry "$M" $P83)")" $FP && same "two file parameters items"
mk && wbytes "$(mde "$(py mdentry "$M" $PS)")" $PL && same "a parent locator"
mk && p=$(item $FP) && l32 $((p + 4)) 2 && same "has_parent without a locator"
mk && p=$(item $FP) && l32 "$p" $((1 << 19)) && same "block size 512 KiB"
mk && p=$(item $FP) && l32 "$p" $((512 << 20)) && same "block size 512 MiB"
mk && p=$(item $FP) && l32 "$p" $((3 << 20)) && same "block size 3 MiB"
mk && p=$(item $LS) && l32 "$p" 1024 && same "logical sector 1024"
mk && l32 $(($(mde "$(py mdentry "$M" $FP)") + 16)) $((1 << 30)) && same "file parameters past the end"
# ---- the BAT ----
mk && p=$(item $VS) && l64 "$p" $((1 << 40)) && same "1 TiB in a BAT region of 1 MiB"
mk && p=$(item $VS) && l64 "$p" 0 && same "size 0"
mk && l64 "$B" $(((1 << 30) | 6)) && same "block past the end" lines
mk && l64 "$B" $(((1 << 20) | 6)) && same "block at the log, ending past the end" lines
mk && l64 "$B" 6 && same "block at 0" lines
mk && l64 "$B" 0xfffffffffff00006 && same "block offset overflow" lines

# ---- --image-opts: the block layer names the file, qemu-img the options ----
mk && p=$(item $FP) && l32 "$p" $((3 << 20)) &&
	opts_case vhdx "$F" "Could not open 'q.vhdx': Invalid argument"

# ---- beyond qemu ----
mk && hdrs 48 1 1 && CASE="a log GUID (an empty log)" && cases=$((cases + 1)) &&
	{ "$PA" vhdx $F $((128 << 20)) >pa.out
	grep -q "error=REQUIRES_CHECK .* open=0 detail=vhdx log must be replayed first" pa.out ||
		fail "$(cat pa.out)"; }
mk && l64 "$B" $(((4 << 20) | 7)) && beyond "block state 7" "bad vhdx payload block state"
# the newer header of version 2: qemu takes the older one (version 1), and
# so does instar, which resizes the image and writes a version-1 header over
# the other one
CASE="newer header of version 2"
cases=$((cases + 1))
mk && le $((H1 + 8)) 8 $((1 << 40)) && le $((H1 + 66)) 2 2 && py crc $H1 4096
cp $F o.vhdx
prc=0
"$PA" vhdx o.vhdx $((128 << 20)) >pa.out || prc=$?
[ "$prc" = 0 ] || fail "plan-apply rc=$prc: $(cat pa.out)"
"$QI" check -q o.vhdx || fail "qemu-img check after the resize"
[ "$("$QI" info --output=json o.vhdx | grep -o '"virtual-size": [0-9]*')" = \
	'"virtual-size": 134217728' ] || fail "size after the resize: $("$QI" info o.vhdx)"
# a 4096-byte logical sector: qemu refuses it, instar resizes it
CASE="logical sector 4096"
cases=$((cases + 1))
mk && p=$(item $LS) && l32 "$p" 4096
cp $F o.vhdx
prc=0
"$PA" vhdx o.vhdx $((128 << 20)) >pa.out || prc=$?
[ "$prc" = 0 ] || fail "plan-apply rc=$prc: $(cat pa.out)"

echo "vhdx open cases: $cases, $fails failed; end to end: $e2e compared, $left_out left out"
[ "$left_out" = 0 ] || echo "note: $left_out end-to-end cases left out: $(kvm_why)"
[ "$fails" = 0 ]
