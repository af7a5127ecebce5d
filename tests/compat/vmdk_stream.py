#!/usr/bin/python3
"""tests/compat/vmdk_stream.py — writes a raw disk as a streamOptimized VMDK
with the grain directory at the end, in the layout of VMware's "Virtual Disk
Format 5.0" (stream-optimized compressed sparse extent), as VMware
Workstation and OVA exports write it:

  sector 0     sparse header: version 3, flags 0x30001 (newline test,
               compressed grains, markers), gdOffset all ones (GD_AT_END),
               rgdOffset 0, grainSize 128, numGTEsPerGT 512, overHead 128,
               compressAlgorithm 1 (deflate)
  sector 1..   the descriptor (descriptorSize sectors), then zeros to overHead
  grains       per non-zero grain, in disk order: a grain marker (u64 LBA in
               sectors, u32 compressed length) directly followed by the zlib
               stream, padded to a sector
  after each   grain table with at least one grain: a GT marker (val = 4
  GT's grains  sectors, size 0, type 1) and the 512-entry table; an empty GT
               is not written (its GD entry is 0)
  at the end   a GD marker (val = GD sectors, type 2) and the GD, a footer
               marker (val 1, type 3), the footer (the header with the real
               gdOffset), an end-of-stream marker (all zero)

usage: vmdk_stream.py RAW OUT [--desc-sectors N] [--capacity SECTORS]
                        [--whole-grains]
  The descriptor names OUT's base name as its extent (libvmdk opens the
  extent by that name). --capacity defaults to RAW's length in whole
  sectors; a last grain past the capacity is compressed short (only the
  bytes below it), or with --whole-grains whole, with RAW's bytes past the
  capacity in it (data no reader of the image sees).
"""
import argparse
import os
import struct
import zlib

SEC = 512
GRAIN = 128
GTES = 512
GD_AT_END = 0xFFFFFFFFFFFFFFFF


def header(capacity, desc_sectors, gd_offset):
    h = struct.pack("<4sIIQQQQIQQQB4sH", b"KDMV", 3, 0x30001, capacity, GRAIN, 1,
                    desc_sectors, GTES, 0, gd_offset, 128, 0, b"\n \r\n", 1)
    return h.ljust(SEC, b"\0")


def marker(val, mtype):
    return struct.pack("<QII", val, 0, mtype).ljust(SEC, b"\0")


def pad(b):
    return b + bytes(-len(b) % SEC)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("out")
    ap.add_argument("--desc-sectors", type=int, default=1)
    ap.add_argument("--capacity", type=int)
    ap.add_argument("--whole-grains", action="store_true")
    a = ap.parse_args()
    raw_len = os.path.getsize(a.raw)
    cap = a.capacity if a.capacity is not None else (raw_len + SEC - 1) // SEC
    cyl = cap // (255 * 63)
    desc = ("# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=5c2a9b71\n"
            "parentCID=ffffffff\ncreateType=\"streamOptimized\"\n\n"
            "# Extent description\nRDONLY %d SPARSE \"%s\"\n\n# The Disk Data Base\n#DDB\n\n"
            "ddb.adapterType = \"lsilogic\"\nddb.geometry.cylinders = \"%d\"\n"
            "ddb.geometry.heads = \"255\"\nddb.geometry.sectors = \"63\"\n"
            "ddb.longContentID = \"0c6ad8e3d9d3a0c7e3b1f0d35c2a9b71\"\n"
            "ddb.toolsInstallType = \"4\"\nddb.toolsVersion = \"12352\"\n"
            "ddb.virtualHWVersion = \"8\"\n" % (cap, os.path.basename(a.out), cyl)).encode()
    if len(desc) > a.desc_sectors * SEC:
        raise SystemExit("descriptor needs %d bytes" % len(desc))
    ngrains = (cap + GRAIN - 1) // GRAIN
    ngts = (ngrains + GTES - 1) // GTES
    gd = [0] * ngts
    with open(a.raw, "rb") as src, open(a.out, "wb") as out:
        out.write(header(cap, a.desc_sectors, GD_AT_END))
        out.write(desc.ljust(a.desc_sectors * SEC, b"\0"))
        out.write(bytes((128 - 1 - a.desc_sectors) * SEC))
        for t in range(ngts):
            gt = [0] * GTES
            for i in range(GTES):
                g = t * GTES + i
                if g >= ngrains:
                    break
                src.seek(g * GRAIN * SEC)
                data = src.read(GRAIN * SEC if a.whole_grains else
                                min(GRAIN * SEC, cap * SEC - g * GRAIN * SEC))
                data = data.ljust(GRAIN * SEC, b"\0") if a.whole_grains else data
                if not data.strip(b"\0"):
                    continue
                gt[i] = out.tell() // SEC
                z = zlib.compress(data)
                out.write(pad(struct.pack("<QI", g * GRAIN, len(z)) + z))
            if any(gt):
                out.write(marker(GTES * 4 // SEC, 1))
                gd[t] = out.tell() // SEC
                out.write(struct.pack("<%dI" % GTES, *gt))
        gd_sectors = (ngts * 4 + SEC - 1) // SEC
        out.write(marker(gd_sectors, 2))
        gd_off = out.tell() // SEC
        out.write(pad(struct.pack("<%dI" % ngts, *gd)))
        out.write(marker(1, 3))
        out.write(header(cap, a.desc_sectors, gd_off))
        out.write(marker(0, 0))


if __name__ == "__main__":
    main()
