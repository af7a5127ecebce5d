#!/usr/bin/env bash
# bench/run.sh [BUILD] — side-by-side benchmark of instar and qemu-img resize.
# Each case runs both tools on fresh copies of the same image (hyperfine
# --prepare recreates it before every run) in one hyperfine invocation, then
# bench/report.py writes BENCHMARKS.md (medians, min/max, ratio, peak RSS,
# instar's phase breakdown, scaling table). Rerun: `make bench`.
# Both tools run under the same SCHED_FIFO priority (chrt -f 50) when
# possible, so that other load on a shared machine disturbs neither;
# BENCH_RT=0 turns that off.
set -eu
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
instar=$(cd "$build" && pwd)/vmm/instar
runs=${BENCH_RUNS:-30}
out=${BENCH_OUT:-$root/bench/out}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
rt=()
if [ "${BENCH_RT:-1}" = 1 ] && chrt -f 50 true 2>/dev/null; then
	rt=(chrt -f 50)
fi

# bench_case NAME "SETUP (makes t.img)" "OPTIONS" SIZE [RUNS] [TOOLS]
bench_case() {
	local name=$1 setup=$2 opts=$3 size=$4 n=${5:-$runs} tools=${6:-"instar qemu-img"}
	local cmds=() tool bin
	rm -f base.img t.img
	eval "$setup"
	mv t.img base.img
	for tool in $tools; do
		bin=$instar; [ "$tool" = qemu-img ] && bin=qemu-img
		cmds+=(-n "$tool" "$bin resize $opts $tmp/t.img $size")
	done
	"${rt[@]}" hyperfine -N -w 2 -r "$n" --export-json "$out/$name.json" \
		--prepare "bash $tmp/prep.sh" "${cmds[@]}" >/dev/null
	for tool in $tools; do # peak RSS of one run of each tool
		bin=$instar; [ "$tool" = qemu-img ] && bin=qemu-img
		bash prep.sh
		/usr/bin/time -f '%M' -o "$out/$name.$tool.rss" $bin resize $opts t.img $size >/dev/null
	done
	if command -v strace >/dev/null; then # the syncs each tool issues
		for tool in $tools; do
			bin=$instar; [ "$tool" = qemu-img ] && bin=qemu-img
			bash prep.sh
			strace -f -qq -e trace=fsync,fdatasync,sync_file_range -o "$out/$name.$tool.sync" \
				$bin resize $opts t.img $size >/dev/null
		done
	fi
	# instar's own phase breakdown (INSTAR_TIMING=1 prints phases to stderr)
	bash prep.sh
	INSTAR_TIMING=1 "$instar" resize $opts t.img $size 2>"$out/$name.timing" >/dev/null || true
	echo "bench: $name done" >&2
}

# A fresh copy of the image for each run, written back to disk first: else
# the first fdatasync of either tool would also flush the copy's own dirty
# pages (45 ms for the 64 MiB of the shrink case), which measures cp, not
# the resize.
printf 'cp --sparse=always %q/base.img %q/t.img && sync %q/t.img\n' "$tmp" "$tmp" "$tmp" >"$tmp/prep.sh"

q() { qemu-img create -q -f qcow2 t.img "$1"; }
data64() { qemu-io -c 'write -P 0xab 0 32M' -c 'write -P 0xcd 1536M 32M' t.img >/dev/null; }

rm -f "$out"/*.json "$out"/*.rss "$out"/*.timing "$out"/*.sync "$out"/rt
echo "${rt[*]:-none}" >"$out/rt"
bench_case qcow2-grow-header "qemu-img create -q -f qcow2 t.img 2G && qemu-img resize -q --shrink t.img 1G" "-f qcow2" +1G
bench_case qcow2-grow-1g-2g "q 1G" "-f qcow2" 2G
bench_case qcow2-grow-64t "q 1G" "-f qcow2" 64T
bench_case qcow2-shrink-2g-1g "q 2G && data64" "-f qcow2 --shrink" 1G
bench_case raw-grow-falloc "qemu-img create -q -f raw t.img 1G" "-f raw --preallocation=falloc" 2G
# scaling: cost follows the metadata touched, not the virtual size
for sz in 1G 1T 64T; do
	bench_case "scale-grow-$sz" "q $sz" "-f qcow2" +1G 10
done
bench_case scale-shrink-1G "q 1G" "-f qcow2 --shrink" 512M 10
bench_case scale-shrink-1T "q 1T" "-f qcow2 --shrink" 1G 3
if [ "${BENCH_SLOW:-0}" = 1 ]; then # qemu-img needs ~5 minutes per run here
	bench_case scale-shrink-64T "q 64T" "-f qcow2 --shrink" 1G 1
else
	bench_case scale-shrink-64T "q 64T" "-f qcow2 --shrink" 1G 10 instar
fi
python3 "$root/bench/report.py" "$out" "$root/BENCHMARKS.md"
