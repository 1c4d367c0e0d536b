#!/usr/bin/env python3
"""An independent Modbus TCP writer (pymodbus) for interop tests.

Usage: pymodbus_write.py HOST PORT UNIT FUNCTION ADDRESS WORD [WORD ...]
  FUNCTION: fc16 (write multiple registers) | fc23 (read/write multiple registers: write the
            words, then read the same registers back in one transaction)
Prints one JSON line: {"ok": true, "registers": [...]} (fc23: the registers read back; fc16: [])
or {"ok": false, "error": "...", "exception_code": N|null}.
"""
import json
import sys

from pymodbus.client import ModbusTcpClient


def main():
    host, port, unit, function, address = sys.argv[1:6]
    words = [int(w) for w in sys.argv[6:]]
    port, unit, address = int(port), int(unit), int(address)
    client = ModbusTcpClient(host, port=port, timeout=1.0, retries=0)
    try:
        if not client.connect():
            out = {"ok": False, "error": "connect failed", "exception_code": None}
        else:
            if function == "fc23":
                rr = client.readwrite_registers(read_address=address, read_count=len(words), write_address=address,
                                                values=words, slave=unit)
            else:
                rr = client.write_registers(address, words, slave=unit)
            if rr.isError():
                out = {"ok": False, "error": str(rr), "exception_code": getattr(rr, "exception_code", None)}
            else:
                out = {"ok": True, "registers": list(getattr(rr, "registers", None) or [])}
    except Exception as e:  # timeouts, closed connections, garbled frames
        out = {"ok": False, "error": f"{type(e).__name__}: {e}", "exception_code": None}
    finally:
        client.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
