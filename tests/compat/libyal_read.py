#!/usr/bin/python3
"""tests/compat/libyal_read.py — the second oracle of the compat suites: a
reader that is not qemu (libyal's pyvhdi, pyvmdk, pyqcow) opens an image after
a resize, reports its size, and reads the same data as qemu did.

usage: libyal_read.py FORMAT IMAGE SIZE EXPECTED_RAW [LIMIT]
  FORMAT: vpc, vhdx, vmdk or qcow2; SIZE: the virtual size qemu-img reports;
  EXPECTED_RAW: the disk's bytes as qemu reads them (a raw file the caller
  already matched against the image with qemu-img compare; sparse is fine,
  bytes past its end count as zeros); LIMIT: compare only the bytes below
  it (EXPECTED_RAW is a prefix: no file system here holds a 64 TiB file).
Prints one line "libyal MODULE VERSION: size N, B bytes compared (whole|
sampled)"; exit 0 when libyal agrees, 1 (with the first difference) when it
does not, 2 on a usage error. Disks up to 64 MiB are read whole; larger ones
at every data extent of EXPECTED_RAW (up to 64 MiB in all) and 1 MiB at both
ends of every hole and of the disk.

Known deviations of libyal (Debian 12: libvhdi 20210425, libvmdk 20200926,
libqcow 20201213), found by trying; each is accepted only where the helper
sees its cause in the image, never as a blanket skip:
- libvhdi's media size of a VHD is the footer's original_size (offset 40),
  not current_size (offset 48), which qemu and Hyper-V read, and it reads the
  footer at the end of the file (qemu the copy at 0). instar writes both
  fields with the new size, so after a resize they agree: no exception here.
- libvmdk refuses an image whose descriptor does not start with its
  signature line "# Disk DescriptorFile": VMDKstream (Debian's
  python3-vmdkstream) writes "# Disk Descriptor File". When the open fails
  and the embedded descriptor's first line is not the signature, the image is
  reported as not readable by libvmdk (named, exit 0); qemu reads it.
- libqcow refuses a qcow2 v3 image with an incompatible feature it does not
  know: an external data file (bit 2), a compression type other than zlib
  (bit 3), extended L2 entries (bit 4). When the open fails and the header
  has one of these bits, the image is reported as not readable by libqcow
  (named, exit 0); an open failure without them is a failure.
- libqcow reads a cluster whose L2 entry has the v3 "reads as zero" flag
  (bit 0) as the bytes at the entry's host offset (0 when it has none: the
  file's first bytes, the header) instead of zeros. Where libqcow's bytes
  differ from qemu's, the helper walks L1/L2 itself: if the cluster has the
  zero flag, qemu's bytes are zeros and libqcow's are exactly those host
  bytes, the difference is that bug (counted and named in the output line);
  anything else is a failure.
- libqcow follows a backing file only through set_parent(), which takes a
  qcow2 file: the helper opens a qcow2 chain itself (names relative to the
  image's directory, as qemu), and reads one cluster at a time over a
  backing file (a read that spans a cluster from the backing file and an
  allocated one returns the backing file's bytes for both). A raw backing
  file it cannot take (set_parent wants a qcow2 file; without a parent every
  read of an unallocated cluster fails "missing parent file"): such an image
  is reported as not readable by libqcow (named, exit 0).
"""
import os
import struct
import sys

CHUNK = 1 << 20
WHOLE_MAX = 64 << 20
DATA_MAX = 64 << 20
ZERO = bytes(CHUNK)


def die(msg):
    print("libyal: FAIL: " + msg)
    sys.exit(1)


def qcow2_header(path):
    with open(path, "rb") as f:
        h = f.read(104)
    if len(h) < 72 or h[:4] != b"QFI\xfb":
        return None
    version, = struct.unpack(">I", h[4:8])
    cluster_bits, = struct.unpack(">I", h[20:24])
    l1_size, = struct.unpack(">I", h[36:40])
    l1_off, = struct.unpack(">Q", h[40:48])
    incompat = struct.unpack(">Q", h[72:80])[0] if version >= 3 and len(h) >= 80 else 0
    return {"version": version, "cluster_bits": cluster_bits, "l1_size": l1_size,
            "l1_off": l1_off, "incompat": incompat}


