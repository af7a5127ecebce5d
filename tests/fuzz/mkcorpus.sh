#!/usr/bin/env bash
# tests/fuzz/mkcorpus.sh — (re)build the planner seed corpus from images that
# qemu-img creates. Run by hand; the corpus is committed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$here/corpus/plan
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
seed() { python3 "$here/mkseed.py" "$out/$1" "$2" "$3" "$4" "$5"; }
cd "$tmp"
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
