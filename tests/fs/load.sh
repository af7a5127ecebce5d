#!/bin/bash
# tests/fs/load.sh — instarfs under load (issue 17): metadata operations are
# answered while every job slot is busy and more writers wait than libfuse
# has worker threads; queued writers are served in the order their writes
# arrived; SIGTERM with writes queued cancels those (ECANCELED) and lets the
# running resize finish; max_staged reaches the children.
# Verdicts wait for events (the fake holds a resize while the file "hold"
# exists; the daemon logs each write it queues), never for durations.
. "$TESTS_FS/lib.sh"
# A failure while a resize is held must not leave the daemon waiting for it
# at shutdown (it finishes running resizes): release it first.
trap 'rm -f "$FAKE/hold"; cleanup' EXIT

M=$((1024 * 1024))
N=12 # writers: more than libfuse's 10 worker threads, so a design that
#      held a worker per queued write could not answer the reads below
queued() { grep -q "$1: waiting for a job slot" "$T/instarfs.log"; }
alive() { # alive PID...: every one still runs
	local p
	for p in "$@"; do kill -0 "$p" 2>/dev/null || return 1; done
}
bounded() { timeout "$HANG" "$@"; }

write_ini "instar = $FAKE_INSTAR" "timeout = 300" "max_jobs = 1" "max_staged = 64M" \
	"log_level = debug"
for i in $(seq $N); do mkraw "i$i.raw" $M; done
mkraw idle.raw $M
start_fs

# ---- one resize held, N-1 queued behind it, one at a time (known order) ----
touch "$FAKE/hold"
: >"$FAKE/log"
WS=()
for i in $(seq $N); do
	wr "i$i.raw" "+${i}M" >"$T/w$i" &
	WS+=($!)
	if [ "$i" = 1 ]; then
		wait_for "the first resize did not start" running_is 1
	else
		wait_for "write $i was not queued" queued "i$i.raw"
	fi
done

# ---- metadata while the slot is busy and the queue is full ----
bounded ls "$MNT" >"$T/ls" || fail "ls of the root"
grep -qx idle.raw "$T/ls" || fail "idle.raw not listed"
expect_eq "$(bounded ls "$MNT/idle.raw" | tr '\n' ' ')" "format info.json result.json size " \
	"ls of an idle image"
bounded stat "$MNT/idle.raw/size" >/dev/null || fail "stat size"
bounded stat "$MNT/i$N.raw/result.json" >/dev/null || fail "stat result.json of a queued image"
expect_eq "$(bounded cat "$MNT/idle.raw/result.json")" "{}" "result.json of an idle image"
expect_eq "$(bounded cat "$MNT/idle.raw/size")" "$M" "size of an idle image"
expect_eq "$(bounded cat "$MNT/idle.raw/format")" "raw" "format of an idle image"
bounded cat "$MNT/idle.raw/info.json" >/dev/null || fail "info.json of an idle image"
expect_eq "$(bounded cat "$MNT/i1.raw/result.json")" "{}" "result.json of the running image"
# The reads above were answered while the resizes were still held: the
# first one runs, none has finished, every writer still waits.
expect_eq "$(running) $(wc -l <"$FAKE/log")" "1 0" "runs in progress/finished after the reads"
alive "${WS[@]}" || fail "a writer ended while the first resize was held"

# ---- FIFO: released, the resizes run in the order the writes arrived ----
rm "$FAKE/hold"
for i in $(seq $N); do
	wait "${WS[$((i - 1))]}"
	expect_eq "$(cat "$T/w$i")" "OK" "writer $i"
done
expect_eq "$(awk '{print $NF}' "$FAKE/log" | tr '\n' ' ')" \
	"$(for i in $(seq $N); do printf '+%dM ' "$i"; done)" "order of the resizes"

# ---- max_staged: the ini's value, or less if the write asks for less ----
grep -c -- "--max-staged $((64 * M)) " "$FAKE/log" | grep -qx "$N" ||
	fail "children not started with --max-staged $((64 * M)): $(head -n 1 "$FAKE/log")"
: >"$FAKE/log"
expect_eq "$(wr idle.raw "--max-staged 1M +1M")" "OK" "write with --max-staged 1M"
grep -q -- "--max-staged $M " "$FAKE/log" || fail "--max-staged 1M not passed: $(cat "$FAKE/log")"
expect_eq "$(wr idle.raw "--max-staged=1G +1M")" "EINVAL" "write asking for more than max_staged"
expect_eq "$(json "$MNT/idle.raw/result.json" 'j["error"]["code"], "max_staged" in j["error"]["message"]')" \
	"('INVALID_OPTION', True)" "result.json of the refused --max-staged"

# ---- SIGTERM with writes queued: queued ones ECANCELED, the running one ends OK ----
touch "$FAKE/hold"
: >"$FAKE/log"
wr i1.raw +1M >"$T/s1" &
S1=$!
wait_for "the resize before SIGTERM did not start" running_is 1
wr i2.raw +1M >"$T/s2" &
S2=$!
wait_for "i2 not queued" eval '[ "$(grep -c "i2.raw: waiting for a job slot" "$T/instarfs.log")" = 2 ]'
wr i3.raw +1M >"$T/s3" &
S3=$!
wait_for "i3 not queued" eval '[ "$(grep -c "i3.raw: waiting for a job slot" "$T/instarfs.log")" = 2 ]'
kill -TERM "$PID"
wait "$S2" "$S3"
expect_eq "$(cat "$T/s2") $(cat "$T/s3")" "ECANCELED ECANCELED" "queued writers at SIGTERM"
# They were answered while the running resize is still held.
expect_eq "$(running)" "1" "the running resize after the cancel"
alive "$S1" || fail "the running resize's writer ended before its resize"
grep -q "2 queued resize(s) cancelled with ECANCELED" "$T/instarfs.log" || fail "no cancel logged"
rm "$FAKE/hold"
wait "$S1"
expect_eq "$(cat "$T/s1")" "OK" "the resize running at SIGTERM"
wait_for "instarfs did not exit after SIGTERM" eval '! kill -0 $PID 2>/dev/null'
wait "$PID" 2>/dev/null
PID=
grep -q " $MNT fuse" /proc/mounts && fail "still mounted after SIGTERM"
expect_eq "$(stat -c %s "$SRC/i1.raw") $(stat -c %s "$SRC/i2.raw") $(stat -c %s "$SRC/i3.raw")" \
	"$((3 * M)) $((3 * M)) $((4 * M))" "sizes: i1 resized once more, i2 and i3 untouched"

# ---- the memory bound: max_jobs x max_staged > max_staged_total is refused ----
write_ini "instar = $FAKE_INSTAR" "max_jobs = 2" "max_staged = 3G"
if "$INSTARFS" -f -o "config=$T/instarfs.ini" "$SRC" "$MNT" >"$T/bound.log" 2>&1; then
	fusermount3 -u "$MNT" 2>/dev/null
	fail "max_jobs=2 x max_staged=3G accepted under max_staged_total=4G"
fi
grep -q "exceeds max_staged_total" "$T/bound.log" || fail "no bound message: $(cat "$T/bound.log")"
grep -q " $MNT fuse" /proc/mounts && fail "mounted despite the refused config"
echo "PASS"
