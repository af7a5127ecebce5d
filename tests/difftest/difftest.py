#!/usr/bin/env python3
"""tests/difftest/difftest.py — differential random testing of instar.

Creates random images (format, options, data written through qemu-io),
applies random resize sequences with instar and — for raw and qcow2 — with
qemu-img on a copy, then compares: exit codes and stdout of both tools,
`qemu-img check`, the virtual size from `qemu-img info`, and the contents of
instar's image against a model of the expected bytes (data written below the
smallest size seen since, zeros elsewhere) with `qemu-img compare`. qemu-img's
copy is compared against the model too, except where qemu 7.2's known
stale-tail quirk applies (qcow2 shrink inside a cluster, docs/qemu.md §3.3).

usage: difftest.py --instar PATH [--seed N] [--cases N] [--formats raw,qcow2,...]
Exit 0 when every case agrees; prints the failing case's seed otherwise.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

MiB = 1 << 20
GiB = 1 << 30

QEMU_FMT = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vpc", "vhdx": "vhdx"}


def run(cmd, check=False):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr))
    return p


def info(path, fmt):
    p = run(["qemu-img", "info", "-f", QEMU_FMT[fmt], "--output=json", path], check=True)
    return json.loads(p.stdout)


class Model:
    """Expected guest-visible bytes: a list of (off, len, byte) writes."""

    def __init__(self, size):
        self.size = size
        self.writes = []

    def write(self, off, length, byte):
        self.writes.append((off, length, byte))

    def resize(self, new):
        if new < self.size:
            kept = []
            for off, length, byte in self.writes:
                if off >= new:
                    continue
                kept.append((off, min(length, new - off), byte))
            self.writes = kept
        self.size = new

    def materialize(self, path):
        with open(path, "wb") as f:
            f.truncate(self.size)
            for off, length, byte in self.writes:
                f.seek(off)
                f.write(bytes([byte]) * length)


def create(rng, fmt, path):
    if fmt == "raw":
        size = rng.choice([0, 1000, 4096, MiB, 3 * MiB + 512, 64 * MiB, GiB])
        run(["qemu-img", "create", "-q", "-f", "raw", path, str(size)], check=True)
        return size, "raw"
    if fmt == "qcow2":
        cs = rng.choice([512, 4096, 65536, 65536, 2 * MiB])
        opts = ["cluster_size=%d" % cs]
        compat = rng.choice(["0.10", "1.1", "1.1"])
        opts.append("compat=" + compat)
        # qemu allows other refcount widths only from compat=1.1 on
        opts.append("refcount_bits=%d" % (rng.choice([1, 2, 8, 16, 16, 64]) if compat == "1.1" else 16))
        if compat == "1.1" and cs >= 16384 and rng.random() < 0.3:
            opts.append("extended_l2=on")
        if compat == "1.1" and rng.random() < 0.2:
            opts.append("lazy_refcounts=on")
        if compat == "1.1" and rng.random() < 0.3:
            opts.append("compression_type=zstd")
        size = rng.choice([MiB, 64 * MiB, 1 * GiB, 3 * GiB]) // 512 * 512
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", ",".join(opts), path, str(size)], check=True)
        return size, ",".join(opts)
    if fmt == "vmdk":
        # (twoGbMaxExtentSparse: a descriptor and PATH-s001.vmdk, ... beside
        # it, in the case's own directory)
        sub = rng.choice(["monolithicSparse", "monolithicSparse", "twoGbMaxExtentSparse"])
        size = rng.choice([64 * MiB, 1 * GiB, 5 * GiB])
        run(["qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=" + sub, path, str(size)],
            check=True)
        return size, sub
    if fmt == "vhd":
        sub = rng.choice(["dynamic", "fixed"])
        size = rng.choice([8 * MiB, 64 * MiB]) if sub == "fixed" else rng.choice([64 * MiB, GiB])
        run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=" + sub, path, str(size)], check=True)
        return info(path, fmt)["virtual-size"], sub
    if fmt == "vhdx":
        size = rng.choice([64 * MiB, GiB])
        run(["qemu-img", "create", "-q", "-f", "vhdx", path, str(size)], check=True)
        return size, "dynamic"
    raise ValueError(fmt)


def random_writes(rng, fmt, paths, model):
    if model.size == 0:
        return
    cmds = []
    for _ in range(rng.randint(1, 4)):
        length = rng.choice([512, 4096, 65536, 3 * 512])
        length = min(length, model.size)
        off = rng.randrange(0, model.size - length + 1) // 512 * 512
        byte = rng.randrange(1, 256)
        cmds += ["-c", "write -P %d %d %d" % (byte, off, length)]
        model.write(off, length, byte)
    for p in paths:
        run(["qemu-io", "-f", QEMU_FMT[fmt]] + cmds + [p], check=True)


def pick_size(rng, fmt, cur):
    step = rng.choice([512, 65536, MiB, 7 * MiB, 100 * MiB, GiB])
    if rng.random() < 0.5 or cur <= step:
        new = cur + step
    else:
        new = cur - step
    if fmt == "qcow2" and rng.random() < 0.4:
        new += rng.randrange(1, 128) * 512  # cut inside a cluster
    return max(new, 512)


def check_image(path, fmt):
    if fmt in ("qcow2", "vmdk", "vhdx"):
        p = run(["qemu-img", "check", "-f", QEMU_FMT[fmt], path])
        if p.returncode not in (0, 3):  # 3 = leaks only
            return "qemu-img check rc=%d: %s%s" % (p.returncode, p.stdout, p.stderr)
    return None


def one_case(args, seed, tmp):
    rng = random.Random(seed)
    fmt = rng.choice(args.formats)
    a = os.path.join(tmp, "a." + fmt)
    b = os.path.join(tmp, "b." + fmt)
    size, desc = create(rng, fmt, a)
    model = Model(size)
    both = fmt in ("raw", "qcow2")
    if both:
        shutil.copyfile(a, b)
    random_writes(rng, fmt, [a, b] if both else [a], model)
    log = ["seed=%d fmt=%s %s size=%d" % (seed, fmt, desc, size)]
    # qcow2 variants with the same contents: every cluster compressed, and an
    # internal snapshot sharing the clusters with the active image
    if fmt == "qcow2" and rng.random() < 0.25:
        run(["qemu-img", "convert", "-c", "-O", "qcow2", "-o", desc, a, a + ".c"], check=True)
        os.replace(a + ".c", a)
        shutil.copyfile(a, b)
        log[0] += " compressed"
    # (narrow refcounts may not count one more reference: qemu refuses, -EINVAL)
    if fmt == "qcow2" and "compat=1.1" in desc and rng.random() < 0.25 and \
            run(["qemu-img", "snapshot", "-c", "s1", a]).returncode == 0:
        run(["qemu-img", "snapshot", "-c", "s1", b], check=True)
        log[0] += " snapshot"
    quirk = False
    for _ in range(rng.randint(1, 4)):
        new = pick_size(rng, fmt, model.size)
        shrink = new < model.size
        argv = ["resize", "-f", QEMU_FMT[fmt]]
        if shrink:
            argv.append("--shrink")
        if not shrink and fmt in ("raw", "qcow2") and rng.random() < 0.2:
            argv.append("--preallocation=" + rng.choice(
                ["falloc", "full"] if fmt == "raw" else ["metadata", "falloc", "full"]))
        pa = run([args.instar] + argv + [a, str(new)])
        log.append("  %s -> instar rc=%d %s" % (" ".join(argv[1:] + [str(new)]), pa.returncode,
                                                 pa.stderr.strip()))
        if both:
            pb = run(["qemu-img"] + argv + [b, str(new)])
            if (pa.returncode, pa.stdout) != (pb.returncode, pb.stdout):
                return log + ["  MISMATCH qemu-img rc=%d out=%r err=%r" % (pb.returncode, pb.stdout, pb.stderr)]
            exp_err = pb.stderr.replace("qemu-img:", "instar:")
            if pa.stderr != exp_err:
                return log + ["  MISMATCH stderr: instar %r qemu-img %r" % (pa.stderr, pb.stderr)]
        elif pa.returncode != 0:
            return log + ["  FAIL instar refused a resize it should do"]
        if pa.returncode != 0:
            continue
        real = info(a, fmt)["virtual-size"]
        if fmt == "raw":
            # qemu reports a raw file's size rounded up to 512; the file is exact
            # (except qemu's 0-byte quirk: growing an empty file allocates 512 bytes)
            got = os.path.getsize(a)
            want = max(new, 512) if model.size == 0 and 0 < new < 4096 else new
            if got != want:
                return log + ["  FAIL raw file size %d != %d" % (got, want)]
            new = got
        elif fmt == "vhd":
            if real < new:
                return log + ["  FAIL vhd size %d < requested %d" % (real, new)]
            new = real
        elif real != new:
            return log + ["  FAIL virtual size %d != %d" % (real, new)]
        # qemu 7.2 quirks that make its copy differ from the model (instar's
        # must not): a shrink inside a cluster keeps the cut part's old bytes
        # (docs/qemu.md §3.3), and --preallocation=metadata may map the new range
        # onto freed clusters that still hold old table bytes.
        cs = int(desc.split("cluster_size=")[1].split(",")[0]) if fmt == "qcow2" else 1
        if shrink and fmt == "qcow2" and new % cs != 0:
            quirk = True
        if fmt == "qcow2" and "--preallocation=metadata" in argv:
            quirk = True
        # and with extended L2, falloc/full over a compressed cluster at an
        # old end inside a cluster loses that cluster's data (seen: 1M image,
        # 2M clusters, convert -c, --preallocation=falloc 1G)
        if fmt == "qcow2" and "extended_l2=on" in desc and " compressed" in log[0] and \
                any(x in argv for x in ("--preallocation=falloc", "--preallocation=full")):
            quirk = True
        model.resize(new)
        for p in ([a, b] if both else [a]):
            err = check_image(p, fmt)
            if err:
                return log + ["  FAIL %s: %s" % (p, err)]
        if both and info(b, fmt)["virtual-size"] != real:
            return log + ["  MISMATCH virtual size"]
        exp = os.path.join(tmp, "expected.raw")
        model.materialize(exp)
        c = run(["qemu-img", "compare", "-f", "raw", "-F", QEMU_FMT[fmt], exp, a])
        if c.returncode != 0:
            return log + ["  FAIL content: %s" % c.stdout.strip()]
        if both and not quirk:
            c = run(["qemu-img", "compare", "-f", "raw", "-F", QEMU_FMT[fmt], exp, b])
            if c.returncode != 0:
                return log + ["  FAIL qemu-img's copy differs from the model: %s" % c.stdout.strip()]
        if rng.random() < 0.5:
            random_writes(rng, fmt, [a, b] if both else [a], model)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--instar", required=True, type=os.path.abspath)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=50)
    ap.add_argument("--formats", default="raw,qcow2")
    args = ap.parse_args()
    args.formats = args.formats.split(",")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK) and any(f != "raw" for f in args.formats):
        # tests/kvm_gate.sh's rule (see there)
        if os.environ.get("CI") and os.path.exists("/dev/kvm"):
            print("/dev/kvm exists but cannot be opened read-write (CI is set)")
            return 1
        print("skip: this machine has no /dev/kvm (its kernel offers no KVM device), "
              "so the guest cannot boot here" if not os.path.exists("/dev/kvm")
              else "skip: /dev/kvm exists but cannot be opened read-write")
        return 77
    failed = 0
    for i in range(args.cases):
        seed = args.seed * 1000003 + i
        with tempfile.TemporaryDirectory() as tmp:
            bad = one_case(args, seed, tmp)
        if bad:
            failed += 1
            print("\n".join(bad))
    print("difftest: %d cases, %d failed (seed %d, formats %s)" %
          (args.cases, failed, args.seed, ",".join(args.formats)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
