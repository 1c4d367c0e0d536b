#!/usr/bin/env python3
"""Simulated field devices for Switchyard's hardware-profile tests, on pymodbus.

Each device serves known values in the register layout its vendor documents.
The addresses below are written from the vendor documentation (cited per
device), NOT read from hardware-profiles/*.yaml, so a wrong address in a
profile makes the probe tests fail. Values are encoded here with Python's
struct module, not with Switchyard's codecs.

Registers outside each documented block are absent: reading them answers
ILLEGAL DATA ADDRESS, as real devices do for holes.

Usage: profile_devices.py DEVICE [--base N]
  DEVICE: sdm630 | umg604 | sunspec203 | px3 | ref-asic | ref-gpu
  --base: SunSpec base address for sunspec203 (0, 40000 or 50000; default 40000)
Prints "READY <port>" once it accepts connections on 127.0.0.1.
"""
import asyncio
import struct
import sys

from peer_net import free_port, wait_listening

from pymodbus.datastore import (ModbusServerContext, ModbusSlaveContext,
                                ModbusSparseDataBlock)


class Space:
    """One register table, filled by protocol (0-based) address."""

    def __init__(self):
        self.values = {}

    def zeros(self, start, count):
        for a in range(start, start + count):
            self.values.setdefault(a, 0)

    def words(self, address, words):
        for i, w in enumerate(words):
            self.values[address + i] = w & 0xFFFF

    def f32(self, address, value):
        self.words(address, be_words(">f", value))

    def u16(self, address, value):
        self.words(address, be_words(">H", value))

    def i16(self, address, value):
        self.words(address, be_words(">h", value))

    def u32(self, address, value):
        self.words(address, be_words(">I", value))

    def block(self):
        # pymodbus 3.8 adds 1 to every protocol address before it looks in a block.
        return ModbusSparseDataBlock({a + 1: v for a, v in self.values.items()} or {1: 0})


def be_words(fmt, value):
    raw = struct.pack(fmt, value)
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]


def string_words(text, count):
    raw = text.encode("ascii")[: 2 * count].ljust(2 * count, b"\0")
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]


# --- Eastron SDM630-Modbus V2 -------------------------------------------------
# Source: Eastron "SDM630 Modbus Smart Meter Modbus Protocol Implementation" V1.8,
# input registers (FC04), float32 high word first. The document numbers them
# 30001…; the protocol address is number − 30001 ("Start Address Hex" column).
def sdm630():
    ir = Space()
    ir.zeros(0x0000, 0x0200)  # the meter answers reads across its whole input block
    ir.f32(0x0000, 230.1)     # 30001 phase 1 line to neutral volts
    ir.f32(0x0002, 231.2)     # 30003 phase 2
    ir.f32(0x0004, 229.8)     # 30005 phase 3
    ir.f32(0x0006, 10.5)      # 30007 phase 1 current
    ir.f32(0x0008, 11.25)     # 30009 phase 2 current
    ir.f32(0x000A, 9.75)      # 30011 phase 3 current
    ir.f32(0x000C, 2400.5)    # 30013 phase 1 power
    ir.f32(0x000E, 2500.25)   # 30015 phase 2 power
    ir.f32(0x0010, 2200.75)   # 30017 phase 3 power
    ir.f32(0x0034, 7101.5)    # 30053 total system power
    ir.f32(0x003E, 0.97)      # 30063 total system power factor
    ir.f32(0x0046, 50.01)     # 30071 frequency of supply voltages
    ir.f32(0x0048, 12345.6)   # 30073 import active energy kWh
    ir.f32(0x004A, 78.9)      # 30075 export active energy kWh
    ir.f32(0x0156, 12424.5)   # 30343 total kWh
    return {"ir": ir}


