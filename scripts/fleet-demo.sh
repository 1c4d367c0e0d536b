#!/usr/bin/env bash
# make fleet-demo: the fleet on one box. Debian's mosquitto and a throwaway PostgreSQL cluster (run as the
# `postgres` user when started as root: the server refuses root) on free loopback ports, the hub
# (`switchyard hub`), and 40 simulated sites in four regions (`switchyard sim --fleet examples/fleet.yaml`, each
# its own controller and Sparkplug edge node). It shows `fleet status` refreshing live, then creates a 50 MW
# ERCOT shed (`fleet event create`) and shows each site's share and what the sites' own meters say was shed.
# Ctrl-C (or the end) stops everything and removes the data directories. DEMO_SECONDS=N: how long to watch the
# shed (default 60); FLEET=FILE: another fleet file; SHED_MW / REGION: another shed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/debug/switchyard}
FLEET=${FLEET:-examples/fleet.yaml}
REGION=${REGION:-ERCOT}
SHED_MW=${SHED_MW:-50}
WATCH=${DEMO_SECONDS:-60}
WORK=$(mktemp -d /tmp/switchyard-fleet-demo.XXXXXX)
chmod 755 "$WORK"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
MQTT_PORT=$(free_port)
PG_PORT=$(free_port)
API_PORT=$(free_port)

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/initdb" ] || { echo "error: PostgreSQL's initdb not found under /usr/lib/postgresql (make deps installs Debian's postgresql)" >&2; exit 1; }
AS_PG=()
if [ "$(id -u)" -eq 0 ]; then AS_PG=(/usr/bin/setpriv --reuid=postgres --regid=postgres --init-groups --); fi
PGDATA="$WORK/pg"
PGSOCK="$WORK/pgsock"

# Stops one process: SIGTERM, up to 20 s to finish (a site sets its containers to their fallback, the hub publishes
# STATE offline), then SIGKILL, said out loud.
stop() {
  local pid=$1 name=$2
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }; sleep 0.1; done
  echo "fleet-demo: $name did not stop within 20 s of SIGTERM: killed" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "fleet-demo: stopping"
  # The sites first (while the broker can still take their deaths), then the hub, then the broker.
  [ -n "${SIM:-}" ] && stop "$SIM" "the simulated fleet"
  [ -n "${HUB:-}" ] && stop "$HUB" "the hub"
  [ -n "${MQTT:-}" ] && stop "$MQTT" "mosquitto"
  [ -f "$PGDATA/postmaster.pid" ] && "${AS_PG[@]}" "$PGBIN/pg_ctl" stop -D "$PGDATA" -m fast -w -t 30 >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] && { echo "fleet-demo: logs kept in $WORK"; exit 0; }
  rm -rf "$WORK"
  echo "fleet-demo: stopped; nothing left behind"
}
trap cleanup INT TERM EXIT

# mosquitto: loopback only, anonymous (a demo; docs/fleet.md shows TLS and ACLs), no persistence.
mkdir -p "$WORK/mqtt" && chmod 777 "$WORK/mqtt"
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest file %s/mqtt/mosquitto.log\n' \
  "$MQTT_PORT" "$WORK" > "$WORK/mqtt/mosquitto.conf"
/usr/sbin/mosquitto -c "$WORK/mqtt/mosquitto.conf" &
MQTT=$!

