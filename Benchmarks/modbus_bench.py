#!/usr/bin/env python3
"""Modbus polling benchmark: our Swift client against raw libmodbus C and pymodbus,
in one run, against the same Switchyard server process on loopback.

Prints a Markdown table: transactions/s, CPU µs per transaction, and the ratios
(Swift CPU/tx ÷ C CPU/tx; Swift tx/s ÷ pymodbus tx/s)."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.environ.get("BENCH_BIN", os.path.join(ROOT, ".build/release/ModbusPollBench"))
CPOLL = os.path.join(ROOT, "Benchmarks/bin/modbus_poll")
PYPOLL = os.path.join(ROOT, "Benchmarks/python/pymodbus_poll.py")
SECONDS = os.environ.get("BENCH_SECONDS", "4")
REGISTERS = os.environ.get("BENCH_REGISTERS", "16")
DEVICES = [int(x) for x in os.environ.get("BENCH_DEVICES", "1,20,200").split(",")]


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_server(servers=4):
    """Starts `ModbusPollBench serve` (libmodbus server threads on free ports); returns the process and the
    comma-separated ports. The caller kills it."""
    server = subprocess.Popen([BENCH, "serve", str(servers)], stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    if not line.startswith("READY"):
        server.kill()
        raise SystemExit("server did not start")
    return server, line.split()[1]


def main():
    server, ports = start_server()
    try:
        rows = []
        for n in DEVICES:
            c = run([CPOLL, str(n), SECONDS, REGISTERS, ports])
            s = run([BENCH, "poll", str(n), SECONDS, REGISTERS, ports])
            p = run([sys.executable, PYPOLL, str(n), SECONDS, REGISTERS, ports])
            rows.append((n, c, s, p))
        print(f"Modbus TCP polling, {REGISTERS} holding registers per request, {SECONDS} s per client, loopback, "
              f"server: ModbusPollBench (4 libmodbus server threads), {os.cpu_count()} cores\n")
        print("| devices | client | tx/s | CPU µs/tx | errors |")
        print("|---:|---|---:|---:|---:|")
        for n, c, s, p in rows:
            for r in (c, s, p):
                tps = r["tx"] / r["wall_s"]
                cpu = 1e6 * r["cpu_s"] / max(1, r["tx"])
                print(f"| {n} | {r['client']} | {tps:,.0f} | {cpu:.1f} | {r['errors']} |")
        print("\n| devices | Swift CPU/tx ÷ C CPU/tx (goal ≤ 1.3) | Swift tx/s ÷ pymodbus tx/s (goal ≥ 10 at 200) |")
        print("|---:|---:|---:|")
        for n, c, s, p in rows:
            cpu_ratio = (s["cpu_s"] / max(1, s["tx"])) / (c["cpu_s"] / max(1, c["tx"]))
            tput_ratio = (s["tx"] / s["wall_s"]) / max(1e-9, p["tx"] / p["wall_s"])
            print(f"| {n} | {cpu_ratio:.2f} | {tput_ratio:.1f} |")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