# --- Janitza UMG 604 ----------------------------------------------------------
# Source: Janitza "UMG 604 Modbus address list", frequently required readings
# 19000-19120, float32 holding registers (FC03), big-endian. Energies in Wh.
def umg604():
    hr = Space()
    hr.zeros(19000, 122)
    hr.f32(19000, 231.0)      # voltage L1-N
    hr.f32(19002, 232.5)      # voltage L2-N
    hr.f32(19004, 230.25)     # voltage L3-N
    hr.f32(19006, 400.1)      # voltage L1-L2
    hr.f32(19008, 401.2)      # voltage L2-L3
    hr.f32(19010, 399.9)      # voltage L3-L1
    hr.f32(19012, 100.5)      # current L1
    hr.f32(19014, 101.25)     # current L2
    hr.f32(19016, 99.75)      # current L3
    hr.f32(19018, 2.5)        # vector sum current
    hr.f32(19020, 23000.0)    # real power L1
    hr.f32(19022, 23500.0)    # real power L2
    hr.f32(19024, 22800.5)    # real power L3
    hr.f32(19026, 69300.5)    # real power sum L1..L3
    hr.f32(19044, 0.98)       # cos(phi) L1
    hr.f32(19046, 0.97)       # cos(phi) L2
    hr.f32(19048, 0.99)       # cos(phi) L3
    hr.f32(19050, 49.98)      # measured frequency
    hr.f32(19052, 1.0)        # rotation field
    hr.f32(19060, 1230246.0)  # real energy L1..L3, Wh
    hr.f32(19068, 1234567.0)  # consumed real energy L1..L3, Wh
    hr.f32(19076, 4321.0)     # delivered real energy L1..L3, Wh
    return {"hr": hr}


# --- SunSpec model 203 meter --------------------------------------------------
# Source: SunSpec Information Model specification; model 1 (common, L = 66) and
# model 203 (wye-connect three-phase meter, L = 105). Offsets from the model's
# ID register, as in the SunSpec model tables.
def sunspec203(base):
    hr = Space()
    hr.words(base, [0x5375, 0x6E53])                   # "SunS"
    m1 = base + 2
    hr.words(m1, [1, 66])                              # common model
    hr.words(m1 + 2, string_words("Switchyard Test", 16))  # Mn
    hr.words(m1 + 18, string_words("Meter 203", 16))   # Md
    hr.words(m1 + 34, string_words("", 8))             # Opt
    hr.words(m1 + 42, string_words("1.0.0", 8))        # Vr
    hr.words(m1 + 50, string_words("SN-203-0001", 16))  # SN
    hr.words(m1 + 66, [1, 0x8000])                     # DA, Pad
    m = m1 + 68
    hr.words(m, [203, 105])
    hr.zeros(m + 2, 105)
    not_impl16 = 0x8000
    hr.i16(m + 2, 2484)        # A total (A_SF)
    hr.i16(m + 3, 1234)        # AphA -> 12.34 A
    hr.i16(m + 4, 1250)        # AphB -> 12.50 A
    hr.words(m + 5, [not_impl16])  # AphC not implemented
    hr.i16(m + 6, -2)          # A_SF
    hr.i16(m + 7, 2305)        # PhV
    hr.i16(m + 8, 2301)        # PhVphA -> 230.1 V
    hr.i16(m + 9, 2315)        # PhVphB -> 231.5 V
    hr.i16(m + 10, 2298)       # PhVphC -> 229.8 V
    hr.i16(m + 11, 3990)       # PPV
    hr.i16(m + 15, -1)         # V_SF
    hr.i16(m + 16, 5002)       # Hz -> 50.02
    hr.i16(m + 17, -2)         # Hz_SF
    hr.i16(m + 18, 812)        # W -> 8120 W
    hr.i16(m + 22, 1)          # W_SF
    hr.i16(m + 28, -1500)      # VAR -> -1500 var
    hr.i16(m + 32, 0)          # VAR_SF
    hr.i16(m + 33, 9850)       # PF -> 98.50 %
    hr.i16(m + 37, -2)         # PF_SF
    hr.u32(m + 38, 2500)       # TotWhExp (acc32) -> 2500 Wh
    hr.u32(m + 46, 12345678)   # TotWhImp (acc32) -> 12345678 Wh
    hr.i16(m + 54, 0)          # TotWh_SF
    for off in (23, 24, 25, 26, 27):
        hr.words(m + off, [not_impl16])  # VA and VA_SF not implemented
    hr.words(m + 107, [0xFFFF, 0])  # end marker
    return {"hr": hr}


