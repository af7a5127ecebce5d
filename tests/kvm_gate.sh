# tests/kvm_gate.sh — sourced by every shell test that boots the guest: the
# one rule for a machine without KVM (tests/kvm/test_kvm.c, tests/fault/faults.py
# and tests/difftest/difftest.py apply the same rule in their languages).
#
# - /dev/kvm opens read-write: the test runs.
# - There is no /dev/kvm at all (the kernel offers no KVM device, e.g. a
#   guest kernel that does not nest): the guest cannot boot on this machine.
#   The test skips (77) and says so, under CI too; .ci/run lists every skip
#   with its reason next to its summary line.
# - /dev/kvm exists but cannot be opened: a setup error. Under CI (CI set)
#   that is a failure; elsewhere a skip.

# kvm_usable: true when the guest can boot here.
kvm_usable() {
	[ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]
}

# kvm_why: one line saying why it cannot.
kvm_why() {
	if [ -e /dev/kvm ]; then
		echo "/dev/kvm exists but cannot be opened read-write"
	else
		echo "this machine has no /dev/kvm (its kernel offers no KVM device), so the guest cannot boot here"
	fi
}

# kvm_gate: returns when the guest can boot; else skips the whole test (77)
# or, for an unusable /dev/kvm under CI, fails it.
kvm_gate() {
	kvm_usable && return 0
	if [ -e /dev/kvm ] && [ -n "${CI:-}" ]; then
		echo "FAIL: $(kvm_why) (CI is set)"
		exit 1
	fi
	echo "skip: $(kvm_why)"
	exit 77
}

# Tests that mix host-only cases with cases that boot the guest run the
# host-only ones anyway. guest_left_out ERRFILE, after a case ran instar:
# true (and the case is counted as left out, not judged) when the guest
# cannot boot here and instar's stderr in ERRFILE says that is why it
# stopped. guest_skips_end, called last, turns a run that left cases out
# into a skip (77) that says how many and why (a failure ends it with 1
# before that).
GUEST_SKIPPED=0
guest_left_out() {
	kvm_usable && return 1
	grep -q "Could not start the resize guest: cannot open /dev/kvm" "$1" || return 1
	GUEST_SKIPPED=$((GUEST_SKIPPED + 1))
	return 0
}
guest_skips_end() {
	[ "$GUEST_SKIPPED" = 0 ] && return 0
	if [ -e /dev/kvm ] && [ -n "${CI:-}" ]; then
		echo "FAIL: $GUEST_SKIPPED cases left out: $(kvm_why) (CI is set)"
		exit 1
	fi
	echo "skip: $GUEST_SKIPPED cases that boot the guest were left out: $(kvm_why)"
	exit 77
}
