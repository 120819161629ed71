#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for AWS API calls, for tagguard's integration tests.

It sits between an AWS SDK client (endpoint_url = this proxy) and the moto server, forwards every
request unchanged, and on demand answers instead of moto with the faults a real AWS estate
produces: throttling and internal errors in each service's own wire format (so the SDK parses the
real error code and applies its real retry policy), connections reset after the request was sent,
and requests that are never answered.

    python tests/fault_proxy.py --upstream http://127.0.0.1:MOTOPORT [--port 0] [--seed N]
        [--throttle P] [--error500 P] [--only-service ec2,s3]
        [--reset-region eu-west-1] [--hang-region eu-west-1] [--hang-seconds S] [--verbose]

Once it is ready it prints exactly one line, `listening on http://127.0.0.1:PORT`, then serves
until killed. Each request's region and service are read from its SigV4 credential scope
(`Authorization: ... Credential=AKID/DATE/REGION/SERVICE/aws4_request`, or the `X-Amz-Credential`
query parameter of a presigned URL). Requests to moto's own `/moto-api` are never faulted.

Control endpoint, served by the proxy itself and never forwarded:

    GET  /__faults          counters: {"forwarded": {svc: n}, "throttled": {svc: n},
                            "error500": {svc: n}, "reset": n, "hung": n, ...}
    POST /__faults/reset    zero the counters
    GET  /__faults/config   the rules in force
    POST /__faults/config   replace the rules: {"throttle": 0.3, "error500": 0.05,
                            "reset_regions": [...], "hang_regions": [...],
                            "only_services": [...], "hang_seconds": 0, "seed": 7,
                            "answers": [...]}
                            (keys left out take their defaults: no fault)

