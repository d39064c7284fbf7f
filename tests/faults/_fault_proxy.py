"""A small HTTP fault proxy on 127.0.0.1 for the fault-injection tests.

It forwards every request to an upstream server (a sandbox, an S3 endpoint, ...) unless a rule
matches it. A rule matches by method, path prefix, query parameters and headers (e.g. one team's
key) and, for its first ``times`` matching requests, answers with a status and body of its own,
waits ``delay_s`` before forwarding, forwards and then drops the response (the upstream acted,
the client hears nothing), or calls ``before`` (a hook that may stop a server) before it goes on.
Every request is logged; a rule counts the requests it delayed whose client hung up meanwhile (a
client timeout shorter than the delay).
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import httpx

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


@dataclass
class Rule:
    """What to do with the first ``times`` requests that match (``times=None``: every one)."""

    path: str
    method: str | None = None
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    body: bytes = b""
    content_type: str = "application/json"
    delay_s: float = 0.0
    drop_response: bool = False
    before: Callable[[], None] | None = None
    times: int | None = 1
    hits: int = 0
    abandoned: int = 0  # delayed requests whose client had closed its connection by the end of the delay

    def matches(self, method: str, path: str, query: dict[str, str], headers: dict[str, str]) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        wanted_headers = all(headers.get(k.lower()) == v for k, v in self.headers.items())
        return (
            path.startswith(self.path)
            and wanted_headers
            and all(query.get(k) == v for k, v in self.query.items())
        )


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    rule: Rule | None


class FaultProxy:
    """``url`` forwards to ``upstream`` (which may be changed while it runs)."""

    def __init__(self, upstream: str, upstream_timeout_s: float = 60.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=upstream_timeout_s, follow_redirects=False)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Forget every rule and every request seen."""
        with self._lock:
            self.rules.clear()
            self.seen.clear()

    def count(self, method: str, path: str) -> int:
        """Requests seen with this method whose path starts with ``path``."""
        return sum(seen.method == method and seen.path.startswith(path) for seen in self.seen)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def _match(self, method: str, path: str, query: dict[str, str], headers: dict[str, str]) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path, query, headers):
                    rule.hits += 1
                    self.seen.append(Seen(method, path, query, rule))
                    return rule
            self.seen.append(Seen(method, path, query, None))
            return None


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _handle(self) -> None:
            split = urlsplit(self.path)
            query = dict(parse_qsl(split.query, keep_blank_values=True))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            lowered = {k.lower(): v for k, v in self.headers.items()}
            rule = proxy._match(self.command, split.path, query, lowered)
            if rule is not None and rule.before is not None:
                rule.before()
            if rule is not None and rule.delay_s:
                time.sleep(rule.delay_s)
                if _hung_up(self.connection):
                    rule.abandoned += 1
            if rule is not None and rule.status is not None:
                self._answer(rule.status, rule.body, {"Content-Type": rule.content_type})
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            try:
                response = proxy._http.request(
                    self.command, proxy.upstream + self.path, headers=headers, content=body
                )
            except httpx.HTTPError:
                self.close_connection = True  # as if the upstream itself were gone
                return
            if rule is not None and rule.drop_response:
                self.close_connection = True  # the upstream acted; the client hears nothing
                return
            kept = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP}
            self._answer(response.status_code, response.content, kept)

        def _answer(self, status: int, content: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(content)
                except ConnectionError:  # the client gave up waiting (a timeout rule)
                    self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle  # noqa: N815 (http.server names)

    return Handler


def _hung_up(connection: socket.socket) -> bool:
    """Whether the client closed its end (its request timed out): readable, with nothing to read."""
    poller = select.poll()
    poller.register(connection, select.POLLIN)
    if not poller.poll(0):
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
