# Switchyard: `make run` and `make test` install whatever is missing, build, then run or test.
# System packages come from Debian (apt-get), Python peers from PyPI, pinned. postgresql: the hub store's tests and
# benchmark start throwaway clusters of it (TestSupport.PostgresServer); the cluster Debian's package creates is unused.

SWIFT          ?= swift
SWIFT_FLAGS    ?=
APT_PACKAGES   := pkg-config libmodbus-dev libi2c-dev mbpoll socat chromium mosquitto libmosquitto-dev openssl postgresql
PIP_PACKAGES   := pymodbus==3.8.6 pyserial==3.5 pysparkplug==0.6.1 paho-mqtt==1.6.1 protobuf==7.36.2
BENCH_PIP      := scipy==1.17.1 numpy==2.4.6
# valgrind: the Modbus benchmark's instruction counts (callgrind), which the box's load cannot move.
BENCH_APT      := valgrind
SUDO           := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
BIN            := .build/debug/switchyard

.PHONY: all deps apt-deps pip-deps build test run fleet-demo soak bench proto clean

all: build

## deps: install missing Debian packages and pinned Python peers (no network when all present)
deps: apt-deps pip-deps

apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

pip-deps:
	@python3 -c "import pymodbus, serial, pysparkplug, paho.mqtt, google.protobuf, sys, importlib.metadata as m; \
	  want = {'pymodbus': '3.8.6', 'pysparkplug': '0.6.1', 'paho-mqtt': '1.6.1', 'protobuf': '7.36.2'}; \
	  sys.exit(0 if all(m.version(k) == v for k, v in want.items()) else 1)" 2>/dev/null || \
	  { echo "make: installing $(PIP_PACKAGES)"; python3 -m pip install -q --disable-pip-version-check $(PIP_PACKAGES); }

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

## test: every test, including the interop tests against pymodbus, mbpoll and socat. The two fleet-scale suites (40
## simulated sites; the chaos soak) run after the rest, on their own: beside the others they pushed the test
## process past 1,024 open descriptors, where libmodbus's select(2) aborts, and starved the MQTT tests of CPU.
HEAVY_TESTS = FleetDR40Tests|ChaosSoakTests
test: deps
	$(SWIFT) test $(SWIFT_FLAGS) --skip '$(HEAVY_TESTS)'
	$(SWIFT) test $(SWIFT_FLAGS) --skip-build --filter '$(HEAVY_TESTS)'

## run: the most useful end-to-end demo that exists (see README)
run: build
	@./scripts/run-demo.sh

## fleet-demo: mosquitto, a throwaway PostgreSQL, the hub and 40 simulated sites; fleet status live, then a 50 MW ERCOT shed
fleet-demo: build
	@./scripts/fleet-demo.sh

## soak: the fleet's chaos soak on virtual time, long (release build): SOAK_SECONDS of virtual time (default 86400, 24 h)
## on SOAK_SITES sites (default 40), seed SOAK_SEED; prints the pass figures (docs/fleet.md, "Chaos soak")
SOAK_SECONDS ?= 86400
SOAK_SITES   ?= 40
SOAK_SEED    ?= 18
soak: deps
	$(SWIFT) build -c release --build-tests -Xswiftc -enable-testing $(SWIFT_FLAGS)
	SWITCHYARD_SOAK_SECONDS=$(SOAK_SECONDS) SWITCHYARD_SOAK_SITES=$(SOAK_SITES) SWITCHYARD_SOAK_SEED=$(SOAK_SEED) \
	  $(SWIFT) test -c release -Xswiftc -enable-testing --skip-build $(SWIFT_FLAGS) --filter ChaosSoakTests

## bench: the benchmark harness (release build); figures go to Benchmarks/README.md
bench: deps
	@$(MAKE) --no-print-directory apt-deps APT_PACKAGES="$(BENCH_APT)"
	@python3 -c "import scipy" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check $(BENCH_PIP)
	@./Benchmarks/run.sh

## proto: regenerate Sources/Sparkplug/Generated/sparkplug_b.pb.swift from proto/sparkplug_b.proto.
## Not part of build or CI: it needs Debian's protobuf-compiler and swift-protobuf's protoc-gen-swift
## plugin (1.39.0, built once outside the project; point PROTOC_GEN_SWIFT at it). See docs/fleet.md.
PROTOC_GEN_SWIFT ?= $(shell command -v protoc-gen-swift)
proto:
	@command -v protoc >/dev/null || { echo "make: installing protobuf-compiler"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends protobuf-compiler >/dev/null; }
	@test -x "$(PROTOC_GEN_SWIFT)" || { echo "make proto: set PROTOC_GEN_SWIFT to a protoc-gen-swift 1.39.0 binary"; exit 1; }
	protoc --plugin=protoc-gen-swift=$(PROTOC_GEN_SWIFT) --swift_opt=Visibility=Internal \
	  --proto_path=proto --swift_out=Sources/Sparkplug/Generated proto/sparkplug_b.proto

clean:
	rm -rf .build .build-* Benchmarks/bin
