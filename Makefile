# ferry: the two commands of the README's quick start are `make demo` and `make test`.

BUILD_DIR ?= build
# The clang build that checks the thread-safety annotations (`make tsa`).
TSA_DIR ?= build-tsa
# The clang sanitizer builds (`make sanitize`, cmake/Sanitizers.cmake): ASan+UBSan, which also
# holds the fuzzers (`make fuzz`), and TSan.
ASAN_DIR ?= build-asan
TSAN_DIR ?= build-tsan
JOBS ?= 2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Every Debian 12 package the project needs to build, test, benchmark and demo.
DEBIAN_PACKAGES := build-essential cmake ninja-build pkg-config git \
  libhiredis-dev libabsl-dev libssl-dev openssl libsqlite3-dev libjemalloc-dev \
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
  libgtest-dev libgmock-dev clang libcpp-httplib-dev \
  redis-server redis-tools prometheus \
  python3 python3-grpcio python3-protobuf python3-grpc-tools \
  time procps iproute2 \
  nodejs yamllint shellcheck lintian dpkg-dev fakeroot systemd \
  libclang-rt-14-dev llvm-14

.PHONY: deps deploy-npm build tsa test unit integration demo bench bench-bigkeys bench-live bench-fleet clean

deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "all Debian packages present"; fi

build:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD_DIR) -j$(JOBS)

# GCC ignores ABSL_GUARDED_BY and friends; clang -Wthread-safety -Werror checks them. Only the
# libraries that carry annotations are compiled, at -O0 and without debug info: a few minutes.
TSA_TARGETS := ferry_copier ferry_agent ferry_server ferry_testing
tsa: deps
	cmake -S . -B $(TSA_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O0 \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DFERRY_THREAD_SAFETY=ON
	cmake --build $(TSA_DIR) -j$(JOBS) --target $(TSA_TARGETS)

# The deployment checks (tests/deploy/) run on npm packages pinned in deploy/package-lock.json.
# npm is Debian's `npm`, unless the nodejs installed bundles its own (NodeSource's conflicts
# with Debian's npm), so it is not in DEBIAN_PACKAGES.
deploy-npm: deps
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends npm; }
	@if [ ! -f deploy/node_modules/.package-lock.json ] || \
	   [ deploy/package-lock.json -nt deploy/node_modules/.package-lock.json ]; then \
	  npm ci --prefix deploy --no-audit --no-fund; else echo "deploy/node_modules up to date"; fi

# The fuzzers (fuzz/), each from its checked-in corpus: `make fuzz` FUZZ_SECONDS each, and inside
# `make test` FUZZ_SHORT_SECONDS each (about a minute for all). libclang-rt-14-dev holds the
# sanitizer and libFuzzer runtimes, llvm-14 the symbolizer of their reports.
.PHONY: fuzz-build fuzz fuzz-short sanitize sanitize-asan sanitize-tsan
FUZZ_SECONDS ?= 60
FUZZ_SHORT_SECONDS ?= 7
SANITIZE_CMAKE := cmake -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++
fuzz-build: deps
	$(SANITIZE_CMAKE) -S . -B $(ASAN_DIR) -DFERRY_FUZZ=ON
	cmake --build $(ASAN_DIR) -j$(JOBS) --target fuzzers
fuzz: fuzz-build
	fuzz/run.sh $(ASAN_DIR)/fuzz $(FUZZ_SECONDS)
fuzz-short: fuzz-build
	fuzz/run.sh $(ASAN_DIR)/fuzz $(FUZZ_SHORT_SECONDS)

# The unit tests and the integration tests below under ASan+UBSan and under TSan, the tests
# starting the sanitized binaries; any report of any process fails (cmake/sanitizers/). Run by
# .ci/run after `make test`.
SANITIZE_BINARIES := ferry ferry-controller ferry-agent
SANITIZE_UNIT := wire_unit_test common_base_unit_test common_redis_unit_test \
  common_aws_unit_test common_rpc_unit_test common_metrics_unit_test agent_unit_test \
  agent_lease_unit_test server_unit_test cli_unit_test job_difference_test
ASAN_INTEGRATION := fixtures_test value_compare_test migrate_test \
  migrate_state_test migrate_access_test migrate_permissions_test migrate_versions_test \
  fleet_test fleet_token_test verify_test counters_test target_guard_test
TSAN_INTEGRATION := migrate_test migrate_state_test fleet_test fleet_token_test
sanitize: sanitize-asan sanitize-tsan
sanitize-asan: deps
	$(SANITIZE_CMAKE) -S . -B $(ASAN_DIR) -DFERRY_FUZZ=ON
	cmake --build $(ASAN_DIR) -j$(JOBS) --target $(SANITIZE_BINARIES) $(SANITIZE_UNIT) \
	  $(ASAN_INTEGRATION)
	cmake/sanitizers/run_tests.sh $(ASAN_DIR) address $(ASAN_INTEGRATION)
sanitize-tsan: deps
	$(SANITIZE_CMAKE) -S . -B $(TSAN_DIR) -DFERRY_SANITIZE=thread
	cmake --build $(TSAN_DIR) -j$(JOBS) --target $(SANITIZE_BINARIES) $(SANITIZE_UNIT) \
	  $(TSAN_INTEGRATION)
	cmake/sanitizers/run_tests.sh $(TSAN_DIR) thread $(TSAN_INTEGRATION)

test: deps build tsa deploy-npm fuzz-short
	cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) --timeout 900

unit: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L unit

integration: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L integration

demo: deps build
	bench/demo.sh

bench: deps build
	bench/run.sh

# A 400 MB string, a 3M-member zset and a 3M-field hash, about 1 GB a side (SCALE=0.1: quick).
bench-bigkeys: deps build
	bench/bigkeys.sh --scale $(or $(SCALE),1)

# Live sync: the write rate ferry follows with p99 lag under 1 s, and a 1M-key dirty set.
bench-live: deps build
	bench/live.sh

# One controller under 100 and 1,000 simulated agents x 8 slots on 98,304 shards, and its recovery.
bench-fleet: deps build
	bench/fleet_sim.sh

# The chaos soak (tests/soak_test.cc) for SOAK_SECONDS of faults (default 20 min; `make test` runs
# 3 min of it). SOAK_SEED replays a run: its seed is printed first, with every fault.
SOAK_SECONDS ?= 1200
.PHONY: soak
soak: deps build
	FERRY_BIN_DIR=$(CURDIR)/$(BUILD_DIR)/bin FERRY_SOURCE_DIR=$(CURDIR) \
	  FERRY_SOAK_SECONDS=$(SOAK_SECONDS) $(if $(SOAK_SEED),FERRY_SOAK_SEED=$(SOAK_SEED)) \
	  $(BUILD_DIR)/tests/soak_test

clean:
	rm -rf $(BUILD_DIR) $(TSA_DIR) $(ASAN_DIR) $(TSAN_DIR)
