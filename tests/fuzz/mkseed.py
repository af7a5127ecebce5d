#!/usr/bin/env python3
"""tests/fuzz/mkseed.py — turn a disk image into a sparse fuzz input.

usage: mkseed.py OUT SELECTOR FLAGS NEWSIZE IMAGE
  SELECTOR: planner (0 qcow2, 1 vmdk, 2 vhd, 3 vhdx, 4 vdi); FLAGS: bit0 shrink,
  bits1-2 preallocation; NEWSIZE: bytes. See sparse_image.h for the layout.
"""
import os
import struct
import sys


def main():
    out, sel, flags, newsize, image = sys.argv[1:6]
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
    blob = struct.pack("<BBQ", int(sel), int(flags), int(newsize, 0))
    blob += struct.pack("<Q", os.path.getsize(image)) + b"".join(recs)
    with open(out, "wb") as f:
        f.write(blob)


if __name__ == "__main__":
    main()
