"""Alerts: tell a person when the show degrades and when it recovers, through the venue's webhook.

:class:`AlertMonitor` turns successive health reports (the ``/health`` document of
:class:`installation.health.HealthBoard`) into incidents: a problem (an output in backoff, a sensor
gone, a controller missing from discovery, the frame rate under a threshold, the frame loop stalled)
opens an incident once it has lasted ``degraded_for_s``, and closes it once it has been gone that
long.  Opening and closing are events; events are grouped into one JSON POST at most every
``min_interval_s``, so a flapping output cannot flood anybody: one message per incident, never one
per frame.

:class:`Alerts` runs it: one thread reads the board once a second (nothing here touches the frame
thread), another POSTs, retrying with exponential backoff; they talk through a bounded queue.
A webhook that hangs, refuses or is unreachable costs only that sending thread.

Venue keys: the ``[alerts]`` table, read by :meth:`AlertConfig.from_sections`.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

log = logging.getLogger(__name__)

KINDS = ("outputs", "sensors", "controllers", "fps", "stalled")
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
QUEUE_SIZE = 16


class AlertConfigError(ValueError):
    """An ``[alerts]`` table that cannot be used; the message names the key."""


@dataclass(frozen=True)
class AlertConfig:
    """The venue's ``[alerts]`` table (see docs/operations.md, "Alerts and discovery")."""

    webhook: str = ""               # http(s) URL that receives the JSON POSTs; "" = alerts off
    min_interval_s: float = 60.0    # at most one POST per this many seconds (events in between are grouped)
    degraded_for_s: float = 10.0    # a problem must last this long to open an incident (and be gone this long to close it)
    fps_below: float = 0.0          # frame rate under this is a problem; 0 = 75 % of the show's frame rate
    on: tuple[str, ...] = KINDS     # which problems count: outputs, sensors, controllers, fps, stalled
    recoveries: bool = True         # also send "recovered" events
    timeout_s: float = 5.0          # per HTTP attempt
    retries: int = 5                # attempts after the first, with backoff 1, 2, 4 ... 60 s
    token: str = ""                 # sent as "Authorization: Bearer <token>" when set

    _KEYS = ("webhook", "min_interval_s", "degraded_for_s", "fps_below", "on", "recoveries", "timeout_s",
             "retries", "token")

    @property
    def enabled(self) -> bool:
        """True when a webhook is named."""
        return bool(self.webhook)

    @classmethod
    def from_sections(cls, sections: Mapping[str, Any], where: str = "venue") -> "AlertConfig":
        """Read ``sections["alerts"]`` (missing: alerts off); :class:`AlertConfigError` names the key."""
        t = sections.get("alerts", {}) if sections else {}
        w = f"{where}: [alerts]"
        if not isinstance(t, Mapping):
            raise AlertConfigError(f"{w}: expected a table")
        unknown = sorted(set(t) - set(cls._KEYS))
        if unknown:
            raise AlertConfigError(f"{w}: unknown key {unknown[0]!r} (expected one of {', '.join(cls._KEYS)})")
        d = cls()

        def num(key: str, lo: float, hi: float, integer: bool = False) -> float:
            v = t.get(key, getattr(d, key))
            ok = isinstance(v, int) if integer else isinstance(v, (int, float))
            if isinstance(v, bool) or not ok or not math.isfinite(v) or not lo <= v <= hi:
                kind = "an integer" if integer else "a number"
                raise AlertConfigError(f"{w}: {key} must be {kind} in {lo:g}..{hi:g}, got {v!r}")
            return int(v) if integer else float(v)

        def text(key: str) -> str:
            v = t.get(key, getattr(d, key))
            if not isinstance(v, str):
                raise AlertConfigError(f"{w}: {key} must be a string, got {v!r}")
            return v

        webhook = text("webhook").strip()
        if webhook:
            u = urllib.parse.urlsplit(webhook)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise AlertConfigError(f"{w}: webhook must be an http:// or https:// URL, got {webhook!r}")
        on = t.get("on", list(d.on))
        if isinstance(on, str):
            on = [on]
        if not isinstance(on, list) or not all(isinstance(k, str) for k in on):
            raise AlertConfigError(f"{w}: on must be a list of {', '.join(KINDS)}")
        bad = [k for k in on if k not in KINDS]
        if bad:
            raise AlertConfigError(f"{w}: on: unknown kind {bad[0]!r} (one of {', '.join(KINDS)})")
        recoveries = t.get("recoveries", d.recoveries)
        if not isinstance(recoveries, bool):
            raise AlertConfigError(f"{w}: recoveries must be true or false, got {recoveries!r}")
        return cls(webhook=webhook, min_interval_s=num("min_interval_s", 0.0, 86400.0),
                   degraded_for_s=num("degraded_for_s", 0.0, 3600.0), fps_below=num("fps_below", 0.0, 1000.0),
                   on=tuple(dict.fromkeys(on)), recoveries=recoveries, timeout_s=num("timeout_s", 0.1, 60.0),
                   retries=num("retries", 0, 100, integer=True), token=text("token"))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def problems(report: Mapping[str, Any], config: AlertConfig, target_fps: float) -> dict[str, str]:
    """The problems in one health report that ``config.on`` counts: key ("output/wall", "fps", ...) -> detail."""
    out: dict[str, str] = {}
    status = report.get("status")
    if status == "starting":
        return out
    if status == "stalled" and "stalled" in config.on:
        out["frames/stalled"] = f"no frame for {report.get('last_frame_age_s')} s"
    groups = {"output": ("outputs", report.get("outputs") or {}), "sensor": ("sensors", report.get("sensors") or {}),
              "controller": ("controllers", ((report.get("controllers") or {}).get("expected") or {}))}
    for key in report.get("unhealthy") or ():
        kind, _, name = str(key).partition("/")
        if kind not in groups or groups[kind][0] not in config.on:
            continue
        entry = groups[kind][1].get(name) or {}
        detail = str(entry.get("state", "unhealthy")) if isinstance(entry, dict) else str(entry)
        for extra in ("reason", "last_error", "error"):
            if isinstance(entry, dict) and entry.get(extra):
                detail += f": {entry[extra]}"
                break
        out[str(key)] = detail
    threshold = config.fps_below or 0.75 * target_fps
    fps = report.get("fps")
    if ("fps" in config.on and status in ("ok", "degraded") and isinstance(fps, (int, float)) and threshold > 0
            and (report.get("frames") or 0) >= 2 and fps < threshold):
        out["fps"] = f"{fps:.1f} fps, under {threshold:g}"
    return out


