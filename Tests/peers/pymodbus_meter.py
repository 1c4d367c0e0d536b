#!/usr/bin/env python3
"""Reads one meter with pymodbus and decodes it independently of switchyard (register maps from the
vendors' documents, as in profile_devices.py; SunSpec by discovery: "SunS", then the model chain).

Usage: pymodbus_meter.py HOST PORT UNIT KIND
  KIND: sdm630 | umg604 | px3 | sunspec203
Prints one JSON line: {"ok": true, "v": [V...], "i": [A...], "p": W, "phase_p": [W...] | null,
"pf": PF, "hz": Hz, "kwh": kWh | null, "va": VA | null, "single_inlet": bool}
or {"ok": false, "error": "..."}. Voltages of a three-phase meter are line-to-neutral; a PX3 inlet
reports its line-to-line voltage and line current.
"""
import json
import struct
import sys

from pymodbus.client import ModbusTcpClient


def floats(regs):
    return [struct.unpack(">f", struct.pack(">HH", regs[k], regs[k + 1]))[0] for k in range(0, len(regs), 2)]


def s16(w):
    return w - 0x10000 if w & 0x8000 else w


class Reader:
    def __init__(self, client, unit):
        self.c, self.unit = client, unit

    def regs(self, table, address, count):
        f = self.c.read_input_registers if table == "input" else self.c.read_holding_registers
        rr = f(address, count=count, slave=self.unit)
        if rr.isError():
            raise RuntimeError(f"{table} {address}+{count}: {rr}")
        return rr.registers

    def f32(self, table, address, n=1):
        return floats(self.regs(table, address, 2 * n))


def sdm630(r):
    v = r.f32("input", 0x0000, 3)
    i = r.f32("input", 0x0006, 3)
    pp = r.f32("input", 0x000C, 3)
    (p,) = r.f32("input", 0x0034)
    (pf,) = r.f32("input", 0x003E)
    (hz,) = r.f32("input", 0x0046)
    (kwh,) = r.f32("input", 0x0048)
    return dict(v=v, i=i, phase_p=pp, p=p, pf=pf, hz=hz, kwh=kwh, va=None, single_inlet=False)


def umg604(r):
    v = r.f32("holding", 19000, 3)
    i = r.f32("holding", 19012, 3)
    pp = r.f32("holding", 19020, 3)
    (p,) = r.f32("holding", 19026)
    cos = r.f32("holding", 19044, 3)
    (hz,) = r.f32("holding", 19050)
    (wh,) = r.f32("holding", 19068)  # consumed real energy, Wh
    return dict(v=v, i=i, phase_p=pp, p=p, pf=sum(cos) / 3, cos_phi=cos, hz=hz, kwh=wh / 1000, va=None, single_inlet=False)


def px3(r):
    (v, i) = r.f32("holding", 0x3008, 2)
    (p, va, pf) = r.f32("holding", 0x3012, 3)
    (hz,) = r.f32("holding", 0x3022)
    return dict(v=[v], i=[i], phase_p=None, p=p, pf=pf, hz=hz, kwh=None, va=va, single_inlet=True)


def sunspec203(r):
    for base in (40000, 0, 50000):
        try:
            if r.regs("holding", base, 2) == [0x5375, 0x6E53]:
                break
        except RuntimeError:
            continue
    else:
        raise RuntimeError('no "SunS" marker')
    at, m = base + 2, None
    while True:
        mid, length = r.regs("holding", at, 2)
        if mid == 0xFFFF:
            break
        if mid == 203:
            m = r.regs("holding", at, 2 + length)
            break
        at += 2 + length
    if m is None:
        raise RuntimeError("no model 203")

    def val(off, sf_off):
        return s16(m[off]) * 10 ** s16(m[sf_off])

    i = [val(k, 6) for k in (3, 4, 5)]
    v = [val(k, 15) for k in (8, 9, 10)]
    hz = val(16, 17)
    p = val(18, 22)
    pf = val(33, 37) / 100
    wh = ((m[46] << 16) | m[47]) * 10 ** s16(m[54])
    return dict(v=v, i=i, phase_p=None, p=p, pf=pf, hz=hz, kwh=wh / 1000, va=None, single_inlet=False)


def main():
    host, port, unit, kind = sys.argv[1:5]
    client = ModbusTcpClient(host, port=int(port), timeout=2.0, retries=0)
    try:
        if not client.connect():
            out = {"ok": False, "error": "connect failed"}
        else:
            out = {"ok": True, **{"sdm630": sdm630, "umg604": umg604, "px3": px3, "sunspec203": sunspec203}[kind](Reader(client, int(unit)))}
    except Exception as e:
        out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    finally:
        client.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
