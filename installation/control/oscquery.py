"""OSCQuery (Vidvox proposal) served from the parameter tree: the address space a client can discover.

:class:`OscQuery` turns the declared :class:`ParamSpec` s into the OSCQuery JSON tree (``TYPE``, ``RANGE``,
``UNIT``, ``DESCRIPTION``, ``VALUE``, ``ACCESS``, ``CLIPMODE``), adds the command nodes the OSC server
answers (preset load/save, scene go) and ``HOST_INFO``, answers ``GET /path`` and ``GET /path?ATTRIBUTE``,
and runs WebSocket ``LISTEN`` / ``IGNORE``: value changes go out as binary OSC messages.

Values come from the engine's published snapshot (:class:`~installation.control.bridge.EngineBridge`);
this module never touches the live tree.
"""

from __future__ import annotations

import json
import logging
from typing import Callable

from installation.control.bridge import EngineBridge
from installation.control.commands import ROOT, osc_value
from installation.control.http import HttpError, Request, Response, WsSession
from installation.control.wire import encode_message
from installation.params import BOOL, CHOICE, FLOAT, INT, ParamSpec

log = logging.getLogger(__name__)

ACCESS_NONE, ACCESS_READ, ACCESS_WRITE, ACCESS_RW = 0, 1, 2, 3
ATTRIBUTES = ("FULL_PATH", "CONTENTS", "TYPE", "RANGE", "UNIT", "DESCRIPTION", "VALUE", "ACCESS", "CLIPMODE")
MAX_LISTENS = 1024  # paths one LISTEN client may follow

_TYPE = {FLOAT: "f", INT: "i", BOOL: "T", CHOICE: "s"}

# The command addresses the OSC server answers, as OSCQuery write-only methods.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("preset/load", "sf", "Crossfade to preset NAME over FADE_S seconds (FADE_S optional: show/fade)"),
    ("preset/save", "s", "Save the current look as preset NAME (shipped presets are refused)"),
    ("scene/go", "s", "Jump to scene NAME of the venue's scene list"),
)


def osc_type(spec: ParamSpec) -> str:
    """The OSC type tag of a parameter's value."""
    return _TYPE[spec.kind]


def param_node(spec: ParamSpec, value: object) -> dict:
    """The OSCQuery node of one parameter."""
    node: dict = {"FULL_PATH": ROOT + spec.path, "TYPE": osc_type(spec), "ACCESS": ACCESS_RW,
                  "DESCRIPTION": spec.description, "VALUE": [osc_value(value)]}
    if spec.kind in (FLOAT, INT):
        node["RANGE"] = [{"MIN": spec.lo, "MAX": spec.hi}]
        node["CLIPMODE"] = "both"  # the server clamps out-of-range values (and warns the sender)
    elif spec.kind == CHOICE:
        node["RANGE"] = [{"VALS": list(spec.choices)}]
        node["CLIPMODE"] = "none"
    else:
        node["CLIPMODE"] = "none"
    if spec.unit:
        node["UNIT"] = [spec.unit]
    return node


