"""The piece's own web surface: the phone page, its token-protected API, OSCQuery and /health on one port.

:class:`WebConfig` reads the venue's ``[web]`` table (``host``, ``port``, ``token``, ``enabled``).
:class:`WebControl` mounts everything on one bounded :class:`~installation.control.http.HttpServer`:

- ``/ui/`` — the page (plain files from ``installation/control/web/``; no CDN);
- ``/api/...`` — state, thumbnail and commands; every call needs the venue's token
  (``Authorization: Bearer TOKEN``, ``X-Tapestry-Token`` or ``?token=``), else 401;
- ``/health``, ``/metrics`` — the health board, as on the loopback health port;
- every other path — OSCQuery (read-only, like the OSC port itself), with the LISTEN WebSocket.

Writes become the same engine commands OSC uses; values are checked here first (``ParamTree.validate``
is pure) so a bad request gets a 400 with the reason, not a silent drop.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import mimetypes
import queue
from dataclasses import dataclass
from importlib import resources
from typing import Mapping

from installation.control.bridge import EngineBridge, HoursOverride, NextScene
from installation.control.commands import GoScene, LoadPreset, SetParam
from installation.control.http import HttpError, HttpLimits, HttpServer, Request, Response
from installation.control.oscquery import OscQuery
from installation.params import ParamError, ParamTree

log = logging.getLogger(__name__)

ASSETS = ("index.html", "app.js", "style.css")


class WebConfigError(ValueError):
    """A ``[web]`` venue table the page cannot start with (one line a technician can act on)."""


@dataclass(frozen=True)
class WebConfig:
    """The venue's ``[web]`` table.  Without a token the page only listens on loopback; without the
    table there is no page (``enabled`` defaults to whether the venue has a ``[web]`` table)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None

    @classmethod
    def from_venue(cls, sections: Mapping) -> "WebConfig":
        """Read and check ``sections["web"]``; :class:`WebConfigError` for a bad key or value."""
        table = sections.get("web", {}) if sections else {}
        if not isinstance(table, Mapping):
            raise WebConfigError("[web] must be a table")
        unknown = sorted(set(table) - {"enabled", "host", "port", "token"})
        if unknown:
            raise WebConfigError(f"[web]: unknown key {unknown[0]!r} (expected enabled, host, port, token)")
        enabled = table.get("enabled", "web" in (sections or {}))  # no [web] table: no page
        host = table.get("host", cls.host)
        port = table.get("port", cls.port)
        token = table.get("token")
        if not isinstance(enabled, bool):
            raise WebConfigError("[web] enabled: expected true or false")
        if not isinstance(host, str):
            raise WebConfigError("[web] host: expected an address such as \"0.0.0.0\" or \"192.168.1.20\"")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise WebConfigError(f"[web] host: {host!r} is not an IP address") from None
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise WebConfigError(f"[web] port: expected 0..65535, got {port!r}")
        if token is not None and (not isinstance(token, str) or len(token) < 4):
            raise WebConfigError("[web] token: expected a string of at least 4 characters (a PIN or a passphrase)")
        if token is None and not ipaddress.ip_address(host).is_loopback:
            raise WebConfigError(f"[web] host {host} is reachable from the network: set [web] token (a PIN) too")
        return cls(enabled, host, port, token)


