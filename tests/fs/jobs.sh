#!/bin/bash
# tests/fs/jobs.sh — the job runner with instar's test double: one resize per
# image (EBUSY), the global job limit (waiting, not failing), children that
# crash, are killed, print garbage or hang (watchdog), poll wake-ups, and
# SIGUSR1 reloads.
# Verdicts never depend on how long something took (the machine may be slow):
# the fake holds a resize for as long as the file "hold" exists, and the test
# waits for events (a file appears, a process ends). Each wait has a generous
# bound that only turns a hang into a failure.
. "$TESTS_FS/lib.sh"

M=$((1024 * 1024))
write_ini "instar = $FAKE_INSTAR" "timeout = 30" "max_jobs = 1"
for n in a b c; do mkraw $n.raw $M; done
start_fs

wait_pid() { # waits for the fake to be running a resize
	wait_for "the fake instar did not start" test -s "$FAKE/pid"
}
wr_bounded() { # wr_bounded IMAGE DATA: wr that gives up (prints nothing) after HANG
	timeout "$HANG" python3 "$TESTS_FS/ifs-write" "$MNT/$1/size" "$2"
}
start_writers() { # empties the fake's log, starts a +1M writer on a, b and c
	: >"$FAKE/log"
	WS=
	for n in a b c; do
		wr $n.raw +1M >"$T/j$n" &
		WS="$WS $!"
	done
}
writers_ok() { # writers_ok WHAT: waits for those writers; each must say OK
	wait $WS
	for n in a b c; do expect_eq "$(cat "$T/j$n")" "OK" "$1 writer $n"; done
}
overlaps() { # prints how many resize runs in the fake log overlap another
	python3 - "$FAKE/log" <<'PY'
import sys
runs = [tuple(map(float, l.split()[:2])) for l in open(sys.argv[1])]
print(sum(1 for i, a in enumerate(runs) for b in runs[i + 1:] if a[0] < b[1] and b[0] < a[1]))
PY
}

# ---- a second writer on the same image gets EBUSY at once ----
# The first resize is held until the second writer has its answer, so that
# answer cannot have waited for the first resize to end.
touch "$FAKE/hold"
wr a.raw +1M >"$T/w1" &
W1=$!
wait_pid
expect_eq "$(wr_bounded a.raw +1M)" "EBUSY" "second writer (while the first is held)"
expect_eq "$(running)" "1" "the first resize is still running"
rm "$FAKE/hold"
wait $W1
expect_eq "$(cat "$T/w1")" "OK" "first writer"
expect_eq "$(cat "$MNT/a.raw/size")" "$((2 * M))" "exactly one resize applied"

# ---- max_jobs=1: three images, three writers, all succeed one after another ----
# The sleep only widens each run so that an overlap would show in the log.
echo 1 >"$FAKE/sleep"
touch "$FAKE/hold"
start_writers
wait_pid
# Queued writers hold no lock the rest of the fs needs: the read is answered
# while the first resize is held and the other two wait in the queue.
expect_eq "$(timeout "$HANG" cat "$MNT/c.raw/format")" "raw" "read while jobs queue"
expect_eq "$(running) $(wc -l <"$FAKE/log")" "1 0" "runs in progress/finished while held"
rm "$FAKE/hold"
writers_ok queued
expect_eq "$(wc -l <"$FAKE/log")" "3" "three resizes ran"
expect_eq "$(overlaps)" "0" "resizes overlapping with max_jobs=1"

# ---- SIGUSR1: max_jobs=3 lets them run together ----
write_ini "instar = $FAKE_INSTAR" "timeout = 30" "max_jobs = 3"
kill -USR1 "$PID"
wait_for "no reload logged" grep -q "reloaded .*max_jobs=3" "$T/instarfs.log"
# All three run at once: each is held until the third has started.
touch "$FAKE/hold"
start_writers
wait_for "three resizes never ran together with max_jobs=3" running_is 3
rm "$FAKE/hold"
writers_ok parallel
[ "$(overlaps)" -ge 1 ] || fail "no overlap with max_jobs=3"

# ---- a child killed from outside: EIO, result.json says which signal ----
rm -f "$FAKE/sleep"
touch "$FAKE/hold"
wr b.raw +1M >"$T/k" &
W1=$!
wait_pid
kill -KILL "$(cat "$FAKE/pid")"
wait $W1
rm -f "$FAKE/pid" "$FAKE/hold" "$FAKE"/running.*
expect_eq "$(cat "$T/k")" "EIO" "killed child"
expect_eq "$(json "$MNT/b.raw/result.json" 'j["filename"], j["error"]["code"], j["error"]["errno"], "SIGKILL" in j["error"]["message"]')" \
	"('b.raw', 'INTERNAL', 'EIO', True)" "result.json after a killed child"
