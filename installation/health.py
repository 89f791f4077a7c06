"""Health reporting: what the running show is doing, for a technician and for monitoring.

:class:`HealthBoard` is a latest-value slot the engine writes (cheap, lock-free: each write
replaces a reference or one slot of a fixed ring).  :class:`HealthServer` serves it on loopback
(the bounded one-thread server of ``installation.control.http``): ``GET /health`` is JSON, ``GET /metrics`` is the
Prometheus text format.  ``python run.py status`` uses :func:`fetch_status` and
:func:`format_status`.

Snapshot convention (what the engine passes to :meth:`HealthBoard.update`, e.g. its
``status()`` with the sensor hub's status under ``"sensors"``): a dict of JSON-able values.
``"sensors"`` and ``"outputs"`` (or ``"leds": {"outputs": [...]}``) are a dict name -> entry, or
a list of entries carrying ``"name"``; an entry's ``"state"`` of ``ok``, ``running``,
``disabled`` or ``idle`` is healthy, any other state (``backoff``, ``stale``, ``error`` ...) makes
the overall status ``"degraded"``; entries without a state are informational.  Numeric fields of
the entries, top-level numbers and numbers one level down (``"mood": {"intensity": 0.4}``)
also become metrics.  Frame statistics come from :meth:`HealthBoard.record_frame` when it is
called, else from the snapshot's own ``fps`` / ``frames``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np

from installation.alerts import format_alerts
from installation.outputs.discovery import format_controllers

log = logging.getLogger(__name__)

DEFAULT_PORT = 9091
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}/health"
HEALTHY_STATES = frozenset({"ok", "running", "disabled", "idle"})


class HealthBoard:
    """Latest state of the running show.

    ``window``: frame times kept for percentiles (a fixed ring, no growth); ``max_errors``: last
    errors kept; ``stall_s``: no frame for this long reports status ``"stalled"``.  Writers
    (:meth:`update`, :meth:`record_frame`) are meant for the engine thread; :meth:`error` may be
    called from any thread; readers (:meth:`report`, :meth:`metrics`) from the HTTP thread.
    """

    def __init__(self, window: int = 1024, max_errors: int = 20, stall_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if window < 2 or max_errors < 1:
            raise ValueError("HealthBoard needs window >= 2 and max_errors >= 1")
        self._clock = clock
        self._started = clock()
        self._window = int(window)
        self._frame_ms = np.zeros(self._window, np.float64)
        self._frame_at = np.zeros(self._window, np.float64)
        self._frames = 0
        self._snapshot: dict = {}
        self._snapshot_at: float | None = None
        self._errors: tuple[dict, ...] = ()
        self._error_counts: dict[str, int] = {}
        self._max_errors = int(max_errors)
        self._lock = threading.Lock()   # only for errors, which come from any thread and are rare
        self.stall_s = stall_s
        self._sections: dict[str, dict] = {}  # "controllers" (discovery), "alerts": kept by their own threads

    # -- writers ---------------------------------------------------------------------------------
    def update(self, snapshot: dict) -> None:
        """Replace the latest snapshot (the dict is kept, not copied: pass a fresh one each time).

        Each output entry with a ``packets`` count gains ``packets_per_s`` since the previous snapshot."""
        now = self._clock()
        leds = snapshot.get("leds")
        outputs = snapshot.get("outputs", leds.get("outputs") if isinstance(leds, dict) else None)
        prev, prev_at = getattr(self, "_packets", {}), self._snapshot_at
        counts = {}
        for name, entry in _entries(outputs).items():
            if _is_number(entry.get("packets")):
                counts[name] = entry["packets"]
                if name in prev and prev_at is not None and now > prev_at:
                    entry["packets_per_s"] = round((entry["packets"] - prev[name]) / (now - prev_at), 1)
        self._packets = counts
        self._snapshot = snapshot
        self._snapshot_at = now

    def record_frame(self, ms: float) -> None:
        """Record one frame's duration in milliseconds."""
        i = self._frames % self._window
        self._frame_ms[i] = ms
        self._frame_at[i] = self._clock()
        self._frames += 1

    def error(self, source: str, message: str) -> None:
        """Keep an error for the report (the last ``max_errors``, with a count per source)."""
        entry = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "source": str(source), "message": str(message)[:500]}
        with self._lock:
            self._errors = (self._errors + (entry,))[-self._max_errors:]
            self._error_counts[entry["source"]] = self._error_counts.get(entry["source"], 0) + 1

    def note_states(self, snapshot: dict) -> list[str]:
        """Compare each sensor's and output's state with the previous snapshot's; keep an error for each
        one that turned unhealthy (with its last error text).  Returns one line per change, for the log."""
        changes = []
        prev = getattr(self, "_states", {})
        now: dict[str, str] = {}
        leds = snapshot.get("leds")
        groups = (("sensor", _entries(snapshot.get("sensors"))),
                  ("output", _entries(snapshot.get("outputs", leds.get("outputs") if isinstance(leds, dict) else None))))
        for kind, group in groups:
            for name, entry in group.items():
                if "state" not in entry:
                    continue
                key, state = f"{kind}/{name}", str(entry["state"])
                now[key] = state
                if prev.get(key) == state or (key not in prev and state.lower() in HEALTHY_STATES):
                    continue
                why = entry.get("last_error") or entry.get("error") or ""
                changes.append(f"{key}: {prev.get(key, 'starting')} -> {state}" + (f" ({why})" if why else ""))
                if state.lower() not in HEALTHY_STATES:
                    self.error(key, f"{state}" + (f": {why}" if why else ""))
        self._states = now
        return changes

    def set_section(self, name: str, doc: dict) -> None:
        """Publish a part of the report another thread keeps (``"controllers"`` from discovery,
        ``"alerts"``); any thread may call it (it replaces one reference).  A ``"controllers"`` entry
        whose state is ``missing`` or ``mismatch`` makes the status ``"degraded"``."""
        self._sections = {**self._sections, name: doc}

    # -- readers ---------------------------------------------------------------------------------
    def frame_stats(self) -> dict:
        """fps and frame-time percentiles over the recent window."""
        n = min(self._frames, self._window)
        if n == 0:
            return {"frames": 0, "fps": 0.0, "frame_ms": {"p50": None, "p95": None, "p99": None, "max": None}}
        ms = self._frame_ms[:n].copy()
        at = np.sort(self._frame_at[:n])
        span = at[-1] - at[0]
        fps = (n - 1) / span if n > 1 and span > 0 else 0.0
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        return {"frames": self._frames, "fps": round(float(fps), 2),
                "frame_ms": {"p50": round(float(p50), 3), "p95": round(float(p95), 3),
                             "p99": round(float(p99), 3), "max": round(float(ms.max()), 3)}}

    def report(self) -> dict:
        """The /health document."""
        now = self._clock()
        snap = self._snapshot
        stats = self.frame_stats()
        if self._frames:
            last: float | None = float(self._frame_at[(self._frames - 1) % self._window])
        else:  # no per-frame timing: the snapshot's own figures and its age stand in
            last = self._snapshot_at
            for key in ("fps", "frames"):
                if _is_number(snap.get(key)):
                    stats[key] = snap[key]
        age = None if last is None else now - last
        with self._lock:
            errors, counts = list(self._errors), dict(self._error_counts)
        for e in snap.get("errors") or ():
            errors.append(e if isinstance(e, dict) else {"time": None, "source": "engine", "message": str(e)})
        sensors = _entries(snap.get("sensors"))
        leds = snap.get("leds")
        outputs = _entries(snap.get("outputs", leds.get("outputs") if isinstance(leds, dict) else None))
        unhealthy = [f"{kind}/{name}" for kind, group in (("sensor", sensors), ("output", outputs))
                     for name, entry in group.items()
                     if "state" in entry and str(entry["state"]).lower() not in HEALTHY_STATES]
        sections = self._sections
        controllers = (sections.get("controllers") or {}).get("expected") or {}
        unhealthy += [f"controller/{name}" for name, entry in sorted(controllers.items())
                      if isinstance(entry, dict) and entry.get("state") in ("missing", "mismatch")]
        if age is None or age > self.stall_s:
            status = "stalled" if age is not None else "starting"
        else:
            status = "degraded" if unhealthy else "ok"
        doc = {k: v for k, v in snap.items() if k not in ("sensors", "outputs", "errors")}
        doc.update(sections)
        doc.update({
            "status": status,
            "unhealthy": unhealthy,
            "uptime_s": round(now - self._started, 1),
            "last_frame_age_s": None if age is None else round(age, 3),
            **stats,
            "sensors": sensors,
            "outputs": outputs,
            "errors": errors,
            "error_counts": counts,
        })
        return _jsonable(doc)

    def metrics(self) -> str:
        """The report in Prometheus text exposition format (version 0.0.4)."""
        doc = self.report()
        m = _Metrics()
        m.add("tapestry_up", "gauge", "1 while the engine is producing frames", 1 if doc["status"] in ("ok", "degraded") else 0)
        m.add("tapestry_uptime_seconds", "gauge", "seconds since the engine started", doc["uptime_s"])
        m.add("tapestry_frames_total", "counter", "frames produced", doc["frames"])
        m.add("tapestry_fps", "gauge", "frames per second over the recent window", doc["fps"])
        if doc["last_frame_age_s"] is not None:
            m.add("tapestry_last_frame_age_seconds", "gauge", "seconds since the last frame", doc["last_frame_age_s"])
        for q, key in (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99")):
            if doc["frame_ms"][key] is not None:
                m.add("tapestry_frame_time_ms", "gauge", "frame time percentiles over the recent window",
                      doc["frame_ms"][key], {"quantile": q})
        for name, entry in sorted(((doc.get("controllers") or {}).get("expected") or {}).items()):
            if isinstance(entry, dict) and entry.get("state") not in (None, "disabled", "local", "unverified"):
                m.add("tapestry_controller_ok", "gauge", "1 when the output's controller answers discovery",
                      int(entry["state"] == "ok"), {"controller": name})
        for source, count in sorted(doc["error_counts"].items()):
            m.add("tapestry_errors_total", "counter", "errors reported, by source", count, {"source": source})
        for kind in ("sensor", "output"):
            for name, entry in sorted(doc[kind + "s"].items()):
                if "state" in entry:
                    ok = str(entry["state"]).lower() in HEALTHY_STATES
                    m.add(f"tapestry_{kind}_ok", "gauge", f"1 when the {kind} is healthy", int(ok), {kind: name})
                for field, value in sorted(entry.items()):
                    if _is_number(value):
                        m.add(f"tapestry_{kind}_{_metric_name(field)}", "gauge", f"{kind} field {field}",
                              value, {kind: name})
        for key, value in sorted(doc.items()):
            if key in _BUILTIN_KEYS:
                continue
            if _is_number(value):
                m.add(f"tapestry_{_metric_name(key)}", "gauge", f"snapshot value {key}", value)
            elif isinstance(value, dict) and key not in ("frame_ms", "error_counts", "controllers", "alerts"):
                for sub, v in sorted(value.items()):
                    if _is_number(v):
                        name = f"tapestry_{_metric_name(key)}_{_metric_name(sub)}"
                        m.add(name, "gauge", f"snapshot value {key}/{sub}", v)
        return m.text()


_BUILTIN_KEYS = {"uptime_s", "last_frame_age_s", "frames", "fps"}


def _entries(value: Any) -> dict[str, dict]:
    """Sensors/outputs as name -> dict, from a dict, a list of dicts with "name", or a list of names."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = []
        for i, e in enumerate(value):
            if isinstance(e, dict):
                items.append((str(e.get("name", i)), e))
            else:
                items.append((str(e), {"state": "ok"}))
    else:
        return {}
    return {str(k): (v if isinstance(v, dict) else {"state": str(v)}) for k, v in items}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _metric_name(s: str) -> str:
    name = re.sub(r"[^a-zA-Z0-9_]", "_", str(s))
    return name if not name[:1].isdigit() else "_" + name


def _label(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Metrics:
    def __init__(self) -> None:
        self.families: dict[str, list[str]] = {}

    def add(self, name: str, kind: str, help_: str, value: float, labels: dict | None = None) -> None:
        lines = self.families.setdefault(name, [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"])
        lab = "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}" if labels else ""
        lines.append(f"{name}{lab} {float(value):g}" if isinstance(value, float) else f"{name}{lab} {value}")

    def text(self) -> str:
        return "\n".join(line for lines in self.families.values() for line in lines) + "\n"


def _jsonable(v: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays converted, NaN/inf -> None, unknown objects -> str."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, (bool, int, str)):
        return v
    return str(v)


class HealthServer:
    """Serves a :class:`HealthBoard` over HTTP: ``/health`` (JSON) and ``/metrics`` (Prometheus).

    Binds ``host`` (default 127.0.0.1: the endpoint is for the machine's own technician and a
    local scraper) and ``port`` (0 picks a free one; see :attr:`port`).  Runs on the bounded
    one-thread server of :mod:`installation.control.http` (connection cap, slow-client timeouts).
    """

    def __init__(self, board: HealthBoard, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        self.board = board
        self.host = host
        self.port = port
        self._server = None

    def routes(self) -> dict:
        """``{path: handler}`` for /health, /metrics and / (also mounted by the web server)."""
        from installation.control.http import Response
        board = self.board

        def health(req):
            return Response(200, json.dumps(board.report(), allow_nan=False).encode(), "application/json")

        def metrics(req):
            return Response(200, board.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")

        def index(req):
            return Response.text("tapestry: GET /health (JSON) or /metrics (Prometheus)\n")

        return {"/health": health, "/health/": health, "/metrics": metrics, "/metrics/": metrics, "/": index}

    def start(self) -> bool:
        """Start serving; returns False (and logs why) if the address cannot be bound."""
        from installation.control.http import HttpServer
        self._server = HttpServer(self.routes(), host=self.host, port=self.port, name="health endpoint")
        if not self._server.start():
            self._server = None
            return False
        self.port = self._server.port
        return True

    @property
    def url(self) -> str:
        """The /health URL."""
        return f"http://{self.host}:{self.port}/health"

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.stop()
            self._server = None


class StatusUnavailable(RuntimeError):
    """No running Tapestry answered at the health URL."""


def fetch_status(url: str = DEFAULT_URL, timeout: float = 2.0) -> dict:
    """GET the /health document; raises :class:`StatusUnavailable` with a readable reason."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            doc = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise StatusUnavailable(f"{url} answered HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StatusUnavailable(f"no Tapestry answering at {url} ({reason}); is it running? "
                                f"(systemctl status tapestry)") from exc
    except ValueError as exc:
        raise StatusUnavailable(f"{url} did not return JSON: {exc}") from exc
    # Another program's JSON (a wrong --url): a list was a traceback, {} read as "status ?" and exit 1.
    if not isinstance(doc, dict) or not isinstance(doc.get("status"), str):
        raise StatusUnavailable(f"{url} answered, but not with Tapestry's /health document (is it the right "
                                f"address? the default is {DEFAULT_URL})")
    try:
        format_status(doc)   # fields of the wrong type (another program, another version) were a traceback
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise StatusUnavailable(f"{url} answered a /health document this version cannot read ({exc}); is it "
                                f"another program, or another version of Tapestry?") from None
    return doc


def _duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def status_exit(d: dict) -> int:
    """Exit status for ``run.py status``: 0 healthy, 1 degraded (or stalled, starting)."""
    return 0 if str(d.get("status")) == "ok" else 1


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {_value(x)}" for k, x in v.items() if x is not None and not isinstance(x, (dict, list)))
    if isinstance(v, float):
        return f"{v:.2f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) or "none"
    return "-" if v is None else str(v)


def format_status(d: dict) -> str:
    """A short human-readable report of a /health document for the terminal."""
    fm = d.get("frame_ms") or {}
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    lines = [
        f"status    {str(d.get('status', '?')).upper()}"
        + (f"  ({', '.join(d['unhealthy'])})" if d.get("unhealthy") else ""),
        f"uptime    {_duration(d.get('uptime_s'))}   frames {d.get('frames', 0)}   "
        f"last frame {fmt(None if d.get('last_frame_age_s') is None else max(0.0, d['last_frame_age_s']))} s ago",
        f"fps       {d.get('fps', 0):.1f}   frame ms p50 {fmt(fm.get('p50'))}  p95 {fmt(fm.get('p95'))}  "
        f"p99 {fmt(fm.get('p99'))}  max {fmt(fm.get('max'))}",
    ]
    extras = {k: v for k, v in d.items() if k not in _REPORT_KEYS and k not in ("leds", "live_sensors", "frame_ms_avg")}
    for k in ("preset", "scene", "schedule", "mood", "particles"):
        if k in extras:
            lines.append(f"{k:<9} {_value(extras.pop(k)) if extras.get(k) is not None or k != 'scene' else 'none'}")
    for k, v in sorted(extras.items()):
        if v is not None:
            lines.append(f"{k:<9} {_value(v)}")
    for kind in ("sensors", "outputs"):
        group = d.get(kind) or {}
        if group:
            lines.append(f"{kind}:")
            for name, entry in sorted(group.items()):
                entry = entry if isinstance(entry, dict) else {"state": entry}
                rest = ", ".join(f"{k}={_value(v)}" for k, v in entry.items()
                                 if k not in ("state", "name") and v is not None and v != "")
                lines.append(f"  {name:<20} {str(entry.get('state', '?')):<12} {rest}".rstrip())
    lines += format_controllers(d.get("controllers")) + format_alerts(d.get("alerts"))
    errors = d.get("errors") or []
    if errors:
        lines.append(f"last errors ({len(errors)}):")
        for e in errors[-10:]:
            lines.append(f"  {e.get('time') or '-'} {e.get('source', '')}: {e.get('message', '')}")
    return "\n".join(lines)


_REPORT_KEYS = {"status", "unhealthy", "uptime_s", "last_frame_age_s", "frames", "fps", "frame_ms",
                "sensors", "outputs", "errors", "error_counts", "controllers", "alerts"}
