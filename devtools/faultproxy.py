"""A small TCP proxy the fault-injection tests put in front of a real service.

It sits between the verifier and a real moto S3 server, the real catalog
PostgreSQL, or a real notification receiver, and misbehaves on command:

- ``pass``: bytes flow both ways untouched (HTTP: after ``delay`` seconds, if given);
- ``refuse``: nothing listens on the port any more (connections are refused);
- ``stall``: connections are accepted and read, but never answered (HTTP with
  ``only_objects``: only requests for an object key; bucket requests pass);
- ``cut``: (HTTP) a response with a body is forwarded only up to a fraction of it,
  then the connection is closed;
- ``http_error``: (HTTP) the same request is answered ``503 SlowDown`` (or another
  status) ``times`` times in a row, then passed through;
- ``throttle``: (HTTP) a token bucket of ``rate`` requests per second; requests
  beyond it are answered ``503 SlowDown``;
- ``echo_credential``: (HTTP) every request is answered ``403`` with a message
  quoting the access key id of its Authorization header, as some stores do;
- ``reject_checksum_mode``: (HTTP) every request carrying the ``x-amz-checksum-mode``
  header is answered ``400 InvalidArgument "Unsupported header 'x-amz-checksum-mode'"``,
  as Backblaze B2 answered in 2024-25; other requests pass;
- :meth:`FaultProxy.drop_on` (raw TCP, e.g. PostgreSQL): when the client sends a
  byte pattern, drop every connection and refuse new ones for a while, as a
  restarting server does (optionally after forwarding the pattern, so that the
  server acts on it but the client never hears the answer);
- :meth:`FaultProxy.hold_on`: when the client sends a pattern, stop forwarding
  and signal the test (which may then kill the client process).

HTTP mode handles one request per connection (it asks both sides to close after
each response), which keeps the framing trivial. The proxy runs an asyncio loop
in a daemon thread; every control method is safe to call from the test thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from devtools.services import free_port

SLOW_DOWN_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
    "<RequestId>faultproxy</RequestId></Error>"
)
REASONS = {400: "Bad Request", 403: "Forbidden", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass
class Trigger:
    """A byte pattern the client may send, and what to do when it does."""

    pattern: bytes
    action: str  # "drop" or "hold"
    after: bool = False
    down_for: float = 0.0
    settle: float = 0.3
    skip: int = 0
    armed_by: bytes | None = None
    fired: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


class FaultProxy:
    """Forward ``127.0.0.1:port`` to ``upstream``, injecting the configured fault."""

    def __init__(self, upstream_port: int, *, http: bool = False, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.http = http
        self.port = free_port()
        self.mode = "pass"
        self.options: dict[str, Any] = {}
        self.log: list[tuple[str, str, str]] = []  # (method, target, what happened) per HTTP request
        self.connections = 0
        self.triggers: list[Trigger] = []
        self._lock = threading.Lock()
        self._error_counts: dict[str, int] = {}
        self._tokens = 0.0
        self._tokens_at = 0.0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pending: set[asyncio.Future] = set()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name=f"faultproxy-{self.port}"
        )

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        for trigger in self.triggers:
            trigger.released.set()
        with contextlib.suppress(Exception):
            self._call(self._close_all(stop_listening=True))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # ------------------------------------------------------------------ control

    def set_mode(self, mode: str, **options: Any) -> FaultProxy:
        """Switch to ``mode`` for new requests (see the module docstring)."""
        with self._lock:
            if mode == "refuse":
                self.mode = mode
            else:
                self.mode = mode
                self.options = options
                self._error_counts.clear()
                self._tokens = float(options.get("burst", options.get("rate", 1)))
                self._tokens_at = time.monotonic()
        if mode == "refuse":
            self._call(self._close_all(stop_listening=True))
        elif self._server is None:
            self._call(self._listen())
        return self

    def passthrough(self) -> FaultProxy:
        for trigger in self.triggers:
            trigger.released.set()
        self.triggers.clear()
        return self.set_mode("pass")

    def drop_all(self) -> None:
        """Close every open connection now (both sides), as a server crash would."""
        self._call(self._close_all(stop_listening=False))

    def drop_on(
        self,
        pattern: bytes,
        *,
        after: bool = False,
        down_for: float = 2.0,
        skip: int = 0,
        armed_by: bytes | None = None,
    ) -> Trigger:
        """When the client sends ``pattern`` (the ``skip``+1-th time), go down for ``down_for`` seconds.

        With ``after`` the pattern is forwarded first and the server's answer is
        swallowed: the server acted on it (e.g. committed) but the client never knows.
        With ``armed_by``, only a ``pattern`` sent after ``armed_by`` was seen counts.
        """
        trigger = Trigger(pattern, "drop", after=after, down_for=down_for, skip=skip, armed_by=armed_by)
        self.triggers.append(trigger)
        return trigger

    def hold_on(self, pattern: bytes, *, skip: int = 0, armed_by: bytes | None = None) -> Trigger:
        """When the client sends ``pattern``, stop forwarding on that connection until released."""
        trigger = Trigger(pattern, "hold", skip=skip, armed_by=armed_by)
        self.triggers.append(trigger)
        return trigger

    def count(self, what: str) -> int:
        with self._lock:
            return sum(1 for entry in self.log if entry[2] == what)

    # ------------------------------------------------------------------ serving

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

    async def _close_all(self, *, stop_listening: bool) -> None:
        if stop_listening and self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            _abort(writer)
        self._writers.clear()

    async def _go_down(self, seconds: float) -> None:
        """Drop every connection and stop listening now; listen again after ``seconds``."""
        await self._close_all(stop_listening=True)

        async def come_back() -> None:
            await asyncio.sleep(seconds)
            if self.mode != "refuse":
                await self._listen()

        self._pending.add(asyncio.ensure_future(come_back()))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with self._lock:
            self.connections += 1
        try:
            if self.mode == "stall" and not (self.http and self.options.get("only_objects")):
                await _drain_forever(reader)
            elif self.http:
                await self._handle_http(reader, writer)
            else:
                await self._handle_raw(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            _close(writer)

    # ------------------------------------------------------------------ raw TCP (PostgreSQL)

    async def _handle_raw(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers.add(up_writer)
        silenced = asyncio.Event()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if silenced.is_set():
                    continue  # the server's answer is swallowed: the client never hears it
                writer.write(data)
                await writer.drain()

        async def upstream() -> None:
            tail = b""
            while data := await reader.read(65536):
                window = tail + data
                trigger = self._match(window, len(tail))
                if trigger is not None and trigger.action == "drop":
                    await self._drop(trigger, data, up_writer, silenced)
                    return
                if trigger is not None:  # hold: forward nothing until the test releases it
                    while not trigger.released.is_set():
                        await asyncio.sleep(0.05)
                up_writer.write(data)
                await up_writer.drain()
                tail = window[-64:]  # a pattern split across reads is still seen

        tasks = [asyncio.ensure_future(downstream()), asyncio.ensure_future(upstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            self._writers.discard(up_writer)
            _close(up_writer)

    def _match(self, window: bytes, new_from: int) -> Trigger | None:
        """The first armed trigger whose pattern ends in the newly read bytes of ``window``."""
        with self._lock:
            for trigger in self.triggers:
                if trigger.armed_by is not None:
                    if trigger.armed_by in window[max(new_from - len(trigger.armed_by), 0) :]:
                        trigger.armed_by = None
                    continue
                at = window.rfind(trigger.pattern)
                if trigger.fired.is_set() or at < 0 or at + len(trigger.pattern) <= new_from:
                    continue
                if trigger.skip > 0:
                    trigger.skip -= 1
                    continue
                trigger.fired.set()
                return trigger
        return None

    async def _drop(
        self, trigger: Trigger, data: bytes, up_writer: asyncio.StreamWriter, silenced: asyncio.Event
    ) -> None:
        if trigger.after:
            silenced.set()
            up_writer.write(data)
            await up_writer.drain()
            await asyncio.sleep(trigger.settle)  # let the server act on it
        await self._go_down(trigger.down_for)

    # ------------------------------------------------------------------ HTTP (S3, webhooks)

    async def _handle_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, headers = _parse_head(head)
        method, target = request_line.split(" ")[:2]
        length = int(headers.get("content-length", "0") or 0)
        body = await reader.readexactly(length) if length else b""
        mode, options = self.mode, dict(self.options)

        if mode == "stall":  # only_objects: requests for a key stall, bucket requests pass
            if target.split("?")[0].strip("/").count("/") >= 1:
                self._record(method, target, "stalled")
                await _drain_forever(reader)
                return
        elif mode == "http_error":
            key = f"{method} {target}"
            with self._lock:
                seen = self._error_counts.get(key, 0)
                self._error_counts[key] = seen + 1
            if seen < int(options.get("times", 3)):
                await self._answer_error(writer, method, target, options, "error")
                return
        elif mode == "throttle" and not self._take_token(options):
            await self._answer_error(writer, method, target, {"status": 503}, "throttled")
            return
        elif mode == "echo_credential" and method in options.get("methods", ("GET", "HEAD")):
            match = re.search(r"Credential=([^/,\s]+)", headers.get("authorization", ""))
            key_id = match.group(1) if match else "?"
            options = {
                "status": 403,
                "code": "InvalidAccessKeyId",
                "message": f"The access key {key_id} does not exist in our records.",
            }
            await self._answer_error(writer, method, target, options, "echoed")
            return
        elif mode == "reject_checksum_mode" and "x-amz-checksum-mode" in headers:
            options = {
                "status": 400,
                "code": "InvalidArgument",
                "message": "Unsupported header 'x-amz-checksum-mode' received for this API call.",
            }
            await self._answer_error(writer, method, target, options, "rejected_header")
            return

        if options.get("delay"):
            await asyncio.sleep(float(options["delay"]))  # a slow store (any mode)
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers.add(up_writer)
        try:
            up_writer.write(_with_close(head) + body)
            await up_writer.drain()
            response_head = await up_reader.readuntil(b"\r\n\r\n")
            _, response_headers = _parse_head(response_head)
            body_length = int(response_headers.get("content-length", "0") or 0)
            if mode == "cut" and method == "GET" and body_length > 0:
                keep = int(body_length * float(options.get("fraction", 0.5)))
                writer.write(_with_close(response_head))
                remaining = keep
                while remaining > 0:
                    data = await up_reader.read(min(65536, remaining))
                    if not data:
                        break
                    writer.write(data)
                    remaining -= len(data)
                await writer.drain()
                self._record(method, target, "cut")
                return
            writer.write(_with_close(response_head))
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
            self._record(method, target, "passed")
        finally:
            self._writers.discard(up_writer)
            _close(up_writer)

    def _take_token(self, options: dict[str, Any]) -> bool:
        rate = float(options.get("rate", 5))
        burst = float(options.get("burst", rate))
        with self._lock:
            now = time.monotonic()
            self._tokens = min(burst, self._tokens + (now - self._tokens_at) * rate)
            self._tokens_at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False

    async def _answer_error(
        self, writer: asyncio.StreamWriter, method: str, target: str, options: dict[str, Any], what: str
    ) -> None:
        status = int(options.get("status", 503))
        code = options.get("code", "SlowDown" if status == 503 else "InternalError")
        message = options.get("message", "Please reduce your request rate.")
        body = b"" if method == "HEAD" else SLOW_DOWN_BODY.format(code=code, message=message).encode()
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        writer.write(head + body)
        await writer.drain()
        self._record(method, target, what)

    def _record(self, method: str, target: str, what: str) -> None:
        with self._lock:
            self.log.append((method, target, what))


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _with_close(head: bytes) -> bytes:
    """The same head, asking for the connection to be closed after this message."""
    lines = [line for line in head.split(b"\r\n") if line and not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"


async def _drain_forever(reader: asyncio.StreamReader) -> None:
    """Read whatever the client sends and answer nothing, until it gives up."""
    while await reader.read(65536):
        pass


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


def _abort(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(Exception):
        writer.transport.abort()