UNKNOWN_TO_LIBQCOW = {2: "an external data file", 3: "a compression type other than zlib",
                      4: "extended L2 entries"}


def qcow2_cluster(path, hdr, off):
    """(state, host offset) of the cluster holding guest offset off: state
    "unallocated" (no L2 table or entry 0), "zero" (the v3 zero flag),
    "compressed" or "data"."""
    cb = hdr["cluster_bits"]
    l2_entries = 1 << (cb - 3)
    l1_index = off >> (cb + cb - 3)
    if l1_index >= hdr["l1_size"]:
        return "unallocated", 0
    with open(path, "rb") as f:
        f.seek(hdr["l1_off"] + 8 * l1_index)
        l1e, = struct.unpack(">Q", f.read(8))
        l2_off = l1e & 0x00fffffffffffe00
        if not l2_off:
            return "unallocated", 0
        f.seek(l2_off + 8 * ((off >> cb) & (l2_entries - 1)))
        l2e, = struct.unpack(">Q", f.read(8))
    if l2e & (1 << 62):
        return "compressed", 0
    if hdr["version"] >= 3 and l2e & 1:
        return "zero", l2e & 0x00fffffffffffe00
    if not l2e & 0x00fffffffffffe00:
        return "unallocated", 0
    return "data", l2e & 0x00fffffffffffe00


def vmdk_desc_unsigned(path):
    """The first line of a sparse extent's embedded descriptor when it is
    not libvmdk's signature line, else None."""
    with open(path, "rb") as f:
        h = f.read(512)
        if len(h) < 44 or h[:4] != b"KDMV":
            return None
        off, = struct.unpack_from("<Q", h, 28)
        f.seek(off * 512)
        line = f.read(64).split(b"\n")[0]
    return None if line.rstrip(b"\r") == b"# Disk DescriptorFile" else line


def open_reader(fmt, img):
    """(module name, version, size, read(n, off), handles to close, whether
    a qcow2 backing chain is open, the raw backing file libqcow can't take)."""
    d = os.path.dirname(os.path.abspath(img))
    if fmt in ("vpc", "vhdx"):
        import pyvhdi as m
        h = m.file()
        h.open(img)
        return "pyvhdi", m.get_version(), h.get_media_size(), h.read_buffer_at_offset, [h], 0, None
    if fmt == "vmdk":
        import pyvmdk as m
        h = m.handle()
        h.open(img)
        h.open_extent_data_files()
        return "pyvmdk", m.get_version(), h.get_media_size(), h.read_buffer_at_offset, [h], 0, None
    import pyqcow as m
    chain = [m.file()]
    chain[0].open(img)
    raw_backing = None
    while chain[-1].get_backing_filename():
        name = chain[-1].get_backing_filename()
        name = os.path.join(d, name) if not os.path.isabs(name) else name
        if not qcow2_header(name):
            raw_backing = name
            break
        p = m.file()
        p.open(name)
        chain[-1].set_parent(p)
        chain.append(p)
    return ("pyqcow", m.get_version(), chain[0].get_media_size(), chain[0].read_buffer_at_offset,
            chain, len(chain) > 1, raw_backing)


def ranges(exp_path, size):
    """(offset, length) ranges to compare, and whether they cover the disk."""
    if size <= WHOLE_MAX:
        return [(0, size)], "whole"
    out, data = [], 0
    fd = os.open(exp_path, os.O_RDONLY)
    try:
        end = size
        off = 0
        while off < end:
            try:
                ds = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:  # ENXIO: no data past off (the rest is zeros)
                ds = end
            ds = min(ds, end)
            if ds > off:  # a hole [off, ds): both of its ends
                out.append((off, min(CHUNK, ds - off)))
                out.append((max(off, ds - CHUNK), min(CHUNK, ds - off)))
            if ds >= end:
                break
            de = min(os.lseek(fd, ds, os.SEEK_HOLE), end)
            n = min(de - ds, max(0, DATA_MAX - data))
            if n:
                out.append((ds, n))
                data += n
            off = de
    finally:
        os.close(fd)
    out.append((max(0, size - CHUNK), min(CHUNK, size)))
    return out, "sampled"