Answers stand in for APIs moto does not emulate (Cost Explorer's ListCostAllocationTags, say)
and fail chosen calls: each is {"target": "AWSInsightsIndexService.ListCostAllocationTags",
"body_contains": "...", "status": 200, "body": {...}, "error": "AccessDeniedException",
"message": "...", "times": N}. A request whose X-Amz-Target equals `target` and whose body
contains `body_contains` (when given) is answered by the first matching answer: with `error`, an
awsJson error of that code and `status` (default 400); else `body` as JSON with `status`
(default 200). With `fail_each` (a FailureInfo, such as {"StatusCode": 400, "ErrorCode":
"InvalidParameterException", "ErrorMessage": "..."}), a tagging API write is answered as
the Resource Groups Tagging API answers ARNs it could not write: every ARN of the request's
`ResourceARNList` in `FailedResourcesMap` with that failure. `times` (default unlimited) bounds
how often it answers; answers are counted under "answered" by target.

Standard library only, so that any python3 can run it.
"""

import argparse
import base64
import http.client
import http.server
import json
import random
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid

# --------------------------------------------------------------------------------------------
# Who is being called

# `Credential=AKID/20240101/eu-west-1/ec2/aws4_request` in a SigV4 Authorization header.
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")

# Unsigned awsJson calls still name their service in X-Amz-Target: a fallback only.
_TARGET_PREFIXES = {
    "AmazonEC2ContainerServiceV20141113": "ecs",
    "ResourceGroupsTaggingAPI_20170126": "tagging",
    "AWSOrganizationsV20161128": "organizations",
}


def identify(headers, path):
    """(region, service) of a request, from its SigV4 credential scope; "unknown" if unsigned."""
    auth = headers.get("Authorization") or ""
    m = _CREDENTIAL.search(auth)
    if m:
        return m.group(3), m.group(4)
    query = urllib.parse.urlsplit(path).query
    if query:
        cred = urllib.parse.parse_qs(query).get("X-Amz-Credential")
        if cred:
            parts = cred[0].split("/")
            if len(parts) >= 5 and parts[-1] == "aws4_request":
                return parts[-3], parts[-2]
    target = headers.get("X-Amz-Target") or ""
    prefix = target.split(".", 1)[0]
    return "unknown", _TARGET_PREFIXES.get(prefix, "unknown")


# --------------------------------------------------------------------------------------------
# What AWS answers, per protocol

# The wire protocol of each service, under the name it signs with.
PROTOCOL = {
    "ec2": "ec2",
    "rds": "query",
    "sts": "query",
    "iam": "query",
    "s3": "restxml",
    "lambda": "restjson",
    "ecs": "json",
    "tagging": "json",
    "organizations": "json",
}

# awsQuery error bodies carry the service's API namespace.
QUERY_XMLNS = {
    "rds": "https://rds.amazonaws.com/doc/2014-10-31/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
}

# The throttling error each service sends: (code, message) for the XML and restJson protocols,
# whose message element is fixed, (code, message key, message) for awsJson, where the key's case
# differs per service. Every code here is one the SDKs classify as throttling (aws-runtime's
# THROTTLING_ERRORS, botocore's retry config), so the fault exercises the real retry path.
THROTTLE = {
    "ec2": ("RequestLimitExceeded", "Request limit exceeded."),
    "query": ("Throttling", "Rate exceeded"),
    "s3": ("SlowDown", "Please reduce your request rate."),
    "lambda": ("TooManyRequestsException", "Rate exceeded"),
    "ecs": ("ThrottlingException", "message", "Rate exceeded"),
    "tagging": ("ThrottledException", "Message", "Rate exceeded"),
    "organizations": (
        "TooManyRequestsException",
        "Message",
        "You have sent too many requests in too short a period of time. The quota helps protect "
        "against denial-of-service attacks. Try again later.",
    ),
    "json": ("ThrottlingException", "message", "Rate exceeded"),
}

# The same for the service's internal error (HTTP 500): the modeled fault shape where there is one
# (lambda ServiceException, ecs ServerException, tagging InternalServiceException, organizations
# ServiceException), so the SDK builds the typed error.
INTERNAL = {
    "ec2": ("InternalError", "An internal error has occurred."),
    "query": (
        "InternalFailure",
        "The request processing has failed because of an unknown error, exception or failure.",
    ),
    "s3": ("InternalError", "We encountered an internal error. Please try again."),
    "lambda": ("ServiceException", "The Lambda service encountered an internal error."),
    "ecs": ("ServerException", "message", "Service Unavailable. Please try again later."),
    "tagging": (
        "InternalServiceException",
        "Message",
        "The request processing failed because of an unknown error, exception, or failure.",
    ),
    "organizations": (
        "ServiceException",
        "Message",
        "AWS Organizations can't complete your request because of an internal service error. "
        "Try again later.",
    ),
    "json": ("InternalServerException", "message", "Internal server error"),
}


def _cbor_text(s):
    data = s.encode()
    n = len(data)
    if n < 24:
        return bytes([0x60 | n]) + data
    if n < 256:
        return bytes([0x78, n]) + data
    return bytes([0x79]) + struct.pack(">H", n) + data


def _cbor_map(pairs):
    """A definite-length CBOR map of text strings: all an rpcv2Cbor error body needs."""
    out = bytearray([0xA0 | len(pairs)])
    for k, v in pairs:
        out += _cbor_text(k) + _cbor_text(v)
    return bytes(out)


def _guess_protocol(service, headers, body):
    """The protocol of a service this proxy has no table entry for, from the request's shape."""
    if service in PROTOCOL:
        return PROTOCOL[service]
    if headers.get("X-Amz-Target"):
        return "json"
    ctype = headers.get("Content-Type") or ""
    if "x-www-form-urlencoded" in ctype and body.startswith(b"Action="):
        return "query"
    return "restjson"


def fault_response(kind, service, headers, body):
    """(status, [(header, value)], body bytes) of a `kind` ("throttle" or "error500") answer for a
    call to `service`, byte for byte in the shape AWS sends."""
    throttle = kind == "throttle"
    proto = _guess_protocol(service, headers, body)
    rid = str(uuid.uuid4())
    table = THROTTLE if throttle else INTERNAL

    if proto == "ec2":
        code, msg = table["ec2"]
        payload = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code}</Code><Message>{msg}</Message></Error>"
            f"</Errors><RequestID>{rid}</RequestID></Response>"
        )
        # EC2 throttles with 503 (not 400) and fails with 500.
        hdrs = [("Content-Type", "text/xml;charset=UTF-8")]
        return (503 if throttle else 500), hdrs, payload.encode()

    if proto == "query":
        code, msg = table["query"]
        xmlns = QUERY_XMLNS.get(service, f"https://{service}.amazonaws.com/doc/")
        fault_type = "Sender" if throttle else "Receiver"
        payload = (
            f'<ErrorResponse xmlns="{xmlns}"><Error><Type>{fault_type}</Type><Code>{code}</Code>'
            f"<Message>{msg}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>"
        )
        hdrs = [("Content-Type", "text/xml"), ("x-amzn-RequestId", rid)]
        return (400 if throttle else 500), hdrs, payload.encode()

    if proto == "restxml":
        code, msg = table["s3"]
        # S3 request ids are 16 hex digits, host ids a long base64 token.
        s3_rid = uuid.uuid4().hex[:16].upper()
        host_id = base64.b64encode(uuid.uuid4().bytes * 3).decode()
        payload = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{msg}</Message>"
            f"<RequestId>{s3_rid}</RequestId><HostId>{host_id}</HostId></Error>"
        )
        hdrs = [
            ("Content-Type", "application/xml"),
            ("x-amz-request-id", s3_rid),
            ("x-amz-id-2", host_id),
        ]
        return (503 if throttle else 500), hdrs, payload.encode()

    if proto == "restjson":
        if service == "lambda":
            code, msg = table["lambda"]
            if throttle:
                fields = {"Reason": "CallerRateLimitExceeded", "Type": "User", "message": msg}
            else:
                fields = {"Type": "Service", "Message": msg}
            status = 429 if throttle else 500
        else:
            code, _, msg = table["json"]
            fields = {"message": msg}
            status = 429 if throttle else 500
        # restJson1 names the error in x-amzn-ErrorType; the SDKs read it before the body.
        hdrs = [
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", rid),
            ("x-amzn-ErrorType", code),
        ]
        return status, hdrs, json.dumps(fields, separators=(",", ":")).encode()

    # awsJson1_0 / awsJson1_1: the code is the body's __type. A client speaking rpcv2Cbor (recent
    # botocore for the tagging API) gets the same error as a CBOR map, since it cannot read JSON.
    code, field, msg = table.get(service, table["json"])
    status = 400 if throttle else 500
    if (headers.get("smithy-protocol") or "").lower() == "rpc-v2-cbor":
        hdrs = [
            ("Content-Type", "application/cbor"),
            ("smithy-protocol", "rpc-v2-cbor"),
            ("x-amzn-RequestId", rid),
        ]
        return status, hdrs, _cbor_map([("__type", code), (field, msg)])
    version = "1.0" if (headers.get("Content-Type") or "").endswith("1.0") else "1.1"
    hdrs = [("Content-Type", f"application/x-amz-json-{version}"), ("x-amzn-RequestId", rid)]
    payload = json.dumps({"__type": code, field: msg}, separators=(",", ":"))
    return status, hdrs, payload.encode()


