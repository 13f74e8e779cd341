"""The Lambda handlers' own time per invocation, as shipped (called by scripts/load).

Runs the webhook and worker bootstraps `sam build` made under a stand-in Lambda Runtime
API and a stand-in AWS on loopback that answers at once from what a deploy wrote (the
hook's and the version's items; PutItem and SendMessage accepted, the sent run kept for
the worker). A handler's own time is an invocation's time, from the event handed out
to the result posted, less the time the stand-in AWS spent in the calls it served. What
is left is hookflow's: the event parsed, the run, the record built, deflated, signed
and sent; the loopback round trip of each call is counted in (an upper bound).

Usage: python3 scripts/lambda_own_time.py WEBHOOK_BOOTSTRAP WORKER_BOOTSTRAP HOOKFLOW [N]
"""

import base64
import hashlib
import http.server
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

webhook_bin, worker_bin, hookflow = sys.argv[1:4]
count = int(sys.argv[4]) if len(sys.argv) > 4 else 300
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The bench workflows, deployed by `hookflow serve` to an embedded store: its
# records are the items' `record`, as `hookflow deploy --table` writes them.
data, workflows = tempfile.mkdtemp(), tempfile.mkdtemp()
for name in ("sync.json", "async.json"):
    with open(os.path.join(root, "bench", name)) as src, \
            open(os.path.join(workflows, name), "w") as dst:
        dst.write(src.read())
