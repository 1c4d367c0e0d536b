#!/usr/bin/env python3
"""An independent Sparkplug B host for Switchyard's interop tests: paho-mqtt 1.6.1 for MQTT and
pysparkplug 0.6.1 (its own protobuf schema) to decode and encode payloads. Nothing here uses
Switchyard's code.

It subscribes to spBv1.0/# and decodes every NBIRTH, DBIRTH, NDATA, DDATA, NDEATH and DDEATH,
checking the Sparkplug 3.0 rules:
  - NBIRTH carries seq 0, a bdSeq metric and Node Control/Rebirth;
  - every later message of the edge node carries the previous seq + 1, wrapping 255 -> 0;
  - NDEATH (the will) carries the bdSeq of the session's NBIRTH, and no message follows it
    until the next NBIRTH, whose bdSeq is the next value (a rebirth keeps the bdSeq);
  - DDATA metrics are metrics of that device's DBIRTH.
As the primary host HOST_ID it registers a will STATE offline and publishes a retained STATE
online when told to on switchyard-test/control ("online"); after REBIRTH_AFTER data messages
it sends one NCMD Node Control/Rebirth. On "command <json>" it encodes and publishes an NCMD or DCMD
({"topic": ..., "metrics": [{"name", "type" (a pysparkplug DataType name), "value"}]}; DATETIME values
in ms since the epoch), and it records every NDATA carrying "Command/Last ID" as
{"id", "accepted", "result"} in "command_answers". On "done" it prints one JSON verdict line and exits.

Prints "READY" once subscribed.

Store-and-forward: for every historical NDATA metric it records the metric's timestamp and
value, per name, in arrival order ("historical"); for every live NDATA (no historical metric) and
DDATA its newest metric timestamp and when it arrived, ms since the epoch on this machine's clock
("live"). After its own reconnection (the broker restarted) it publishes its STATE online again
(a restarted broker has lost the retained one) and forgets what it knew of each edge node's
session: the NDEATH may have been lost with the broker, so the next NBIRTH may carry any bdSeq.

Usage: sparkplug_host.py PORT HOST_ID REBIRTH_AFTER
"""
import datetime
import json
import sys
import time

import paho.mqtt.client as mqtt
from pysparkplug import DataType, DBirth, DCmd, DData, DDeath, Metric, NBirth, NCmd, NData, NDeath, Topic

PORT = int(sys.argv[1])
HOST_ID = sys.argv[2]
REBIRTH_AFTER = int(sys.argv[3])
CONTROL = "switchyard-test/control"
STATE_TOPIC = f"spBv1.0/STATE/{HOST_ID}"


def now_ms():
    return int(time.time() * 1000)


class Edge:
    def __init__(self):
        self.expected_seq = None  # None: no live session (before NBIRTH, after NDEATH)
        self.bdseq = None
        self.node_birth = None
        self.device_births = {}
        self.dead = False


verdict = {
    "errors": [], "counts": {}, "birth_bdseqs": [], "death_bdseqs": [], "wraps": 0,
    "birth_before_state": False, "rebirth_sent": False, "historical_metrics": 0,
    "node_metrics": {}, "device_metrics": {}, "command_answers": [], "commands_sent": 0,
}
verdict.update({"historical": {}, "live": [], "historical_arrivals": [], "reconnects": 0, "device_deaths": []})
edges = {}
state = {"online_published": False, "data_seen": 0, "connected_before": False}


def error(text):
    verdict["errors"].append(text)


def record_store_and_forward(payload):
    """Historical metrics by name (timestamp, value), or a live message's newest timestamp and arrival."""
    historical = [m for m in payload.metrics if m.is_historical]
    for m in historical:
        verdict["historical"].setdefault(m.name, []).append([m.timestamp, m.value])
    if historical:
        verdict["historical_arrivals"].append(now_ms())
    elif payload.metrics:
        verdict["live"].append([max(m.timestamp or 0 for m in payload.metrics), now_ms()])


