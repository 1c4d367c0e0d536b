#!/usr/bin/env python3
"""An independent Modbus server for Switchyard's interop tests, built on pymodbus.

It serves known values in every type and word/byte order, encoded here with
Python's struct module (not with Switchyard's codecs), and answers ILLEGAL DATA
ADDRESS past the end of its tables. Prints "READY <port>" once it accepts
connections.

Layout (0-based protocol addresses, holding and input registers alike):
  1000 + 100*order_index + 4*type_index   one value, orders ABCD, CDAB, BADC, DCBA
  0..99    scratch registers, initially 0 (for write tests)
  coils 0..15 and discrete inputs 0..15: the bit patterns below
  anything at or above 2000: ILLEGAL DATA ADDRESS

Usage: pymodbus_server.py [tcp] | rtu DEVICE BAUD
"""
import asyncio
import struct
import sys

from peer_net import free_port, wait_listening

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusSlaveContext, ModbusServerContext

ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]
VALUES = [
    ("uint16", ">H", 48879),
    ("int16", ">h", -1234),
    ("uint32", ">I", 3000000000),
    ("int32", ">i", -123456789),
    ("uint64", ">Q", 12345678901234567890),
    ("int64", ">q", -1234567890123456789),
    ("float32", ">f", 1234.5625),
    ("float64", ">d", 3.141592653589793),
]
COILS = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1]


def words_for(fmt, value, order):
    raw = struct.pack(fmt, value)  # big-endian bytes A B C D ...
    words = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    if order in ("BADC", "DCBA"):
        words = [w[::-1] for w in words]
    if order in ("CDAB", "DCBA"):
        words = words[::-1]
    return [int.from_bytes(w, "big") for w in words]


def registers():
    regs = [0] * 2000
    for o, order in enumerate(ORDERS):
        for t, (_name, fmt, value) in enumerate(VALUES):
            addr = 1000 + 100 * o + 4 * t
            for i, w in enumerate(words_for(fmt, value, order)):
                regs[addr + i] = w
    return regs


def context():
    regs = registers()
    # pymodbus 3.8 adds 1 to every protocol address before it looks in a
    # block, so blocks start at 1 for protocol address 0 to map to index 0.
    slave = ModbusSlaveContext(
        hr=ModbusSequentialDataBlock(1, list(regs)),
        ir=ModbusSequentialDataBlock(1, list(regs)),
        co=ModbusSequentialDataBlock(1, COILS + [0] * 84),
        di=ModbusSequentialDataBlock(1, [1 - b for b in COILS] + [0] * 84),
    )
    return ModbusServerContext(slaves={1: slave, 2: slave}, single=False)


async def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "tcp"
    if mode == "tcp":
        from pymodbus.server import ModbusTcpServer
        port = int(sys.argv[2]) if len(sys.argv) > 2 else free_port()
        server = ModbusTcpServer(context(), address=("127.0.0.1", port))
        task = asyncio.create_task(server.serve_forever())
        await wait_listening(port)
        print(f"READY {port}", flush=True)
        await task
    elif mode == "rtu":
        from pymodbus.server import ModbusSerialServer
        from pymodbus import FramerType
        device, baud = sys.argv[2], int(sys.argv[3])
        server = ModbusSerialServer(context(), framer=FramerType.RTU, port=device, baudrate=baud,
                                    bytesize=8, parity="N", stopbits=1, timeout=0.1)
        task = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0)  # let the serial port open
        print(f"READY {device}", flush=True)
        await task
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