@dataclass
class _Incident:
    since: float
    detail: str
    open: bool = False
    clear_since: float | None = None


@dataclass
class AlertMonitor:
    """Health reports in, grouped alert payloads out (pure logic: no threads, no network).

    :meth:`observe` takes a report and the time; :meth:`take` returns the next payload to POST when
    events are waiting and ``min_interval_s`` has passed since the last one, else None.
    """

    config: AlertConfig
    target_fps: float = 60.0
    venue: str = ""
    _incidents: dict[str, _Incident] = field(default_factory=dict)
    _events: list[dict] = field(default_factory=list)
    _last_post: float = -math.inf

    def observe(self, report: Mapping[str, Any], now: float) -> None:
        """Update incidents from one report (times in seconds since the epoch)."""
        current = problems(report, self.config, self.target_fps)
        hold = self.config.degraded_for_s
        for key, detail in current.items():
            inc = self._incidents.get(key)
            if inc is None:
                inc = self._incidents[key] = _Incident(since=now, detail=detail)
            inc.detail, inc.clear_since = detail, None
            if not inc.open and now - inc.since >= hold:  # present (or flapping) for hold seconds
                inc.open = True
                self._events.append({"event": "degraded", "what": key, "detail": detail, "since": _iso(inc.since),
                                     "at": _iso(now)})
        for key, inc in list(self._incidents.items()):
            if key in current:
                continue
            if inc.clear_since is None:
                inc.clear_since = now
            if now - inc.clear_since < hold:
                continue  # a flapping problem stays one incident
            del self._incidents[key]
            if inc.open:
                if self.config.recoveries:
                    self._events.append({"event": "recovered", "what": key, "detail": inc.detail,
                                         "since": _iso(inc.since), "at": _iso(now),
                                         "lasted_s": round(now - inc.since, 1)})

    @property
    def open(self) -> list[str]:
        """Open incidents."""
        return sorted(k for k, i in self._incidents.items() if i.open)

    def take(self, now: float) -> dict | None:
        """The payload to send now, or None (nothing waiting, or rate-limited)."""
        if not self._events or now - self._last_post < self.config.min_interval_s:
            return None
        events, self._events = self._events, []
        self._last_post = now
        open_ = self.open
        degraded = [e for e in events if e["event"] == "degraded"]
        recovered = [e for e in events if e["event"] == "recovered"]
        parts = []
        if degraded:
            parts.append("degraded: " + "; ".join(f"{e['what']} ({e['detail']})" for e in degraded))
        if recovered:
            parts.append("recovered: " + ", ".join(e["what"] for e in recovered))
        if open_ and not degraded:
            parts.append("still open: " + ", ".join(open_))
        where = f" at {self.venue}" if self.venue else ""
        return {"source": "tapestry", "id": str(uuid.uuid4()), "venue": self.venue, "host": socket.gethostname(),
                "time": _iso(now), "status": "degraded" if open_ else "recovered", "open": open_,
                "events": events, "text": f"Tapestry{where}: " + " | ".join(parts)}