def metric_value(metrics, name):
    for m in metrics:
        if m.name == name:
            return m
    return None


def check_seq(edge, seq, what):
    if edge.expected_seq is None:
        error(f"{what} seq {seq} outside a live session (no NBIRTH since start or since NDEATH)")
        return
    if seq != edge.expected_seq:
        error(f"{what} seq {seq}, expected {edge.expected_seq}")
    if seq == 0:
        verdict["wraps"] += 1
    edge.expected_seq = (seq + 1) % 256


def send_command(client, spec):
    """Encodes an NCMD/DCMD with pysparkplug (datatypes included) and publishes it."""
    metrics = []
    for m in spec["metrics"]:
        dtype = DataType[m["type"]]
        value = m["value"]
        if dtype == DataType.DATETIME:
            value = datetime.datetime.fromtimestamp(value / 1000, tz=datetime.timezone.utc)
        metrics.append(Metric(timestamp=now_ms(), name=m["name"], datatype=dtype, value=value))
    payload_type = DCmd if "/DCMD/" in spec["topic"] else NCmd
    payload = payload_type(timestamp=now_ms(), metrics=tuple(metrics))
    client.publish(spec["topic"], payload.encode(include_dtypes=True), qos=1)
    verdict["commands_sent"] += 1


def on_message(client, _userdata, msg):
    if msg.topic == CONTROL:
        command = msg.payload.decode()
        if command == "online":
            client.publish(STATE_TOPIC, json.dumps({"online": True, "timestamp": now_ms()}), qos=1, retain=True)
            state["online_published"] = True
        elif command.startswith("command "):
            send_command(client, json.loads(command[len("command "):]))
        elif command == "done":
            print(json.dumps(verdict), flush=True)
            client.disconnect()
        return
    try:
        topic = Topic.from_str(msg.topic)
    except Exception as e:  # noqa: BLE001
        error(f"topic {msg.topic}: {e}")
        return
    kind = str(topic.message_type)
    if kind in ("STATE", "NCMD", "DCMD"):
        return
    verdict["counts"][kind] = verdict["counts"].get(kind, 0) + 1
    key = f"{topic.group_id}/{topic.edge_node_id}"
    edge = edges.setdefault(key, Edge())
    try:
        if kind == "NBIRTH":
            p = NBirth.decode(msg.payload)
            if not state["online_published"]:
                verdict["birth_before_state"] = True
            bd = metric_value(p.metrics, "bdSeq")
            if bd is None:
                error("NBIRTH without bdSeq")
                return
            if metric_value(p.metrics, "Node Control/Rebirth") is None:
                error("NBIRTH without Node Control/Rebirth")
            if p.seq != 0:
                error(f"NBIRTH seq {p.seq}, expected 0")
            if edge.bdseq is not None:
                want = (edge.bdseq + 1) % 256 if edge.dead else edge.bdseq
                if bd.value != want:
                    error(f"NBIRTH bdSeq {bd.value}, expected {want} ({'new session' if edge.dead else 'rebirth'})")
            edge.bdseq = bd.value
            edge.dead = False
            edge.node_birth = p
            edge.device_births = {}
            edge.expected_seq = 1
            verdict["birth_bdseqs"].append(bd.value)
            verdict["node_metrics"] = {m.name: int(m.datatype) for m in p.metrics}
        elif kind == "NDEATH":
            p = NDeath.decode(msg.payload)
            bd = p.bd_seq_metric
            if bd.name != "bdSeq":
                error(f"NDEATH metric is {bd.name}, not bdSeq")
            if edge.bdseq is not None and bd.value != edge.bdseq:
                error(f"NDEATH bdSeq {bd.value}, expected the NBIRTH's {edge.bdseq}")
            verdict["death_bdseqs"].append(bd.value)
            edge.dead = True
            edge.expected_seq = None
        elif kind == "DBIRTH":
            p = DBirth.decode(msg.payload)
            check_seq(edge, p.seq, f"DBIRTH {topic.device_id}")
            edge.device_births[topic.device_id] = p
            verdict["device_metrics"][topic.device_id] = {m.name: int(m.datatype) for m in p.metrics}
        elif kind == "NDATA":
            p = NData.decode(msg.payload, birth=edge.node_birth)
            check_seq(edge, p.seq, "NDATA")
            names = {m.name for m in edge.node_birth.metrics} if edge.node_birth else set()
            record_store_and_forward(p)
            for m in p.metrics:
                if m.name not in names:
                    error(f"NDATA metric {m.name} not in the NBIRTH")
                if m.is_historical:
                    verdict["historical_metrics"] += 1
            last_id = metric_value(p.metrics, "Command/Last ID")
            if last_id is not None:
                accepted = metric_value(p.metrics, "Command/Last Accepted")
                result = metric_value(p.metrics, "Command/Last Result")
                verdict["command_answers"].append({
                    "id": last_id.value, "accepted": accepted.value if accepted else None,
                    "result": result.value if result else None})
            state["data_seen"] += 1
        elif kind == "DDATA":
            birth = edge.device_births.get(topic.device_id)
            if birth is None:
                error(f"DDATA for {topic.device_id} before its DBIRTH")
            p = DData.decode(msg.payload, birth=birth)
            check_seq(edge, p.seq, f"DDATA {topic.device_id}")
            names = {m.name for m in birth.metrics} if birth else set()
            for m in p.metrics:
                if m.name not in names:
                    error(f"DDATA {topic.device_id} metric {m.name} not in its DBIRTH")
            record_store_and_forward(p)
            state["data_seen"] += 1
        elif kind == "DDEATH":
            p = DDeath.decode(msg.payload)
            check_seq(edge, p.seq, f"DDEATH {topic.device_id}")
            if topic.device_id not in edge.device_births:
                error(f"DDEATH for {topic.device_id}, which has no DBIRTH in this birth")
            # Dead: its data is an error until a DBIRTH brings it back.
            edge.device_births.pop(topic.device_id, None)
            verdict["device_deaths"].append(topic.device_id)
        if state["data_seen"] >= REBIRTH_AFTER and not verdict["rebirth_sent"] and edge.node_birth is not None:
            rebirth = NCmd(timestamp=now_ms(), metrics=(
                Metric(timestamp=now_ms(), name="Node Control/Rebirth", datatype=DataType.BOOLEAN, value=True),))
            client.publish(f"spBv1.0/{topic.group_id}/NCMD/{topic.edge_node_id}", rebirth.encode(include_dtypes=True), qos=0)
            verdict["rebirth_sent"] = True
    except Exception as e:  # noqa: BLE001
        error(f"{kind} on {msg.topic} did not decode: {type(e).__name__}: {e}")


def on_connect(client, _userdata, _flags, rc):
    if rc != 0:
        print(f"connect refused: {rc}", file=sys.stderr, flush=True)
        sys.exit(2)
    if state["connected_before"]:
        verdict["reconnects"] += 1
        for edge in edges.values():
            edge.expected_seq = None
            edge.bdseq = None
            edge.dead = False
    state["connected_before"] = True
    client.subscribe([("spBv1.0/#", 1), (CONTROL, 1)])


def on_subscribe(client, _userdata, _mid, _granted):
    if state["online_published"]:
        # After a reconnection: the broker may have lost the retained STATE (the subscription is in place first).
        client.publish(STATE_TOPIC, json.dumps({"online": True, "timestamp": now_ms()}), qos=1, retain=True)
    print("READY", flush=True)


client = mqtt.Client(client_id=f"sparkplug-host-{HOST_ID}", clean_session=True)
client.will_set(STATE_TOPIC, json.dumps({"online": False, "timestamp": now_ms()}), qos=1, retain=True)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
# A restarted broker is back within a second or so: retry often rather than back off to minutes.
client.reconnect_delay_set(min_delay=0.2, max_delay=1)
client.connect("127.0.0.1", PORT, keepalive=30)
client.loop_forever()
