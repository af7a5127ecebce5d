#!/usr/bin/env bash
# scripts/demo.sh BUILD — the main job on sample images, in a temp dir:
# a qcow2 grown through the sandboxed guest, a raw grown on the host, with
# `qemu-img info` before and after, and the JSON result.
set -eu
build=${1:-build}
instar="$(cd "$build" && pwd)/vmm/instar"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

show() {
	qemu-img info -U "$1" | grep -E '^(image|file format|virtual size|disk size):'
}

run() {
	echo "\$ instar $*"
	"$instar" "$@"
}

qemu-img create -q -f qcow2 disk.qcow2 1G
echo "== qcow2, before"
show disk.qcow2
run resize disk.qcow2 +1G
echo "== qcow2, after"
show disk.qcow2
qemu-img check -q disk.qcow2 && echo "qemu-img check: clean"
echo

qemu-img create -q -f raw disk.raw 1G
echo "== raw, before"
show disk.raw
run resize -f raw disk.raw 3G
echo "== raw, after"
show disk.raw
echo

run resize --output=json -f raw --shrink disk.raw -1G
run info --output=json disk.qcow2

# The same job through instarfs: every image is a folder, writing `size`
# resizes it (needs /dev/fuse; skipped without it).
instarfs="$(dirname "$(dirname "$instar")")/fs/instarfs"
if [ -c /dev/fuse ] && [ -x "$instarfs" ] && command -v fusermount3 >/dev/null; then
	echo
	mkdir images mnt
	qemu-img create -q -f vmdk images/disk.vmdk 1G
	echo "\$ instarfs images mnt"
	"$instarfs" images mnt
	trap 'fusermount3 -u "$tmp/mnt" 2>/dev/null || true; rm -rf "$tmp"' EXIT
	echo "\$ ls mnt mnt/disk.vmdk"
	ls mnt mnt/disk.vmdk
	echo "\$ cat mnt/disk.vmdk/size"
	cat mnt/disk.vmdk/size
	echo "\$ echo +1G > mnt/disk.vmdk/size      # qemu-img cannot resize vmdk"
	echo +1G >mnt/disk.vmdk/size
	echo "\$ cat mnt/disk.vmdk/result.json"
	cat mnt/disk.vmdk/result.json
	echo
	echo "\$ echo 1G > mnt/disk.vmdk/size        # a shrink needs --shrink"
	echo 1G >mnt/disk.vmdk/size || true
	echo "\$ echo '--shrink 1G' > mnt/disk.vmdk/size"
	echo '--shrink 1G' >mnt/disk.vmdk/size
	fusermount3 -u mnt
	show images/disk.vmdk
	qemu-img check -q images/disk.vmdk && echo "qemu-img check: clean"
fi