# --------------------------------------------------------------------------------------------
# Rules and counters, shared by all handler threads


class Rules:
    """The faults in force. Replaced as a whole (never mutated), so a handler reading
    `state.rules` once sees one consistent set."""

    def __init__(self, throttle=0.0, error500=0.0, reset_regions=(), hang_regions=(),
                 only_services=(), hang_seconds=0.0, answers=()):
        for name, p in (("throttle", throttle), ("error500", error500)):
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], not {p}")
        if float(throttle) + float(error500) > 1.0:
            raise ValueError("throttle + error500 must not exceed 1")
        if float(hang_seconds) < 0:
            raise ValueError("hang_seconds must be >= 0")
        self.throttle = float(throttle)
        self.error500 = float(error500)
        self.reset_regions = frozenset(reset_regions)
        self.hang_regions = frozenset(hang_regions)
        self.only_services = frozenset(only_services)
        self.hang_seconds = float(hang_seconds)
        self.answers = [Answer(a) for a in answers]

    KEYS = ("throttle", "error500", "reset_regions", "hang_regions", "only_services",
            "hang_seconds", "answers")

    @classmethod
    def from_json(cls, obj):
        if not isinstance(obj, dict):
            raise ValueError("the config must be a JSON object")
        unknown = set(obj) - set(cls.KEYS) - {"seed"}
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        lists = {}
        for key in ("reset_regions", "hang_regions", "only_services"):
            value = obj.get(key) or []
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{key} must be a list of strings")
            lists[key] = value
        answers = obj.get("answers") or []
        if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
            raise ValueError("answers must be a list of objects")
        return cls(obj.get("throttle", 0.0), obj.get("error500", 0.0), lists["reset_regions"],
                   lists["hang_regions"], lists["only_services"], obj.get("hang_seconds", 0.0),
                   answers)

    def to_json(self):
        return {
            "throttle": self.throttle,
            "error500": self.error500,
            "reset_regions": sorted(self.reset_regions),
            "hang_regions": sorted(self.hang_regions),
            "only_services": sorted(self.only_services),
            "hang_seconds": self.hang_seconds,
            "answers": [a.spec for a in self.answers],
        }


