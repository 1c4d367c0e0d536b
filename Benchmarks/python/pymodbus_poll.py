#!/usr/bin/env python3
"""Baseline: poll N Modbus TCP devices with pymodbus's asyncio client, concurrently.
Usage: pymodbus_poll.py DEVICES SECONDS REGISTERS PORT[,PORT...]
Prints one JSON line like the other clients."""
import asyncio
import json
import sys
import time

from pymodbus.client import AsyncModbusTcpClient


async def main():
    n, seconds, regs = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    ports = [int(p) for p in sys.argv[4].split(",")]
    clients = [AsyncModbusTcpClient("127.0.0.1", port=ports[i % len(ports)], timeout=2, retries=0) for i in range(n)]
    for c in clients:
        await c.connect()
    counts = [0, 0]
    c0, t0 = time.process_time(), time.monotonic()
    deadline = t0 + seconds

    async def poll(c):
        while time.monotonic() < deadline:
            rr = await c.read_holding_registers(0, count=regs, slave=1)
            if rr.isError() or len(rr.registers) != regs:
                counts[1] += 1
            else:
                counts[0] += 1

    await asyncio.gather(*(poll(c) for c in clients))
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    print(json.dumps({"client": "pymodbus-asyncio", "devices": n, "tx": counts[0], "errors": counts[1],
                      "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}))
    for c in clients:
        c.close()


asyncio.run(main())
