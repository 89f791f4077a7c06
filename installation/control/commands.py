"""Commands from live control (OSC) to the engine.

The OSC thread validates a request and puts one of these objects on the
engine's command queue; the engine thread drains the queue and calls
``cmd.apply(target)``.  ``apply`` never raises: a refusal (an unknown preset,
a bad scene name, a value the tree rejects) becomes an ``/tapestry/error``
reply to the sender, and an unexpected exception is logged and reported the
same way, so nothing from the network can stop the frame loop.

``reply(address, *args)`` is thread-safe and only enqueues: the OSC server
sends the datagram from its own thread.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

from installation.params import ParamSpec, ParamTree

log = logging.getLogger(__name__)

ROOT = "/tapestry/"
ERROR_ADDRESS = "/tapestry/error"

Reply = Callable[..., None]
"""``reply(address, *args)``: send an OSC message back to whoever asked (only enqueues)."""


class ControlTarget(Protocol):
    """What live control needs from the engine (implemented by the lead's Engine)."""

    params: ParamTree

    def load_preset(self, name: str, fade_s: float | None) -> None:
        """Crossfade to preset ``name`` over ``fade_s`` seconds (None: the default fade); raises PresetError."""

    def save_preset(self, name: str, force: bool, done: Callable[[BaseException | None], None]) -> None:
        """Queue saving the look as preset ``name``; ``done(error_or_None)`` is called once written (any thread).

        Shipped presets are refused whatever ``force`` says (live control never overwrites them)."""

    def save_venue(self, done: Callable[[BaseException | None], None]) -> None:
        """Queue saving the venue-scope values to the venue's params file; raises ValueError if there is none."""

    def preset_names(self) -> list[str]:
        """Names of the presets that can be loaded."""

    def go_scene(self, name: str) -> None:
        """Jump to scene ``name``; raises ValueError for an unknown scene."""

    def status(self) -> dict:
        """``{"fps", "frame_ms", "mood": {"intensity", ...}, "scene", "preset"}``."""


def _no_reply(address: str, *args: object) -> None:
    pass


def osc_value(value: object) -> object:
    """A parameter value as an OSC argument: bool -> T/F, int -> i, float -> f, choice -> s."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@dataclass
class Command:
    """Base of every control command: ``apply`` runs on the engine thread and never raises."""

    reply: Reply = field(default=_no_reply, repr=False, compare=False, kw_only=True)

    def apply(self, target: ControlTarget) -> None:
        """Execute against ``target``; refusals become an error reply."""
        try:
            self._apply(target)
        except ValueError as exc:  # ParamError, PresetError, an unknown scene: the user's mistake
            self.reply(ERROR_ADDRESS, str(exc))
        except Exception as exc:  # a bug on the engine side: keep the show running, say what happened
            log.exception("control command %r failed", self)
            self.reply(ERROR_ADDRESS, f"internal error in {type(self).__name__}: {type(exc).__name__}: {exc}")

    def _apply(self, target: ControlTarget) -> None:
        raise NotImplementedError


@dataclass
class SetParam(Command):
    """Set the base of one parameter (already validated by the OSC thread).

    Repeated sets of the same path are coalesced while this command waits in
    the queue: the server updates ``value`` in place under ``lock`` instead of
    enqueueing another command, so a fader storm cannot grow the queue.
    """

    path: str = ""
    value: object = None
    lock: threading.Lock | None = field(default=None, repr=False, compare=False)
    on_taken: Callable[["SetParam"], None] | None = field(default=None, repr=False, compare=False)

    def take(self) -> tuple[object, Reply]:
        """The latest value and reply, and release the coalescing slot (engine thread)."""
        if self.lock is None:
            return self.value, self.reply
        with self.lock:
            if self.on_taken is not None:
                self.on_taken(self)
            return self.value, self.reply

    def apply(self, target: ControlTarget) -> None:
        self.take()  # after this the server no longer touches this object
        super().apply(target)

    def _apply(self, target: ControlTarget) -> None:
        target.params.set_base(self.path, self.value)


@dataclass
class LoadPreset(Command):
    """``/tapestry/preset/load NAME [FADE_S]``; without FADE_S (None) the target uses its default fade."""

    name: str = ""
    fade_s: float | None = None

    def _apply(self, target: ControlTarget) -> None:
        target.load_preset(self.name, self.fade_s)
        self.reply("/tapestry/preset/loaded", self.name)


def _done_reply(reply: Reply, address: str, *args: object) -> Callable[[BaseException | None], None]:
    """A ``done(error)`` callback for work finished off the engine thread: the success reply or the error."""
    def done(error: BaseException | None) -> None:
        if error is None:
            reply(address, *args)
        elif isinstance(error, ValueError):
            reply(ERROR_ADDRESS, str(error))
        else:
            reply(ERROR_ADDRESS, f"internal error while saving: {type(error).__name__}: {error}")
    return done


@dataclass
class SavePreset(Command):
    """``/tapestry/preset/save NAME``: the look is written off the engine thread, then ``/tapestry/preset/saved``.

    ``/tapestry/preset/save/force NAME`` is the same request: shipped presets are never overwritten from the
    network (the target refuses them), so ``force`` only survives for old clients.
    """

    name: str = ""
    force: bool = False

    def _apply(self, target: ControlTarget) -> None:
        target.save_preset(self.name, self.force, _done_reply(self.reply, "/tapestry/preset/saved", self.name))


@dataclass
class SaveVenue(Command):
    """``/tapestry/venue/save``: write the venue-scope values (calibration) next to the venue file."""

    def _apply(self, target: ControlTarget) -> None:
        target.save_venue(_done_reply(self.reply, "/tapestry/venue/saved"))


@dataclass
class ListPresets(Command):
    """``/tapestry/preset/list``: replies ``/tapestry/presets NAME...`` (split below 1400 bytes)."""

    send_list: Callable[[str, list[str]], None] | None = field(default=None, repr=False, compare=False)

    def _apply(self, target: ControlTarget) -> None:
        names = [str(n) for n in target.preset_names()]
        if self.send_list is not None:
            self.send_list("/tapestry/presets", names)
        else:
            self.reply("/tapestry/presets", *names)


@dataclass
class GoScene(Command):
    """``/tapestry/scene/go NAME``."""

    name: str = ""

    def _apply(self, target: ControlTarget) -> None:
        target.go_scene(self.name)
        self.reply("/tapestry/scene/current", self.name)


@dataclass
class GetValue(Command):
    """``/tapestry/get PATH``: replies ``/tapestry/value PATH BASE`` (what the artist set, not modulated)."""

    path: str = ""

    def _apply(self, target: ControlTarget) -> None:
        self.reply("/tapestry/value", self.path, osc_value(target.params.base(self.path)))


@dataclass
class SendSnapshot(Command):
    """Send every parameter's base to a new subscriber, as ``/tapestry/<path> VALUE`` (+ ``/norm``).

    ``send_values`` (from the server) takes the whole ``{path: base}`` map at once so that it can be
    packed into bundles; without it each message goes through ``reply``.
    """

    send_values: Callable[[dict[str, object]], None] | None = field(default=None, repr=False, compare=False)

    def _apply(self, target: ControlTarget) -> None:
        tree = target.params
        if self.send_values is not None:
            self.send_values(tree.bases())
            return
        for path in tree.paths():
            for address, value in feedback_messages(tree.spec(path), tree.base(path)):
                self.reply(address, value)


@dataclass
class GetStatus(Command):
    """``/tapestry/status``: replies ``/tapestry/status FPS FRAME_MS INTENSITY SCENE PRESET``."""

    def _apply(self, target: ControlTarget) -> None:
        st = target.status()
        self.reply("/tapestry/status", *status_args(st), str(st.get("scene") or ""), str(st.get("preset") or ""))


def status_args(status: dict) -> tuple[float, float, float]:
    """(fps, frame_ms, intensity) from an engine status dict, 0.0 where missing or not a number."""
    def num(x: object) -> float:
        try:
            v = float(x)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return 0.0
        return v if v == v and abs(v) != float("inf") else 0.0

    mood = status.get("mood") or {}
    intensity = mood.get("intensity", 0.0) if isinstance(mood, dict) else getattr(mood, "intensity", 0.0)
    return num(status.get("fps")), num(status.get("frame_ms")), num(intensity)


def feedback_messages(spec: ParamSpec, value: object) -> list[tuple[str, object]]:
    """The feedback for one parameter: ``/tapestry/<path> VALUE`` and ``/tapestry/<path>/norm 0..1`` for faders."""
    out: list[tuple[str, object]] = [(ROOT + spec.path, osc_value(value))]
    try:
        out.append((ROOT + spec.path + "/norm", float(spec.normalize(value))))
    except (TypeError, ValueError):  # a value outside the spec (should not happen): send the plain value only
        pass
    return out
