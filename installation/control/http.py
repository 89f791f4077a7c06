"""One bounded HTTP/1.1 + WebSocket server for every HTTP surface of the piece (health, OSCQuery, the page).

All connections live on ONE asyncio thread (no thread per connection).  What a LAN client can cost is
bounded by :class:`HttpLimits`: a connection cap (when full, the connection that has waited longest without sending a request is
dropped to make room; if every slot is busy with a request or a WebSocket, a short ``503`` and close), a deadline for the
request head and body (slowloris), an idle timeout between keep-alive requests, a request-size limit, a request rate per client address (``429``),
a WebSocket frame-size limit (close 1009) and a bounded outgoing queue per WebSocket (a client that does
not read is dropped, never buffered without end).

Routes are plain callables ``handler(request) -> Response`` run on the server thread; they must only read
published snapshots and enqueue commands (never touch GL or the parameter tree).  WebSocket upgrades go to
``ws_handler(request)`` which returns a :class:`WsSession` subclass or None (refused).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import struct
import threading
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger(__name__)

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_REASONS = {200: "OK", 204: "No Content", 302: "Found", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
            413: "Payload Too Large", 415: "Unsupported Media Type", 426: "Upgrade Required",
            429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
            503: "Service Unavailable"}


@dataclass(frozen=True)
class HttpLimits:
    """What one client may cost the server (all bounded)."""

    max_connections: int = 64        # open TCP connections (HTTP + WebSocket); beyond: 503 and close
    max_websockets: int = 16         # of those, WebSocket sessions; beyond: 503
    head_timeout_s: float = 5.0      # whole request head (line + headers) must arrive within this
    body_timeout_s: float = 5.0      # and the body within this
    idle_timeout_s: float = 15.0     # keep-alive: close after this long without a new request
    send_timeout_s: float = 15.0     # a client that takes no part of a response for this long is dropped
    max_head_bytes: int = 8192       # request line + headers
    max_body_bytes: int = 65536      # request body
    ws_max_frame_bytes: int = 65536  # one incoming WebSocket message
    ws_queue: int = 256              # outgoing WebSocket messages waiting; beyond: the client is dropped
    ws_rate: float = 100.0           # small frames/s one WebSocket may send (token bucket; a frame costs 1 + KiB/4)
    ws_burst: float = 1100.0         # and at once: a client following every path (MAX_LISTENS 1024) on connecting
    ws_flood_s: float = 10.0         # a WebSocket kept over ws_rate this long is closed (1008)
    ws_idle_timeout_s: float = 300.0  # a silent WebSocket is pinged after half of this, closed after all of it
    max_requests_per_connection: int = 1000
    client_rate: float = 100.0       # requests/s per client address (token bucket); beyond: 429
    client_burst: float = 200.0


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    target: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    client: str

    def params(self) -> dict[str, str]:
        """Query parameters (``?a=1&b=2``; a bare ``?VALUE`` gives ``{"VALUE": ""}``)."""
        return dict(parse_qsl(self.query, keep_blank_values=True))

    def json(self) -> object:
        """The body as JSON; :class:`HttpError` 400 with the parser's reason if it is not."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise HttpError(400, f"body is not valid JSON: {exc}") from None
        except RecursionError:  # "[[[[..." deeper than the parser recurses: still the client's mistake
            raise HttpError(400, "body is not valid JSON: nested too deeply") from None


