"""What the HTTP stand-ins (VTN, price feed) share: a quiet JSON request handler."""
import json
import sys
from http.server import BaseHTTPRequestHandler


class JSONHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    verbose = False
    log_prefix = "standin"

    def log_message(self, fmt, *args):
        # Off unless --verbose: tests do not drain stderr, and a full pipe would block every handler.
        if self.verbose:
            sys.stderr.write(self.log_prefix + ": " + (fmt % args) + "\n")

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