class OscQuery:
    """The OSCQuery HTTP routes and the LISTEN WebSocket, over ``specs`` and a published snapshot."""

    def __init__(self, specs: list[ParamSpec], bridge: EngineBridge, osc_port: int | None,
                 name: str = "Tapestry", call_soon: Callable | None = None) -> None:
        self.specs = {s.path: s for s in specs}
        self.readable = frozenset(ROOT + path for path in self.specs)  # what LISTEN may follow: the parameters
        self.bridge = bridge
        self.osc_port = osc_port
        self.name = name
        self._call_soon = call_soon
        self._sessions: list[ListenSession] = []
        self._unsubscribe = bridge.subscribe(self._changes)

    # -- tree ------------------------------------------------------------------
    def tree(self) -> dict:
        """The whole namespace as one OSCQuery root node (values from the latest snapshot)."""
        values = self.bridge.values
        root: dict = {"FULL_PATH": "/", "ACCESS": ACCESS_NONE, "CONTENTS": {}, "DESCRIPTION": self.name}
        for path, spec in self.specs.items():
            self._place(root, ROOT + path, param_node(spec, values.get(path, spec.default)))
        presets = list(self.bridge.state.presets)
        scenes = list(self.bridge.state.scenes)
        for path, types, desc in COMMANDS:
            node = {"FULL_PATH": ROOT + path, "TYPE": types, "ACCESS": ACCESS_WRITE, "DESCRIPTION": desc}
            if path == "preset/load":
                node["RANGE"] = [{"VALS": presets}, {"MIN": 0.0, "MAX": 120.0}]
                node["UNIT"] = ["", "s"]
            elif path == "scene/go" and scenes:
                node["RANGE"] = [{"VALS": scenes}]
            self._place(root, ROOT + path, node)
        return root

    @staticmethod
    def _place(root: dict, full_path: str, leaf: dict) -> None:
        node = root
        parts = full_path.strip("/").split("/")
        for i, part in enumerate(parts[:-1]):
            contents = node.setdefault("CONTENTS", {})
            node = contents.setdefault(part, {"FULL_PATH": "/" + "/".join(parts[:i + 1]), "ACCESS": ACCESS_NONE})
        existing = node.setdefault("CONTENTS", {}).get(parts[-1])
        if existing is not None and "CONTENTS" in existing:  # a parameter that is also a container
            leaf = {**leaf, "CONTENTS": existing["CONTENTS"]}
        node["CONTENTS"][parts[-1]] = leaf

    def node(self, path: str) -> dict | None:
        """The node at ``path`` ("/" for the root), or None."""
        node = self.tree()
        for part in [p for p in path.split("/") if p]:
            node = (node.get("CONTENTS") or {}).get(part)
            if node is None:
                return None
        return node

    def host_info(self) -> dict:
        """``HOST_INFO``: name, OSC port and transport, and which extensions are served."""
        ext = {a: True for a in ("ACCESS", "VALUE", "RANGE", "DESCRIPTION", "UNIT", "CLIPMODE", "TYPE",
                                 "FULL_PATH", "LISTEN")}
        ext.update({"PATH_CHANGED": False, "TAGS": False, "EXTENDED_TYPE": False, "CRITICAL": False,
                    "HTML": False})
        info: dict = {"NAME": self.name, "OSC_TRANSPORT": "UDP", "EXTENSIONS": ext}
        if self.osc_port:
            info["OSC_PORT"] = self.osc_port
        return info

    # -- HTTP ------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        """``GET /path``, ``GET /path?ATTRIBUTE`` and ``GET /?HOST_INFO``."""
        if req.method not in ("GET", "HEAD"):
            raise HttpError(405, "OSCQuery is read over GET; send values over OSC (UDP)")
        attr = req.query.split("&", 1)[0].split("=", 1)[0] if req.query else ""
        if attr == "HOST_INFO":
            return Response.json(self.host_info())
        node = self.node(req.path)
        if node is None:
            raise HttpError(404, f"no OSC node at {req.path}")
        if not attr:
            return Response.json(node)
        if attr not in ATTRIBUTES:
            raise HttpError(400, f"unknown attribute {attr!r} (one of {', '.join(ATTRIBUTES)}, HOST_INFO)")
        if attr not in node:
            return Response(204)
        return Response.json({attr: node[attr]})

    # -- LISTEN ----------------------------------------------------------------
    def session(self, req: Request) -> "ListenSession":
        """A new LISTEN WebSocket session."""
        s = ListenSession(self)
        self._sessions.append(s)
        return s

    def forget(self, session: "ListenSession") -> None:
        """A session ended (server thread): drop it now, not at the next change, which may be hours away."""
        self._sessions = [s for s in self._sessions if s is not session]

    def _changes(self, changes: list[tuple[str, object]]) -> None:
        """Engine thread: hand the frame's changes to the server thread (only enqueues)."""
        if self._sessions and self._call_soon is not None:
            self._call_soon(self._broadcast, changes)

    def _broadcast(self, changes: list[tuple[str, object]]) -> None:
        self._sessions = [s for s in self._sessions if not s.closed]
        for path, value in changes:
            address = ROOT + path
            packet = None
            for s in self._sessions:
                if address in s.listening:
                    packet = packet or encode_message(address, osc_value(value))
                    s.send_binary(packet)

    def close(self) -> None:
        """Stop hearing changes."""
        self._unsubscribe()


class ListenSession(WsSession):
    """One OSCQuery WebSocket: text ``{"COMMAND": "LISTEN"|"IGNORE", "DATA": "/path"}``; changes go out as OSC."""

    def __init__(self, query: OscQuery) -> None:
        super().__init__()
        self.query = query
        self.listening: set[str] = set()

    def on_text(self, text: str) -> None:
        try:
            msg = json.loads(text)
            command, path = msg["COMMAND"], msg["DATA"]
            if not isinstance(path, str) or command not in ("LISTEN", "IGNORE"):
                raise ValueError
        except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: "[[[[..." nested too deeply
            self.send_text(json.dumps({"ERROR": 'expected {"COMMAND": "LISTEN" or "IGNORE", "DATA": "/path"}'}))
            return
        path = "/" + "/".join(p for p in path.split("/") if p)  # the address changes are sent under
        if command == "IGNORE":
            self.listening.discard(path)
            return
        if path not in self.query.readable:  # a set lookup, not a walk of the tree: a client may send thousands
            self.send_text(json.dumps({"ERROR": f"{path[:200]}: no readable value to LISTEN to"}))
            return
        if len(self.listening) >= MAX_LISTENS:
            self.send_text(json.dumps({"ERROR": f"at most {MAX_LISTENS} paths per client"}))
            return
        self.listening.add(path)

    def on_binary(self, data: bytes) -> None:
        self.send_text(json.dumps({"ERROR": "send values over OSC (UDP); this socket takes LISTEN/IGNORE"}))

    def on_close(self) -> None:
        self.query.forget(self)
