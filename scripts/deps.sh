#!/usr/bin/env bash
# scripts/deps.sh — install what instar needs to build, test and benchmark.
# As root: apt-get update + install of whatever is missing. Otherwise: print the
# apt-get line to run. Runtime needs only libfuse3, inih, jansson; the rest
# is for building, tests and benchmarks: cmocka (the unit suite), libseccomp
# (a unit test compiles the sandbox policy with it to cross-check instar's
# hand-built filter), qemu-utils (the oracle), zlib and libzstd (the
# decompressor tests), strace and libyal's python3-libqcow, -libvmdk,
# -libvhdi (the second oracle: tests/compat/libyal_read.py and the fault
# suite), python3-vmdkstream (a second writer of VMware's stream layout for
# tests/compat/vmdk_plan.sh), man-db (the man page test), 7zip (7zz: a VDI
# reader that is not qemu, for tests/compat/vdi_plan.sh), hyperfine (bench/),
# qemu-system-x86, busybox-static, kmod and cpio (tests/vm/run.sh: `make
# check-vm` runs the guest's tests in a VM on machines without /dev/kvm;
# the iotests test starts QEMU too), dpkg-dev and xz-utils (`apt-get source
# qemu` for QEMU's iotests, tests/iotests/fetch.sh).
set -eu
pkgs=(
  build-essential meson ninja-build pkg-config
  libfuse3-dev fuse3 libinih-dev libseccomp-dev libjansson-dev libcmocka-dev
  qemu-utils hyperfine scdoc clang-14 libclang-rt-14-dev bash-completion
  python3 time util-linux e2fsprogs clang-format man-db
  zlib1g-dev libzstd-dev
  strace python3-libqcow python3-libvmdk python3-libvhdi 7zip python3-vmdkstream
  qemu-system-x86 busybox-static kmod cpio
  dpkg-dev xz-utils
)
missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "deps: missing packages; run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
