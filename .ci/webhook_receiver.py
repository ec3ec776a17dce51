"""A webhook receiver that checks each delivery with the Standard Webhooks reference library
(PyPI `standardwebhooks`): 204 when it verifies, 401 when not. Writes its port to PORT_FILE,
then one line per delivery to stdout: `verified <type> <webhook-id>` or `refused <reason>`.

    python webhook_receiver.py SECRET PORT_FILE
"""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET, PORT_FILE = sys.argv[1], sys.argv[2]
VERIFIER = Webhook(SECRET)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {key.lower(): value for key, value in self.headers.items()}
        try:
            event = VERIFIER.verify(body, headers)
        except WebhookVerificationError as e:
            print(f"refused {e}", flush=True)
            self.send_response(401)
        else:
            print(f"verified {event['type']} {headers['webhook-id']}", flush=True)
            self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Receiver)
with open(PORT_FILE, "w", encoding="ascii") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