class WebControl:
    """The web server of a running show (see the module doc).  ``start()`` / ``stop()`` with the show."""

    def __init__(self, config: WebConfig, tree: ParamTree, commands: queue.Queue, bridge: EngineBridge,
                 health_routes: Mapping | None = None, osc_port: int | None = None,
                 limits: HttpLimits = HttpLimits()) -> None:
        self.config = config
        self.tree = tree
        self.specs = tree.specs()  # immutable declarations, safe to keep on this thread
        self.commands = commands
        self.bridge = bridge
        routes = {"/ui": self._redirect_ui, "/ui/": self._asset, "/api/state": self._api_state,
                  "/api/thumbnail.jpg": self._api_thumb, "/api/set": self._api_set,
                  "/api/preset/load": self._api_preset, "/api/scene/go": self._api_scene,
                  "/api/scene/next": self._api_scene_next, "/api/blackout": self._api_blackout,
                  "/api/hours": self._api_hours}
        routes.update({f"/ui/{name}": self._asset for name in ASSETS})
        routes.update({k: self._protected(v) for k, v in (health_routes or {}).items() if k != "/"})
        self.server = HttpServer(routes, fallback=self._fallback, ws_handler=self._ws, host=config.host,
                                 port=config.port, limits=limits, name="web control")
        self.query = OscQuery(self.specs, bridge, osc_port, call_soon=self.server.call_soon)
        self.osc_port = osc_port
        self.advertiser = None

    def start(self) -> bool:
        """Listen (and advertise over mDNS when reachable from the network); False (logged) if the
        address cannot be bound: the show goes on without the page."""
        if not self.server.start():
            return False
        from installation.control.mdns import Advertiser
        self.advertiser = Advertiser("Tapestry", self.config.host, self.server.port, self.osc_port)
        self.advertiser.start()
        return True

    def stop(self) -> None:
        """Stop serving."""
        self.query.close()
        if self.advertiser is not None:
            self.advertiser.stop()
        self.server.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        return self.server.port

    # -- auth --------------------------------------------------------------------
    def _check(self, req: Request) -> None:
        token = self.config.token
        if token is None:  # loopback only (WebConfig refuses a LAN address without a token)
            return
        given = req.headers.get("x-tapestry-token") or req.params().get("token", "")
        auth = req.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HttpError(401, "wrong or missing token (enter the venue's PIN)")

    def _protected(self, handler):
        def route(req: Request) -> Response:
            self._check(req)
            return handler(req)
        return route

    def _post_json(self, req: Request) -> dict:
        self._check(req)
        if req.method != "POST":
            raise HttpError(405, "use POST with a JSON body")
        body = req.json() if req.body else {}
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        return body

    def _enqueue(self, cmd) -> Response:
        try:
            self.commands.put_nowait(cmd)
        except queue.Full:
            raise HttpError(503, "the engine is busy; try again") from None
        return Response.json({"ok": True}, 200)

    # -- routes ------------------------------------------------------------------
    def _fallback(self, req: Request) -> Response:
        if req.path == "/" and not req.query and "text/html" in req.headers.get("accept", ""):
            return self._redirect_ui(req)  # a browser at the root wants the page; OSCQuery clients get JSON
        return self.query.handle(req)

    def _ws(self, req: Request):
        return self.query.session(req)

    def _redirect_ui(self, req: Request) -> Response:
        return Response(302, b"", headers={"Location": "/ui/"})

    def _asset(self, req: Request) -> Response:
        name = req.path.rsplit("/", 1)[-1] or "index.html"
        data = resources.files("installation.control").joinpath("web", name).read_bytes()
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        return Response(200, data, ctype, {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob:"})

    def _api_state(self, req: Request) -> Response:
        self._check(req)
        st = self.bridge.state
        values = self.bridge.values
        params = []
        for spec in self.specs:
            p = {"path": spec.path, "kind": spec.kind, "value": values.get(spec.path, spec.default),
                 "description": spec.description, "unit": spec.unit, "live": spec.live}
            if spec.kind in ("float", "int"):
                p.update(lo=spec.lo, hi=spec.hi)
            if spec.kind == "choice":
                p["choices"] = list(spec.choices)
            params.append(p)
        return Response.json({"params": params, "presets": list(st.presets), "preset": st.preset,
                              "scenes": list(st.scenes), "scene": st.scene, "hours": st.hours})

    def _api_thumb(self, req: Request) -> Response:
        self._check(req)
        jpg = self.bridge.thumbnail
        if jpg is None:
            raise HttpError(404, "no thumbnail yet")
        return Response(200, jpg, "image/jpeg")

    def _api_set(self, req: Request) -> Response:
        body = self._post_json(req)
        path, value = body.get("path"), body.get("value")
        if not isinstance(path, str):
            raise HttpError(400, 'expected {"path": "show/master", "value": 0.5}')
        try:
            coerced = self.tree.validate(path, value)
        except ParamError as exc:
            raise HttpError(400, str(exc)) from None
        return self._enqueue(SetParam(path=path, value=coerced))

    def _api_blackout(self, req: Request) -> Response:
        body = self._post_json(req)
        on = body.get("on")
        if not isinstance(on, bool):
            raise HttpError(400, 'expected {"on": true} or {"on": false}')
        return self._enqueue(SetParam(path="show/blackout", value=on))

    def _api_preset(self, req: Request) -> Response:
        body = self._post_json(req)
        name, fade = body.get("name"), body.get("fade_s")
        if not isinstance(name, str) or name not in self.bridge.state.presets:
            raise HttpError(400, f"unknown preset {name!r} (one of {', '.join(self.bridge.state.presets)})")
        if fade is not None and (isinstance(fade, bool) or not isinstance(fade, (int, float))
                                 or not 0 <= fade <= 120):
            raise HttpError(400, "fade_s: expected seconds 0 .. 120")
        return self._enqueue(LoadPreset(name=name, fade_s=None if fade is None else float(fade)))

    def _api_scene(self, req: Request) -> Response:
        body = self._post_json(req)
        name = body.get("name")
        if not isinstance(name, str) or name not in self.bridge.state.scenes:
            raise HttpError(400, f"unknown scene {name!r}" + (
                f" (one of {', '.join(self.bridge.state.scenes)})" if self.bridge.state.scenes
                else " (no scene list in the venue)"))
        return self._enqueue(GoScene(name=name))

    def _api_scene_next(self, req: Request) -> Response:
        self._post_json(req)
        if not self.bridge.state.scenes:
            raise HttpError(400, "no scene list is configured (add [scenes] to the venue file)")
        return self._enqueue(NextScene())

    def _api_hours(self, req: Request) -> Response:
        body = self._post_json(req)
        mode, minutes = body.get("mode"), body.get("minutes", 60)
        if mode not in ("open", "closed", "auto"):
            raise HttpError(400, 'mode: expected "open", "closed" or "auto"')
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 1 <= minutes <= 24 * 60:
            raise HttpError(400, "minutes: expected 1 .. 1440")
        if self.bridge.state.hours is None:
            raise HttpError(400, "no opening hours are configured (add [schedule] to the venue file)")
        return self._enqueue(HoursOverride(mode=mode, minutes=float(minutes)))