serve = subprocess.Popen([hookflow, "serve", "--workflows", workflows, "--data", data,
                          "--addr", "127.0.0.1:0", "--workers", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
serve.stdout.readline()  # its banner: deployed and listening
serve.terminate()
serve.wait()
db = sqlite3.connect(os.path.join(data, "hookflow.db"))
items = {}
for key, version, hook, record in db.execute(
        "SELECT key, version, hook_id, record FROM workflow_versions"):
    fields = {"record": {"S": record}, "workflowKey": {"S": key}, "version": {"N": str(version)}}
    items[(f"HOOK#{hook}", "HOOK")] = {"pk": {"S": f"HOOK#{hook}"}, "sk": {"S": "HOOK"}, **fields}
    items[(f"WF#{key}", f"V#{version:010d}")] = {
        "pk": {"S": f"WF#{key}"}, "sk": {"S": f"V#{version:010d}"}, **fields}

sent = []            # SendMessage bodies: the runs the worker gets
aws_seconds = [0.0]  # time the stand-in AWS spent answering, all calls
aws_calls = [0]


class Aws(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go in two writes: without this, Nagle's algorithm and the
    # client's delayed ACK hold the second for 40 ms.
    disable_nagle_algorithm = True

    def parse_request(self):
        # Right after the request line is read: python's parsing is the stand-in's.
        self.started = time.perf_counter()
        return super().parse_request()

    def do_POST(self):
        started = self.started
        body = json.loads(self.rfile.read(int(self.headers["content-length"])) or b"{}")
        target = self.headers.get("x-amz-target", "")
        if target.endswith(".GetItem"):
            key = body["Key"]
            found = items.get((key["pk"]["S"], key["sk"]["S"]))
            out = {"Item": found} if found else {}
        elif target.endswith(".PutItem"):
            out = {}
        elif target.endswith(".SendMessage"):
            sent.append(body["MessageBody"])
            digest = hashlib.md5(body["MessageBody"].encode()).hexdigest()
            out = {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": digest}
        else:
            print(f"the stand-in AWS does not answer {target!r}", file=sys.stderr)
            self.send_response(400)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        reply = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
        aws_seconds[0] += time.perf_counter() - started
        aws_calls[0] += 1

    def log_message(self, *args):
        pass


pending = []          # events to hand out
generation = [0]      # the bootstrap being measured
handed = {}           # request id -> when its event was handed out
took = []             # per invocation: (wall seconds, AWS seconds, AWS calls)
results = {}
lock = threading.Condition()


class Runtime(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def parse_request(self):
        self.started = time.perf_counter()
        return super().parse_request()

    def do_GET(self):
        with lock:
            # A poll of a bootstrap killed before (its connection outlives it)
            # takes no event of the next.
            mine = generation[0]
            while not pending or generation[0] != mine:
                if generation[0] != mine:
                    self.close_connection = True
                    return
                lock.wait()
            event = pending.pop(0)
            rid = str(uuid.uuid4())
        body = json.dumps(event).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", rid)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                         "arn:aws:lambda:us-east-1:123456789012:function:own-time")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        with lock:
            handed[rid] = (time.perf_counter(), aws_seconds[0], aws_calls[0])
        self.wfile.write(body)

    def do_POST(self):
        ended = self.started
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        rid = self.path.split("/")[-2]
        with lock:
            start, aws_before, calls_before = handed.pop(rid)
            took.append((ended - start, aws_seconds[0] - aws_before, aws_calls[0] - calls_before))
            results[rid] = (self.path.endswith("/response"), body)
            lock.notify_all()
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Quiet(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a bootstrap killed between invocations resets its connections


def serve(handler):
    server = Quiet(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


aws_port, runtime_port = serve(Aws), serve(Runtime)
env = dict(os.environ)
env.update({
    "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{runtime_port}",
    "AWS_LAMBDA_FUNCTION_NAME": "own-time", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_STREAM_NAME": "s",
    "AWS_LAMBDA_LOG_GROUP_NAME": "g", "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "own-time", "AWS_SECRET_ACCESS_KEY": "own-time",
    "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{aws_port}",
    "HOOKFLOW_TABLE": "own-time",
    "HOOKFLOW_QUEUE_URL": f"http://127.0.0.1:{aws_port}/123456789012/own-time",
    "RUST_LOG": "warn",
})


def api_event(hook, body):
    return {
        "version": "2.0", "routeKey": "$default",
        "rawPath": f"/api/webhook:trigger/{hook}", "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "own", "domainName": "own.example",
            "domainPrefix": "own", "requestId": str(uuid.uuid4()), "routeKey": "$default",
            "stage": "$default", "time": "05/Dec/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": f"/api/webhook:trigger/{hook}",
                     "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "own"}},
        "isBase64Encoded": False, "body": json.dumps(body),
    }


def sqs_event(run_body):
    return {"Records": [{
        "messageId": str(uuid.uuid4()), "receiptHandle": "r", "body": run_body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0",
                       "SenderId": "own", "ApproximateFirstReceiveTimestamp": "0"},
        "messageAttributes": {}, "md5OfBody": hashlib.md5(run_body.encode()).hexdigest(),
        "eventSource": "aws:sqs", "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:own-time"}]}


def run(binary, events):
    """Hands out one warm-up event and then `events`; returns the own times (us)
    and AWS calls of all but the warm-up."""
    del took[:]
    with lock:
        generation[0] += 1
        lock.notify_all()
    log = open(os.path.join(data, os.path.basename(os.path.dirname(binary)) + ".log"), "w")
    proc = subprocess.Popen([binary], env=env, stdout=log, stderr=log)
    try:
        for event in events:
            with lock:
                pending.append(event)
                lock.notify_all()
                before = len(took)
                while len(took) == before:
                    if not lock.wait(10):
                        sys.exit(f"{binary} never answered: see {log.name}")
        for ok, body in results.values():
            if not ok:
                sys.exit(f"{binary} failed an invocation: {body[:300]!r}")
        results.clear()
        warm = took[1:]
        own = [max(wall - aws, 0) * 1e6 for wall, aws, _ in warm]
        return own, [calls for _, _, calls in warm]
    finally:
        proc.kill()
        proc.wait()


def report(name, own, calls):
    own = sorted(own)
    p99 = own[min(len(own) - 1, int(len(own) * 0.99))]
    print(f"{name:<36} own time median {statistics.median(own):7.0f} us  p99 {p99:7.0f} us"
          f"  ({statistics.mean(calls):.0f} AWS call(s) each, not counted)")


paid = {"status": "paid", "order": {"id": "A-1"}}
own, calls = run(webhook_bin, [api_event("bench-sync", paid) for _ in range(count + 1)])
report("Lambda webhook, sync run", own, calls)
del sent[:]
own, calls = run(webhook_bin, [api_event("bench-async", paid) for _ in range(count + 1)])
report("Lambda webhook, async accept", own, calls)
# Each run the webhook sent, once: a first delivery, as most are.
own, calls = run(worker_bin, [sqs_event(body) for body in list(sent)])
report("Lambda worker, an async run", own, calls)
