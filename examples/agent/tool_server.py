# The customer's side of book_appointment: checks the Standard Webhooks signature,
# books once per webhook-id (a retried call gets the same booking), answers VAPI-style.
import base64, hashlib, hmac, json, os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

KEY = base64.b64decode(os.environ["BOOKING_WEBHOOK_SECRET"].removeprefix("whsec_"))
bookings = {}  # webhook-id -> booking reference

class Tools(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        wid, ts = self.headers.get("webhook-id", ""), self.headers.get("webhook-timestamp", "0")
        mac = hmac.new(KEY, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(mac).decode()
        signatures = self.headers.get("webhook-signature", "").split()
        if abs(time.time() - int(ts)) > 300 or not any(hmac.compare_digest(s, expected) for s in signatures):
            return self.send_error(401, "bad signature")
        call = json.loads(body)["message"]["toolCallList"][0]
        ref = bookings.setdefault(wid, f"B-{len(bookings) + 1}")
        result = f"Booked: {call['arguments']['exam']}, reference {ref}"
        answer = json.dumps({"results": [{"toolCallId": call["id"], "result": result}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(answer)

HTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8787), Tools).serve_forever()
