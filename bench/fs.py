#!/usr/bin/env python3
"""bench/fs.py BUILD OUTDIR — instarfs under a batch (issue 17), measured
with the real instar on real qcow2 images, on one mount at a time.

1. `echo +1G > MNT/t.qcow2/size` against `instar resize -q SRC/t.qcow2 +1G`,
   side by side in one hyperfine run (both through `sh -c`, so both pay one
   shell), on a fresh synced copy of the same image before every run:
   OUTDIR/fs-echo.json.
2. A batch: BATCH (96) images, one writer each (`+1G` written to its `size`
   file by a thread, all released together), for max_jobs 1, 2 and 4. The
   batch's wall time is compared with BATCH x single / max_jobs, single being
   the median of case 1's echo. Meanwhile one thread stats, lists and reads the
   files of an idle image in a loop and records the latency of every
   operation. Every write must succeed and every image must read 2G after.
   OUTDIR/fs-batch.json.

bench/report.py turns both into BENCHMARKS.md's instarfs section.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

BATCH = int(os.environ.get("BENCH_FS_BATCH", "96"))
RUNS = int(os.environ.get("BENCH_RUNS", "30"))
JOBS = [int(j) for j in os.environ.get("BENCH_FS_JOBS", "1,2,4").split(",")]
G = 1 << 30


def sh(*cmd, **kw):
    subprocess.run(cmd, check=True, **kw)


class Mount:
    """instarfs in the foreground on MNT, with max_jobs set by the ini."""

    def __init__(self, build, tmp, jobs):
        self.src, self.mnt = os.path.join(tmp, "src"), os.path.join(tmp, "mnt")
        ini = os.path.join(tmp, "instarfs.ini")
        with open(ini, "w") as f:
            f.write("[instarfs]\ninstar = %s\nguest_dir = %s\nmax_jobs = %d\ntimeout = 600\n"
                    "log_level = warning\n" % (os.path.join(build, "vmm", "instar"),
                                                os.path.join(build, "guest"), jobs))
        self.log = open(os.path.join(tmp, "instarfs.log"), "a")
        self.proc = subprocess.Popen(
            [os.path.join(build, "fs", "instarfs"), "-f", "-o", "config=" + ini, self.src, self.mnt],
            stdout=self.log, stderr=self.log)
        for _ in range(2400):
            if " %s fuse" % self.mnt in open("/proc/mounts").read():
                return
            if self.proc.poll() is not None:
                sys.exit("bench/fs.py: instarfs exited before mounting (see %s)" % self.log.name)
            time.sleep(0.05)
        sys.exit("bench/fs.py: instarfs did not mount")

    def close(self):
        subprocess.run(["fusermount3", "-u", self.mnt], check=False)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def fresh(src, names, base):
    """Fresh copies of base under names, written back to disk."""
    for n in names:
        shutil.copyfile(base, os.path.join(src, n))
    sh("sync", "-f", src)


def echo_vs_cli(build, tmp, out):
    src = os.path.join(tmp, "src")
    base = os.path.join(tmp, "base.qcow2")
    prep = os.path.join(tmp, "prep.sh")
    with open(prep, "w") as f:
        f.write("cp %s %s/t.qcow2 && sync %s/t.qcow2\n" % (base, src, src))
    m = Mount(build, tmp, 1)
    try:
        instar = os.path.join(build, "vmm", "instar")
        sh("hyperfine", "-N", "-w", "2", "-r", str(RUNS), "--export-json", os.path.join(out, "fs-echo.json"),
           "--prepare", "bash " + prep,
           "-n", "echo > size", "sh -c 'echo +1G > %s/t.qcow2/size'" % m.mnt,
           "-n", "instar resize", "sh -c '%s resize -q %s/t.qcow2 +1G'" % (instar, src),
           stdout=subprocess.DEVNULL)
    finally:
        m.close()
    res = json.load(open(os.path.join(out, "fs-echo.json")))["results"]
    return {r["command"]: r["median"] for r in res}["echo > size"]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def batch(build, tmp, jobs, single):
    src = os.path.join(tmp, "src")
    names = ["b%03d.qcow2" % i for i in range(BATCH)]
    fresh(src, names + ["idle.qcow2"], os.path.join(tmp, "base.qcow2"))
    m = Mount(build, tmp, jobs)
    lat, errors = [], []
    stop = threading.Event()
    go = threading.Barrier(BATCH + 1)

    def writer(n):
        go.wait()
        try:
            fd = os.open(os.path.join(m.mnt, n, "size"), os.O_WRONLY)
            try:
                os.write(fd, b"+1G\n")
            finally:
                os.close(fd)
        except OSError as e:
            errors.append("%s: %s" % (n, e))

    def monitor():
        idle = os.path.join(m.mnt, "idle.qcow2")
        ops = [lambda: os.listdir(m.mnt), lambda: os.listdir(idle),
               lambda: os.stat(os.path.join(idle, "size")),
               lambda: open(os.path.join(idle, "size")).read(),
               lambda: open(os.path.join(idle, "result.json")).read(),
               lambda: open(os.path.join(idle, "format")).read()]
        while not stop.is_set():
            for op in ops:
                t0 = time.perf_counter()
                op()
                lat.append(time.perf_counter() - t0)

    try:
        ws = [threading.Thread(target=writer, args=(n,)) for n in names]
        for w in ws:
            w.start()
        mon = threading.Thread(target=monitor)
        mon.start()
        t0 = time.perf_counter()
        go.wait()
        for w in ws:
            w.join()
        wall = time.perf_counter() - t0
        stop.set()
        mon.join()
        sizes = {n: open(os.path.join(m.mnt, n, "size")).read().strip() for n in names}
    finally:
        stop.set()
        m.close()
    bad = [n for n, s in sizes.items() if s != str(2 * G)]
    if errors or bad:
        sys.exit("bench/fs.py: batch with max_jobs %d: %d write errors (%s), %d images not 2G"
                 % (jobs, len(errors), "; ".join(errors[:3]), len(bad)))
    ideal = BATCH * single / jobs
    return {"jobs": jobs, "writers": BATCH, "wall_s": wall, "single_s": single, "ideal_s": ideal,
            "ratio": wall / ideal, "ops": len(lat), "p50_ms": pct(lat, 50) * 1e3,
            "p99_ms": pct(lat, 99) * 1e3, "max_ms": max(lat) * 1e3}


def main():
    build, out = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="instar-bench-fs.")
    try:
        os.makedirs(os.path.join(tmp, "src"))
        os.makedirs(os.path.join(tmp, "mnt"))
        sh("qemu-img", "create", "-q", "-f", "qcow2", os.path.join(tmp, "base.qcow2"), "1G")
        single = echo_vs_cli(build, tmp, out)
        print("bench: fs-echo done", file=sys.stderr)
        rows = []
        for j in JOBS:
            rows.append(batch(build, tmp, j, single))
            print("bench: fs-batch max_jobs=%d done" % j, file=sys.stderr)
        json.dump(rows, open(os.path.join(out, "fs-batch.json"), "w"), indent=1)
    finally:
        if " %s fuse" % os.path.join(tmp, "mnt") not in open("/proc/mounts").read():
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
