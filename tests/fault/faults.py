#!/usr/bin/env python3
"""tests/fault/faults.py — syscall-level fault injection into the real instar.

For every case (a format, an image shape, a grow or a shrink) the runner
first resizes a copy without faults under `strace -f` to learn which
write-type syscalls the commit issues (pwrite64, pwritev, fdatasync, fsync,
ftruncate, fallocate, ...) and how often. Then, for every syscall S and
every index K from 1 to that count, it restores the pristine image and runs

    strace -f -e trace=S -e inject=S:signal=SIGKILL:when=K   (action kill)
    strace -f -e trace=S -e inject=S:error=EIO:when=K        (action eio)
    strace -f -e trace=S -e inject=S:error=ENOSPC:when=K     (action enospc)

around `instar resize --output=json` (the installed binary: no test hooks;
the guest's writes are staged in memory, only the host's commit issues
these syscalls). After each run the image must be the old one or the new
one over the WHOLE old virtual range:

  - `qemu-img info` opens it and its virtual size is the old or the new one;
  - `qemu-img check` reports no corruption (leaks are fine);
  - `qemu-img compare` against the expected contents for that size: the
    pristine data (old size), or the pristine data over min(old, new) and
    zeros above (new size) -- raw files computed here, not instar's output;
  - a second reader that is not qemu (libyal's pyqcow, pyvmdk, pyvhdi; plain
    reads for raw) sees the same virtual size as qemu and the same bytes,
    where the library reads the shape (see SECOND_READER below);
  - a backing file is never modified;
  - a fault at the first write-type syscall of the commit leaves every file
    of the image byte-identical (sha256) with its length unchanged;
  - for eio/enospc: exit code 1, exactly one JSON object on stdout whose
    file_size_after is the real file length, an error message naming the
    errno ("Input/output error", "No space left on device"), and when the
    image is still the old one, its file length is put back.

usage: faults.py --instar PATH [--sample N] [--case GLOB]... [--actions kill,eio,enospc]
                 [--list] [-v]
--sample N keeps every N-th index of each syscall (plus its first and last);
the rotation of which indices are kept is fixed, so a sample is reproducible.
A sampled run leaves out the slow cases (twoGbMaxExtentFlat, whose raw
extents qemu-img compare reads whole) unless --case names them.
Prints one line per bad point (case, syscall, index, action, what was wrong)
and a summary; exits 1 when any point is bad, 77 to skip (no /dev/kvm, no
strace) unless CI=true.
"""
import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

# Syscalls that can change a file; injected where the run issues them on a
# file of the image (write/writev also go to stdout and the teardown
# helper's pipe, which aren't the commit's).
WRITE_SYSCALLS = ["pwrite64", "pwritev", "pwritev2", "write", "writev", "fdatasync",
                  "fsync", "ftruncate", "fallocate", "sync_file_range", "copy_file_range",
                  "msync"]
ACTIONS = {
    "kill": "signal=SIGKILL",
    # strace fails a syscall by replacing it with an invalid one (-1), which
    # instar's seccomp allow-list answers with SIGSYS; getpid is allowed
    # and has no side effect
    "eio": "error=EIO:syscall=getpid",
    "enospc": "error=ENOSPC:syscall=getpid",
}
STRERROR = {"eio": "Input/output error", "enospc": "No space left on device"}
QEMU_CHECKS = {"qcow2", "vmdk", "vhdx"}  # qemu-img check supports these

# What libyal's readers (Debian 12: libqcow 20201213, libvmdk 20200926,
# libvhdi 20210425) can read, found by trying: libqcow refuses any qcow2 v3
# incompatible feature it does not know -- an external data file (bit 2),
# a compression type other than zlib (bit 3), extended L2 (bit 4) -- and
# reads a backing file only through set_parent(); internal snapshots (active
# layer), persistent bitmaps (autoclear), 512-byte clusters and zlib-
# compressed clusters it reads. libvmdk reads monolithicSparse and
# streamOptimized, libvhdi reads vhd (fixed, dynamic) and vhdx (fixed,
# dynamic). Two libyal quirks the reader works around: libqcow returns the
# backing file's bytes for a multi-cluster read that starts in a cluster
# the overlay doesn't have (read one cluster at a time), and libvhdi's vhd
# media size is the footer's Original Size (@40; instar writes it with
# Current Size) of the footer at the end, while qemu reads the copy at 0: a
# crash between a dynamic disk's two footer writes leaves them one old, one
# new, so for vpc libvhdi's size is judged on its own (old or new, with its
# data) and each footer copy is checked directly (vpc_footer_problem). And
# libqcow reads a zero cluster (L2 entry 0 with the v3 zero flag) as the
# bytes at file offset 0: a grow over a longer backing file reads zeros
# through such clusters, so for the backing cases the second reader covers
# only the range below min(old, new), qemu-img the whole range.
# qemu's allocate_first_block, which instar does as qemu does when it
# creates a file (a twoGbMaxExtentFlat extent): zeros over the first 512 or
# 4096 bytes of the new, empty file, a failure ignored (the bytes read as
# zeros anyway). A failure injected there may end in exit 0 with the new image.
FIRST_BLOCK = re.compile(r'pwrite64\(\d+, "(\\0)+"\.\.\., (512|4096), 0\) = -1 ')

