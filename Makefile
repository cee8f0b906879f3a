# Thin wrapper over Meson + Ninja. `make run` and `make test` install what is
# missing first (scripts/install-deps), so a fresh Debian 12 machine needs
# nothing else.
BUILD      ?= build
ASAN_BUILD ?= build-asan
PYTHON     ?= /usr/bin/python3
LISTEN     ?= 127.0.0.1:8765
DATA       ?= data

.PHONY: all deps deps-test build build-asan test test-unit test-integration run bench fuzz format clean

all: build

# What building and running needs (`make run`), and that plus what the
# suite, the benchmarks and the fuzzers drive (scripts/install-deps).
deps:
	@scripts/install-deps run

deps-test:
	@scripts/install-deps test

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

build-asan: deps-test $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

# The whole suite on both builds: unit tests (cmocka, via meson test) and the
# integration tests (pytest against the real binary).
test: deps-test build build-asan
	scripts/run-tests $(BUILD)
	scripts/run-tests $(ASAN_BUILD)

# The two halves of `make test`, on $(BUILD) only: the cmocka unit tests
# (meson test) and the pytest integration tests against $(BUILD)/lucy, as
# scripts/run-tests runs them.
test-unit: deps-test build
	meson test -C $(BUILD) --print-errorlogs

test-integration: deps-test build
	LUCY_BIN="$(CURDIR)/$(BUILD)/lucy" LUCY_BUILD_DIR="$(CURDIR)/$(BUILD)" \
	    $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# Without LUCY_RECORDINGS_DIRS, serves the shipped samples/. A fresh checkout
# gives them mtime = checkout time, which the settle rule (LUCY_SCAN_SETTLE_S,
# default 30 s) would treat as "still syncing"; files in the repository are
# never being written, so the settle time is 0 for them (unless set).
run: build
	mkdir -p $(DATA)
	@if [ -z "$$LUCY_RECORDINGS_DIRS" ]; then \
	  export LUCY_RECORDINGS_DIRS=samples LUCY_SCAN_SETTLE_S=$${LUCY_SCAN_SETTLE_S:-0}; \
	fi; \
	echo "lucy: scanning $$LUCY_RECORDINGS_DIRS, listening on $(LISTEN)"; \
	exec $(BUILD)/lucy serve --listen $(LISTEN) --data $(DATA)

# The Qdrant backend suite (tests/integration/test_qdrant.py) against a real
# Qdrant: QDRANT_URL=http://host:6333 [QDRANT_API_KEY=...] make test-qdrant.
# Each test uses its own collection (lucy_test_*) and drops it afterwards; the
# fault tests need the test double and are skipped (docs/qdrant.md). Without
# QDRANT_URL the suite runs against the test double, as in `make test`.
.PHONY: test-qdrant
test-qdrant: deps-test build
	@echo "test-qdrant: against $${QDRANT_URL:-the Qdrant test double (set QDRANT_URL for a real server)}"
	LUCY_BIN="$(CURDIR)/$(BUILD)/lucy" LUCY_BUILD_DIR="$(CURDIR)/$(BUILD)" \
	    $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration/test_qdrant.py

bench: deps-test build
	scripts/bench $(BUILD)

# libFuzzer harnesses (tests/fuzz/), built with clang into build-fuzz/.
fuzz: deps-test
	scripts/fuzz $${FUZZ_SECONDS:-600}

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
