#!/usr/bin/env python3
"""A local stand-in for an OpenADR 3.0.1 VTN, for the Signals tests and the `serve --openadr` CLI tests.

Serves JSON shaped by the OpenADR 3.0.1 schemas (program, event, interval,
intervalPeriod, valuesMap, eventPayloadDescriptor, report) on 127.0.0.1 and
prints `READY <port>` once listening (port 0 = any free port).

  POST /auth/token            OAuth2 client credentials (Basic or body client auth)
  GET  /openadr3/3.0.1/programs, /events   bearer token required (skip/limit paging)
  POST /openadr3/3.0.1/reports             bearer token required; recorded
  GET  /prices                 a JSON price series (values change on every request)
  Test-only (no auth):
  GET  /_test/reports          the reports POSTed so far
  GET  /_test/stats            counts of token requests and resource requests, and the
                               names of the reports refused while failing
  POST /_test/revoke           forget every issued token (the next call gets 401)
  POST /_test/events           add an event (an OpenADR 3 event object) to the ones served
  POST /_test/fail_reports     {"fail": true|false}: answer POST /reports with 503 (the VTN is down)

Options: --client-id ID --client-secret SECRET --expires-in SECONDS --verbose (log requests on stderr)
"""
import argparse
import base64
import json
import os
import signal
import sys
import threading
import urllib.parse
from http.server import ThreadingHTTPServer

from standin_http import JSONHandler

PREFIX = "/openadr3/3.0.1"

PROGRAMS = [
    {
        "id": "prog-ercot-dr",
        "objectType": "PROGRAM",
        "programName": "ERCOT-ERS",
        "programLongName": "Emergency Response Service",
        "programType": "DEMAND_RESPONSE",
        "payloadDescriptors": [
            {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "PRICE", "units": "KWH", "currency": "USD"}
        ],
    },
    {
        "id": "prog-tariff",
        "objectType": "PROGRAM",
        "programName": "RTP-TARIFF",
        "programType": "PRICING_TARIFF",
        "intervalPeriod": {"start": "2025-01-01T00:00:00Z", "duration": "P1Y"},
    },
]

EVENTS = [
    {   # two consecutive one-hour import caps from the event's intervalPeriod
        "id": "evt-cap",
        "objectType": "EVENT",
        "programID": "prog-ercot-dr",
        "eventName": "EEA1 import limit",
        "priority": 0,
        "payloadDescriptors": [
            {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}
        ],
        "intervalPeriod": {"start": "2025-08-14T20:00:00Z", "duration": "PT1H"},
        "intervals": [
            {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [12000]}]},
            {"id": 1, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [15000]}]},
        ],
    },
    {   # a paid reduction: PRICE in $/kWh (from the program's descriptor), own intervalPeriod
        "id": "evt-incentive",
        "objectType": "EVENT",
        "programID": "prog-ercot-dr",
        "eventName": "ERS deployment",
        "intervals": [
            {"id": 7, "intervalPeriod": {"start": "2025-08-14T16:30:00-05:00", "duration": "PT1H30M"},
             "payloads": [{"type": "PRICE", "values": [0.5]}]},
        ],
    },
    {   # a power limit in MW, and a SIMPLE level, for one day
        "id": "evt-simple",
        "objectType": "EVENT",
        "programID": "prog-ercot-dr",
        "eventName": "grid emergency",
        "payloadDescriptors": [
            {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "CONSUMPTION_POWER_LIMIT", "units": "MW"}
        ],
        "intervalPeriod": {"start": "2025-08-15T00:00:00Z", "duration": "P1D"},
        "intervals": [
            {"id": 0, "payloads": [
                {"type": "CONSUMPTION_POWER_LIMIT", "values": [10]},
                {"type": "SIMPLE", "values": [2]},
                {"type": "ALERT_GRID_EMERGENCY", "values": ["conserve"]},
            ]},
        ],
    },
    {   # a tariff price: $/kWh for the tariff program
        "id": "evt-tariff",
        "objectType": "EVENT",
        "programID": "prog-tariff",
        "eventName": "hourly price",
        "intervalPeriod": {"start": "2025-08-14T00:00:00Z", "duration": "PT1H"},
        "intervals": [{"id": 0, "payloads": [{"type": "PRICE", "values": [0.042]}]}],
    },
]


class State:
    def __init__(self, client_id, client_secret, expires_in):
        self.lock = threading.Lock()
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.tokens = set()
        self.token_requests = 0
        self.resource_requests = 0
        self.price_requests = 0
        self.reports = []
        self.auth_methods = []
        self.events = list(EVENTS)
        self.fail_reports = False
        self.refused_reports = []


