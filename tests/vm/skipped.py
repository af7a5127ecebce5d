#!/usr/bin/env python3
"""tests/vm/skipped.py TESTLOG.json [SUITE...]: the names of the tests that
meson's log says were skipped, wholly or in part, because this machine has no
/dev/kvm (their "skip: " line, tests/kvm_gate.sh), one per line: what `make
check-vm` runs again inside tests/vm/run.sh's VM. With SUITE names, only the
tests of those suites (meson's "PROJECT:SUITE / NAME")."""
import json
import sys

suites = set(sys.argv[2:])
names = []
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    t = json.loads(line)
    if t.get("result") != "SKIP":
        continue
    suite = t["name"].split(" / ")[0].split(":")[-1]
    if suites and suite not in suites:
        continue
    why = [l for l in (t.get("stdout") or "").splitlines() if l.lower().startswith("skip: ")]
    if why and "/dev/kvm" in why[-1] and t["name"] not in names:
        names.append(t["name"])
print("\n".join(names))
