#!/usr/bin/env bash
# The benchmark harness: builds in release, compiles the C baseline, runs every benchmark.
# Figures go to Benchmarks/README.md by hand, with the date and machine.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product SwitchyardBench
swift build -c release --product ModbusPollBench
mkdir -p Benchmarks/bin
gcc -O2 -pthread -o Benchmarks/bin/modbus_poll Benchmarks/c/modbus_poll.c $(pkg-config --cflags --libs libmodbus)
B=.build/release/SwitchyardBench
echo "== Modbus polling (issue 2) =="
python3 Benchmarks/modbus_bench.py
echo
echo "== Modbus instructions per transaction, callgrind (issue 15; valgrind from make bench) =="
python3 Benchmarks/modbus_callgrind.py || echo "(callgrind failed: see Benchmarks/README.md, issue 15)"
echo
echo "== Broker dispatch, 10,000 devices (issue 5) =="
$B broker
echo
echo "== Broker exact search, 300 devices, 200 sites (issue 13) =="
$B broker-300
echo
echo "== Broker vs exact MILP, 2,000 sites per size class (issue 13; about 15 minutes) =="
$B broker-sweep
echo
echo "== Simulator, one day of the large site (issue 4) =="
$B sim-day examples/large-site.yaml
echo
echo "== Fast path, 300 containers over loopback (issue 6) =="
$B fast-path 300 400 10
echo "-- the same with max_connections: 2 on every gateway (issue 15) --"
$B fast-path 300 400 10 2
echo
echo "== Steady 1 Hz loop, 1,000 containers (issue 6) =="
$B steady 1000 30
echo
echo "== Replay: one year of 5-minute prices on the demo site (issue 8) =="
YEAR=$(mktemp --suffix=.csv)
python3 examples/replay/gen-prices.py --days 365 > "$YEAR"
$B replay "$YEAR" examples/demo-site.yaml
rm -f "$YEAR"
echo
echo "== Fleet edge node: uplink bytes, demo site steady and in a price spike (issue 17) =="
$B fleet-uplink examples/demo-site.yaml
echo
echo "== Fleet edge node: tick p50/p99 without / with the edge node / broker hung (issue 17) =="
$B fleet-ticks examples/demo-site.yaml 5 200 50
