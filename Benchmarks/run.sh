#!/usr/bin/env bash
# The benchmark harness: builds in release, compiles the C baseline, runs every benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product SwitchyardBench
mkdir -p Benchmarks/bin
gcc -O2 -o Benchmarks/bin/modbus_poll Benchmarks/c/modbus_poll.c $(pkg-config --cflags --libs libmodbus)
echo "== Modbus polling =="
python3 Benchmarks/modbus_bench.py
echo
echo "== Broker dispatch =="
.build/release/SwitchyardBench broker
