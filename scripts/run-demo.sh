#!/usr/bin/env bash
# make run: a simulated 40 MW site (switchyard sim) and the controller (switchyard serve)
# against it over Modbus TCP on loopback, with a compact live view refreshed each second.
# The bundled signals put a price spike 60 s in and a demand-response cap 6 minutes in.
# Ctrl-C stops both cleanly. DEMO_SECONDS=N stops after N seconds (for scripted runs).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/debug/switchyard}
SITE=${SITE:-examples/demo-site.yaml}
SIGNALS=${SIGNALS:-examples/demo-signals.json}
START=${START:-2026-07-15T14:01:00Z}
WORK=$(mktemp -d /tmp/switchyard-demo.XXXXXX)
VIEW=--view
[ -t 1 ] || VIEW=""

"$BIN" sim --site "$SITE" --quiet > "$WORK/sim.log" 2>&1 &
SIM=$!
cleanup() {
  trap - INT TERM EXIT
  [ -n "${SERVE:-}" ] && kill -TERM "$SERVE" 2>/dev/null && wait "$SERVE" 2>/dev/null || true
  kill -TERM "$SIM" 2>/dev/null && wait "$SIM" 2>/dev/null || true
  echo
  echo "demo stopped; logs and state in $WORK"
}
trap cleanup INT TERM EXIT

# Wait for the simulator to print its address map (it serves before it prints).
for _ in $(seq 1 100); do
  grep -q "^switchyard sim:" "$WORK/sim.log" 2>/dev/null && break
  kill -0 "$SIM" 2>/dev/null || { cat "$WORK/sim.log"; exit 1; }
  sleep 0.1
done
echo "simulator up: $(grep -c '127.0.0.1' "$WORK/sim.log") devices on loopback (log: $WORK/sim.log)"

"$BIN" serve --site "$SITE" --signals "$SIGNALS" --start-at "$START" --state-dir "$WORK/state" $VIEW &
SERVE=$!
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
  exit 0
fi
wait "$SERVE"
