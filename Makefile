# Thin wrapper over Meson + Ninja. `make run` and `make test` install what is
# missing first (scripts/install-deps), so a fresh Debian 12 machine needs
# nothing else.
BUILD      ?= build
ASAN_BUILD ?= build-asan
PYTHON     ?= /usr/bin/python3
LISTEN     ?= 127.0.0.1:8765

.PHONY: all deps build build-asan test test-unit test-integration run bench fuzz format clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

build-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

# The whole suite on both builds: unit tests (cmocka, via meson test) and the
# integration tests (pytest against the real binary).
test: build build-asan
	scripts/run-tests $(BUILD)
	scripts/run-tests $(ASAN_BUILD)

run: build
	mkdir -p data
	LUCY_RECORDINGS_DIRS=$${LUCY_RECORDINGS_DIRS:-samples} $(BUILD)/lucy serve --listen $(LISTEN) --data data

bench: build
	scripts/bench $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
