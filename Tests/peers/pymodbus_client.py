#!/usr/bin/env python3
"""An independent Modbus TCP client (pymodbus) for interop tests.

Usage: pymodbus_client.py HOST PORT UNIT TABLE ADDRESS TYPE ORDER [TIMEOUT_S]
  TABLE: holding | input | coil | discrete
  TYPE:  uint16 int16 uint32 int32 float32 float64 bool
  ORDER: ABCD CDAB BADC DCBA
Prints one JSON line: {"ok": true, "value": V, "registers": [...], "elapsed_ms": E}
or {"ok": false, "error": "...", "exception_code": N|null, "elapsed_ms": E}.
The value is decoded here with Python's struct module, independently of Switchyard.
"""
import json
import struct
import sys
import time

from pymodbus.client import ModbusTcpClient

SIZES = {"uint16": (1, ">H"), "int16": (1, ">h"), "uint32": (2, ">I"), "int32": (2, ">i"),
         "float32": (2, ">f"), "float64": (4, ">d"), "bool": (1, None)}


def decode(words, typ, order):
    if order in ("CDAB", "DCBA"):
        words = list(reversed(words))
    raw = b"".join(w.to_bytes(2, "big")[::-1] if order in ("BADC", "DCBA") else w.to_bytes(2, "big") for w in words)
    return struct.unpack(SIZES[typ][1], raw)[0]


def main():
    host, port, unit, table, address, typ, order = sys.argv[1:8]
    timeout = float(sys.argv[8]) if len(sys.argv) > 8 else 1.0
    port, unit, address = int(port), int(unit), int(address)
    count = SIZES[typ][0]
    client = ModbusTcpClient(host, port=port, timeout=timeout, retries=0)
    t0 = time.monotonic()
    out = {}
    try:
        if not client.connect():
            out = {"ok": False, "error": "connect failed", "exception_code": None}
        else:
            if table == "holding":
                rr = client.read_holding_registers(address, count=count, slave=unit)
            elif table == "input":
                rr = client.read_input_registers(address, count=count, slave=unit)
            elif table == "coil":
                rr = client.read_coils(address, count=1, slave=unit)
            else:
                rr = client.read_discrete_inputs(address, count=1, slave=unit)
            if rr.isError():
                code = getattr(rr, "exception_code", None)
                out = {"ok": False, "error": str(rr), "exception_code": code}
            elif typ == "bool":
                out = {"ok": True, "value": bool(rr.bits[0]), "registers": []}
            else:
                out = {"ok": True, "value": decode(list(rr.registers), typ, order), "registers": list(rr.registers)}
    except Exception as e:  # timeouts, closed connections, garbled frames
        out = {"ok": False, "error": f"{type(e).__name__}: {e}", "exception_code": None}
    finally:
        client.close()
    out["elapsed_ms"] = round((time.monotonic() - t0) * 1000, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
