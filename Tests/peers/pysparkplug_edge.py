#!/usr/bin/env python3
"""An independent Sparkplug B edge node for the hub's interop tests: pysparkplug 0.6.1's own EdgeNode and Device
(paho-mqtt 1.6.1 underneath). Nothing here uses Switchyard's code.

It connects (NBIRTH with its metrics and bdSeq 0, then a DBIRTH for device meter-1), publishes one NDATA carrying a
live value and a historical one, and one DDATA; then prints "READY" and waits to be killed (SIGKILL: the broker
publishes the NDEATH will registered at connect). On SIGUSR1 it disconnects cleanly with pysparkplug's own
EdgeNode.disconnect() (an explicit NDEATH, then DISCONNECT) and prints "DISCONNECTED".

Usage: pysparkplug_edge.py PORT GROUP EDGE
"""
import signal
import sys
import time

from pysparkplug import DataType, Device, EdgeNode, Metric

PORT = int(sys.argv[1])
GROUP = sys.argv[2]
EDGE = sys.argv[3]


def now_ms():
    return int(time.time() * 1000)


t = now_ms()
node = EdgeNode(GROUP, EDGE, metrics=(
    Metric(timestamp=t, name="Site/Import kW", datatype=DataType.DOUBLE, value=1234.5),
    Metric(timestamp=t, name="Site/Cap In Force kW", datatype=DataType.DOUBLE, value=2000.0),
    Metric(timestamp=t, name="Site/Governor Mode", datatype=DataType.STRING, value="normal"),
    Metric(timestamp=t, name="Site/Config Version", datatype=DataType.INT64, value=12),
    Metric(timestamp=t, name="Site/Active Events", datatype=DataType.INT32, value=0),
    Metric(timestamp=t, name="Temperature C", datatype=DataType.FLOAT, value=21.5),
    Metric(timestamp=t, name="Counter", datatype=DataType.UINT32, value=42),
    Metric(timestamp=t, name="Enabled", datatype=DataType.BOOLEAN, value=True),
))
node.register(Device("meter-1", metrics=(
    Metric(timestamp=t, name="Power kW", datatype=DataType.DOUBLE, value=500.0),
    Metric(timestamp=t, name="Up", datatype=DataType.BOOLEAN, value=True),
)))
node.connect("127.0.0.1", port=PORT, blocking=False)
# pysparkplug has no public "born" flag. Its connect callback publishes the births and, as its last step, prepares
# the next session's bdSeq metric (0 -> 1): wait for that, so that no data is published before the births.
deadline = time.time() + 10
while node._bd_seq_metric.value != 1 and time.time() < deadline:  # noqa: SLF001
    time.sleep(0.01)
if node._bd_seq_metric.value != 1:  # noqa: SLF001
    print("not connected", file=sys.stderr, flush=True)
    sys.exit(2)

node.update((
    Metric(timestamp=now_ms(), name="Site/Import kW", datatype=DataType.DOUBLE, value=1500.25),
    Metric(timestamp=t - 60_000, name="Site/Import kW", datatype=DataType.DOUBLE, value=999.0, is_historical=True),
))
node.update_device("meter-1", (Metric(timestamp=now_ms(), name="Power kW", datatype=DataType.DOUBLE, value=510.0),))


def disconnect(_signum, _frame):
    node.disconnect()
    print("DISCONNECTED", flush=True)


signal.signal(signal.SIGUSR1, disconnect)
# The test runner that started us may have SIGUSR1 blocked, and a child inherits the mask.
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
print("READY", flush=True)
while True:
    time.sleep(60)
