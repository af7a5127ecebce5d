#!/usr/bin/env bash
# tests/fuzz/mkcorpus.sh — (re)build the seed corpora of fuzz_plan
# (corpus/plan) and fuzz_backing (corpus/backing) from images that qemu-img
# creates. Run by hand; the corpora are committed.
#   mkcorpus.sh [plan|backing]   (default: both)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
what=${1:-all}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

# fuzz_backing: backing chains read through guest/plan/backing.c; each seed
# is the chain (the image's own backing file first) and up to four reads.
# Small clusters and little data keep each seed a few KiB. The corpus also
# keeps inputs libFuzzer found (named by their SHA-1; `fuzz-backing -merge=1
# -use_counters=0 -max_len=2048`: those that reach new code), left as they are.
backing_corpus() {
	local out=$here/corpus/backing
	mkdir -p "$out"
	bseed() {
		local name=$1
		shift
		python3 "$here/mkseed.py" backing "$out/$name" "$@"
	}
	qi() { qemu-img "$@"; }
	qio() { qemu-io "$@" >/dev/null; }
	# raw: its bytes, zeros past its end (160k, longer than the images on it)
	qi create -q -f raw r.raw 160k
	qio -f raw -c 'write -q -P 0x5a 0 512' -c 'write -q -P 0x5b 8k 512' \
		-c 'write -q -P 0x5c 30k 512' -c 'write -q -P 0x5d 96k 512' -c 'write -q -P 0x5e 156k 512' r.raw
	bseed raw 0:131072,150000:20000 raw:r.raw
	# qcow2 (4k clusters) over raw: data, a zero cluster, a zero cluster
	# over an allocated one (qemu's ZERO_ALLOC: the stale 0x22 must not show),
	# unallocated clusters (the raw file's bytes), past its size (zeros)
	qi create -q -f qcow2 -o cluster_size=4k -F raw -b r.raw a.qcow2 128k
	qio -c 'write -q -P 0x11 4k 512' -c 'write -q -z 8k 4k' -c 'write -q -P 0x22 16k 512' \
		-c 'write -q -z 16k 4k' -c 'write -q -P 0x33 30k 512' a.qcow2
	bseed qcow2-zero 0:131072,28672:8192,126976:32768 qcow2:a.qcow2 raw:r.raw
	# compressed clusters (deflate, zstd) over raw
	qi create -q -f qcow2 -o cluster_size=4k c0.qcow2 128k
	qio -c 'write -q -P 0x44 0 8k' -c 'write -q -P 0x45 28k 4k' -c 'write -q -P 0x46 64k 2k' c0.qcow2
	qi convert -c -O qcow2 -o cluster_size=4k -F raw -B r.raw c0.qcow2 c.qcow2
	bseed qcow2-deflate 0:131072,30000:4000 qcow2:c.qcow2 raw:r.raw
	qi convert -c -O qcow2 -o cluster_size=4k,compression_type=zstd -F raw -B r.raw c0.qcow2 cz.qcow2
	bseed qcow2-zstd 0:131072,65000:2000 qcow2:cz.qcow2 raw:r.raw
	# extended L2 (16k clusters, 512-byte subclusters) over qcow2 over raw
	qi create -q -f qcow2 -o extended_l2=on,cluster_size=16k -F qcow2 -b a.qcow2 x.qcow2 128k
	qio -c 'write -q -P 0x55 1k 512' -c 'write -q -z 3k 512' -c 'write -q -P 0x56 17k 512' x.qcow2
	bseed qcow2-extl2 0:131072,512:4096,16384:16384 qcow2:x.qcow2 qcow2:a.qcow2 raw:r.raw
	# four files: qcow2 over qcow2 over qcow2 over raw
	qi create -q -f qcow2 -o cluster_size=512 -F qcow2 -b c.qcow2 d.qcow2 96k
	qio -c 'write -q -P 0x66 2k 512' -c 'write -q -z 4k 4k' d.qcow2
	qi create -q -f qcow2 -o cluster_size=1k,compat=0.10 -F qcow2 -b d.qcow2 e.qcow2 64k
	qio -c 'write -q -P 0x77 3k 1k' e.qcow2
	bseed chain4 0:65536,0:131072 qcow2:e.qcow2 qcow2:d.qcow2 qcow2:c.qcow2 raw:r.raw
	# issue 19: a 128k qcow2 backing file with data (then a compressed
	# cluster) in the cluster where a 31k overlay ends
	qi create -q -f qcow2 b.qcow2 128k
	qio -c 'write -q -P 0x5a 0 512' -c 'write -q -P 0x5b 30k 1k' b.qcow2
	bseed qcow2-64k 0:98304,31744:33024 qcow2:b.qcow2
	qi convert -c -O qcow2 b.qcow2 bc.qcow2
	bseed qcow2-64k-deflate 0:98304,31744:33024 qcow2:bc.qcow2
	ls -la "$out"
}