expect_eq "$(cat "$MNT/b.raw/size")" "$((3 * M))" "image unchanged by the killed child"
expect_eq "$(wr b.raw +1M)" "OK" "daemon serves after a killed child"

# ---- a child that crashes by itself, one that prints garbage ----
echo crash >"$FAKE/mode"
expect_eq "$(wr b.raw +1M)" "EIO" "crashing child"
expect_eq "$(json "$MNT/b.raw/result.json" 'j["error"]["code"], "SIGSEGV" in j["error"]["message"]')" \
	"('INTERNAL', True)" "result.json after a crash"
rm -f "$FAKE/pid"
echo garbage >"$FAKE/mode"
expect_eq "$(wr b.raw +1M)" "EIO" "child printing no JSON"
expect_eq "$(json "$MNT/b.raw/result.json" 'j["error"]["errno"], "no valid JSON" in j["error"]["message"]')" \
	"('EIO', True)" "result.json after garbage"
rm -f "$FAKE/mode"
expect_eq "$(cat "$MNT/b.raw/size")" "$((4 * M))" "size after the failures"

# ---- poll on result.json and size wakes a waiting reader ----
python3 - "$MNT/c.raw" "$TESTS_FS/ifs-write" <<'PY' || fail "poll"
import json, os, select, subprocess, sys, threading, time
d, w = sys.argv[1], sys.argv[2]
fds = [os.open(d + "/result.json", os.O_RDONLY), os.open(d + "/size", os.O_RDONLY)]
old = os.read(fds[0], 4096)
p = select.poll()
for fd in fds:
    p.register(fd, select.POLLIN | select.POLLPRI)
assert p.poll(300) == [], "poll reported an event before any resize"
out = {}
def writer():
    time.sleep(0.5)
    out["w"] = subprocess.run([sys.executable, w, d + "/size", "+1M"], capture_output=True, text=True).stdout.strip()
t = threading.Thread(target=writer)
t.start()
t0 = time.time()
got = set()
first = None
# 120 s only bounds a hang; how soon the wake-up comes is no verdict.
while len(got) < 2 and time.time() - t0 < 120:
    for fd, ev in p.poll(120000):
        if first is None:
            # At the first wake-up the resize must already be published.
            with open(d + "/result.json", "rb") as f:
                first = f.read()
        got.add(fd)
        p.unregister(fd)
t.join()
assert got == set(fds), "not every reader was woken: %r" % got
assert first is not None and first != old, "woken before the resize was published"
assert out["w"] == "OK", out
new = json.load(open(d + "/result.json"))
assert new["filename"] == "c.raw" and new["action"] == "grow", new
assert os.pread(fds[0], 4096, 0) == old, "the old open must keep its snapshot"
PY

# ---- SIGUSR1: timeout=1; a child that hangs is killed after timeout + grace ----
write_ini "instar = $FAKE_INSTAR" "timeout = 1" "max_jobs = 3"
kill -USR1 "$PID"
wait_for "no reload to timeout=1 logged" grep -q "timeout=1 " "$T/instarfs.log"
echo ignore-timeout >"$FAKE/mode"
wr c.raw +1M >"$T/t" &
W1=$!
wait_pid
tr '\0' ' ' <"/proc/$(cat "$FAKE/pid")/cmdline" | grep -q -- "--timeout 1 " ||
	fail "child not started with --timeout 1: $(tr '\0' ' ' <"/proc/$(cat "$FAKE/pid")/cmdline")"
# The fake would sleep timeout + 60 s: only the watchdog ends it before HANG.
wait_for "the watchdog did not end the hanging child" eval '! kill -0 $W1 2>/dev/null'
wait $W1
expect_eq "$(cat "$T/t")" "ETIMEDOUT" "hanging child"
expect_eq "$(json "$MNT/c.raw/result.json" 'j["error"]["code"], j["error"]["errno"]')" \
	"('TIMEOUT', 'ETIMEDOUT')" "result.json after the watchdog"
rm -f "$FAKE/mode" "$FAKE/pid"

# ---- a broken config on reload keeps the old settings ----
echo "timeout = banana" >>"$T/instarfs.ini"
kill -USR1 "$PID"
wait_for "bad reload not reported" grep -q "keeping the current settings" "$T/instarfs.log"
expect_eq "$(wr c.raw +1M)" "OK" "resize after a failed reload"
kill -0 "$PID" || fail "daemon died"
echo "PASS"
