#!/usr/bin/env python3
"""Instructions per Modbus transaction, counted by valgrind's callgrind: the Swift client
against raw libmodbus C, reading from the same ModbusPollBench server on loopback.

Each client runs twice under callgrind, with READS and with 2 × READS reads (default 10,000,
after the same connect and one warm-up read); instructions per transaction is the difference
divided by READS, so start-up, connection set-up and the first read's one-time costs cancel out.
The C baseline also runs with a second, idle thread (POLL_THREADED): glibc then enables and
disables asynchronous cancellation around every select, recv and send libmodbus makes, which any
client in a multi-threaded process pays (every Swift program has more than one thread). Counts are user-space
instructions of the client process, every thread (the kernel's work, e.g. a context switch,
is not counted by callgrind): repeatable whatever else the machine is doing.

Prints a Markdown table. Env: BENCH_BIN, READS, BENCH_REGISTERS, BENCH_DEVICES (default 1)."""
import os
import re
import subprocess
import sys
import tempfile

from modbus_bench import BENCH, CPOLL, REGISTERS, start_server  # the same binaries and server as the CPU benchmark

READS = int(os.environ.get("READS", "10000"))
DEVICES = [int(x) for x in os.environ.get("BENCH_DEVICES", "1").split(",")]


def instructions(cmd, env=None):
    with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
        r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}"] + cmd,
                           capture_output=True, text=True, timeout=1800, env=env)
        if r.returncode != 0:
            raise SystemExit(f"{cmd[0]} under callgrind failed: {r.stderr[-2000:]}")
        m = re.findall(r"Collected : (\d+)", r.stderr)
        if not m:
            raise SystemExit(f"no callgrind total for {cmd}: {r.stderr[-2000:]}")
        return int(m[-1])


def main():
    if subprocess.run(["valgrind", "--version"], capture_output=True).returncode != 0:
        raise SystemExit("valgrind is missing: make bench installs it (BENCH_APT)")
    # Debian 12's valgrind (3.19) cannot read the DWARF 5 that Swift 6.3 emits and gives up on the binary:
    # count a copy without debug info (the instructions run are the same).
    tmp = tempfile.mkdtemp()
    bench = os.path.join(tmp, "ModbusPollBench")
    subprocess.run(["objcopy", "--strip-debug", BENCH, bench], check=True)
    server, ports = start_server()
    try:
        print(f"Instructions per transaction (callgrind), {READS:,} reads of {REGISTERS} holding registers, loopback\n")
        print("| devices | client | instructions, %d reads | instructions, %d reads | per transaction |" % (READS, 2 * READS))
        print("|---:|---|---:|---:|---:|")
        ratios = []
        into_label = "swift-switchyard, read(_:unit:address:into:) (the caller's buffer, no allocation)"
        plan_label = "swift-switchyard, 4 requests a call (read(plan:), as the poller reads a device)"
        hop_label = "swift-switchyard, hop per request (BENCH_HOP)"
        threaded_label = "c-libmodbus with a second (idle) thread (POLL_THREADED)"
        for n in DEVICES:
            per = {}
            swift = [bench, "poll", str(n), "0", REGISTERS, ports]
            for name, base, env in (("c-libmodbus", [CPOLL, str(n), "0", REGISTERS, ports], None),
                                    (threaded_label, [CPOLL, str(n), "0", REGISTERS, ports], dict(os.environ, POLL_THREADED="1")),
                                    ("swift-switchyard", swift, None),
                                    (into_label, swift, dict(os.environ, BENCH_INTO="1")),
                                    (plan_label, swift, dict(os.environ, BENCH_PLAN="4")),
                                    (hop_label, swift, dict(os.environ, BENCH_HOP="1"))):
                # Two counted runs (READS and 2 × READS reads) so that everything done once (start-up, connecting,
                # the first read's lazy binding and metadata) cancels out of the difference.
                i0 = instructions(base + [str(READS)], env)
                i1 = instructions(base + [str(2 * READS)], env)
                per[name] = (i1 - i0) / READS
                print(f"| {n} | {name} | {i0:,} | {i1:,} | {per[name]:,.0f} |")
                sys.stdout.flush()
            c = per["c-libmodbus"]
            ratios.append((n, per["swift-switchyard"] / c, per[into_label] / c, per[plan_label] / c, per[hop_label] / c,
                           per[threaded_label] / c))
        print("\n| devices | Swift instructions/tx ÷ C (goal ≤ 1.3) | read(into:) ÷ C | 4 requests a call ÷ C | with a hop per request ÷ C "
              "| C with a second thread ÷ C (the floor for any multi-threaded client) |")
        print("|---:|---:|---:|---:|---:|---:|")
        for n, r, into, p4, h, t in ratios:
            print(f"| {n} | {r:.2f} | {into:.2f} | {p4:.2f} | {h:.2f} | {t:.2f} |")
    finally:
        server.kill()
        os.remove(bench)
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
