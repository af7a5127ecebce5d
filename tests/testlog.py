#!/usr/bin/env python3
"""tests/testlog.py — reads meson's test logs (meson-logs/*.json), one rule for
why a test was skipped: the last line of its output that starts "skip: "
(tests/kvm_gate.sh writes it).

  testlog.py summary LOG...         every test counted once per log: passed,
                                    failed, skipped (a skip without a "skip: "
                                    line counts as failed); ends with the line
                                    "N passed, N failed, N skipped"; exit 1 if
                                    anything failed, a log is missing or no test
                                    passed (.ci/run)
  testlog.py kvm-skipped LOG [SUITE...]
                                    the names of the tests skipped, wholly or in
                                    part, for want of /dev/kvm, one per line
                                    (only those SUITEs if named): what `make
                                    check-vm` runs again in tests/vm/run.sh's VM
"""
import json
import sys


def tests(path):
    for line in open(path):
        if line.strip():
            yield json.loads(line)


def skip_reason(t):
    """The test's "skip: WHY" line, or None."""
    why = [l for l in (t.get("stdout") or "").splitlines() if l.lower().startswith("skip: ")]
    return why[-1] if why else None


def suite_of(t):
    # meson names a test "PROJECT:SUITE / NAME"
    return t["name"].split(" / ")[0].split(":")[-1]


def summary(paths):
    passed = failed = skipped = 0
    skips = []
    for path in paths:
        try:
            log = list(tests(path))
        except OSError as e:
            print("FAIL: cannot read", path, e)
            failed += 1
            continue
        for t in log:
            r = t.get("result")
            if r in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif r == "SKIP":
                why = skip_reason(t)
                if why:
                    skipped += 1
                    skips.append("%s: %s" % (t.get("name"), why))
                else:
                    failed += 1
                    print("FAIL (skipped without a 'skip: WHY' line):", t.get("name"))
            else:
                failed += 1
    for s in skips:
        print("skipped", s)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or passed == 0 else 0


def kvm_skipped(path, suites):
    names = []
    for t in tests(path):
        if t.get("result") != "SKIP" or (suites and suite_of(t) not in suites):
            continue
        why = skip_reason(t)
        if why and "/dev/kvm" in why and t["name"] not in names:
            names.append(t["name"])
    # nothing at all when none was skipped: an empty line would make
    # `make check-vm` run every test in the VM
    if names:
        print("\n".join(names))
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "summary":
        sys.exit(summary(sys.argv[2:]))
    if len(sys.argv) >= 3 and sys.argv[1] == "kvm-skipped":
        sys.exit(kvm_skipped(sys.argv[2], set(sys.argv[3:])))
    sys.exit(__doc__)
