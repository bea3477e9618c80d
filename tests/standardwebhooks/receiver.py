"""A webhook receiver that checks every delivery with the `standardwebhooks` package, the
reference implementation of the Standard Webhooks specification, independently of our Rust code.

Prints its port on the first line of stdout, then serves on 127.0.0.1:
  POST /_secrets   JSON list of `whsec_…` secrets to verify with (replaces the list)
  GET  /_results   JSON list, one entry per delivery: webhook_id, type, and for each secret
                   (in list order) true or the verifier's error
  POST anything    a delivery: verified with every secret; 200 if one verifies, else 401
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

LOCK = threading.Lock()
SECRETS = []
RESULTS = []


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path == "/_secrets":
            with LOCK:
                SECRETS[:] = json.loads(body)
            self.answer(204, b"")
            return
        headers = dict(self.headers.items())
        with LOCK:
            secrets = list(SECRETS)
        verdicts = []
        event_type = None
        for secret in secrets:
            try:
                payload = Webhook(secret).verify(body, headers)
                event_type = payload.get("type")
                verdicts.append(True)
            except Exception as error:  # the verifier's refusal, recorded for the test to show
                verdicts.append(f"{type(error).__name__}: {error}")
        with LOCK:
            RESULTS.append(
                {"webhook_id": headers.get("webhook-id"), "type": event_type, "verdicts": verdicts}
            )
        self.answer(200 if True in verdicts else 401, b"")

    def do_GET(self):
        if self.path != "/_results":
            self.answer(404, b"")
            return
        with LOCK:
            body = json.dumps(RESULTS).encode()
        self.answer(200, body, "application/json")

    def answer(self, status, body, content_type="text/plain"):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    # Exit with the test that started us: it closes our stdin.
    threading.Thread(target=lambda: (sys.stdin.read(), server.shutdown()), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