# PostgreSQL: a throwaway cluster, trust on the socket and loopback only.
mkdir -p "$PGDATA" "$PGSOCK"
[ ${#AS_PG[@]} -gt 0 ] && chown postgres:postgres "$PGDATA" "$PGSOCK"
"${AS_PG[@]}" "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-instructions > "$WORK/initdb.log" 2>&1 \
  || { cat "$WORK/initdb.log"; exit 1; }
"${AS_PG[@]}" "$PGBIN/pg_ctl" start -D "$PGDATA" -w -t 60 -l "$PGDATA/server.log" \
  -o "-p $PG_PORT -k $PGSOCK -c listen_addresses=127.0.0.1" > /dev/null \
  || { cat "$PGDATA/server.log"; exit 1; }
export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=postgres PGDATABASE=postgres
echo "mosquitto on 127.0.0.1:$MQTT_PORT · PostgreSQL on 127.0.0.1:$PG_PORT (data in $PGDATA)"

# The hub: primary host `hub` (the fleet file's primary_host_id), MQTT client id `switchyard-hub` (the fleet file's
# roles give it admin), the fleet API on loopback, its record spool in the work directory.
"$BIN" hub run --broker "127.0.0.1:$MQTT_PORT" --host-id hub --client-id switchyard-hub --listen "127.0.0.1:$API_PORT" \
  --spool-dir "$WORK/hub-spool" > "$WORK/hub.log" 2>&1 &
HUB=$!
TOKEN=""
for _ in $(seq 1 100); do
  kill -0 "$HUB" 2>/dev/null || { cat "$WORK/hub.log"; exit 1; }
  # The token needs the hub's tables: the hub migrates the store as it starts.
  TOKEN=$("$BIN" hub token create --name fleet-demo --role operator 2>/dev/null) && break
  sleep 0.2
done
[ -n "$TOKEN" ] || { echo "error: no API token (hub log: $WORK/hub.log)" >&2; cat "$WORK/hub.log"; exit 1; }
export SWITCHYARD_SERVER=http://127.0.0.1:$API_PORT SWITCHYARD_TOKEN=$TOKEN
printf 'export SWITCHYARD_SERVER=%s\nexport SWITCHYARD_TOKEN=%s\n' "$SWITCHYARD_SERVER" "$TOKEN" > "$WORK/env"
echo "hub: fleet API on $SWITCHYARD_SERVER (operator token in $WORK/env) · log $WORK/hub.log"

"$BIN" sim --fleet "$FLEET" --broker "127.0.0.1:$MQTT_PORT" --state-dir "$WORK/fleet" > "$WORK/fleet.log" 2>&1 &
SIM=$!
for _ in $(seq 1 100); do grep -q "^switchyard sim:" "$WORK/fleet.log" 2>/dev/null && break; kill -0 "$SIM" 2>/dev/null || { cat "$WORK/fleet.log"; exit 1; }; sleep 0.2; done
head -1 "$WORK/fleet.log"

show() {
  [ -t 1 ] && printf '\033[H\033[2J'
  echo "== $1   $(date -u +%H:%M:%S)"
  shift
  "$@" || true
}

# fleet status, refreshed until every site is online and offers a shed (at most 90 s).
SITES=$(grep -o "sites: *[0-9]*" "$FLEET" | awk "{s+=\$2} END {print s}")
for i in $(seq 1 45); do
  show "fleet status ($i)" "$BIN" fleet status
  online=$("$BIN" fleet status --json 2>/dev/null | python3 -c '
import json, sys
rows = json.load(sys.stdin)["sites"]
print(sum(1 for r in rows if r["liveness"] == "online" and (r.get("offer_mw") or 0) > 0))' 2>/dev/null || echo 0)
  echo "$online of $SITES sites online with an offer"
  [ "$online" -ge "$SITES" ] && [ "$i" -ge 3 ] && break
  sleep 2
done

# The sites start cold and ramp their containers up: a shed's baseline is each site's import when it starts, so wait
# (at most 90 s) until the region's import has settled (it moved less than 1 % over the last 4 s).
region_kw() {
  "$BIN" fleet status --json 2>/dev/null | python3 -c '
import json, sys
rows = json.load(sys.stdin)["sites"]
print(int(sum((r.get("import_kw") or 0) for r in rows if r["region"] == sys.argv[1])))' "$REGION" 2>/dev/null || echo 0
}
last=$(region_kw)
for i in $(seq 1 22); do
  sleep 4
  now=$(region_kw)
  echo "$REGION import: $now kW (was $last kW 4 s ago)"
  python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if a > 0 and abs(a - b) <= 0.01 * a else 1)" "$now" "$last" && break
  last=$now
done

echo
echo "== fleet event create --region $REGION --shed-mw $SHED_MW --from now --until +2h"
"$BIN" fleet event create --region "$REGION" --shed-mw "$SHED_MW" --from now --until +2h --reason "fleet-demo: utility call" \
  | tee "$WORK/event.txt"
EVENT=$(sed -n 's/^fleet shed \([^ ]*\) in .*/\1/p' "$WORK/event.txt" | head -1)
[ -n "$EVENT" ] || { echo "error: the shed was not created (hub log: $WORK/hub.log)" >&2; exit 1; }
STARTED=$(date +%s)
MET=""

END=$(( $(date +%s) + WATCH ))
while [ "$(date +%s)" -lt "$END" ]; do
  show "fleet event status ${EVENT}: each site's share and its metered shed (baseline − import, the sites' own meters)" "$BIN" fleet event status "$EVENT"
  metered=$("$BIN" fleet event status "$EVENT" --json 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin).get("metered_mw", 0))' 2>/dev/null || echo 0)
  if [ -z "$MET" ] && python3 -c "import sys; sys.exit(0 if float('$metered') >= $SHED_MW - 0.1 else 1)"; then
    MET=$(( $(date +%s) - STARTED ))
  fi
  [ -n "$MET" ] && echo "metered shed reached the ${SHED_MW} MW target ${MET} s after the command"
  sleep 3
done
show "fleet status after the shed" "$BIN" fleet status
