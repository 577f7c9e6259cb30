# ferry: the two commands of the README's quick start are `make demo` and `make test`.

BUILD_DIR ?= build
# The clang build that checks the thread-safety annotations (`make tsa`).
TSA_DIR ?= build-tsa
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
  nodejs yamllint shellcheck lintian dpkg-dev fakeroot systemd

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

test: deps build tsa deploy-npm
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

clean:
	rm -rf $(BUILD_DIR) $(TSA_DIR)