class Answer:
    """A canned reply to calls of one awsJson target (see the module's docstring)."""

    KEYS = ("target", "body_contains", "status", "body", "error", "message", "times",
            "fail_each")

    def __init__(self, spec):
        unknown = set(spec) - set(self.KEYS)
        if unknown:
            raise ValueError(f"unknown answer keys: {sorted(unknown)}")
        if not isinstance(spec.get("target"), str):
            raise ValueError("an answer needs a target (the X-Amz-Target it answers)")
        self.spec = dict(spec)
        self.target = spec["target"]
        self.body_contains = spec.get("body_contains")
        self.error = spec.get("error")
        self.status = int(spec.get("status", 400 if self.error else 200))
        self.body = spec.get("body", {})
        self.message = spec.get("message", "injected by fault_proxy")
        self.fail_each = spec.get("fail_each")
        times = spec.get("times")
        self.left = None if times is None else int(times)

    def matches(self, headers, body):
        if headers.get("X-Amz-Target", "") != self.target:
            return False
        if self.body_contains is not None and self.body_contains.encode() not in body:
            return False
        return self.left is None or self.left > 0

    def reply(self, request_body):
        """(status, headers, payload) to `request_body`; counts one use."""
        if self.left is not None:
            self.left -= 1
        headers = [("Content-Type", "application/x-amz-json-1.1"),
                   ("x-amzn-RequestId", str(uuid.uuid4()))]
        if self.error:
            headers.append(("x-amzn-ErrorType", self.error))
            payload = {"__type": self.error, "message": self.message}
        elif self.fail_each is not None:
            try:
                arns = json.loads(request_body or b"{}").get("ResourceARNList") or []
            except ValueError:
                arns = []
            payload = {"FailedResourcesMap": {arn: self.fail_each for arn in arns}}
        else:
            payload = self.body
        return self.status, headers, json.dumps(payload).encode()


class State:
    def __init__(self, rules, seed):
        self.lock = threading.Lock()
        self.rules = rules
        # Seeded so a run's fault pattern is reproducible, as far as thread scheduling allows.
        self.rng = random.Random(seed)
        self.reset_counters()

    def reset_counters(self):
        with self.lock:
            self.forwarded = {}
            self.forwarded_regions = {}
            self.throttled = {}
            self.error500 = {}
            self.answered = {}
            self.reset = 0
            self.hung = 0
            self.hanging = 0
            self.upstream_errors = 0

    def draw(self):
        with self.lock:
            return self.rng.random()

    def bump(self, table, key):
        with self.lock:
            getattr(self, table)[key] = getattr(self, table).get(key, 0) + 1

    def add(self, name, delta=1):
        with self.lock:
            setattr(self, name, getattr(self, name) + delta)

    def snapshot(self):
        with self.lock:
            return {
                "forwarded": dict(self.forwarded),
                "throttled": dict(self.throttled),
                "error500": dict(self.error500),
                "answered": dict(self.answered),
                "reset": self.reset,
                "hung": self.hung,
                # Beyond the basics: connections hanging right now, forwarded calls per region,
                # upstream failures answered with 502, and the rules in force.
                "hanging": self.hanging,
                "forwarded_regions": dict(self.forwarded_regions),
                "upstream_errors": self.upstream_errors,
                "config": self.rules.to_json(),
            }


# --------------------------------------------------------------------------------------------
# The proxy

# Per-connection headers that must not be relayed (RFC 9110 §7.6.1); Expect is answered by us.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade", "expect",
}