@dataclass
class Response:
    """What a route returns."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj: object, status: int = 200) -> "Response":
        """A JSON response (no NaN: strict JSON for every client)."""
        return cls(status, json.dumps(obj, allow_nan=False, separators=(",", ":")).encode(), "application/json")

    @classmethod
    def text(cls, text: str, status: int = 200) -> "Response":
        """A plain-text response."""
        return cls(status, text.encode("utf-8"))


class HttpError(Exception):
    """Raised by a route to answer ``status`` with a one-line ``message`` (JSON ``{"error": ...}``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Route = Callable[[Request], Response]


class WsSession:
    """One WebSocket connection.  Subclass and override :meth:`on_text` / :meth:`on_binary` / :meth:`on_close`.

    :meth:`send_binary` and :meth:`send_text` are safe from any thread: they only enqueue.  A client
    that lets ``HttpLimits.ws_queue`` messages pile up is dropped (close 1008).
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self.closed = False

    def on_open(self) -> None:
        """Called on the server thread once the handshake is done."""

    def on_text(self, text: str) -> None:
        """A text message arrived (server thread)."""

    def on_binary(self, data: bytes) -> None:
        """A binary message arrived (server thread)."""

    def on_close(self) -> None:
        """The connection ended (server thread)."""

    def send_text(self, text: str) -> None:
        """Queue a text message (any thread)."""
        self._send(0x1, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        """Queue a binary message (any thread)."""
        self._send(0x2, bytes(data))

    def _send(self, opcode: int, payload: bytes) -> None:
        loop = self._loop
        if loop is None or self.closed:
            return
        try:
            loop.call_soon_threadsafe(self._put, opcode, payload)
        except RuntimeError:  # loop closed: the server stopped
            self.closed = True

    def _put(self, opcode: int, payload: bytes) -> None:
        if self._queue is None or self.closed:
            return
        try:
            self._queue.put_nowait((opcode, payload))
        except asyncio.QueueFull:
            log.info("websocket client not reading; dropping it")
            self.closed = True
            self._queue = None


WsHandler = Callable[[Request], "WsSession | None"]


def _unmask(data: bytes, mask: bytes) -> bytes:
    """XOR a client frame's payload with its 4-byte mask (RFC 6455 5.3), in C: a Python loop over 64 KiB
    held the GIL for 8 ms a frame."""
    n = len(data)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


class HttpServer:
    """Serves ``routes`` (exact path -> handler, or a ``fallback``) and WebSocket upgrades on one thread.

    ``start()`` binds (``port=0`` picks a free port, see :attr:`port`) and returns False, logging why, if
    the address cannot be bound.  ``stats()`` counts connections, refusals and timeouts.
    """

    def __init__(self, routes: dict[str, Route] | None = None, fallback: Route | None = None,
                 ws_handler: WsHandler | None = None, host: str = "127.0.0.1", port: int = 0,
                 limits: HttpLimits = HttpLimits(), name: str = "http") -> None:
        self.routes = dict(routes or {})
        self.fallback = fallback
        self.ws_handler = ws_handler
        self.host = host
        self.port = port
        self.limits = limits
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._open = 0
        self._ws_open = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._buckets: dict[str, tuple[float, float]] = {}  # client address -> (tokens, last time)
        self._waiting: dict[asyncio.StreamWriter, None] = {}  # connections with no request in progress, oldest first
        self._counts = {"connections": 0, "refused_full": 0, "evicted_idle": 0, "timeouts": 0, "bad_requests": 0,
                        "requests": 0, "websockets": 0, "rate_limited": 0}

    # -- lifecycle -------------------------------------------------------
    def start(self) -> bool:
        """Bind and serve on a daemon thread; False (logged) if the address cannot be bound."""
        ready = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self._server = loop.run_until_complete(asyncio.start_server(
                    self._client, self.host, self.port, limit=self.limits.max_head_bytes + 1024,
                    backlog=128, reuse_address=True))
            except OSError as exc:
                error.append(exc)
                ready.set()
                loop.close()
                return
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            try:
                loop.run_forever()
            finally:
                for w in list(self._writers):
                    w.transport.abort()
                tasks = asyncio.all_tasks(loop)
                if tasks:  # aborted connections end their tasks normally; cancel only what lingers
                    _, pending = loop.run_until_complete(asyncio.wait(tasks, timeout=1.0))
                    for t in pending:
                        t.cancel()
                    if pending:
                        loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
                loop.close()

        self._thread = threading.Thread(target=run, name=f"{self.name}-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if error:
            exc = error[0]
            log.error("%s: cannot listen on %s:%s (%s); continuing without it", self.name, self.host, self.port,
                      getattr(exc, "strerror", None) or exc)
            self._thread.join(1)
            self._thread = None
            return False
        log.info("%s on http://%s:%d/", self.name, self.host, self.port)
        return True

    def stop(self) -> None:
        """Close the listening socket and every connection (idempotent)."""
        loop, server = self._loop, self._server
        if loop is not None and server is not None and not loop.is_closed():
            def shut() -> None:
                server.close()
                loop.stop()
            try:
                loop.call_soon_threadsafe(shut)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(3)
            self._thread = None
        self._server = None

    def call_soon(self, fn: Callable, *args) -> None:
        """Run ``fn(*args)`` on the server thread (from any thread); dropped if the server is not running."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:
                pass

    def stats(self) -> dict:
        """Counters: connections open now and since start, refusals, timeouts, bad requests."""
        return {**self._counts, "open": self._open, "websockets_open": self._ws_open}

    # -- one connection ----------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= self.limits.max_connections and self._waiting:
            # Full, but someone is only holding a slot without sending a request (half-open, slowloris,
            # idle keep-alive): drop the longest waiting one rather than refuse a client that talks.
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            oldest.transport.abort()
            self._counts["evicted_idle"] += 1
        elif self._open >= self.limits.max_connections:
            self._counts["refused_full"] += 1
            await self._refuse(writer, 503, "server busy: too many connections", reader, {"Retry-After": "5"})
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - a refusal must never raise
                pass
            return
        self._open += 1
        self._counts["connections"] += 1
        self._writers.add(writer)
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) else "?"
        try:
            await self._serve(reader, writer, client)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        except Exception:  # noqa: BLE001 - one broken connection never stops the server
            log.exception("%s: connection from %s failed", self.name, client)
        finally:
            self._open -= 1
            self._writers.discard(writer)
            self._waiting.pop(writer, None)
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    async def _serve(self, reader, writer, client: str) -> None:
        lim = self.limits
        for n in range(lim.max_requests_per_connection):
            timeout = lim.head_timeout_s if n == 0 else lim.idle_timeout_s
            self._waiting[writer] = None
            try:
                head = await asyncio.wait_for(self._read_head(reader), timeout)
            except asyncio.TimeoutError:
                self._counts["timeouts"] += 1
                if n == 0:
                    await self._refuse(writer, 408, "request head not received in time", reader=reader)
                return
            except asyncio.LimitOverrunError:
                await self._refuse(writer, 431, f"request head over {lim.max_head_bytes} bytes", reader=reader)
                return
            finally:
                self._waiting.pop(writer, None)
            if head is None:
                return
            try:
                req = self._parse(head, client)
            except HttpError as exc:
                await self._refuse(writer, exc.status, exc.message, reader=reader)
                return
            length_text = req.headers.get("content-length", "0")
            if "chunked" in req.headers.get("transfer-encoding", "").lower():
                await self._refuse(writer, 411, "chunked bodies are not accepted; send Content-Length", reader=reader)
                return
            if not (length_text.isascii() and length_text.isdigit()):  # "²".isdigit() is True, int() refuses it
                await self._refuse(writer, 400, "bad Content-Length", reader=reader)
                return
            length = int(length_text)
            if length > lim.max_body_bytes:
                await self._refuse(writer, 413, f"body over {lim.max_body_bytes} bytes", reader=reader)
                return
            if length:
                try:
                    req.body = await asyncio.wait_for(reader.readexactly(length), lim.body_timeout_s)
                except asyncio.TimeoutError:
                    self._counts["timeouts"] += 1
                    await self._refuse(writer, 408, "request body not received in time", reader=reader)
                    return
            if not self._allow(client):
                self._counts["rate_limited"] += 1
                await self._refuse(writer, 429, f"over {lim.client_rate:g} requests/s from {client}; slow down",
                                   reader=reader, extra={"Retry-After": "1"})
                return
            self._counts["requests"] += 1
            if req.headers.get("upgrade", "").lower() == "websocket":
                await self._websocket(req, reader, writer)
                return
            resp = self._dispatch(req)
            close = req.headers.get("connection", "").lower() == "close" or n + 1 == lim.max_requests_per_connection
            body = b"" if req.method == "HEAD" else resp.body  # HEAD: the GET's headers, no body
            writer.write(self._head(resp.status, body, resp.content_type, close, resp.headers,
                                    length=len(resp.body)))
            if not await self._drained(writer):
                return
            if close:
                return

    async def _drained(self, writer) -> bool:
        """Wait until the client has taken what was written; False (connection dropped) if it does not within
        ``send_timeout_s``: a client that sends requests and never reads must not hold a slot for ever."""
        try:
            await asyncio.wait_for(writer.drain(), self.limits.send_timeout_s)
            return True
        except asyncio.TimeoutError:
            self._counts["timeouts"] += 1
            writer.transport.abort()  # close() would wait for ever to flush to a client that does not read
            return False

    def _allow(self, client: str) -> bool:
        """Token bucket per client address (bounded table: the stalest entries go first)."""
        lim = self.limits
        now = self._loop.time()
        tokens, last = self._buckets.pop(client, (lim.client_burst, now))
        tokens = min(lim.client_burst, tokens + (now - last) * lim.client_rate)
        ok = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if ok else tokens, now)
        if len(self._buckets) > 4096:
            del self._buckets[next(iter(self._buckets))]
        return ok

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                self._counts["bad_requests"] += 1
            return None
        except ValueError as exc:  # StreamReader wraps LimitOverrunError in ValueError when over limit
            raise asyncio.LimitOverrunError(str(exc), 0) from None
        if len(head) > self.limits.max_head_bytes:
            raise asyncio.LimitOverrunError("head too long", 0)
        return head

    def _parse(self, head: bytes, client: str) -> Request:
        try:
            text = head.decode("latin-1")
            lines = text.split("\r\n")
            method, target, version = lines[0].split(" ")
        except ValueError:
            self._counts["bad_requests"] += 1
            raise HttpError(400, "malformed request line") from None
        if not version.startswith("HTTP/1.") or not method.isalpha() or not target.startswith("/"):
            self._counts["bad_requests"] += 1
            raise HttpError(400, "malformed request line")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                self._counts["bad_requests"] += 1
                raise HttpError(400, f"malformed header line {line[:40]!r}")
            headers[name.lower()] = value.strip()
        parts = urlsplit(target)
        return Request(method.upper(), target, unquote(parts.path), parts.query, headers, b"", client)

    def _dispatch(self, req: Request) -> Response:
        handler = self.routes.get(req.path, self.fallback)
        try:
            if handler is None:
                raise HttpError(404, f"nothing at {req.path}")
            resp = handler(req)
        except HttpError as exc:
            resp = Response.json({"error": exc.message}, exc.status)
        except Exception as exc:  # noqa: BLE001 - a route's bug answers 500, the server goes on
            log.exception("%s: %s %s failed", self.name, req.method, req.path)
            resp = Response.json({"error": f"internal error: {type(exc).__name__}: {exc}"}, 500)
        return resp

    @staticmethod
    def _head(status: int, body: bytes, ctype: str, close: bool, extra: dict | None = None,
              length: int | None = None) -> bytes:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
                 f"Content-Type: {ctype}", f"Content-Length: {len(body) if length is None else length}",
                 "Cache-Control: no-store", "X-Content-Type-Options: nosniff",
                 "Connection: close" if close else "Connection: keep-alive"]
        lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def _refuse(self, writer, status: int, message: str, reader=None, extra: dict | None = None) -> None:
        """Answer ``status`` with a one-line JSON reason, then close gently (bounded linger, no RST
        that would eat the answer before the client reads it)."""
        body = json.dumps({"error": message}).encode()
        try:
            writer.write(self._head(status, body, "application/json", close=True, extra=extra))
            await asyncio.wait_for(writer.drain(), 2.0)
            if writer.can_write_eof():
                writer.write_eof()
            if reader is not None:  # swallow what the client already sent, briefly
                await asyncio.wait_for(reader.read(self.limits.max_head_bytes), 0.2)
        except (asyncio.TimeoutError, ConnectionError, OSError, ValueError):
            pass

    # -- WebSocket -----------------------------------------------------------
    async def _websocket(self, req: Request, reader, writer) -> None:
        lim = self.limits
        key = req.headers.get("sec-websocket-key", "")
        if req.method != "GET" or not key or req.headers.get("sec-websocket-version") != "13":
            await self._refuse(writer, 400, "bad WebSocket handshake (need GET, Sec-WebSocket-Key, version 13)", reader=reader)
            return
        if self.ws_handler is None:
            await self._refuse(writer, 404, "no WebSocket here", reader=reader)
            return
        if self._ws_open >= lim.max_websockets:
            self._counts["refused_full"] += 1
            await self._refuse(writer, 503, "too many WebSocket clients", reader=reader)
            return
        try:
            session = self.ws_handler(req)
        except HttpError as exc:
            await self._refuse(writer, exc.status, exc.message, reader=reader)
            return
        if session is None:
            await self._refuse(writer, 404, f"no WebSocket at {req.path}", reader=reader)
            return
        accept = base64.b64encode(hashlib.sha1(key.encode("latin-1") + _WS_GUID).digest()).decode()
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        try:
            sent = await self._drained(writer)
        except (ConnectionError, OSError):   # reset as the 101 went out: drain() raises, not times out
            sent = False
        if not sent:
            session.closed = True
            try:
                session.on_close()   # its handler may have registered it (an OSCQuery LISTEN session): let it go
            except Exception:  # noqa: BLE001
                log.exception("websocket on_close failed")
            return
        self._ws_open += 1
        self._counts["websockets"] += 1
        session._loop = self._loop
        session._queue = asyncio.Queue(lim.ws_queue)
        sender = asyncio.ensure_future(self._ws_sender(session, writer))
        try:
            session.on_open()
            await self._ws_reader(session, reader, writer)
        finally:
            session.closed = True
            sender.cancel()
            self._ws_open -= 1
            try:
                session.on_close()
            except Exception:  # noqa: BLE001
                log.exception("websocket on_close failed")

    async def _ws_sender(self, session: WsSession, writer) -> None:
        while not session.closed:
            q = session._queue
            if q is None:
                break
            opcode, payload = await q.get()
            writer.write(_ws_frame(opcode, payload))
            try:
                await asyncio.wait_for(writer.drain(), 5.0)
            except (asyncio.TimeoutError, ConnectionError, OSError):
                break
        if session._queue is None:  # overflowed: tell it why, then drop it
            writer.write(_ws_frame(0x8, struct.pack("!H", 1008) + b"not reading fast enough"))
        writer.transport.abort()

    async def _ws_reader(self, session: WsSession, reader, writer) -> None:
        lim = self.limits
        message = bytearray()
        msg_opcode = 0
        pinged = False
        throttled_since: float | None = None
        tokens, refilled = lim.ws_burst, self._loop.time()   # this socket's own budget (see below)
        while not session.closed:
            try:  # half the idle time, then a ping: a live client's stack answers it with a pong by itself
                b1, b2 = await asyncio.wait_for(reader.readexactly(2), lim.ws_idle_timeout_s / 2)
            except asyncio.TimeoutError:  # readexactly consumed nothing: waiting again loses no byte
                if not pinged:
                    pinged = True
                    session._put(0x9, b"")
                    continue
                self._counts["timeouts"] += 1
                self._ws_close(writer, 1001, "idle")
                return
            pinged = False
            fin, opcode, masked, n = b1 & 0x80, b1 & 0x0F, b2 & 0x80, b2 & 0x7F
            if not masked or b1 & 0x70:
                self._ws_close(writer, 1002, "client frames must be masked, no extensions")
                return
            # the rest of a frame is due at once: a client that stops mid-frame is cut off, not waited for
            if n == 126:
                n = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), lim.body_timeout_s))[0]
            elif n == 127:
                n = struct.unpack("!Q", await asyncio.wait_for(reader.readexactly(8), lim.body_timeout_s))[0]
            if n + len(message) > lim.ws_max_frame_bytes:
                self._ws_close(writer, 1009, f"message over {lim.ws_max_frame_bytes} bytes")
                return
            mask = await asyncio.wait_for(reader.readexactly(4), lim.body_timeout_s)
            data = _unmask(await asyncio.wait_for(reader.readexactly(n), lim.body_timeout_s), mask)
            # Every frame spends this socket's budget, a large one as many small ones (unmasking and parsing
            # scale with it); over it, the next read waits (TCP pushes back), so no client can keep this thread
            # (and through the GIL, the frame loop) busy.  Each socket has its own: sharing the address's
            # request budget made a client that LISTENs to every path at once get the page 429s from the same
            # tablet.  A burst waits a little; a socket that stays over its budget for ws_flood_s is cut off
            # rather than read slowly for as long as its buffers last (a slot held long after it left).
            now = self._loop.time()
            tokens = min(lim.ws_burst, tokens + (now - refilled) * lim.ws_rate)
            refilled = now
            cost = 1.0 + n / 4096.0
            if tokens < cost:
                self._counts["rate_limited"] += 1
                throttled_since = now if throttled_since is None else throttled_since
                if now - throttled_since > lim.ws_flood_s:
                    self._ws_close(writer, 1008, f"over {lim.ws_rate:g} messages/s for {lim.ws_flood_s:g} s")
                    return
                await asyncio.sleep((cost - tokens) / lim.ws_rate)
                tokens, refilled = cost, self._loop.time()
            else:
                throttled_since = None   # read within the budget: not (or no longer) flooding
            tokens -= cost
            if opcode == 0x8:
                self._ws_close(writer, 1000, "")
                return
            if opcode == 0x9:
                session._put(0xA, bytes(data))
                continue
            if opcode == 0xA:
                continue
            if opcode in (0x1, 0x2):
                msg_opcode = opcode
                message = bytearray(data)
            elif opcode == 0x0:
                message += data
            else:
                self._ws_close(writer, 1002, f"unknown opcode {opcode}")
                return
            if not fin:
                continue
            payload, message = bytes(message), bytearray()
            try:
                if msg_opcode == 0x1:
                    try:
                        text = payload.decode("utf-8")
                    except UnicodeDecodeError:
                        self._ws_close(writer, 1007, "text frame is not UTF-8")
                        return
                    session.on_text(text)
                else:
                    session.on_binary(payload)
            except Exception:  # noqa: BLE001 - a handler bug closes this client only
                log.exception("websocket handler failed")
                self._ws_close(writer, 1011, "internal error")
                return

    @staticmethod
    def _ws_close(writer, code: int, reason: str) -> None:
        try:
            writer.write(_ws_frame(0x8, struct.pack("!H", code) + reason.encode()[:120]))
        except Exception:  # noqa: BLE001
            pass