[ "$what" = plan ] || backing_corpus
[ "$what" = backing ] && exit 0
out=$here/corpus/plan
mkdir -p "$out"
seed() { python3 "$here/mkseed.py" "$out/$1" "$2" "$3" "$4" "$5"; }
qemu-img create -q -f qcow2 q.qcow2 1G
qemu-io -c 'write -P 0xab 0 4k' -c 'write -P 0xcd 900M 4k' q.qcow2 >/dev/null
seed qcow2-grow 0 0 0x80000000 q.qcow2
seed qcow2-grow64t 0 0 0x400000000000 q.qcow2
seed qcow2-shrink 0 1 0x20000000 q.qcow2
seed qcow2-falloc 0 4 0x50000000 q.qcow2
qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=1 q512.qcow2 64M
seed qcow2-512-grow 0 0 0x40000000 q512.qcow2
qemu-img create -q -f qcow2 -o compat=0.10 qv2.qcow2 64M
seed qcow2-v2 0 0 0x8000000 qv2.qcow2
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=128k qx.qcow2 1G
qemu-io -c 'write -P 0x11 4k 8k' qx.qcow2 >/dev/null
seed qcow2-extl2-shrink 0 1 0x100000 qx.qcow2
qemu-img create -q -f vmdk v.vmdk 1G
qemu-io -f vmdk -c 'write -P 0xab 0 4k' v.vmdk >/dev/null
seed vmdk-grow 1 0 0x200000000 v.vmdk
seed vmdk-shrink 1 1 0x1000000 v.vmdk
qemu-img create -q -f vmdk -o subformat=streamOptimized vs.vmdk 64M
seed vmdk-stream 1 0 0x8000000 vs.vmdk
qemu-img create -q -f vpc vd.vhd 64M
qemu-io -f vpc -c 'write -P 0xab 0 4k' vd.vhd >/dev/null
seed vhd-dyn-grow 2 0 0x10000000 vd.vhd
seed vhd-dyn-shrink 2 1 0x1000000 vd.vhd
qemu-img create -q -f vpc -o subformat=fixed vf.vhd 8M
seed vhd-fixed-grow 2 0 0x1000000 vf.vhd
# a shrink writes the new footer at the old EOF-512, past the final end
seed vhd-fixed-shrink 2 1 0x400000 vf.vhd
qemu-img create -q -f vhdx vx.vhdx 64M
qemu-io -f vhdx -c 'write -P 0xab 0 4k' vx.vhdx >/dev/null
seed vhdx-grow 3 0 0x40000000 vx.vhdx
seed vhdx-shrink 3 1 0x1000000 vx.vhdx
qemu-img create -q -f vdi vd.vdi 10M
qemu-io -f vdi -c 'write -P 0xcd 9M 4k' -c 'write -P 0xab 0 4k' vd.vdi >/dev/null
seed vdi-grow 4 0 0x6400000 vd.vdi
seed vdi-grow-reloc 4 0 0x12c00000 vd.vdi
seed vdi-shrink 4 1 0x300000 vd.vdi
qemu-img create -q -f vdi -o static=on vs.vdi 2M
seed vdi-static-grow-reloc 4 0 0x9000000 vs.vdi
ls -la "$out"