def _hop_by_hop(headers_items):
    """Hop-by-hop header names, including any the Connection header lists."""
    names = set(HOP_BY_HOP)
    for name, value in headers_items:
        if name.lower() == "connection":
            names.update(tok.strip().lower() for tok in value.split(",") if tok.strip())
    return names


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1 so the SDKs' pooled keep-alive connections stay open between calls.
    protocol_version = "HTTP/1.1"
    server_version = "fault-proxy"
    sys_version = ""

    def setup(self):
        super().setup()
        self.upstream_conn = None

    def finish(self):
        try:
            super().finish()
        finally:
            if self.upstream_conn is not None:
                self.upstream_conn.close()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fault_proxy: %s - %s\n" % (self.address_string(), fmt % args))

    # Every method goes through one path; the proxy does not care which it is.
    def do_GET(self):
        self.proxy()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    # ---- reading the request

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Skip the trailer section up to the blank line.
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)  # the CRLF after each chunk
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if length:
            return self.rfile.read(int(length))
        return b""

    # ---- answering

    def send_reply(self, status, headers, body, reason=None):
        """Status, headers and body with an exact Content-Length, keeping the connection open
        unless the client asked to close it. (send_response_only, not send_response: the latter
        would add a Server and Date header on top of the upstream's.)"""
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if "Date" not in {n.title() for n, _ in headers}:
            self.send_header("Date", self.date_time_string())
        no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        if no_body:
            # HEAD keeps the upstream's Content-Length (that of the GET it stands for).
            has_length = any(n.lower() == "content-length" for n, _ in headers)
            if self.command == "HEAD" and not has_length:
                self.send_header("Content-Length", "0")
        else:
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not no_body and body:
            self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status, obj):
        body = json.dumps(obj, indent=1, sort_keys=True).encode()
        self.send_reply(status, [("Content-Type", "application/json")], body)

    # ---- the control endpoint

    def control(self, path, body):
        state = self.server.state
        if path == "/__faults" and self.command == "GET":
            return self.send_json(200, state.snapshot())
        if path == "/__faults/reset" and self.command == "POST":
            state.reset_counters()
            return self.send_json(200, state.snapshot())
        if path == "/__faults/config" and self.command == "GET":
            return self.send_json(200, state.rules.to_json())
        if path == "/__faults/config" and self.command in ("POST", "PUT"):
            try:
                obj = json.loads(body or b"{}")
                rules = Rules.from_json(obj)
            except ValueError as e:  # includes JSONDecodeError
                return self.send_json(400, {"error": str(e)})
            with state.lock:
                state.rules = rules
                if obj.get("seed") is not None:
                    state.rng.seed(obj["seed"])
            return self.send_json(200, rules.to_json())
        return self.send_json(404, {"error": f"no control endpoint {self.command} {path}"})

    # ---- faults that do not answer

    def reset_connection(self):
        """Drop the connection with a TCP RST: SO_LINGER with a zero timeout makes close() abort
        instead of the orderly FIN, so the client sees 'connection reset by peer' mid-call."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.connection.close()

    def hang(self, seconds):
        """Never answer: block this connection's thread (only) until the client gives up and
        closes, so the call runs into the client's own timeout. With `seconds` > 0, reset the
        connection after that long instead of waiting forever."""
        self.close_connection = True
        state = self.server.state
        state.add("hanging", 1)
        deadline = time.monotonic() + seconds if seconds > 0 else None
        try:
            while True:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                if timeout == 0.0:
                    self.reset_connection()
                    return
                self.connection.settimeout(timeout)
                try:
                    # The client sends nothing more while it waits for the answer: recv returns
                    # b"" (or fails) only once it closes the connection.
                    if not self.connection.recv(65536):
                        return
                except socket.timeout:
                    continue
                except OSError:
                    return
        finally:
            state.add("hanging", -1)

    # ---- forwarding

    def forward(self, body):
        """Send the request to the upstream, unchanged but for per-connection headers, and return
        (status, reason, headers, body). One upstream connection per client connection, reopened
        when the upstream closed it (moto's server closes after every answer)."""
        items = self.headers.items()
        skip = _hop_by_hop(items)
        for attempt in (0, 1):
            conn = self.upstream_conn
            reused = conn is not None and conn.sock is not None
            if conn is None:
                conn = self.upstream_conn = self.server.new_upstream_connection()
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in items:
                    lname = name.lower()
                    if lname in skip or lname == "content-length":
                        continue
                    conn.putheader(name, value)
                if body or self.headers.get("Content-Length") is not None or "chunked" in (
                        self.headers.get("Transfer-Encoding") or "").lower():
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body if body else None)
                resp = conn.getresponse()
                # read() undoes the upstream's chunking or honours its Content-Length.
                data = resp.read()
                headers = resp.getheaders()
                if resp.will_close:
                    conn.close()
                return resp.status, resp.reason, headers, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.BadStatusLine):
                conn.close()
                self.upstream_conn = None
                # A kept-alive upstream connection may have been closed under us: retry once on a
                # fresh one. A fresh connection failing is a real upstream failure.
                if reused and attempt == 0:
                    continue
                raise
            except Exception:
                conn.close()
                self.upstream_conn = None
                raise

    def proxy(self):
        body = self.read_body()
        path_only = urllib.parse.urlsplit(self.path).path
        if path_only == "/__faults" or path_only.startswith("/__faults/"):
            return self.control(path_only, body)

        state = self.server.state
        rules = state.rules
        region, service = identify(self.headers, self.path)

        # moto's own API (state reset, seeding) must always work.
        if not path_only.startswith("/moto-api"):
            with state.lock:
                answer = next((a for a in rules.answers if a.matches(self.headers, body)), None)
                reply = answer.reply(body) if answer else None
            if reply:
                state.bump("answered", answer.target)
                return self.send_reply(*reply)
            if region in rules.reset_regions:
                state.add("reset")
                return self.reset_connection()
            if region in rules.hang_regions:
                state.add("hung")
                return self.hang(rules.hang_seconds)
            if (rules.throttle or rules.error500) and (
                    not rules.only_services or service in rules.only_services):
                r = state.draw()
                kind = None
                if r < rules.throttle:
                    kind, table = "throttle", "throttled"
                elif r < rules.throttle + rules.error500:
                    kind, table = "error500", "error500"
                if kind:
                    state.bump(table, service)
                    status, headers, payload = fault_response(kind, service, self.headers, body)
                    return self.send_reply(status, headers, payload)

        try:
            status, reason, headers, data = self.forward(body)
        except Exception as e:  # the upstream is down or broke the connection
            state.add("upstream_errors")
            msg = f"fault_proxy: upstream failed: {type(e).__name__}: {e}".encode()
            return self.send_reply(502, [("Content-Type", "text/plain")], msg)

        state.bump("forwarded", service)
        state.bump("forwarded_regions", region)
        skip = _hop_by_hop(headers)
        if self.command != "HEAD":
            skip.add("content-length")  # recomputed by send_reply from the body read
        # Our own Date/Server would duplicate the upstream's.
        relayed = [(n, v) for n, v in headers if n.lower() not in skip]
        self.send_reply(status, relayed, data, reason)


class ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True  # hung connections must not keep the process alive
    allow_reuse_address = True
    # The default listen backlog of 5 refuses bursts of concurrent connections.
    request_queue_size = 1024

    def __init__(self, address, upstream, state, verbose):
        super().__init__(address, ProxyHandler)
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"--upstream must be an http:// URL, not {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.state = state
        self.verbose = verbose

    def new_upstream_connection(self):
        return http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=300)

    def handle_error(self, request, client_address):
        # Clients going away mid-call (timeouts, the SDK dropping a connection) are normal here.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, OSError)) and not self.verbose:
            return
        super().handle_error(request, client_address)


def _split_list(values):
    out = []
    for v in values or []:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fault-injecting proxy for AWS API calls (to moto).")
    ap.add_argument("--upstream", required=True, help="the server to forward to, http://HOST:PORT")
    ap.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    ap.add_argument("--throttle", type=float, default=0.0,
                    help="probability that a call is answered with the service's throttling error")
    ap.add_argument("--error500", type=float, default=0.0,
                    help="probability that a call is answered with the service's internal error")
    ap.add_argument("--only-service", action="append", metavar="SVC[,SVC]",
                    help="limit --throttle/--error500 to these signing names (ec2, s3, tagging...)")
    ap.add_argument("--reset-region", action="append", metavar="REGION[,REGION]",
                    help="reset the connection (TCP RST) of every call to this region")
    ap.add_argument("--hang-region", action="append", metavar="REGION[,REGION]",
                    help="never answer calls to this region (until the client closes)")
    ap.add_argument("--hang-seconds", type=float, default=0.0,
                    help="reset hung connections after this long (0: hang until the client closes)")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)

    try:
        rules = Rules(args.throttle, args.error500, _split_list(args.reset_region),
                      _split_list(args.hang_region), _split_list(args.only_service),
                      args.hang_seconds)
        server = ProxyServer(("127.0.0.1", args.port), args.upstream, State(rules, args.seed),
                             args.verbose)
    except ValueError as e:
        ap.error(str(e))
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
