#!/usr/bin/env python3
"""A local HTTP JSON price endpoint, for `serve --prices-url` tests (stdlib only).

Prints `READY <port>` once listening on 127.0.0.1 (any free port).

  GET  /prices          the series of docs/signals.md ("JSON (files and HTTP bodies)"):
                        hourly points for the day of --day (UTC), all at the current price
  GET  /hashprice       the same layout in $/PH/day (`hashprice_usd_per_ph_day`), at the current hashprice
  Test-only:
  POST /_test/mode      {"mode": "ok" | "error" | "garbage", "price": 555.5, "hashprice": 48.5}
                        ok: serve the series; error: HTTP 500; garbage: a series whose first
                        price is not a number
  GET  /_test/stats     {"requests": n, "mode": ..., "price": ...}

Options: --price USD_PER_MWH (default 777.25), --day YYYY-MM-DD (default 2025-08-14), --verbose
"""
import argparse
import json
import os
import signal
import sys
import threading
from http.server import ThreadingHTTPServer

from standin_http import JSONHandler


class State:
    def __init__(self, price, day):
        self.lock = threading.Lock()
        self.price = price
        self.day = day
        self.mode = "ok"
        self.requests = 0
        self.hashprice = 50.0


class Handler(JSONHandler):
    state: State = None
    log_prefix = "prices"

    def do_GET(self):
        st = self.state
        if self.path == "/_test/stats":
            with st.lock:
                return self.send_json(200, {"requests": st.requests, "mode": st.mode, "price": st.price})
        series = {"/prices": ("price_usd_per_mwh", "price"), "/hashprice": ("hashprice_usd_per_ph_day", "hashprice")}
        if self.path in series:
            key, field = series[self.path]
            with st.lock:
                st.requests += 1
                mode, value, day = st.mode, getattr(st, field), st.day
            if mode == "error":
                return self.send_json(500, {"title": "Internal Server Error", "status": 500})
            points = [{"timestamp": "%sT%02d:00:00Z" % (day, h), key: value} for h in range(24)]
            if mode == "garbage":
                points[0][key] = "abc"
            return self.send_json(200, {"interval": "PT1H", "points": points})
        self.send_json(404, {"title": "Not Found", "status": 404})

    def do_POST(self):
        st = self.state
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}")
        if self.path == "/_test/mode":
            with st.lock:
                st.mode = body.get("mode", st.mode)
                st.price = body.get("price", st.price)
                st.hashprice = body.get("hashprice", st.hashprice)
                return self.send_json(200, {"mode": st.mode, "price": st.price})
        self.send_json(404, {"title": "Not Found", "status": 404})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--price", type=float, default=777.25)
    ap.add_argument("--day", default="2025-08-14")
    ap.add_argument("--verbose", action="store_true", help="log every request on stderr")
    args = ap.parse_args()
    Handler.verbose = args.verbose
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    Handler.state = State(args.price, args.day)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("READY %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
