# Switchyard: `make run` and `make test` install whatever is missing, build, then run or test.
# System packages come from Debian (apt-get), Python peers from PyPI, pinned.

SWIFT          ?= swift
SWIFT_FLAGS    ?=
APT_PACKAGES   := pkg-config libmodbus-dev libi2c-dev mbpoll socat chromium
PIP_PACKAGES   := pymodbus==3.8.6 pyserial==3.5
BENCH_PIP      := scipy==1.17.1 numpy==2.4.6
SUDO           := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
BIN            := .build/debug/switchyard

.PHONY: all deps apt-deps pip-deps build test run bench clean

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
	@python3 -c "import pymodbus, serial, sys; sys.exit(0 if pymodbus.__version__ == '3.8.6' else 1)" 2>/dev/null || \
	  { echo "make: installing $(PIP_PACKAGES)"; python3 -m pip install -q --disable-pip-version-check $(PIP_PACKAGES); }

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

## test: every test, including the interop tests against pymodbus, mbpoll and socat
test: deps
	$(SWIFT) test $(SWIFT_FLAGS)

## run: the most useful end-to-end demo that exists (see README)
run: build
	@./scripts/run-demo.sh

## bench: the benchmark harness (release build); figures go to Benchmarks/README.md
bench: deps
	@python3 -c "import scipy" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check $(BENCH_PIP)
	@./Benchmarks/run.sh

clean:
	rm -rf .build .build-* Benchmarks/bin