# --- Raritan PX3 --------------------------------------------------------------
# Source: Raritan "PX2/PX3 Modbus Interface" (PDU Modbus register layout, Xerus
# 3.x): holding registers, big-endian float32 sensor readings. Inlet 1 block at
# 0x3000; outlet n block at 0x8000 + 0x100 * (n - 1); within a block: RMS
# voltage +0x08, RMS current +0x0A, active power +0x12, apparent power +0x14,
# power factor +0x16, line frequency +0x22. Outlet switching state: coil n - 1.
def px3():
    hr = Space()
    hr.zeros(0x3000, 0x40)
    hr.f32(0x3008, 230.5)      # inlet 1 RMS voltage
    hr.f32(0x300A, 15.25)      # inlet 1 RMS current
    hr.f32(0x3012, 3400.0)     # inlet 1 active power
    hr.f32(0x3014, 3500.0)     # inlet 1 apparent power
    hr.f32(0x3016, 0.971)      # inlet 1 power factor
    hr.f32(0x3022, 50.0)       # inlet 1 line frequency
    outlet_power = [850.5, 900.25, 0.0, 1649.25]
    for n, p in enumerate(outlet_power, start=1):
        base = 0x8000 + 0x100 * (n - 1)
        hr.zeros(base, 0x40)
        hr.f32(base + 0x08, 230.5)
        hr.f32(base + 0x12, p)
    co = Space()
    co.words(0, [1, 1, 0, 1] + [0] * 20)
    return {"hr": hr, "co": co}


# --- Switchyard reference container controllers -------------------------------
# Source: firmware-notes/reference-asic-container.md and reference-gpu-container.md
# (the map this project defines for PLC integrators). Input registers 0x0000-0x000D,
# holding registers 0x0100-0x0107; 32-bit values high word first.
def reference_container(gpu):
    ir, hr = Space(), Space()
    ir.zeros(0x0000, 0x0E)
    hr.zeros(0x0100, 0x08)
    if not gpu:
        ir.u32(0x0000, 1234567)    # active power W
        ir.u16(0x0002, 3)          # run state: curtailed
        ir.u16(0x0003, 0x0005)     # alarm bits
        ir.i16(0x0004, 253)        # inlet 25.3 °C
        ir.i16(0x0005, 412)        # coolant 41.2 °C
        ir.u32(0x0006, 2805000)    # hashrate 280500.0 TH/s
        ir.u16(0x0008, 316)        # miners online
        ir.u16(0x0009, 320)        # miners total
        ir.u16(0x000A, 42)         # watchdog remaining s
        ir.u16(0x000B, 0)          # fallback active: no
        ir.u32(0x000C, 98765432)   # import energy 9876543.2 kWh
        hr.u32(0x0100, 1200000)    # power setpoint W
        hr.u16(0x0102, 1)          # run command: run
        hr.u16(0x0103, 60)         # comm watchdog s
        hr.u32(0x0104, 400000)     # fallback setpoint W
        hr.u32(0x0106, 50000)      # ramp rate W/s
    else:
        ir.u32(0x0000, 812345)     # active power W
        ir.u16(0x0002, 2)          # run state: running
        ir.u16(0x0003, 0)          # alarm bits
        ir.i16(0x0004, -52)        # inlet -5.2 °C
        ir.i16(0x0005, 355)        # coolant 35.5 °C
        ir.u32(0x0006, 900000)     # inference demand W
        ir.u16(0x0008, 254)        # GPUs online
        ir.u16(0x0009, 256)        # GPUs total
        ir.u16(0x000A, 15)         # watchdog remaining s
        ir.u16(0x000B, 1)          # fallback active: yes
        ir.u32(0x000C, 5000)       # import energy 500.0 kWh
        hr.u32(0x0100, 850000)     # power setpoint W
        hr.u16(0x0102, 1)          # run command: run
        hr.u16(0x0103, 30)         # comm watchdog s
        hr.u32(0x0104, 200000)     # fallback setpoint W
        hr.u16(0x0106, 700)        # GPU power cap W
    return {"ir": ir, "hr": hr}


def context(device, base):
    builders = {
        "sdm630": sdm630,
        "umg604": umg604,
        "sunspec203": lambda: sunspec203(base),
        "px3": px3,
        "ref-asic": lambda: reference_container(False),
        "ref-gpu": lambda: reference_container(True),
    }
    if device not in builders:
        raise SystemExit(f"unknown device {device}; use one of {', '.join(builders)}")
    spaces = builders[device]()
    blocks = {k: spaces[k].block() if k in spaces else Space().block() for k in ("hr", "ir", "co", "di")}
    slave = ModbusSlaveContext(**blocks)
    return ModbusServerContext(slaves=slave, single=True)


async def main():
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    device = args[0]
    base = 40000
    if "--base" in args:
        base = int(args[args.index("--base") + 1])
    from pymodbus.server import ModbusTcpServer
    port = free_port()
    server = ModbusTcpServer(context(device, base), address=("127.0.0.1", port))
    task = asyncio.create_task(server.serve_forever())
    await wait_listening(port)
    print(f"READY {port}", flush=True)
    await task


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