def main():
    if len(sys.argv) not in (5, 6) or sys.argv[1] not in ("vpc", "vhdx", "vmdk", "qcow2"):
        print(__doc__.split("\n\n")[1])
        return 2
    fmt, img, want, exp_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    limit = int(sys.argv[5]) if len(sys.argv) == 6 else None
    hdr = qcow2_header(img) if fmt == "qcow2" else None
    try:
        mod, ver, size, rd, handles, chained, raw_backing = open_reader(fmt, img)
    except Exception as e:  # libyal raises IOError with a multi-line trace
        why = " ".join(str(e).split())[:300]
        if fmt == "vmdk" and vmdk_desc_unsigned(img) is not None:
            print("libyal pyvmdk: not readable by libvmdk (its descriptor starts %r, not "
                  "libvmdk's signature line; known, see libyal_read.py): %s"
                  % (vmdk_desc_unsigned(img).decode("ascii", "replace"), why[:120]))
            return 0
        if hdr:
            known = [v for b, v in UNKNOWN_TO_LIBQCOW.items() if hdr["incompat"] >> b & 1]
            if known:
                print("libyal pyqcow: not readable by libqcow (it refuses %s; "
                      "known, see libyal_read.py): %s" % (" and ".join(known), why[:120]))
                return 0
        die("%s cannot open %s: %s" % (fmt, img, why))
    if size != want:
        die("%s %s reads size %d, qemu %d" % (mod, ver, size, want))
    if raw_backing:
        print("libyal pyqcow %s: size %d; data not readable by libqcow (a raw backing "
              "file, which set_parent() cannot take; known, see libyal_read.py)" % (ver, size))
        return 0
    spans, how = ranges(exp_path, min(size, limit) if limit is not None else size)
    if limit is not None and limit < size:
        how += " below %d" % limit
    compared = zero_flag = 0
    # over a backing chain, one cluster a read (see the module comment)
    chunk = (1 << hdr["cluster_bits"]) if chained else CHUNK
    exp_size = os.path.getsize(exp_path)
    with open(exp_path, "rb") as ef:
        for start, length in spans:
            off = start
            while off < start + length:
                n = min(chunk, start + length - off)
                got = rd(n, off)
                exp = b""
                if off < exp_size:
                    ef.seek(off)
                    exp = ef.read(n)
                exp += bytes(n - len(exp))
                if len(got) != n:
                    die("%s %s: short read at %d (%d of %d bytes)" % (mod, ver, off, len(got), n))
                if got != exp:
                    if not hdr:
                        i = next(i for i in range(n) if got[i] != exp[i])
                        die("%s %s reads other bytes than qemu at offset %d" % (mod, ver, off + i))
                    zero_flag += libqcow_known(img, hdr, off, got, exp)
                compared += n
                off += n
    for h in handles:
        h.close()
    notes = []
    if zero_flag:
        notes.append("%d cluster(s) with the zero flag read as host bytes by libqcow "
                     "(its bug, see libyal_read.py)" % zero_flag)
    print("libyal %s %s: size %d, %d bytes compared (%s)%s" % (
        mod, ver, size, compared, how, "".join("; " + n for n in notes)))
    return 0


def libqcow_known(img, hdr, off, got, exp):
    """Where libqcow's bytes (got) differ from qemu's (exp) in [off, off +
    len(got)), each differing cluster must have the zero flag, with qemu
    reading zeros and libqcow the host bytes (module comment): returns how
    many; anything else dies with its first difference."""
    cs = 1 << hdr["cluster_bits"]
    zero = 0
    with open(img, "rb") as f:
        for c in range(0, len(got), cs):
            g, e = got[c:c + cs], exp[c:c + cs]
            if g == e:
                continue
            state, host = qcow2_cluster(img, hdr, off + c)
            if state == "zero" and not any(e):
                f.seek(host)
                if g == f.read(len(g)).ljust(len(g), b"\0"):
                    zero += 1
                    continue
            i = next(i for i in range(len(g)) if g[i] != e[i])
            die("pyqcow reads other bytes than qemu at offset %d (cluster: %s)"
                % (off + c + i, state))
    return zero


if __name__ == "__main__":
    sys.exit(main())
