#!/usr/bin/env bash
# tests/vm/run.sh — run one command as root inside a throwaway Linux VM whose
# emulated CPU has AMD-V, so that KVM works in it on a machine that has no
# /dev/kvm of its own (e.g. a kernel that is itself a guest and does not
# nest). QEMU emulates the CPU (TCG, -cpu EPYC-v3,+svm,+npt); the VM boots
# Debian's own kernel, loads kvm-amd, and sees the host's root file system
# read-write over 9p, so the command runs on this checkout and its build
# directory as they are. The guest instar boots runs under real KVM code in
# that kernel; only the processor under it is emulated (slowly: budget a
# factor of 10 to 30 over native).
#
#   tests/vm/run.sh [--cache DIR] [--mem SIZE] [--cpus N] -- COMMAND [ARG...]
#
# The VM is built once into DIR (default: build/vm): Debian's linux-image
# package (apt-get download; the version linux-image-amd64 depends on),
# the modules init needs, busybox-static's busybox and tests/vm/init. Needs
# qemu-system-x86, busybox-static, kmod (depmod) and cpio (scripts/deps.sh).
# The command runs in the current directory with this PATH and CI (TMPDIR
# unset); its output goes to this script's stdout; its exit status is this
# script's.
# A VM that dies before the command finishes exits 125.
# One processor by default: with two, the emulated SVM once wedged the VM's
# kernel mid-suite (soft lockups on both processors, no progress for minutes);
# with one, the kvm suite ran through.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=build/vm
mem=8G
cpus=1
while [ $# -gt 0 ]; do
	case $1 in
	--cache) cache=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--cpus) cpus=$2; shift 2 ;;
	--) shift; break ;;
	*) echo "usage: $0 [--cache DIR] [--mem SIZE] [--cpus N] -- COMMAND [ARG...]" >&2; exit 2 ;;
	esac
done
[ $# -gt 0 ] || { echo "$0: no command" >&2; exit 2; }
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
case $cache in *[[:space:]]*)
	echo "$0: the cache directory's path has a space: $cache" >&2; exit 2 ;;
esac

for tool in qemu-system-x86_64 depmod cpio; do
	command -v "$tool" >/dev/null || { echo "$0: $tool missing (scripts/deps.sh installs it)" >&2; exit 2; }
done
# busybox-static's /bin/busybox (Debian's busybox, which conflicts with it,
# is linked dynamically and would not run alone in the initramfs).
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' ||
	{ echo "$0: busybox-static missing (scripts/deps.sh installs it)" >&2; exit 2; }
busybox=/bin/busybox

# The kernel: the package linux-image-amd64 depends on, unpacked once.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -1)
[ -n "$kpkg" ] || { echo "$0: apt knows no linux-image-amd64 (apt-get update?)" >&2; exit 2; }
kver=${kpkg#linux-image-}
kdir=$cache/kernel-$kver
if ! [ -f "$kdir/done" ]; then
	rm -rf "$kdir" && mkdir -p "$kdir/deb"
	(cd "$kdir/deb" && apt-get download "$kpkg" >/dev/null 2>&1) ||
		{ echo "$0: apt-get download $kpkg failed" >&2; exit 2; }
	dpkg-deb -x "$kdir"/deb/*.deb "$kdir/root"
	rm -rf "$kdir/deb"
	depmod -b "$kdir/root" "$kver"
	touch "$kdir/done"
fi
vmlinuz=$kdir/root/boot/vmlinuz-$kver
moddir=$kdir/root/lib/modules/$kver

# The initramfs: busybox, init, and the modules in dependency order.
initrd=$cache/initrd-$kver.gz
if ! [ -f "$initrd" ] || [ "$here/init" -nt "$initrd" ]; then
	ir=$(mktemp -d "$cache/initrd.XXXXXX")
	mkdir -p "$ir/bin" "$ir/mods" "$ir/proc" "$ir/sys" "$ir/dev"
	cp "$busybox" "$ir/bin/busybox"
	cp "$here/init" "$ir/init"
	chmod 755 "$ir/init"
	declare -A seen=()
	add_mod() { # add_mod PATH-relative-to-moddir: its dependencies first
		local m=$1 dep
		[ -n "${seen[$m]:-}" ] && return 0
		seen[$m]=1
		for dep in $(sed -n "s|^$m: *||p" "$moddir/modules.dep"); do
			add_mod "$dep"
		done
		cp "$moddir/$m" "$ir/mods/"
		echo "${m##*/}" >>"$ir/mods/order"
	}
	for name in virtio_pci 9pnet_virtio 9p kvm-amd fuse loop; do
		m=$(grep -o "^[^:]*/$name\.ko[^:]*" "$moddir/modules.dep" | head -1)
		[ -n "$m" ] || { echo "$0: module $name not in $kpkg" >&2; exit 2; }
		add_mod "$m"
	done
	(cd "$ir" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$initrd.new"
	mv "$initrd.new" "$initrd"
	rm -rf "$ir"
fi

# The job: a script the VM's init runs in the chroot, and its exit status.
job=$(mktemp -d "$cache/job.XXXXXX")
trap 'rm -rf "$job"' EXIT
{
	echo "cd $(printf '%q' "$PWD") || exit 125"
	echo "export PATH=$(printf '%q' "$PATH")"
	[ -n "${CI:-}" ] && echo "export CI=$(printf '%q' "$CI")"
	echo "unset TMPDIR"
	printf 'exec'
	printf ' %q' "$@"
	echo
} >"$job/cmd"
# What must stay visible under the VM's private /tmp: the first component
# below /tmp of the working directory and of the job (init bind-mounts them).
for d in "$PWD" "$job"; do
	case $d in /tmp/?*)
		d=${d#/tmp/}
		echo "/tmp/${d%%/*}" ;;
	esac
done | sort -u >"$job/keep"
if grep -q '[[:space:]]' "$job/keep"; then
	echo "$0: a directory to keep under /tmp has a space in its name" >&2; exit 2
fi

qemu-system-x86_64 -accel tcg,thread=multi -cpu EPYC-v3,+svm,+npt -smp "$cpus" -m "$mem" \
	-nodefaults -no-user-config -display none -no-reboot \
	-chardev stdio,id=con,signal=off -serial chardev:con \
	-kernel "$vmlinuz" -initrd "$initrd" \
	-append "console=ttyS0 quiet panic=-1 instar_job=$job" \
	-virtfs local,path=/,mount_tag=host,security_model=passthrough,multidevs=remap,id=host0 \
	</dev/null 2>&1 | grep -v --line-buffered "TCG doesn't support requested feature" || true
[ -f "$job/rc" ] || { echo "$0: the VM stopped before the command finished" >&2; exit 125; }
exit "$(cat "$job/rc")"
