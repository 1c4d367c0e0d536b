#!/usr/bin/env python3
"""A stand-in HTTP server for CLI rendering tests: answers GET <path> with the JSON given for it.

Usage: json_standin.py /v1/status=status.json /v1/devices=devices.json
Prints `READY <port>` once listening on 127.0.0.1 (a free port). Any other path: 404 with {"error": …}.
"""
import http.server
import sys

routes = {}
for arg in sys.argv[1:]:
    path, _, file = arg.partition("=")
    with open(file, "rb") as f:
        routes[path] = f.read()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = routes.get(self.path.split("?")[0])
        code = 200 if body is not None else 404
        body = body if body is not None else b'{"error": "not found"}'
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(f"READY {server.server_address[1]}", flush=True)
server.serve_forever()
