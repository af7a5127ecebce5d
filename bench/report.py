#!/usr/bin/env python3
"""bench/report.py OUTDIR BENCHMARKS.md — turn bench/run.sh's results into
BENCHMARKS.md: per case the median and min/max of each tool, the
instar/qemu-img median ratio, peak RSS, and instar's phase breakdown."""
import datetime
import glob
import json
import os
import platform
import subprocess
import sys

CASES = [
    ("qcow2-grow-header", "qcow2 grow +1G, header only (L1 already large enough)"),
    ("qcow2-grow-1g-2g", "qcow2 grow 1G → 2G (L1 relocation)"),
    ("qcow2-grow-64t", "qcow2 grow 1G → 64T (1 MiB L1 written)"),
    ("qcow2-shrink-2g-1g", "qcow2 shrink 2G → 1G with 64 MiB of data"),
    ("raw-grow-falloc", "raw grow 1G → 2G, --preallocation=falloc"),
]


def load(outdir, name):
    path = os.path.join(outdir, name + ".json")
    if not os.path.exists(path):
        return None
    res = {}
    for r in json.load(open(path))["results"]:
        times = [t * 1000 for t in r["times"]]
        res[r["command"]] = {"median": r["median"] * 1000, "min": min(times), "max": max(times),
                             "runs": len(times)}
    return res


def rss(outdir, name, tool):
    path = os.path.join(outdir, "%s.%s.rss" % (name, tool))
    try:
        return int(open(path).read().split()[-1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None


def fmt_ms(r):
    if not r:
        return "—"
    return "%.2f ms (%.2f–%.2f, n=%d)" % (r["median"], r["min"], r["max"], r["runs"])


def tool_version(cmd):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "?"


def main():
    outdir, dest = sys.argv[1], sys.argv[2]
    lines = ["# Benchmarks", "",
             "Written by `bench/run.sh` (run `make bench`); every number below comes from one run of",
             "that script, with instar and qemu-img measured side by side by hyperfine on fresh copies",
             "of the same image (`--prepare` recreates it before each run). Times are wall-clock",
             "medians with min–max; RSS is the peak resident set size of one run (`/usr/bin/time`).",
             "",
             "- date: %s" % datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
             "- machine: %s, %d CPUs, kernel %s" % (platform.machine(), os.cpu_count(), platform.release()),
             "- qemu-img: %s" % tool_version(["qemu-img", "--version"]),
             "- hyperfine: %s" % tool_version(["hyperfine", "--version"]),
             "", "## Side by side", "",
             "| case | instar | qemu-img | ratio | peak RSS instar | peak RSS qemu-img |",
             "|---|---|---|---|---|---|"]
    for name, title in CASES:
        r = load(outdir, name)
        if not r:
            continue
        a, b = r.get("instar"), r.get("qemu-img")
        ratio = "%.2f" % (a["median"] / b["median"]) if a and b else "—"
        ra, rb = rss(outdir, name, "instar"), rss(outdir, name, "qemu-img")
        lines.append("| %s | %s | %s | **%s** | %s | %s |" % (
            title, fmt_ms(a), fmt_ms(b), ratio,
            "%.1f MiB" % ra if ra else "—", "%.1f MiB" % rb if rb else "—"))
    lines += ["", "## Scaling with virtual size", "",
              "The same grow (+1G) and shrink on empty qcow2 images of growing virtual size.", "",
              "| virtual size | grow instar | grow qemu-img | shrink instar | shrink qemu-img |",
              "|---|---|---|---|---|"]
    for sz in ("1G", "1T", "64T"):
        g = load(outdir, "scale-grow-" + sz) or {}
        s = load(outdir, "scale-shrink-" + sz) or {}
        lines.append("| %s | %s | %s | %s | %s |" % (
            sz, fmt_ms(g.get("instar")), fmt_ms(g.get("qemu-img")),
            fmt_ms(s.get("instar")), fmt_ms(s.get("qemu-img")) if s.get("qemu-img") else
            "not run (≈300 s per run; `BENCH_SLOW=1 make bench`)"))
    lines += ["", "## Where instar's time goes", "",
              "`INSTAR_TIMING=1` makes instar print its phases (milliseconds since exec) to stderr;",
              "one run per case:", ""]
    for path in sorted(glob.glob(os.path.join(outdir, "*.timing"))):
        name = os.path.basename(path)[:-len(".timing")]
        phases = [l.split()[1:] for l in open(path) if l.startswith("instar-timing:")]
        if phases:
            lines.append("- %s: %s" % (name, ", ".join("%s %s ms" % (p[0], p[1]) for p in phases if len(p) >= 2)))
    lines.append("")
    open(dest, "w").write("\n".join(lines) + "\n")
    print("wrote", dest)


if __name__ == "__main__":
    main()
