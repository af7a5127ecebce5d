# Thin wrappers around meson; the build itself lives in meson.build.
BUILD ?= build
MESON_OPTS ?=
TESTS ?=

.PHONY: all deps build demo check fuzz difftest bench install clean

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
