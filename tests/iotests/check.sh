#!/usr/bin/env bash
# tests/iotests/check.sh BUILD — the `iotests` test of `make check`: QEMU's
# own iotests that call `qemu-img resize`, with the real qemu-img and through
# the shipped qemu-img front (tests/iotests/run.sh, which `make iotests`
# runs alone). The instar mode boots the guest for every format but raw, so
# it needs /dev/kvm (tests/kvm_gate.sh); under TCG (`make check-vm`) one
# mode takes hours, and the test skips saying so.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../kvm_gate.sh"
kvm_gate
exec bash "$here/run.sh" "${1:?usage: check.sh BUILD}"
