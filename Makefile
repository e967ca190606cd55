# lakevault: `make demo` and `make test` are the whole set-up on a fresh Debian 12 machine.
SHELL := /bin/bash
BUILD ?= build
JOBS ?= $(shell nproc)
SANITIZE ?= 0
CORPUS ?= $(firstword $(wildcard $(CURDIR)/../shared/delta-corpus /work/shared/delta-corpus))
export LAKEVAULT_CORPUS := $(CORPUS)

# Debian 12 packages the build, the tests and the benchmark need.
DEB_PACKAGES := cmake g++ make pkg-config git tar gzip zstd pigz time \
  libarchive-dev libssl-dev nlohmann-json3-dev libsimdjson-dev libyaml-cpp-dev libcli11-dev libspdlog-dev \
  libfmt-dev libsnappy-dev libzstd-dev zlib1g-dev libthrift-dev libsodium-dev \
  libcurl4-openssl-dev libdeflate-dev libboost-dev clang-14 libclang-rt-14-dev libgtest-dev libgmock-dev \
  rsync openssh-server openssh-client systemd python3 chromium

.PHONY: all deps build demo test test-sanitize fuzz bench clean format

all: build

# Idempotent and quiet when everything is already installed: apt is only touched for what is missing.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

build: deps
	@cmake -S . -B $(BUILD) -DLAKEVAULT_SANITIZE=$(if $(filter 1,$(SANITIZE)),ON,OFF) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	@scripts/demo.sh

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)
	@if [ -x tests/fuzz/run.sh ]; then tests/fuzz/run.sh $(FUZZ_SECONDS); fi

# The whole suite again under AddressSanitizer and UBSan (CI runs it after `make test`).
test-sanitize: deps
	@$(MAKE) --no-print-directory build BUILD=build-asan SANITIZE=1
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# libFuzzer targets (src/**/*_fuzz.cpp), each run for FUZZ_SECONDS from tests/fuzz/corpus.
FUZZ_SECONDS ?= 15
fuzz: deps
	@tests/fuzz/run.sh $(FUZZ_SECONDS)

bench: build
	@bench/run.sh

format:
	@clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD) demo