class Handler(JSONHandler):
    state: State = None
    log_prefix = "vtn"

    def problem(self, status, title, detail):
        self.send_json(status, {"type": "about:blank", "title": title, "status": status, "detail": detail})

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def bearer_ok(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            self.problem(401, "Unauthorized", "missing bearer token")
            return False
        with self.state.lock:
            ok = auth[len("Bearer "):] in self.state.tokens
        if not ok:
            self.problem(401, "Unauthorized", "unknown or expired token")
        return ok

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        st = self.state
        if url.path == "/_test/reports":
            with st.lock:
                return self.send_json(200, st.reports)
        if url.path == "/_test/stats":
            with st.lock:
                return self.send_json(200, {
                    "token_requests": st.token_requests,
                    "resource_requests": st.resource_requests,
                    "price_requests": st.price_requests,
                    "auth_methods": st.auth_methods,
                    "refused_reports": st.refused_reports,
                })
        if url.path == "/prices":
            with st.lock:
                st.price_requests += 1
                n = st.price_requests
            points = [{"timestamp": "2025-08-14T%02d:00:00-05:00" % h, "price_usd_per_mwh": 20.0 + n + h}
                      for h in range(0, 4)]
            return self.send_json(200, {"interval": "PT1H", "points": points})
        if url.path in (PREFIX + "/programs", PREFIX + "/events"):
            if not self.bearer_ok():
                return
            with st.lock:
                st.resource_requests += 1
            with st.lock:
                items = PROGRAMS if url.path.endswith("/programs") else list(st.events)
            if "programID" in query:
                items = [e for e in items if e.get("programID") == query["programID"][0]]
            skip = int(query.get("skip", ["0"])[0])
            limit = int(query.get("limit", ["50"])[0])
            if limit > 50 or limit < 0 or skip < 0:
                return self.problem(400, "Bad Request", "limit must be 0…50 and skip ≥ 0")
            return self.send_json(200, items[skip:skip + limit])
        self.problem(404, "Not Found", url.path)

    def do_POST(self):
        url = urllib.parse.urlparse(self.path)
        st = self.state
        body = self.read_body()
        if url.path == "/_test/revoke":
            with st.lock:
                st.tokens.clear()
            return self.send_json(200, {"revoked": True})
        if url.path == "/_test/events":
            event = json.loads(body)
            with st.lock:
                st.events.append(event)
            return self.send_json(201, event)
        if url.path == "/_test/fail_reports":
            with st.lock:
                st.fail_reports = bool(json.loads(body).get("fail"))
            return self.send_json(200, {"fail": st.fail_reports})
        if url.path == "/auth/token":
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
                return self.send_json(400, {"error": "invalid_request", "error_description": "form encoding required"})
            form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
            if form.get("grant_type") != "client_credentials":
                return self.send_json(400, {"error": "unsupported_grant_type"})
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                raw = base64.b64decode(auth[6:]).decode()
                cid, _, secret = raw.partition(":")
                cid, secret = urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(secret)
                method = "basic"
            else:
                cid, secret = form.get("client_id"), form.get("client_secret")
                method = "body"
            with st.lock:
                st.token_requests += 1
                st.auth_methods.append(method)
                if cid != st.client_id or secret != st.client_secret:
                    return self.send_json(401, {"error": "invalid_client", "error_description": "unknown client or wrong secret"})
                token = "tok-%d" % st.token_requests
                st.tokens.add(token)
            return self.send_json(200, {"access_token": token, "token_type": "Bearer", "expires_in": st.expires_in,
                                        "scope": form.get("scope", "read_all write_reports")})
        if url.path == PREFIX + "/reports":
            if not self.bearer_ok():
                return
            try:
                report = json.loads(body)
            except ValueError:
                return self.problem(400, "Bad Request", "body is not JSON")
            missing = [k for k in ("programID", "eventID", "clientName", "resources") if k not in report]
            bad_resources = [r for r in report.get("resources", [])
                             if "resourceName" not in r or "intervals" not in r
                             or any("id" not in i or "payloads" not in i for i in r["intervals"])]
            if missing or bad_resources:
                return self.problem(400, "Bad Request", "report misses %s" % (missing or "resource fields"))
            with st.lock:
                failing = st.fail_reports
                if failing:
                    st.refused_reports.append(report.get("reportName", ""))
            if failing:
                return self.problem(503, "Service Unavailable", "the VTN is down for maintenance")
            with st.lock:
                st.resource_requests += 1
                report = dict(report, id="report-%d" % (len(st.reports) + 1), objectType="REPORT")
                st.reports.append(report)
            return self.send_json(201, report)
        self.problem(404, "Not Found", url.path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--client-id", default="ven-switchyard")
    ap.add_argument("--client-secret", default="s3cret&stuff")
    ap.add_argument("--expires-in", type=int, default=3600)
    ap.add_argument("--verbose", action="store_true", help="log every request on stderr")
    args = ap.parse_args()
    Handler.verbose = args.verbose
    # Exit promptly on SIGTERM even if the parent left SIGTERM ignored.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    Handler.state = State(args.client_id, args.client_secret, args.expires_in)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("READY %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
