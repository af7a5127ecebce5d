# Thin wrappers around meson; the build itself lives in meson.build.
BUILD ?= build
MESON_OPTS ?=
TESTS ?=

.PHONY: all deps build demo check check-vm fuzz difftest faults bench install clean format-check iotests

all: build

deps:
	@bash scripts/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	meson compile -C $(BUILD)

check: build
	meson test -C $(BUILD) --print-errorlogs $(TESTS)

demo: build
	bash scripts/demo.sh $(BUILD)

install: build
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD)

# On a machine without /dev/kvm, `make check` skips what boots the guest
# (tests/kvm_gate.sh). check-vm runs exactly those tests again inside a VM
# whose emulated CPU has AMD-V (tests/vm/run.sh: QEMU TCG, nested KVM), with
# its own log (meson-logs/vmlog.*). Run `make check` first. VM_SUITES
# narrows it to those suites (e.g. VM_SUITES="kvm fs", what CI runs).
VM_TIMEOUT_MULTIPLIER ?= 10
VM_SUITES ?=
check-vm: build
	@test -f $(BUILD)/meson-logs/testlog.json || { echo "check-vm: run make check first" >&2; exit 2; }
	python3 tests/testlog.py kvm-skipped $(BUILD)/meson-logs/testlog.json $(VM_SUITES) >$(BUILD)/vm-tests
	@if grep -q . $(BUILD)/vm-tests; then \
		echo "check-vm: $$(wc -l <$(BUILD)/vm-tests) tests: $$(tr '\n' ' ' <$(BUILD)/vm-tests)"; \
		bash tests/vm/run.sh --cache $(BUILD)/vm -- meson test -C $(BUILD) --no-rebuild \
			--print-errorlogs --logbase vmlog --timeout-multiplier $(VM_TIMEOUT_MULTIPLIER) \
			$$(cat $(BUILD)/vm-tests); \
	else \
		echo "check-vm: make check skipped no test for want of /dev/kvm"; rm -f $(BUILD)/meson-logs/vmlog.json; \
	fi

# Fuzzing: clang + libFuzzer builds in build-fuzz; each target runs
# FUZZ_SECONDS over a work corpus seeded from tests/fuzz/corpus/NAME.
FUZZ_SECONDS ?= 60
FUZZ_BUILD ?= build-fuzz
fuzz: deps
	@test -f $(FUZZ_BUILD)/build.ninja || CC=clang-14 meson setup $(FUZZ_BUILD) \
		-Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false
	meson compile -C $(FUZZ_BUILD)
	@set -e; for t in $(FUZZ_BUILD)/tests/fuzz/fuzz-*; do \
		case $$t in *-regress|*.p) continue;; esac; [ -x $$t ] || continue; \
		name=$${t##*/fuzz-}; mkdir -p $(FUZZ_BUILD)/corpus-$$name $(FUZZ_BUILD)/crashes; \
		echo "== fuzz $$name for $(FUZZ_SECONDS)s"; \
		$$t -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_BUILD)/crashes/$$name- \
			$(FUZZ_BUILD)/corpus-$$name tests/fuzz/corpus/$$name; \
	done

# Side-by-side benchmark with qemu-img; writes BENCHMARKS.md.
bench: build
	bash bench/run.sh $(BUILD)

# Differential random testing against qemu-img: make difftest N=500 SEED=7
N ?= 500
SEED ?= 1
DIFF_FORMATS ?= raw,qcow2,vmdk,vhd,vhdx
difftest: build
	python3 tests/difftest/difftest.py --instar $(BUILD)/vmm/instar --seed $(SEED) --cases $(N) --formats $(DIFF_FORMATS)

# Fault injection into the real instar at every write-type syscall of its
# commit (strace -e inject: SIGKILL, EIO, ENOSPC); make check runs a sample.
faults: build
	python3 tests/fault/faults.py --instar $(BUILD)/vmm/instar

# QEMU's own iotests that call resize, with the real qemu-img and then through
# the qemu-img front (contrib/shim) and the built instar; see the README.
# make iotests IOTESTS="060 163" IOTESTS_FORMATS=qcow2
IOTESTS_CACHE ?= $(BUILD)/iotests
IOTESTS ?=
IOTESTS_FORMATS ?=
iotests: build
	IOTESTS_CACHE="$(IOTESTS_CACHE)" IOTESTS="$(IOTESTS)" IOTESTS_FORMATS="$(IOTESTS_FORMATS)" \
		bash tests/iotests/run.sh $(BUILD)

# One .clang-format for every C file; CI fails on a file that differs.
format-check:
	@bad=0; for f in $$(git ls-files '*.c' '*.h'); do \
		clang-format --dry-run --Werror "$$f" >/dev/null 2>&1 || { echo "not formatted: $$f"; bad=1; }; \
	done; exit $$bad
