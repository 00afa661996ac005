"""Raw-socket HTTP fuzzing: what a hostile or broken client can send, and what must follow.

A *connection plan* is a list of requests (well-formed, malformed or plain
noise), cut into arbitrary pieces, sent on one socket and ended the way
clients end: half-close, close, or reset. :func:`drive` plays a plan against a
server and classifies what came back; the invariant the tests hold every plan
to is that the server answers or closes each connection within a bound, never
answers 500, and stays up.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
import socket
import struct
import time
from typing import Any

import attrs
from hypothesis import strategies as st

#: How long a half-closed connection may stay open before it counts as a hang.
#: The target serves with a 1 s header timeout and no request waits for more.
HANG_AFTER = 15.0

STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})[ \r]")

# -- request pieces ---------------------------------------------------------------------

METHODS = st.sampled_from(
    [b"GET", b"POST", b"HEAD", b"DELETE", b"PUT", b"OPTIONS", b"PATCH", b"TRACE", b"PRI"]
) | st.binary(max_size=8)
GOOD_METHODS = st.sampled_from([b"GET", b"GET", b"POST", b"POST", b"HEAD", b"DELETE"])
FRAMINGS = ["length", "chunked", "short", "long", "none"]
VERSIONS = st.sampled_from(
    [b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1x", b""]
)

# No "_"-names: the idle sweep spares them, so a GET parked there would wait for good.
CHANNELS = st.sampled_from(["fz", "fz", "fz-out", "a%2Fb", "%ff", "%", "x" * 300, "ü", "a b", ""])
SEQS = st.sampled_from(
    ["0", "1", "2", "-1", "-2", "-3", "next", "99999999999999999999", "abc", "1.5", "", "0/x"]
)


@st.composite
def trickle_paths(draw: st.DrawFn) -> bytes:
    shape = draw(st.sampled_from(["segment", "segment", "channel", "base", "other", "raw"]))
    base = "/ai/trickle/"
    if shape == "segment":
        path = f"{base}{draw(CHANNELS)}/{draw(SEQS)}"
    elif shape == "channel":
        path = f"{base}{draw(CHANNELS)}"
    elif shape == "base":
        path = draw(st.sampled_from([base, "/ai/trickle", "/", "*", "http://x/ai/trickle/fz/0"]))
    elif shape == "other":
        path = draw(st.sampled_from(["/health", "/x?y=%zz", "/ai/trickle/fz/0?a=b#c", "//"]))
    else:
        return draw(st.binary(max_size=40))
    return path.encode("utf-8")


RUNNER_ROUTES = [
    "/health",
    "/stream/start",
    "/stream/stop",
    "/stream/params",
    "/stream/status",
    "/live-video-to-video",
    "/predict",
    "/openapi.json",
    "/nothing",
    "/stream/start?x=1",
]


def json_values() -> st.SearchStrategy[Any]:
    leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=12,
    )


@st.composite
def runner_bodies(draw: st.DrawFn, trickle_url: str) -> bytes:
    """JSON a runner parses: start bodies with good and bad URLs, params, predict input."""
    url = draw(
        st.sampled_from(
            [
                f"{trickle_url}fz-in",
                f"{trickle_url}nosuch",
                trickle_url.rstrip("/").rsplit("/", 2)[0],  # no path
                f"{trickle_url}a\\r\\nb",  # a JSON escape: the URL holds CRLF
                "ftp://127.0.0.1/x",
                "http://[::1",
                "",
                "http://127.0.0.1:1/x",
            ]
        )
    )
    stream_id = draw(st.sampled_from(["s1", "s2", "s3", "\\ud800", "", "x" * 600]))
    shape = draw(st.sampled_from(["start", "params", "stop", "predict", "json", "raw"]))
    if shape == "raw":
        return draw(st.binary(max_size=200))
    if shape == "json":
        return json.dumps(draw(json_values())).encode()
    if shape == "start":
        value = draw(st.sampled_from(["1", "\\ud800", "\\udfff"]))
        fields = {
            "subscribe_url": url,
            "publish_url": url,
            "control_url": url,
            "events_url": url,
            "gateway_request_id": stream_id,
        }
        members = ",".join(f'"{k}":"{v}"' for k, v in fields.items())
        text = "{" + members + ',"params":{"p":"' + value + '"}}'
    elif shape == "params":
        text = f'{{"gateway_request_id":"{stream_id}","params":{{"p":"\\ud800"}}}}'
    elif shape == "stop":
        text = f'{{"gateway_request_id":"{stream_id}"}}'
    else:
        text = '{{"text":"{}","repeat":{}}}'.format(
            draw(st.sampled_from(["hi", "\\ud800", "a" * 100])),
            draw(st.sampled_from(["1", "-1", "1e9", '"x"', "null"])),
        )
    return text.encode("utf-8", "surrogatepass")


GOOD_HEADERS = st.sampled_from(
    [
        (b"Content-Type", b"application/json"),
        (b"Content-Type", b"video/mp2t"),
        (b"Lp-Trickle-Reset", b"1"),
        (b"Connection", b"keep-alive"),
        (b"Connection", b"close"),
        (b"Authorization", b"Bearer nope"),
        (b"X-Stream-Id", b"s1"),
    ]
)
HEADERS = st.sampled_from(
    [
        (b"Connection", b"close"),
        (b"Connection", b"keep-alive"),
        (b"Connection", b"Upgrade"),
        (b"Upgrade", b"websocket"),
        (b"Upgrade", b"h2c"),
        (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        (b"Sec-WebSocket-Version", b"13"),
        (b"Transfer-Encoding", b"gzip"),
        (b"Transfer-Encoding", b"chunked, gzip"),
        (b"Transfer-Encoding", b"junk"),
        (b"Content-Length", b"-1"),
        (b"Content-Length", b"abc"),
        (b"Content-Length", b"99999999999999999999"),
        (b"Expect", b"100-continue"),
        (b"Lp-Trickle-Reset", b"1"),
        (b"Content-Type", b"application/json"),
        (b"Content-Type", b"video/mp2t"),
        (b"Authorization", b"Bearer nope"),
        (b"X-Big", b"v" * 20000),
        (b"Bad Name", b"x"),
        (b"X-Ctl", b"a\x00b"),
    ]
) | st.tuples(st.binary(min_size=1, max_size=12), st.binary(max_size=30))


@st.composite
def requests(
    draw: st.DrawFn, paths: st.SearchStrategy[bytes], bodies: st.SearchStrategy[bytes]
) -> bytes:
    """One request: mostly well-formed heads, with every kind of flaw mixed in."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(min_size=1, max_size=300))  # noise
    # Most requests are well-formed, so the fuzz reaches the application, not only h11.
    clean = draw(st.integers(0, 9)) < 6
    method = draw(GOOD_METHODS if clean else METHODS)
    version = b"HTTP/1.1" if clean else draw(VERSIONS)
    head = b"%s %s %s\r\n" % (method, draw(paths), version)
    if clean or draw(st.booleans()):
        head += b"Host: x\r\n"
    for name, value in draw(st.lists(GOOD_HEADERS if clean else HEADERS, max_size=3)):
        head += name + b": " + value + b"\r\n"
    body = draw(bodies)
    framings = ["length", "length", "chunked", "none"] if clean else FRAMINGS
    framing = draw(st.sampled_from(framings))
    if framing == "length":
        head += b"Content-Length: %d\r\n" % len(body)
    elif framing == "chunked":
        head += b"Transfer-Encoding: chunked\r\n"
        body = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
    elif framing == "short":  # promises more than it sends
        head += b"Content-Length: %d\r\n" % (len(body) + draw(st.integers(1, 100)))
    elif framing == "long":
        head += b"Content-Length: %d\r\n" % max(len(body) - 1, 0)
    else:
        body = b""
    terminator = b"\r\n" if clean else draw(st.sampled_from([b"\r\n", b"\n", b"", b"\r\n\r\n"]))
    return head + terminator + body