SECOND_READER = {"raw": "plain reads", "qcow2": "pyqcow", "vmdk": "pyvmdk",
                 "vpc": "pyvhdi", "vhdx": "pyvhdi"}


def ensure_second_reader_python():
    """Re-exec under a python3 that has libyal's bindings (Debian's system
    python when the one on PATH is a different build); return the list of
    missing modules if none has them."""
    try:
        import pyqcow, pyvmdk, pyvhdi  # noqa: F401
        return []
    except ImportError:
        pass
    if os.environ.get("INSTAR_FAULTS_REEXEC") != "1":
        for cand in ("/usr/bin/python3", shutil.which("python3")):
            if not cand or os.path.realpath(cand) == os.path.realpath(sys.executable):
                continue
            if subprocess.run([cand, "-c", "import pyqcow, pyvmdk, pyvhdi"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
                os.environ["INSTAR_FAULTS_REEXEC"] = "1"
                os.execv(cand, [cand] + sys.argv)
    missing = []
    for m in ("pyqcow", "pyvmdk", "pyvhdi"):
        try:
            __import__(m)
        except ImportError:
            missing.append(m)
    return missing


def run(cmd, cwd, **kw):
    return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw)


def must(cmd, cwd):
    p = run(cmd, cwd)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    return p


def sha256_file(path):
    """A digest of PATH's length and bytes that does not depend on where its
    holes are: every 4 KiB block (at offsets that are multiples of 4 KiB)
    that is not all zeros, with its offset. The split vmdk cases have files
    of 2 GiB that are nearly all hole."""
    h = hashlib.sha256()
    size = os.path.getsize(path)
    h.update(b"%d;" % size)
    blk = 4 * KiB
    with open(path, "rb") as f:
        for off, ln in data_extents(path):
            start, end = off - off % blk, off + ln
            f.seek(start)
            while start < end:
                b = f.read(min(end - start + (-end) % blk, 1 << 22))
                if not b:
                    break
                for i in range(0, len(b), blk):
                    piece = b[i:i + blk]
                    if piece.count(0) != len(piece):
                        h.update(b"%d:" % (start + i))
                        h.update(piece)
                start += len(b)
    return h.hexdigest()


def sparse_copy(src, dst):
    """Copy SRC's bytes to DST (replaced), keeping holes: SEEK_DATA/SEEK_HOLE."""
    tmp = dst + ".tmp"
    with open(src, "rb") as fi, open(tmp, "wb") as fo:
        size = os.fstat(fi.fileno()).st_size
        for off, ln in data_extents(src):
            fi.seek(off)
            fo.seek(off)
            while ln > 0:
                b = fi.read(min(ln, 1 << 22))
                if not b:
                    break
                fo.write(b)
                ln -= len(b)
        fo.truncate(size)
    os.replace(tmp, dst)


class Case:
    """NAME: FMT image of SIZE built by SETUP (shell commands run in the case
    directory; the image is `img`), resized with ARGS to TARGET. FILES are
    the files instar may write (the image and an external data file), RO
    those it must not (a backing file). READER: False where the second
    reader can't read this shape (the reason is in READER_WHY)."""

    def __init__(self, name, fmt, setup, args, target, files=("img",), ro=(), reader=True,
                 reader_why="", reader_below_min=False, extents=None, slow=False):
        self.name, self.fmt, self.setup, self.args, self.target = name, fmt, setup, args, target
        self.reader_below_min = reader_below_min
        # a vmdk split into extent files: every file named EXTENTS... is the
        # image's (those the setup made join FILES; new ones count too)
        self.extents = extents
        # SLOW: left out of a sampled run (make check) unless --case names
        # it; `make faults` runs it
        self.slow = slow
        self.files, self.ro, self.reader, self.reader_why = list(files), list(ro), reader, reader_why


def std_writes(old, fmt, extra=()):
    """qemu-io commands: data at the start, at 1M and near the end of the old
    range (so a shrink that cuts too early or unmaps before it commits the
    new size shows), plus EXTRA (pattern, offset, length)."""
    w = [(0x5A, 0, 64 * KiB), (0xA5, 1 * MiB, 64 * KiB), (0x77, old - 192 * KiB, 128 * KiB)]
    w += list(extra)
    cmd = ["qemu-io", "-f", fmt]
    for pat, off, ln in w:
        cmd += ["-c", "write -P 0x%x %d %d" % (pat, off, ln)]
    return [cmd + ["img"]]


def make_cases():
    C = []
    qc = ["qemu-img", "create", "-q"]

    def simple(name, fmt, copts, size, args, target, extra=(), pre=None, **kw):
        setup = (pre or []) + [qc + ["-f", fmt] + (["-o", copts] if copts else []) + ["img", str(size)]]
        setup += std_writes(size, fmt, extra)
        C.append(Case(name, fmt, setup, args, target, **kw))

    # raw
    simple("raw-grow", "raw", "", 64 * MiB, [], 96 * MiB)
    simple("raw-shrink", "raw", "", 64 * MiB, ["--shrink"], 32 * MiB)
    simple("raw-grow-falloc", "raw", "", 64 * MiB, ["--preallocation=falloc"], 96 * MiB)
    simple("raw-grow-full", "raw", "", 64 * MiB, ["--preallocation=full"], 72 * MiB)
    # qcow2: default shape; the reproduction (cut inside a cluster
    # just above the data at 1073545216) and a large shrink
    simple("qcow2-grow", "qcow2", "", 128 * MiB, [], 256 * MiB)
    simple("qcow2-shrink-tail", "qcow2", "", GiB, ["--shrink"], 1073577984)
    simple("qcow2-shrink", "qcow2", "", 256 * MiB, ["--shrink"], 96 * MiB, extra=[(0x66, 100 * MiB, 64 * KiB)])
    # 512-byte clusters: a big grow relocates the L1 and the refcount table
    simple("qcow2-512-grow", "qcow2", "cluster_size=512", 64 * MiB, [], GiB)
    simple("qcow2-512-shrink", "qcow2", "cluster_size=512", 64 * MiB, ["--shrink"], 32 * MiB + 512)
    # compressed clusters: written, then converted with -c
    for nm, args, tgt in (("grow", [], 128 * MiB), ("shrink", ["--shrink"], 40 * MiB)):
        setup = [qc + ["-f", "qcow2", "src", str(64 * MiB)],
                 ["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", "-c", "write -P 0xa5 1M 64k",
                  "-c", "write -P 0x66 40M 128k", "-c", "write -P 0x77 %d 128k" % (64 * MiB - 192 * KiB), "src"],
                 ["qemu-img", "convert", "-c", "-O", "qcow2", "src", "img"], ["rm", "-f", "src"]]
        C.append(Case("qcow2-compressed-" + nm, "qcow2", setup, args, tgt))
    # an internal snapshot; the active layer differs from it afterwards
    for nm, args, tgt in (("grow", [], 512 * MiB), ("shrink", ["--shrink"], 96 * MiB)):
        setup = [qc + ["-f", "qcow2", "img", str(256 * MiB)]]
        setup += std_writes(256 * MiB, "qcow2", [(0x66, 100 * MiB, 64 * KiB)])
        setup += [["qemu-img", "snapshot", "-c", "s1", "img"],
                  ["qemu-io", "-f", "qcow2", "-c", "write -P 0x99 100M 32k", "-c", "write -P 0x98 2M 64k", "img"]]
        C.append(Case("qcow2-snapshot-" + nm, "qcow2", setup, args, tgt))
    # a persistent dirty bitmap
    for nm, args, tgt in (("grow", [], 512 * MiB), ("shrink", ["--shrink"], 96 * MiB)):
        setup = [qc + ["-f", "qcow2", "img", str(256 * MiB)], ["qemu-img", "bitmap", "--add", "img", "b0"]]
        setup += std_writes(256 * MiB, "qcow2", [(0x66, 100 * MiB, 64 * KiB)])
        C.append(Case("qcow2-bitmap-" + nm, "qcow2", setup, args, tgt))
    # a backing file longer than the overlay: a grow must read zeros above
    # the old size, not the base's data
    for nm, args, tgt in (("grow", [], 128 * MiB), ("shrink", ["--shrink"], 32 * MiB)):
        setup = [qc + ["-f", "qcow2", "base", str(128 * MiB)],
                 ["qemu-io", "-f", "qcow2", "-c", "write -P 0x33 0 128M", "base"],
                 qc + ["-f", "qcow2", "-b", "base", "-F", "qcow2", "img", str(64 * MiB)]]
        setup += std_writes(64 * MiB, "qcow2", [(0x44, 40 * MiB, 64 * KiB)])
        C.append(Case("qcow2-backing-" + nm, "qcow2", setup, args, tgt, ro=["base"], reader_below_min=True))
    # an external data file (relative name: every command runs in the case dir)
    for nm, args, tgt in (("grow", [], 128 * MiB), ("shrink", ["--shrink"], 32 * MiB)):
        simple("qcow2-datafile-" + nm, "qcow2", "data_file=img.data", 64 * MiB, args, tgt,
               files=("img", "img.data"), reader=False,
               reader_why="libqcow: external data file (incompatible feature bit 2) unsupported")
    # extended L2 entries (subclusters)
    for nm, args, tgt in (("grow", [], 512 * MiB), ("shrink", ["--shrink"], 96 * MiB)):
        simple("qcow2-extl2-" + nm, "qcow2", "extended_l2=on", 256 * MiB, args, tgt,
               extra=[(0x66, 100 * MiB, 4 * KiB)], reader=False,
               reader_why="libqcow: extended L2 (incompatible feature bit 4) unsupported")
    # vmdk
    simple("vmdk-sparse-grow", "vmdk", "", 128 * MiB, [], 256 * MiB)
    simple("vmdk-sparse-shrink", "vmdk", "", GiB, ["--shrink"], 512 * MiB, extra=[(0x66, 1000 * MiB, 64 * KiB)])
    for nm, args, tgt in (("grow", [], 512 * MiB), ("shrink", ["--shrink"], 96 * MiB)):
        setup = [qc + ["-f", "qcow2", "src", str(256 * MiB)]]
        setup += [c[:-1] + ["src"] for c in std_writes(256 * MiB, "qcow2", [(0x66, 100 * MiB, 64 * KiB)])]
        setup += [["qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", "src", "img"],
                  ["rm", "-f", "src"]]
        C.append(Case("vmdk-stream-" + nm, "vmdk", setup, args, tgt))
    # vmdk split into extent files: twoGbMaxExtentSparse appends extents
    # (grow) or drops whole ones (shrink); twoGbMaxExtentFlat also sizes the
    # last one. The descriptor is "img", its extents img-s001, img-f001, ...
    for sub, pre in (("twoGbMaxExtentSparse", "img-s"), ("twoGbMaxExtentFlat", "img-f")):
        short = "sparse" if pre == "img-s" else "flat"
        for nm, args, size, tgt in (("grow", [], 3 * GiB, 6 * GiB + 64 * MiB),
                                    ("shrink", ["--shrink"], 5 * GiB, 2 * GiB)):
            setup = [qc + ["-f", "vmdk", "-o", "subformat=" + sub, "img", str(size)]]
            setup += std_writes(size, "vmdk", [(0x66, 2 * GiB - 32 * KiB, 64 * KiB)])
            # flat: qemu-img compare reads every byte of raw extents (GiBs
            # of zeros at each point): slow
            C.append(Case("vmdk-split%s-%s" % (short, nm), "vmdk", setup, args, tgt, extents=pre,
                          slow=short == "flat"))
    # a twoGbMaxExtentSparse shrink inside an extent: a copy of it replaces it
    setup = [qc + ["-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", "img", str(5 * GiB)]]
    setup += std_writes(5 * GiB, "vmdk", [(0x66, 2 * GiB - 32 * KiB, 64 * KiB), (0x67, 3 * GiB - 64 * KiB, 128 * KiB)])
    C.append(Case("vmdk-splitsparse-shrinkcut", "vmdk", setup, ["--shrink"], 3 * GiB - 512 * KiB,
                  extents="img-s"))
    # vpc (the new size is rounded to CHS; the uninjected run tells it)
    simple("vpc-dynamic-grow", "vpc", "", 64 * MiB, [], 256 * MiB)
    simple("vpc-dynamic-shrink", "vpc", "", 64 * MiB, ["--shrink"], 32 * MiB)
    simple("vpc-fixed-grow", "vpc", "subformat=fixed", 64 * MiB, [], 96 * MiB)
    simple("vpc-fixed-shrink", "vpc", "subformat=fixed", 64 * MiB, ["--shrink"], 32 * MiB)
    # vhdx
    simple("vhdx-dynamic-grow", "vhdx", "", 64 * MiB, [], 256 * MiB)
    simple("vhdx-dynamic-shrink", "vhdx", "", 64 * MiB, ["--shrink"], 32 * MiB)
    simple("vhdx-fixed-grow", "vhdx", "subformat=fixed", 64 * MiB, [], 96 * MiB)
    simple("vhdx-fixed-shrink", "vhdx", "subformat=fixed", 64 * MiB, ["--shrink"], 32 * MiB)
    return C


def qemu_vsize(fmt, img, cwd):
    p = run(["qemu-img", "info", "-f", fmt, "--output=json", img], cwd)
    if p.returncode != 0:
        return None, p.stderr.strip().splitlines()[-1:] or ["?"]
    return json.loads(p.stdout)["virtual-size"], None


def data_extents(path):
    """(offset, length) of the data (non-hole) ranges of a sparse file."""
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        off = 0
        while off < size:
            try:
                d = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            h = os.lseek(fd, d, os.SEEK_HOLE)
            out.append((d, h - d))
            off = h
    finally:
        os.close(fd)
    return out


def vpc_footer_problem(path, sizes):
    """A dynamic vhd has its footer at the end and a copy at offset 0. The
    two are written one after the other, so after a crash between them they
    may differ; what must hold is that a reader trusting either one sees a
    whole disk, the old or the new: each copy's Current Size is one of
    sizes (qemu-img judged the one it reads; the dynamic header and BAT are
    written first, so either size is backed by them)."""
    with open(path, "rb") as f:
        head = f.read(512)
        f.seek(max(0, os.fstat(f.fileno()).st_size - 512))
        tail = f.read(512)
    if head[:8] != b"conectix" or tail[:8] != b"conectix":
        return None  # fixed: no copy (qemu-img info judged the footer)
    for where, b in (("at the end", tail), ("at 0", head)):
        size = int.from_bytes(b[48:56], "big")
        if size not in sizes:
            return "vhd footer %s says %d bytes, neither the old nor the new size" % (where, size)
    return None


def parse_trace(log, files, prefix=None):
    """From an `strace -f -e trace=openat,openat2,WRITE_SYSCALLS` log: {syscall: K
    range} for the write-type syscalls the run issues on a file of the image
    (strace counts an injection's `when` per tracee, over every call of the
    syscall whatever its fd, so the range is the largest per-tracee count of
    all its calls); the first of them; and {syscall: count} of those never
    on the image (the teardown helper's report pipe, stdout), not injected."""
    image_fds = set()
    per = {}  # syscall -> pid -> count
    on_image = set()
    first = None
    for line in open(log):
        parts = line.split(None, 1)
        if len(parts) < 2 or "(" not in parts[1]:
            continue
        pid, rest = parts
        sc, args = rest.split("(", 1)
        if sc in ("openat", "openat2"):
            # instar opens the data file O_PATH with openat2 beneath the
            # image's directory and reopens it through /proc/self/fd/N
            try:
                path = args.split('"', 2)[1]
                fd = int(rest.rsplit("=", 1)[1].split()[0])
            except (IndexError, ValueError):
                continue
            if fd < 0:
                continue
            reopen = path.startswith("/proc/self/fd/") and path[len("/proc/self/fd/"):].isdigit() \
                and int(path[len("/proc/self/fd/"):]) in image_fds
            base = os.path.basename(path)
            if base in files or (prefix and base.startswith(prefix)) or reopen:
                image_fds.add(fd)
            else:
                image_fds.discard(fd)
            continue
        if sc not in WRITE_SYSCALLS:
            continue
        c = per.setdefault(sc, {})
        c[pid] = c.get(pid, 0) + 1
        try:
            fd = int(args.split(",", 1)[0].split(")", 1)[0])
        except ValueError:
            fd = None
        if fd in image_fds:
            on_image.add(sc)
            if first is None:
                first = sc
    counts = {sc: max(c.values()) for sc, c in per.items() if sc in on_image}
    other = {sc: sum(c.values()) for sc, c in per.items() if sc not in on_image}
    return counts, first, other


class Expected:
    """The expected guest-visible bytes of one size, as a sparse raw file."""

    def __init__(self, path):
        self.path = path
        self.size = os.path.getsize(path)
        self.extents = data_extents(path)


CHUNK = 1 * MiB  # small chunks: the buffers stay in the heap, not fresh mmaps
ZERO = bytes(CHUNK)


def second_read(case, exp_by_size, cwd):
    """Read the image with the non-qemu reader; return (size, None) when its
    bytes equal the expected ones for that size, (size, problem) otherwise;
    (None, problem) when it can't open the image."""
    img = os.path.join(cwd, "img")
    chunk = CHUNK
    try:
        if case.fmt == "raw":
            f = open(img, "rb")
            size = os.fstat(f.fileno()).st_size

            def rd(n, off):
                f.seek(off)
                return f.read(n)
            close = f.close
        elif case.fmt == "qcow2":
            import pyqcow
            h = pyqcow.file()
            h.open(img)
            parents = []
            if case.ro:
                p = pyqcow.file()
                p.open(os.path.join(cwd, case.ro[0]))
                h.set_parent(p)
                parents.append(p)
                # libqcow 20201213 answers a read that spans a cluster from
                # the backing file and an allocated one with the backing
                # file's bytes for both: read one cluster at a time
                chunk = 64 * KiB
            size = h.get_media_size()
            rd = h.read_buffer_at_offset

            def close():
                h.close()
                for p in parents:
                    p.close()
        elif case.fmt == "vmdk":
            import pyvmdk
            h = pyvmdk.handle()
            h.open(img)
            h.open_extent_data_files()
            size, rd, close = h.get_media_size(), h.read_buffer_at_offset, h.close
        else:
            import pyvhdi
            h = pyvhdi.file()
            h.open(img)
            size, rd, close = h.get_media_size(), h.read_buffer_at_offset, h.close
    except Exception as e:  # libyal raises IOError with a multi-line trace
        return None, "%s can't open it: %s" % (SECOND_READER[case.fmt], " ".join(str(e).split())[:200])
    try:
        end = size
        exp = exp_by_size.get(size)
        if case.reader_below_min:
            end = min(exp_by_size)
        if exp is None:
            return size, "size %d is neither old nor new" % size
        ef = open(exp.path, "rb")
        try:
            data = {}
            for off, ln in exp.extents:
                data[off] = ln
            # walk the range in chunks; chunks without expected data must be zeros
            bounds = sorted(exp.extents)
            off = 0
            while off < end:
                n = min(chunk, end - off)
                got = rd(n, off)
                if len(got) != n:
                    return size, "short read at %d" % off
                has_data = any(o < off + n and o + ln > off for o, ln in bounds)
                if has_data:
                    ef.seek(off)
                    want = ef.read(n)
                else:
                    want = ZERO[:n] if n < CHUNK else ZERO
                if got != want:
                    i = next(i for i in range(n) if got[i] != want[i])
                    return size, "content differs at offset %d" % (off + i)
                off += n
        finally:
            ef.close()
        return size, None
    except Exception as e:
        return size, "read failed: %s" % " ".join(str(e).split())[:200]
    finally:
        try:
            close()
        except Exception:
            pass


class Runner:
    def __init__(self, args):
        self.instar = os.path.abspath(args.instar)
        self.verbose = args.verbose
        self.reader_ok = args.reader_ok
        self.bad = []
        self.points = 0
        self.notes = []

    def report(self, case, sc, k, action, what):
        line = "BAD %s %s #%d %s: %s" % (case.name, sc, k, action, what)
        print(line, flush=True)
        self.bad.append(line)

    def restore(self, case, d):
        for f in self.stray(case, d):
            os.unlink(os.path.join(d, f))
        for f in case.files:
            sparse_copy(os.path.join(d, "pristine", f), os.path.join(d, f))

    @staticmethod
    def stray(case, d):
        """Extent files in D that the pristine image does not have."""
        if not case.extents:
            return []
        return sorted(f for f in os.listdir(d) if f.startswith(case.extents) and f not in case.files)

    def resize_cmd(self, case):
        return [self.instar, "resize", "--output=json", "-f", case.fmt] + case.args + ["img", str(case.target)]

    def prepare(self, case, d):
        for cmd in case.setup:
            must(cmd, d)
        if case.extents:
            case.files = ["img"] + sorted(f for f in os.listdir(d) if f.startswith(case.extents))
        must(["qemu-img", "convert", "-f", case.fmt, "-O", "raw", "img", "old.raw"], d)
        os.makedirs(os.path.join(d, "pristine"))
        for f in case.files:
            sparse_copy(os.path.join(d, f), os.path.join(d, "pristine", f))
        self.pristine = {f: (sha256_file(os.path.join(d, f)), os.path.getsize(os.path.join(d, f)))
                         for f in case.files + case.ro}
        self.old, _ = qemu_vsize(case.fmt, "img", d)
        # the uninjected run: which write-type syscalls, how many, in what order
        log = os.path.join(d, "trace.log")
        p = run(["strace", "-f", "-qq", "-o", log, "-e", "trace=openat,openat2," + ",".join(WRITE_SYSCALLS)]
                + self.resize_cmd(case), d)
        if p.returncode != 0:
            raise RuntimeError("the uninjected resize failed (%d): %s" % (p.returncode, p.stderr.strip()))
        self.new, _ = qemu_vsize(case.fmt, "img", d)
        self.new_blocks = os.stat(os.path.join(d, "img")).st_blocks
        self.counts, self.first, self.other = parse_trace(log, case.files, case.extents)
        # the expected contents: old data (old size); old data cut or
        # zero-extended to the new size (new size)
        sparse_copy(os.path.join(d, "old.raw"), os.path.join(d, "new.raw"))
        os.truncate(os.path.join(d, "new.raw"), min(self.old, self.new))
        os.truncate(os.path.join(d, "new.raw"), self.new)
        self.exp = {self.old: Expected(os.path.join(d, "old.raw")),
                    self.new: Expected(os.path.join(d, "new.raw"))}
        # the uninjected result itself must be the new image
        probs = self.check_image(case, d, "none", "", 0, p)
        if probs:
            self.report(case, "-", 0, "none", "uninjected run: " + "; ".join(probs))

    def check_image(self, case, d, action, sc, k, p, ignored=False):
        """Everything that must hold after one run; returns the problems.
        IGNORED: the injected failure hit a call whose failure instar
        ignores on purpose (see FIRST_BLOCK): exit 0 is right then."""
        probs = []
        v, err = qemu_vsize(case.fmt, "img", d)
        if v is None:
            return ["qemu-img info can't open the image: %s" % err[0]]
        state = "old" if v == self.old else "new" if v == self.new else None
        if state is None:
            probs.append("virtual size %d is neither old %d nor new %d" % (v, self.old, self.new))
        if case.fmt in QEMU_CHECKS:
            c = run(["qemu-img", "check", "-f", case.fmt, "img"], d)
            if c.returncode not in (0, 3):
                msg = [l.strip() for l in (c.stdout + c.stderr).splitlines() if l.strip()]
                probs.append("qemu-img check exit %d: %s" % (c.returncode, "; ".join(msg[:3])))
        if state:
            exp = self.exp[v]
            c = run(["qemu-img", "compare", "-f", case.fmt, "-F", "raw", "img", exp.path], d)
            if c.returncode != 0:
                probs.append("size %s (%d) but qemu-img compare with the %s data: %s" % (
                    state, v, state, (c.stdout + c.stderr).strip().splitlines()[0] if (c.stdout + c.stderr).strip() else "exit %d" % c.returncode))
        if case.reader and self.reader_ok:
            rs, rp = second_read(case, self.exp, d)
            if rp:
                probs.append("%s: %s" % (SECOND_READER[case.fmt], rp))
            # vpc: libvhdi reads the footer at the end, qemu the copy at 0
            # (they differ after a crash between the two footer writes)
            if rs is not None and rs != v and case.fmt != "vpc":
                probs.append("%s reads size %d, qemu %d" % (SECOND_READER[case.fmt], rs, v))
        if case.fmt == "vpc":
            fp = vpc_footer_problem(os.path.join(d, "img"), (self.old, self.new))
            if fp:
                probs.append(fp)
        if state == "new" and any(a.startswith("--preallocation=") for a in case.args):
            # the new image is a preallocated one: as much allocated as after
            # the uninjected run (1 MiB of slack for the fs's own blocks)
            blocks = os.stat(os.path.join(d, "img")).st_blocks
            if blocks < self.new_blocks - 2048:
                probs.append("new size but the preallocation is unfinished (%d of %d bytes allocated)"
                             % (blocks * 512, self.new_blocks * 512))
        for f in case.ro:
            if sha256_file(os.path.join(d, f)) != self.pristine[f][0]:
                probs.append("read-only file %s was modified" % f)
        # (a shrink of a split vmdk removes the extents it drops)
        lengths = {f: os.path.getsize(os.path.join(d, f)) if os.path.exists(os.path.join(d, f)) else -1
                   for f in case.files}
        if action != "none" and sc == self.first and k == 1:
            for f in case.files:
                h, ln = self.pristine[f]
                if lengths[f] != ln:
                    probs.append("fault before the first write, but %s length %d, was %d" % (f, lengths[f], ln))
                elif sha256_file(os.path.join(d, f)) != h:
                    probs.append("fault before the first write, but %s is not byte-identical" % f)
        rc = p.returncode
        if action == "none" and rc != 0:
            probs.append("exit %d: %s" % (rc, p.stderr.strip()[:200]))
        if action in ("eio", "enospc") and ignored and rc == 0:
            if state != "new":
                probs.append("exit 0 after an ignored failure, but the image is %s" % state)
        elif action in ("eio", "enospc"):
            if rc != 1:
                probs.append("exit %d, want 1 (image %s)" % (rc, state))
            doc = None
            try:
                lines = p.stdout.splitlines()
                if len(lines) != 1:
                    raise ValueError("%d lines" % len(lines))
                doc = json.loads(lines[0])
            except ValueError as e:
                probs.append("--output=json: not one JSON object on stdout (%s)" % e)
            if doc is not None:
                fsa = doc.get("file_size_after")
                if fsa != lengths["img"]:
                    probs.append("JSON file_size_after %s, real file length %d" % (fsa, lengths["img"]))
                msg = (doc.get("error") or {}).get("message", "") if rc != 0 else ""
                if rc != 0 and STRERROR[action] not in msg:
                    probs.append("message does not name the errno: %r" % msg[:160])
            if rc == 1 and state == "old":
                for f in case.files:
                    if lengths[f] != self.pristine[f][1]:
                        probs.append("failed with the old image, but %s length %d, was %d (not put back)"
                                     % (f, lengths[f], self.pristine[f][1]))
                if self.stray(case, d):
                    probs.append("failed with the old image, but new extent files stay: %s"
                                 % " ".join(self.stray(case, d)))
        elif action == "none" or rc == 0:
            if rc == 0 and state != "new":
                probs.append("exit 0 but the image is %s" % state)
        if action == "none":
            try:
                doc = json.loads(p.stdout)
                if doc.get("file_size_after") != lengths["img"]:
                    probs.append("JSON file_size_after %s, real file length %d"
                                 % (doc.get("file_size_after"), lengths["img"]))
            except ValueError:
                probs.append("--output=json: no JSON on stdout")
        return probs

    def inject(self, case, d, sc, k, action):
        self.restore(case, d)
        log = os.path.join(d, "inject.log")
        cmd = ["strace", "-f", "-o", log, "-e", "trace=" + sc,
               "-e", "inject=%s:%s:when=%d" % (sc, ACTIONS[action], k)] + self.resize_cmd(case)
        p = run(cmd, d, timeout=300)
        self.points += 1
        text = open(log).read()
        fired = "(INJECTED)" in text if action != "kill" else "killed by SIGKILL" in text
        probs = []
        if not fired:
            probs.append("the injection did not fire (the run issued fewer %s calls than the uninjected one)" % sc)
        ignored = action != "kill" and any("(INJECTED)" in l and FIRST_BLOCK.search(l)
                                           for l in text.splitlines())
        probs += self.check_image(case, d, action, sc, k, p, ignored)
        if probs:
            self.report(case, sc, k, action, "; ".join(probs))
        if self.verbose:
            print("  %s %s #%d %s: rc %d %s" % (case.name, sc, k, action, p.returncode,
                                               "ok" if not probs else "BAD"), flush=True)
        return not probs

    def run_case(self, case, sample, actions):
        d = tempfile.mkdtemp(prefix="fault-%s-" % case.name, dir=self.tmp)
        t0 = time.monotonic()
        try:
            self.prepare(case, d)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            self.report(case, "-", 0, "setup", str(e)[:300])
            shutil.rmtree(d, ignore_errors=True)
            return
        nbad = len(self.bad)
        n = 0
        for sc in sorted(self.counts):
            cnt = self.counts[sc]
            ks = list(range(1, cnt + 1))
            if sample > 1:
                # every SAMPLE-th index, rotated per syscall by its name so
                # different syscalls keep different indices; plus the first
                # and the last
                rot = sum(map(ord, sc + case.name)) % sample
                ks = sorted({1, cnt} | {k for k in ks if (k - 1) % sample == rot})
            for k in ks:
                for a in actions:
                    self.inject(case, d, sc, k, a)
                    n += 1
        print("%s %s: %s%s; %d points, %s (%.1fs)" % (
            "ok  " if len(self.bad) == nbad else "FAIL", case.name,
            ", ".join("%s=%d" % (s, c) for s, c in sorted(self.counts.items())),
            " (not on the image: %s)" % ", ".join("%s=%d" % i for i in sorted(self.other.items()))
            if self.other else "", n,
            "old %d new %d" % (self.old, self.new), time.monotonic() - t0), flush=True)
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--instar", required=True)
    ap.add_argument("--sample", type=int, default=1)
    ap.add_argument("--case", action="append", default=[], help="glob over case names")
    ap.add_argument("--actions", default="kill,eio,enospc")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    ci = os.environ.get("CI") == "true"
    missing = ensure_second_reader_python()
    cases = make_cases()
    if args.case:
        cases = [c for c in cases if any(fnmatch.fnmatch(c.name, g) for g in args.case)]
    elif args.sample > 1:
        cases = [c for c in cases if not c.slow]
    if args.list:
        for c in cases:
            print(c.name, c.fmt, " ".join(c.args), c.target)
        return 0
    for tool in ("strace", "qemu-img", "qemu-io"):
        if not shutil.which(tool):
            if ci:
                print("%s not found under CI" % tool)
                return 1
            print("skip: %s not found" % tool)
            return 77
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        # tests/kvm_gate.sh's rule: no /dev/kvm at all is a machine where the
        # guest cannot boot (skip, saying so); an unusable one fails under CI.
        if ci and os.path.exists("/dev/kvm"):
            print("/dev/kvm exists but cannot be opened read-write (CI is set)")
            return 1
        print("skip: this machine has no /dev/kvm (its kernel offers no KVM device), "
              "so the guest cannot boot here" if not os.path.exists("/dev/kvm")
              else "skip: /dev/kvm exists but cannot be opened read-write")
        return 77
    args.reader_ok = not missing
    if missing:
        if ci:
            print("second reader missing under CI: %s (scripts/deps.sh installs python3-libqcow, "
                  "python3-libvmdk, python3-libvhdi)" % ", ".join(missing))
            return 1
        print("warning: second reader missing (%s); qemu-img checks only" % ", ".join(missing))
    actions = args.actions.split(",")
    for a in actions:
        if a not in ACTIONS:
            ap.error("unknown action %s" % a)
    r = Runner(args)
    t0 = time.monotonic()
    # meson's timeout and ^C end the run through the finally below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    r.tmp = tempfile.mkdtemp(prefix="instar-faults-")
    try:
        for c in cases:
            if not c.reader and r.reader_ok and args.verbose:
                print("  %s: no second reader (%s)" % (c.name, c.reader_why))
            r.run_case(c, args.sample, actions)
    finally:
        shutil.rmtree(r.tmp, ignore_errors=True)
    print("faults: %d cases, %d injected runs, %d bad%s (%.0fs)" % (
        len(cases), r.points, len(r.bad), "" if args.sample == 1 else ", sample 1/%d" % args.sample,
        time.monotonic() - t0))
    return 1 if r.bad else 0


if __name__ == "__main__":
    sys.exit(main())