class Alerts:
    """Runs an :class:`AlertMonitor` over ``report()`` (the health board's) and POSTs to the webhook.

    ``publish(status)`` (optional) receives the alerting state (sent, failed, open incidents, last
    error) for the health report.  ``check_s``: how often the report is read.
    """

    def __init__(self, config: AlertConfig, report: Callable[[], Mapping[str, Any]], target_fps: float = 60.0,
                 venue: str = "", publish: Callable[[dict], None] | None = None, check_s: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.monitor = AlertMonitor(config, target_fps, venue)
        self._report = report
        self._publish = publish
        self._check_s = check_s
        self._clock = clock
        self._queue: queue.Queue[dict] = queue.Queue(QUEUE_SIZE)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.last_sent: str | None = None
        self.last_error: str = ""
        self.backoff_first_s = BACKOFF_FIRST_S
        u = urllib.parse.urlsplit(config.webhook)
        # host only: a webhook's path or query often is its secret (Slack, Discord, Teams)
        self._where = f"{u.scheme}://{u.hostname}{':' + str(u.port) if u.port else ''}" + ("/..." if u.path.strip("/") else "")

    def start(self) -> "Alerts":
        """Start the watching and the sending threads."""
        for name, target in (("alerts-watch", self._watch), ("alerts-send", self._send_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self._publish_status()
        return self

    def stop(self) -> None:
        """Stop both threads (a POST in flight is abandoned after at most ``timeout_s``)."""
        self._stop.set()
        for t in self._threads:
            t.join(self.config.timeout_s + 1.0)
        self._threads = []

    def status(self) -> dict:
        """The alerting state for /health."""
        return {"webhook": self._where, "open": self.monitor.open, "sent": self.sent, "failed": self.failed,
                "dropped": self.dropped, "last_sent": self.last_sent, "last_error": self.last_error}

    def check(self) -> None:
        """Read the report once, update incidents and queue a payload if one is due."""
        now = self._clock()
        self.monitor.observe(self._report(), now)
        payload = self.monitor.take(now)
        if payload is None:
            return
        while True:
            try:
                self._queue.put_nowait(payload)
                break
            except queue.Full:  # the webhook has been failing for long: keep the newest
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass
        self._publish_status()

    def _watch(self) -> None:
        while not self._stop.wait(self._check_s):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - a bad report must not end alerting
                error = f"{type(exc).__name__}: {exc}"
                if error != self.last_error:  # once per distinct error, not once a second
                    log.exception("alerts: checking the health report failed")
                self.last_error = error

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                payload = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._deliver(payload)
            self._publish_status()

    def _deliver(self, payload: dict) -> None:
        body = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": "tapestry-alerts",
                   "X-Tapestry-Alert-Id": payload["id"]}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        delay = self.backoff_first_s
        for attempt in range(self.config.retries + 1):
            if self._stop.is_set():
                return
            error, retry = self._post(body, headers)
            if error is None:
                self.sent += 1
                self.last_sent = payload["time"]
                self.last_error = ""
                log.info("alert sent to %s: %s", self._where, payload["text"])
                return
            self.last_error = error
            if not retry or attempt == self.config.retries:
                break
            log.warning("alert to %s failed (%s); retrying in %.0f s", self._where, error, delay)
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, BACKOFF_MAX_S)
        self.failed += 1
        log.error("alert to %s not delivered (%s): %s", self._where, self.last_error, payload["text"])

    def _post(self, body: bytes, headers: dict) -> tuple[str | None, bool]:
        """One attempt: (None, _) when delivered, else (reason, worth retrying)."""
        req = urllib.request.Request(self.config.webhook, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.config.timeout_s) as resp:
                resp.read(4096)
            return None, False
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code} {exc.reason}", exc.code >= 500 or exc.code in (408, 429)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return f"{getattr(exc, 'reason', exc)}", True

    def _publish_status(self) -> None:
        if self._publish is not None:
            self._publish(self.status())


def start_alerts(config: AlertConfig, report: Callable[[], Mapping[str, Any]], target_fps: float, venue: str,
                 publish: Callable[[dict], None] | None = None) -> Alerts | None:
    """Start alerting for a live show (None when no webhook is named)."""
    if not config.enabled:
        return None
    return Alerts(config, report, target_fps=target_fps, venue=venue, publish=publish).start()


def format_alerts(doc: Any) -> list[str]:
    """Lines for ``run.py status``: where alerts go and how they fared."""
    if not isinstance(doc, dict) or not doc.get("webhook"):
        return []
    line = (f"alerts    -> {doc['webhook']}: {doc.get('sent', 0)} sent, {doc.get('failed', 0)} failed"
            + (f", last {doc['last_sent']}" if doc.get("last_sent") else ""))
    if doc.get("open"):
        line += f"; open: {', '.join(doc['open'])}"
    if doc.get("last_error"):
        line += f"; last error: {doc['last_error']}"
    return [line]
