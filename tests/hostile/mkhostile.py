#!/usr/bin/env python3
"""tests/hostile/mkhostile.py OUTDIR — build the hostile-image corpus.

Starts from images that qemu-img creates, then pushes every header field
that drives an allocation, a loop or an offset to an edge, builds cycles and
overlapping tables, breaks checksums and truncates files. Checksums are fixed
up after an edit unless the checksum itself is the target, so each image
tests the one thing its name says. Writes OUTDIR/NAME.FMT files and
OUTDIR/manifest.txt (NAME FMT)."""
import os
import shutil
import struct
import subprocess
import sys

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
TMP = os.path.join(OUT, "base")
os.makedirs(TMP, exist_ok=True)
manifest = []

_CRC32C = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    _CRC32C.append(c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def sh(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def base(name, fmt, size, opts=None, writes=()):
    path = os.path.join(TMP, name)
    cmd = ["qemu-img", "create", "-q", "-f", fmt]
    if opts:
        cmd += ["-o", opts]
    sh(*cmd + [path, size])
    for off, ln in writes:
        sh("qemu-io", "-f", fmt, "-c", "write -P 0x5a %s %s" % (off, ln), path)
    return path


def emit(name, fmt, src, edits=(), truncate=None, fix=None):
    """Copy src, apply (offset, struct_fmt, value) edits, optional fix-up."""
    dst = os.path.join(OUT, "%s.%s" % (name, fmt))
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        for off, sf, val in edits:
            f.seek(off)
            f.write(struct.pack(sf, val) if not isinstance(val, bytes) else val)
        if fix:
            fix(f)
        if truncate is not None:
            f.truncate(truncate)
    manifest.append("%s %s" % (os.path.basename(dst), fmt))


def rd(path, off, sf):
    with open(path, "rb") as f:
        f.seek(off)
        return struct.unpack(sf, f.read(struct.calcsize(sf)))[0]


# ---------------- qcow2 (big-endian) ----------------
q = base("q.qcow2", "qcow2", "1G", writes=[("0", "64k"), ("700M", "64k")])
q512 = base("q512.qcow2", "qcow2", "64M", "cluster_size=512", writes=[("0", "4k")])
l1off = rd(q, 40, ">Q")
rtoff = rd(q, 48, ">Q")
l2off = rd(q, l1off, ">Q") & 0x00FFFFFFFFFFFE00
QC = [
    ("l1-size-max", [(36, ">I", 0xFFFFFFFF)]),
    ("l1-size-zero", [(36, ">I", 0)]),
    ("l1-offset-beyond-eof", [(40, ">Q", 1 << 40)]),
    ("l1-offset-unaligned", [(40, ">Q", l1off + 8)]),
    ("l1-offset-header", [(40, ">Q", 0)]),
    ("l1-offset-huge", [(40, ">Q", 0xFFFFFFFFFFFF0000)]),
    ("reftable-beyond-eof", [(48, ">Q", 1 << 40)]),
    ("reftable-zero", [(48, ">Q", 0)]),
    ("reftable-clusters-zero", [(56, ">I", 0)]),
    ("reftable-clusters-max", [(56, ">I", 0xFFFFFFFF)]),
    ("cluster-bits-8", [(20, ">I", 8)]),
    ("cluster-bits-22", [(20, ">I", 22)]),
    ("cluster-bits-63", [(20, ">I", 63)]),
    ("refcount-order-7", [(96, ">I", 7)]),
    ("header-length-max", [(100, ">I", 0xFFFFFFFF)]),
    ("header-length-small", [(100, ">I", 4)]),
    ("size-int64-max", [(24, ">Q", (1 << 63) - 1)]),
    ("size-max", [(24, ">Q", 0xFFFFFFFFFFFFFFFF)]),
    ("dirty-bit", [(72, ">Q", 1)]),
    ("corrupt-bit", [(72, ">Q", 2)]),
    ("unknown-incompat-bit", [(72, ">Q", 1 << 40)]),
    ("snapshots-huge", [(60, ">I", 0xFFFFFFFF), (64, ">Q", 1 << 40)]),
    ("backing-beyond-eof", [(8, ">Q", 1 << 40), (16, ">I", 0xFFFFFFFF)]),
    ("header-ext-huge", [(112, ">I", 0x12345678), (116, ">I", 0xFFFFFFF0)]),
    ("l1-entry-beyond-eof", [(l1off, ">Q", (1 << 63) | (1 << 44))]),
    ("l1-entry-to-header", [(l1off, ">Q", (1 << 63) | 0)]),
    ("l1-entry-cycle-to-l1", [(l1off, ">Q", (1 << 63) | l1off)]),
    ("l1-entries-duplicate", [(l1off + 8, ">Q", rd(q, l1off, ">Q"))]),
    ("l2-entry-to-l1", [(l2off, ">Q", (1 << 63) | l1off)]),
    ("l2-compressed-absurd", [(l2off, ">Q", (1 << 62) | ((1 << 62) - 1))]),
    ("reftable-entry-self", [(rtoff, ">Q", rtoff)]),
    ("reftable-entry-beyond-eof", [(rtoff, ">Q", 1 << 44)]),
    ("version-1", [(4, ">I", 1)]),
    ("version-4", [(4, ">I", 4)]),
]
for name, edits in QC:
    emit("qcow2-" + name, "qcow2", q, edits)
emit("qcow2-truncated-512", "qcow2", q, truncate=512)
emit("qcow2-truncated-100", "qcow2", q, truncate=100)
emit("qcow2-truncated-mid-l1", "qcow2", q, truncate=l1off + 4)
emit("qcow2-512-l1-size-max", "qcow2", q512, [(36, ">I", 0xFFFFFFFF)])
emit("qcow2-512-reftable-clusters-max", "qcow2", q512, [(56, ">I", 0x7FFFFFFF)])

# ---------------- vmdk (little-endian sparse header) ----------------
v = base("v.vmdk", "vmdk", "1G", writes=[("0", "64k")])
gdoff = rd(v, 56, "<Q") * 512
VM = [
    ("capacity-max", [(12, "<Q", 0xFFFFFFFFFFFFFFFF)]),
    ("grain-zero", [(20, "<Q", 0)]),
    ("grain-not-pow2", [(20, "<Q", 3)]),
    ("grain-huge", [(20, "<Q", 1 << 40)]),
    ("gtes-zero", [(44, "<I", 0)]),
    ("gtes-max", [(44, "<I", 0xFFFFFFFF)]),
    ("gd-beyond-eof", [(56, "<Q", 1 << 40)]),
    ("gd-zero", [(56, "<Q", 0)]),
    ("rgd-equals-gd", [(48, "<Q", rd(v, 56, "<Q"))]),
    ("desc-size-huge", [(36, "<Q", 0xFFFFFFFF)]),
    ("desc-offset-beyond-eof", [(28, "<Q", 1 << 40)]),
    ("desc-garbage", [(512, "<Q", 0xFFFFFFFFFFFFFFFF), (520, "<Q", 0x0102030405060708)]),
    ("desc-no-createtype", [(512, None, b"# Disk DescriptorFile\nversion=1\n" + b"x" * 64)]),
    ("gd-entry-beyond-eof", [(gdoff, "<I", 0xFFFFFFF0)]),
    ("gd-entry-to-header", [(gdoff, "<I", 0)]),
    ("overhead-huge", [(64, "<Q", 0xFFFFFFFFFFFFFFFF)]),
]
for name, edits in VM:
    emit("vmdk-" + name, "vmdk", v, [(o, s or "<Q", val) for o, s, val in edits])
emit("vmdk-truncated-300", "vmdk", v, truncate=300)
emit("vmdk-truncated-mid-gd", "vmdk", v, truncate=gdoff + 100)


# ---------------- vhd (big-endian) ----------------
def vhd_fix_footer(f, at):
    f.seek(at)
    b = bytearray(f.read(512))
    b[64:68] = b"\0\0\0\0"
    s = (~sum(b)) & 0xFFFFFFFF
    f.seek(at + 64)
    f.write(struct.pack(">I", s))


def vhd_fix_all(f):
    f.seek(0, 2)
    end = f.tell()
    vhd_fix_footer(f, end - 512)
    f.seek(0)
    if f.read(8) == b"conectix":
        vhd_fix_footer(f, 0)
        f.seek(512)
        b = bytearray(f.read(1024))
        b[36:40] = b"\0\0\0\0"
        s = (~sum(b)) & 0xFFFFFFFF
        f.seek(512 + 36)
        f.write(struct.pack(">I", s))


vd = base("vd.vhd", "vpc", "64M", writes=[("0", "64k")])
vf = base("vf.vhd", "vpc", "8M", "subformat=fixed", writes=[("0", "4k")])
vfend = os.path.getsize(vf) - 512
VH = [  # offsets inside the dynamic disk; both footers get the same edit
    ("max-table-entries-max", [(512 + 28, ">I", 0xFFFFFFFF)]),
    ("table-offset-beyond-eof", [(512 + 16, ">Q", 1 << 40)]),
    ("table-offset-header", [(512 + 16, ">Q", 0)]),
    ("block-size-zero", [(512 + 32, ">I", 0)]),
    ("block-size-not-pow2", [(512 + 32, ">I", 3 << 20)]),
    ("current-size-max", [(48, ">Q", 0xFFFFFFFFFFFFFFFF)]),
    ("disk-type-differencing", [(60, ">I", 4)]),
    ("disk-type-7", [(60, ">I", 7)]),
    ("data-offset-beyond-eof", [(16, ">Q", 1 << 40)]),
]
vdend = os.path.getsize(vd) - 512
batoff = rd(vd, 512 + 16, ">Q")
for name, edits in VH:
    both = []
    for o, s, val in edits:
        both.append((o, s, val))
        if o < 512:
            both.append((vdend + o, s, val))
    emit("vhd-dyn-" + name, "vpc", vd, both, fix=vhd_fix_all)
emit("vhd-dyn-bat-entry-beyond-eof", "vpc", vd, [(batoff, ">I", 0x7FFFFFF0)], fix=vhd_fix_all)
emit("vhd-dyn-bat-entry-to-footer", "vpc", vd, [(batoff, ">I", 0)], fix=vhd_fix_all)
emit("vhd-dyn-footer-bad-checksum", "vpc", vd, [(vdend + 64, ">I", 0x12345678), (64, ">I", 0x12345678)])
emit("vhd-dyn-header-bad-checksum", "vpc", vd, [(512 + 36, ">I", 0x12345678)])
emit("vhd-fixed-current-size-max", "vpc", vf, [(vfend + 48, ">Q", 0xFFFFFFFFFFFFFFFF)], fix=vhd_fix_all)
emit("vhd-fixed-bad-checksum", "vpc", vf, [(vfend + 64, ">I", 0x12345678)])
emit("vhd-truncated-511", "vpc", vd, truncate=511)


# ---------------- vhdx (little-endian) ----------------
x = base("x.vhdx", "vhdx", "64M", writes=[("0", "64k")])


def vhdx_fix(f):
    for hoff in (64 * 1024, 128 * 1024):
        f.seek(hoff)
        b = bytearray(f.read(4096))
        b[4:8] = b"\0\0\0\0"
        f.seek(hoff + 4)
        f.write(struct.pack("<I", crc32c(bytes(b))))
    for roff in (192 * 1024, 256 * 1024):
        f.seek(roff)
        b = bytearray(f.read(65536))
        b[4:8] = b"\0\0\0\0"
        f.seek(roff + 4)
        f.write(struct.pack("<I", crc32c(bytes(b))))


def region(path, guid_first4):
    """Returns (entry offset in region table 1, file offset, length)."""
    with open(path, "rb") as f:
        f.seek(192 * 1024)
        rt = f.read(65536)
    n = struct.unpack_from("<I", rt, 8)[0]
    for i in range(min(n, 2047)):
        e = 16 + i * 32
        if rt[e:e + 4] == guid_first4:
            off, ln = struct.unpack_from("<QI", rt, e + 16)
            return 192 * 1024 + e, off, ln
    raise RuntimeError("region not found")


BAT = bytes.fromhex("6677c22d")      # 2DC27766-F623-4200-9D64-115E9BFD4A08
META = bytes.fromhex("06a27c8b")     # 8B7CA206-4790-4B9A-B8FE-575F050F886E
bat_e, bat_off, bat_len = region(x, BAT)
meta_e, meta_off, meta_len = region(x, META)


def meta_item(path, guid_first4):
    with open(path, "rb") as f:
        f.seek(meta_off)
        mt = f.read(65536)
    n = struct.unpack_from("<H", mt, 10)[0]
    for i in range(min(n, 2047)):
        e = 32 + i * 32
        if mt[e:e + 4] == guid_first4:
            return meta_off + struct.unpack_from("<I", mt, e + 16)[0]
    raise RuntimeError("metadata item not found")


VDS = bytes.fromhex("2442a52f")  # 2FA54224-CD1B-4876-B211-5DBED83BF4B8
vds_off = meta_item(x, VDS)
fp_off = meta_item(x, bytes.fromhex("3767a1ca"))    # CAA16737-FA36-4D43-B3B6-33F0AA44E76B
lss_off = meta_item(x, bytes.fromhex("1dbf4181"))   # 8141BF1D-A96F-4709-BA47-F233A8FAAB5F
XH = [
    ("bat-length-zero", [(bat_e + 24, "<I", 0)]),
    ("bat-length-huge", [(bat_e + 24, "<I", 0xFFF00000)]),
    ("bat-offset-beyond-eof", [(bat_e + 16, "<Q", 1 << 44)]),
    ("bat-offset-header", [(bat_e + 16, "<Q", 0)]),
    ("meta-offset-beyond-eof", [(meta_e + 16, "<Q", 1 << 44)]),
    ("region-count-huge", [(192 * 1024 + 8, "<I", 0xFFFFFFFF)]),
    ("virtual-size-max", [(vds_off, "<Q", 0xFFFFFFFFFFFFFFFF)]),
    ("virtual-size-zero", [(vds_off, "<Q", 0)]),
    ("block-size-zero", [(fp_off, "<I", 0)]),
    ("block-size-not-pow2", [(fp_off, "<I", 3 << 20)]),
    ("logical-sector-1000", [(lss_off, "<I", 1000)]),
    ("log-guid-nonzero", [(64 * 1024 + 48, "<Q", 0x1122334455667788), (128 * 1024 + 48, "<Q", 0x1122334455667788)]),
    ("bat-entry-beyond-eof", [(bat_off, "<Q", (1 << 50) | 6)]),
]
for name, edits in XH:
    # edits to region table 1 are mirrored into region table 2
    mirrored = list(edits)
    for o, s, val in edits:
        if 192 * 1024 <= o < 256 * 1024:
            mirrored.append((o + 64 * 1024, s, val))
    emit("vhdx-" + name, "vhdx", x, mirrored, fix=vhdx_fix)
emit("vhdx-header-bad-crc", "vhdx", x, [(64 * 1024 + 4, "<I", 1), (128 * 1024 + 4, "<I", 1)])
emit("vhdx-region-bad-crc", "vhdx", x, [(192 * 1024 + 4, "<I", 1), (256 * 1024 + 4, "<I", 1)])
emit("vhdx-truncated-100k", "vhdx", x, truncate=100 * 1024)

shutil.rmtree(TMP)
with open(os.path.join(OUT, "manifest.txt"), "w") as f:
    f.write("\n".join(manifest) + "\n")
print("%d hostile images in %s" % (len(manifest), OUT))
