#!/usr/bin/env bash
# tests/compat/cli_probe.sh INSTAR QEMU_IMG — the formats qemu-img 7.2 probes
# and instar does not resize (bochs, cloop, dmg, parallels, qcow), -f naming
# a driver the file is not in, and vdi headers qemu's driver refuses to open
# (instar resizes vdi, qemu-img cannot): instar must
# refuse with qemu-img's exit code and message ("qemu-img: " read as
# "instar: ") and leave the file as it was. No guest is booted: every case
# here ends before one would be.
set -u
. "$(dirname "$0")/lib.sh"
cli_init "$1" "$2"

# same NAME SRC ARGS...: resize copies of SRC (named NAME, so a *.dmg name
# counts) to 2M with ARGS; exit code and stderr as qemu-img's; instar's
# copy unchanged when it failed.
same() {
	local name=$1 src=$2 qrc irc
	shift 2
	ncases=$((ncases + 1))
	mkdir -p q i
	cp "$src" "q/$name"
	cp "$src" "i/$name"
	(cd q && "$QI" resize "$@" "$name" 2M >../q.out 2>../q.err)
	qrc=$?
	(cd i && "$instar" resize "$@" "$name" 2M >../i.out 2>../i.err)
	irc=$?
	sed -e 's/^qemu-img: /instar: /' q.err >q.errn
	if [ "$qrc" != "$irc" ] || ! cmp -s q.errn i.err || ! cmp -s q.out i.out; then
		fails=$((fails + 1))
		echo "FAIL $name $*: rc qemu $qrc instar $irc"
		diff q.errn i.err
	fi
	if [ "$irc" != 0 ] && ! cmp -s "$src" "i/$name"; then
		fails=$((fails + 1))
		echo "FAIL $name $*: instar changed the file it refused"
	fi
	rm -rf q i
}

# The images: qemu-img creates what it can, the read-only formats are
# hand-built headers (qemu reads the first 512 bytes to probe).
for f in qcow vdi parallels raw qcow2; do
	"$QI" create -q -f "$f" "src.$f" 1M
done
qi_create_keyed src.luks 1M -f luks --object secret,id=s0,data=x -o key-secret=s0,iter-time=10
python3 - <<'PY'
import struct
cloop = b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"
open("src.cloop", "wb").write(cloop + bytes(4096))
b = bytearray(4096)
b[0:22] = b"Bochs Virtual HD Image"
b[32:39] = b"Redolog"
b[48:55] = b"Growing"
b[64:68] = struct.pack("<I", 0x20000)
open("src.bochs", "wb").write(b)
# LUKS2 is raw to qemu 7.2's probe
open("src.luks2", "wb").write(b"LUKS\xba\xbe\x00\x02" + bytes(4088))
# both vdi and qcow2: qemu picks vdi
q = bytearray(open("src.qcow2", "rb").read())
q[0x40:0x44] = struct.pack("<I", 0xbeda107f)
open("src.tie", "wb").write(q)
# a qcow v1 header in 8 bytes: qemu reads zeros past the end
open("src.shortqcow", "wb").write(b"QFI\xfb\x00\x00\x00\x01")
open("src.small", "wb").write(b"hello")
PY

# probed: refused as qemu-img refuses, never resized as raw
# (luks and encrypted qcow2 are resized without their secret, where qemu-img
# needs it: README; tests/compat/luks_plan.sh and qcow2_luks_plan.sh compare
# the results with qemu-img's; tests/compat/cli_opts.sh has a secret named
# but not given)
for f in cloop bochs qcow parallels tie shortqcow; do
	same "img.$f" "src.$f"
done
same img.dmg src.raw      # any file named *.dmg is dmg to qemu
same cloop.dmg src.cloop  # and dmg wins the tie with cloop
same img.luks2 src.luks2  # raw to qemu (the probed-raw warning)
same qcow.dmg src.qcow    # a score-100 format beats the name
# -f naming a driver the file is not in: that driver's open message
for src in src.raw src.small src.qcow2 src.cloop src.qcow src.vdi; do
	for f in qcow2 vmdk vpc vhdx qcow qed vdi parallels bochs cloop dmg luks; do
		case "$src:$f" in src.qcow2:qcow2 | src.qcow:qcow | src.vdi:vdi) continue ;; esac
		same img "$src" -f "$f"
	done
done
# -f with the file's own format instar does not resize: after the size checks
for f in qcow parallels; do
	same img "src.$f" -f "$f"
	same img "src.$f" -f "$f" --preallocation=full
done

# vdi headers qemu 7.2's driver refuses to open, each with its own message
# (shared/probe.c says them before any guest): probed and with -f vdi
python3 - <<'PY'
import struct
base = bytearray(open("src.vdi", "rb").read())
def put(name, fmt, off, val):
    b = bytearray(base)
    struct.pack_into(fmt, b, off, val)
    open("vdi." + name, "wb").write(b)
put("version", "<I", 0x44, 0x00010000)
put("bmapalign", "<I", 0x154, 0x201)
put("dataalign", "<I", 0x158, 0x600 + 8)
put("sector", "<I", 0x168, 4096)
put("block", "<I", 0x178, 1 << 16)
put("room", "<Q", 0x170, (1 << 20) + 512)
put("odd", "<Q", 0x170, (1 << 20) + 1)
put("link", "<B", 0x1a8, 1)
put("parent", "<B", 0x1c7, 1)
put("blocks", "<I", 0x180, 0x1fffff81)
put("toobig", "<Q", 0x170, 0x1fffff8000000 + 512)
PY
for f in version bmapalign dataalign sector block room odd link parent blocks toobig; do
	same "img.vdi.$f" "vdi.$f"
	same "img.vdi.$f" "vdi.$f" -f vdi
done

echo "probe cases: $ncases, $fails failed"
[ "$fails" = 0 ]
