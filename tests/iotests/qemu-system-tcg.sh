#!/usr/bin/env bash
# tests/iotests/qemu-system-tcg.sh — the iotests' QEMU_PROG. The iotests start
# qemu with the qtest accelerator, which Debian's qemu-system-x86 is built
# without; the same machine with TCG serves them (the qtest socket itself
# works with any accelerator). Execs IOTESTS_QEMU_SYSTEM with every
# "-accel qtest" (and accel=qtest in -machine) turned into tcg.
set -u
real=${IOTESTS_QEMU_SYSTEM:?IOTESTS_QEMU_SYSTEM: the real qemu-system binary}
args=()
prev=
for a in "$@"; do
	if [[ $prev == -accel && $a == qtest ]]; then
		a=tcg
	elif [[ $prev == -machine || $prev == -M ]]; then
		a=${a//accel=qtest/accel=tcg}
	fi
	args+=("$a")
	prev=$a
done
exec "$real" "${args[@]}"
