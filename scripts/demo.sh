#!/usr/bin/env bash
# scripts/demo.sh BUILD — the main job on a sample image, in a temp dir.
set -eu
build=${1:-build}
instar="$(cd "$build" && pwd)/vmm/instar"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
qemu-img create -q -f qcow2 disk.qcow2 1G
echo "\$ instar resize disk.qcow2 +1G"
"$instar" resize disk.qcow2 +1G
qemu-img info disk.qcow2 | grep 'virtual size'
