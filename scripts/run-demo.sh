#!/usr/bin/env bash
# make run: a simulated 40 MW site (switchyard sim) and the controller (switchyard serve)
# against it over Modbus TCP on loopback, with a compact live view refreshed each second.
# The bundled signals put a 22 MW demand-response cap 2 minutes in (for 4 minutes) and a price
# spike 8 minutes in.
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

API_PORT=${API_PORT:-8443}

# Ports: the site file's device ports (15020–15057 for the demo) must be free. If any is taken, say
# which and serve the devices from the first free block of as many ports (the controller then runs on
# a copy of the site file that points there); if there is none, fail with one line.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORTS=$(grep -o '127\.0\.0\.1:[0-9]*' "$SITE" | cut -d: -f2)
NPORTS=$(echo "$PORTS" | wc -l)
TAKEN=""
for p in $PORTS; do port_taken "$p" && TAKEN="$TAKEN $p"; done
SIM_ARGS=()
if [ -n "$TAKEN" ]; then
  BASE=""
  for b in $(seq 20000 100 29900); do
    free=1
    for k in $(seq 0 $((NPORTS - 1))); do port_taken $((b + k)) && { free=0; break; }; done
    [ "$free" = 1 ] && { BASE=$b; break; }
  done
  if [ -z "$BASE" ]; then
    echo "error: port(s)${TAKEN} of $SITE are in use and no block of $NPORTS free ports was found in 20000–29999" >&2
    exit 1
  fi
  echo "port(s)${TAKEN} in use: serving the simulated devices on $BASE–$((BASE + NPORTS - 1)) instead"
  SIM_ARGS=(--listen-base-port "$BASE" --write-site "$WORK/site.yaml")
fi
if port_taken "$API_PORT"; then
  echo "error: API port $API_PORT is in use; run with API_PORT=<free port>" >&2
  exit 1
fi

"$BIN" sim --site "$SITE" --start-at "$START" "${SIM_ARGS[@]}" --quiet > "$WORK/sim.log" 2>&1 &
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

if [ ${#SIM_ARGS[@]} -gt 0 ]; then
  for _ in $(seq 1 100); do grep -q "^wrote " "$WORK/sim.log" 2>/dev/null && break; sleep 0.1; done
  SITE="$WORK/site.yaml"
fi

# An operator token for the remote tour (README: "The remote tour against make run").
TOKEN=$("$BIN" token create --state-dir "$WORK/state" --role operator --name demo 2>/dev/null)
printf 'export SWITCHYARD_SERVER=http://127.0.0.1:%s\nexport SWITCHYARD_TOKEN=%s\n' "$API_PORT" "$TOKEN" > "$WORK/env"
echo "API: http://127.0.0.1:$API_PORT · state dir: $WORK/state · remote commands from another terminal: source $WORK/env"

"$BIN" serve --site "$SITE" --signals "$SIGNALS" --start-at "$START" --state-dir "$WORK/state" --listen "127.0.0.1:$API_PORT" $VIEW &
SERVE=$!
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
  exit 0
fi
wait "$SERVE"