@attrs.frozen(kw_only=True)
class Plan:
    """One connection: the bytes, where they are cut, and how the client leaves."""

    data: bytes
    cuts: tuple[int, ...]
    ending: str  # "half_close" | "close" | "reset"
    requests: int


@st.composite
def plans(draw: st.DrawFn, request_strategy: st.SearchStrategy[bytes]) -> Plan:
    parts = draw(st.lists(request_strategy, min_size=1, max_size=4))
    data = b"".join(parts)
    cuts = tuple(sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=6)))))
    ending = draw(st.sampled_from(["half_close", "half_close", "half_close", "close", "reset"]))
    return Plan(data=data, cuts=cuts, ending=ending, requests=len(parts))


# -- playing a plan ---------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Outcome:
    statuses: tuple[int, ...]
    #: "answered" (at least one status), "closed" (EOF, nothing said), "hang", "unobserved".
    kind: str


def drive(port: int, plan: Plan) -> Outcome:
    """Send ``plan`` to 127.0.0.1:``port`` and read until the server closes (bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_AFTER) as sock:
        start = 0
        try:
            for cut in (*plan.cuts, len(plan.data)):
                if cut > start:
                    sock.sendall(plan.data[start:cut])
                    start = cut
        except OSError:
            return Outcome(statuses=(), kind="closed")  # the server already closed: allowed
        if plan.ending == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return Outcome(statuses=(), kind="unobserved")
        if plan.ending == "close":
            return Outcome(statuses=(), kind="unobserved")
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        deadline = time.monotonic() + HANG_AFTER
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return Outcome(statuses=_statuses(received), kind="hang")
            except OSError:  # reset by the server: a close
                break
            if not chunk:
                break
            received += chunk
    statuses = _statuses(received)
    return Outcome(statuses=statuses, kind="answered" if statuses else "closed")


def _statuses(data: bytes | bytearray) -> tuple[int, ...]:
    return tuple(int(m.group(1)) for m in STATUS.finditer(data))


@attrs.define
class Tally:
    """What a fuzz run saw, for the closing report (``nox -s fuzz`` prints it)."""

    connections: int = 0
    requests: int = 0
    answers: collections.Counter[int] = attrs.field(factory=collections.Counter)
    kinds: collections.Counter[str] = attrs.field(factory=collections.Counter)
    crashes: int = 0

    def add(self, plan: Plan, outcome: Outcome) -> None:
        self.connections += 1
        self.requests += plan.requests
        self.answers.update(outcome.statuses)
        self.kinds[outcome.kind] += 1

    def report(self, server: str) -> dict[str, Any]:
        return {
            "server": server,
            "connections": self.connections,
            "requests": self.requests,
            "answers_by_status": {str(k): v for k, v in sorted(self.answers.items())},
            "closed_without_answer": self.kinds["closed"],
            "unobserved_close_or_reset": self.kinds["unobserved"],
            "hangs": self.kinds["hang"],
            "crashes": self.crashes,
        }


#: Statuses a server may answer hostile input with (TRK-111, RUN-002): never a 500.
ALLOWED = frozenset(range(100, 500)) | {501, 503}
