#!/usr/bin/env python3
"""tests/fuzz/mkseed.py — turn disk images into sparse fuzz inputs.

usage: mkseed.py OUT SELECTOR FLAGS NEWSIZE IMAGE
  (fuzz_plan) SELECTOR: planner (0 qcow2, 1 vmdk, 2 vhd, 3 vhdx, 4 vdi);
  FLAGS: bit0 shrink, bits1-2 preallocation; NEWSIZE: bytes.
usage: mkseed.py backing OUT OFF:LEN[,OFF:LEN...] FMT:IMAGE...
  (fuzz_backing) up to 4 reads of the chain, then its files in order (the
  image's own backing file first), FMT raw or qcow2.
See sparse_image.h for the image layout, fuzz_backing.c for the chain's.
"""
import os
import struct
import sys


def sparse(image):
    data = open(image, "rb").read()
    recs = []
    sec = 0
    while sec * 512 < len(data):
        chunk = data[sec * 512:(sec + 1) * 512]
        if chunk.strip(b"\0"):
            # merge runs of non-zero sectors, up to 60 KiB per record
            start = sec
            body = bytearray()
            while sec * 512 < len(data) and len(body) < 60 * 1024:
                c = data[sec * 512:(sec + 1) * 512]
                if not c.strip(b"\0"):
                    break
                body += c
                sec += 1
            recs.append(struct.pack("<IH", start, len(body)) + bytes(body))
        else:
            sec += 1
    return struct.pack("<Q", os.path.getsize(image)) + b"".join(recs)


def backing(out, reads, files):
    reads = [tuple(int(x, 0) for x in r.split(":")) for r in reads.split(",")]
    assert 1 <= len(reads) <= 4 and 1 <= len(files) <= 4
    fmts = 0
    for i, f in enumerate(files):
        fmts |= {"raw": 0, "qcow2": 1}[f.split(":", 1)[0]] << (2 * i)
    blob = struct.pack("<BBBB", len(files), fmts, 0, len(reads) - 1)
    blob += b"".join(struct.pack("<QI", off, n) for off, n in reads)
    for f in files:
        s = sparse(f.split(":", 1)[1])
        blob += struct.pack("<I", len(s)) + s
    with open(out, "wb") as f:
        f.write(blob)


def main():
    if sys.argv[1] == "backing":
        backing(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    out, sel, flags, newsize, image = sys.argv[1:6]
    blob = struct.pack("<BBQ", int(sel), int(flags), int(newsize, 0)) + sparse(image)
    with open(out, "wb") as f:
        f.write(blob)


if __name__ == "__main__":
    main()
