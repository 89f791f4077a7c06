"""Mood: sensor measurements fused into one emotional intensity and its parts.

:class:`MoodModel` turns the latest :class:`CameraFrame` and
:class:`AudioFrame` into a :class:`Mood` each engine frame:

* each part is first normalised to 0..1 with a soft knee
  (``1 - exp(-x / scale)``): presence from the occupied share of the view,
  motion from changing pixels plus people's speed, sound from loudness above
  the room's noise floor, excitement from the onset (clap, shout) rate;
* an adaptive baseline per part (rising over ``mood/baseline/rise_s``,
  falling within seconds) is partly subtracted (``mood/baseline/amount``),
  so a permanently busy corridor or a humming fan stops reading as
  excitement while a change still does;
* each part is smoothed with its own attack and release time constants;
* intensity is the weighted mean of the parts of the sensors that are live,
  with a little of a slow, seeded drift (``mood/breath/*``) filling what
  the room leaves.  With no live
  sensor the drift alone carries the piece: it breathes.

Mood only produces values; presets map them onto field parameters.
Deterministic: the same inputs, ``dt`` sequence and seed give the same moods.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from installation.params import LOOK, ParamSpec, ParamTree, floats
from installation.sensing.frames import AudioFrame, CameraFrame, Person

PARTS = ("presence", "motion", "sound", "excitement")
BANDS = ("bass", "voice", "air")  # mood sources of their own (presets map them); not in the intensity

PARAMS: tuple[ParamSpec, ...] = tuple(floats("mood", [
    ("weight/presence", 0.35, 0.0, 1.0, "", "share of presence in the intensity"),
    ("weight/motion", 0.25, 0.0, 1.0, "", "share of motion in the intensity"),
    ("weight/sound", 0.25, 0.0, 1.0, "", "share of sound (loudness above the room's floor) in the intensity"),
    ("weight/excitement", 0.15, 0.0, 1.0, "", "share of excitement (claps, shouts) in the intensity"),
    ("scale/presence", 0.06, 0.001, 1.0, "ratio", "occupied share of the view that reads as 63 % presence"),
    ("scale/motion", 0.01, 0.0005, 1.0, "ratio", "changing share of the view per frame that reads as 63 % motion"),
    ("scale/speed", 0.3, 0.01, 10.0, "canvas/s", "people's mean speed that adds 63 % motion"),
    ("scale/onsets", 1.0, 0.05, 20.0, "1/s", "onset rate that reads as 63 % excitement"),
    ("attack/presence", 1.0, 0.0, 60.0, "s", "rise time constant of presence"),
    ("release/presence", 5.0, 0.0, 600.0, "s", "fall time constant of presence"),
    ("attack/motion", 0.15, 0.0, 60.0, "s", "rise time constant of motion"),
    ("release/motion", 1.5, 0.0, 600.0, "s", "fall time constant of motion"),
    ("attack/sound", 0.01, 0.0, 60.0, "s", "rise time constant of sound"),
    ("release/sound", 0.6, 0.0, 600.0, "s", "fall time constant of sound"),
    ("attack/excitement", 0.05, 0.0, 60.0, "s", "rise time constant of excitement"),
    ("release/excitement", 3.0, 0.0, 600.0, "s", "fall time constant of excitement"),
    ("attack/bands", 0.02, 0.0, 60.0, "s", "rise time constant of the bass, voice and air sources"),
    ("release/bands", 0.8, 0.0, 600.0, "s", "fall time constant of the bass, voice and air sources"),
    ("attack/intensity", 0.0, 0.0, 60.0, "s", "rise time constant of the fused intensity (on top of the parts')"),
    ("release/intensity", 1.0, 0.0, 600.0, "s", "fall time constant of the fused intensity"),
    ("baseline/rise_s", 600.0, 1.0, 86400.0, "s", "time constant with which a part's baseline climbs to a "
     "sustained level"),
    ("baseline/fall_s", 5.0, 0.1, 3600.0, "s", "time constant with which a baseline falls when the room calms"),
    ("baseline/amount", 0.5, 0.0, 1.0, "", "how much of the baseline is subtracted (0: none, 1: fully "
     "self-calibrating)"),
    ("breath/level", 0.25, 0.0, 1.0, "", "mean intensity of the unattended drift"),
    ("breath/depth", 0.15, 0.0, 0.5, "", "swing of the drift around its level"),
    ("breath/period_s", 40.0, 2.0, 3600.0, "s", "period of the drift's main wave"),
    ("breath/live_mix", 0.3, 0.0, 1.0, "", "how much of the drift remains while sensors are live (in an "
     "empty, quiet room; less as the room fills)"),
], scope=LOOK))


@dataclass(frozen=True)
class Mood:
    """This frame's mood: intensity 0..1, its parts 0..1, tracked people, which sensors are live.

    ``bass``/``voice``/``air`` are the microphone's bands above their own floors (0..1), smoothed; presets
    map them like any other source (they do not feed the intensity).
    """

    intensity: float
    presence: float
    motion: float
    sound: float
    excitement: float
    people: tuple[Person, ...] = ()
    live: tuple[str, ...] = ()
    bass: float = 0.0
    voice: float = 0.0
    air: float = 0.0


def _clamp01(x: float) -> float:
    if not math.isfinite(x):
        return 0.0
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def _knee(x: float, scale: float) -> float:
    if not math.isfinite(x) or x <= 0:
        return 0.0
    return 1.0 - math.exp(-x / scale)


def _approach(y: float, x: float, dt: float, attack: float, release: float) -> float:
    tau = attack if x > y else release
    if tau <= 0.0:
        return x
    return y + (x - y) * (1.0 - math.exp(-dt / tau))


class MoodModel:
    """Fuses sensor frames into a :class:`Mood`; reads ``mood/*`` from ``tree`` every update."""

    def __init__(self, tree: ParamTree, seed: int = 0) -> None:
        self.tree = tree
        rnd = random.Random(seed)
        self._phases = tuple(rnd.uniform(0.0, 2.0 * math.pi) for _ in range(3))
        self.time = 0.0
        self._part = dict.fromkeys(PARTS, 0.0)
        self._base = dict.fromkeys(PARTS, 0.0)
        self._band = dict.fromkeys(BANDS, 0.0)
        self._intensity: float | None = None

    def breath(self, t: float | None = None) -> float:
        """The unattended drift at time ``t`` (default: now), 0..1."""
        tr = self.tree
        t = self.time if t is None else t
        period = float(tr["mood/breath/period_s"])
        w = 2.0 * math.pi / period
        p1, p2, p3 = self._phases
        wave = (0.6 * math.sin(w * t + p1) + 0.3 * math.sin(w * t / 1.618 + p2)
                + 0.1 * math.sin(w * t * 2.618 + p3))
        return _clamp01(float(tr["mood/breath/level"]) + float(tr["mood/breath/depth"]) * wave)

    def update(self, camera: CameraFrame | None, audio: AudioFrame | None, dt: float) -> Mood:
        """Advance by ``dt`` seconds with the newest measurements (``None`` for a sensor that is off)."""
        tr = self.tree
        dt = float(dt) if math.isfinite(dt) and dt > 0 else 0.0
        self.time += dt
        raw = dict.fromkeys(PARTS, 0.0)
        live = []
        if camera is not None:
            live.append("camera")
            raw["presence"] = _knee(camera.presence, float(tr["mood/scale/presence"]))
            m = (camera.motion / float(tr["mood/scale/motion"]) if math.isfinite(camera.motion) else 0.0) \
                + (camera.speed / float(tr["mood/scale/speed"]) if math.isfinite(camera.speed) else 0.0)
            raw["motion"] = _knee(m, 1.0)
        if audio is not None:
            live.append("audio")
            raw["sound"] = _clamp01(audio.loudness)
            raw["excitement"] = _knee(audio.onset_rate, float(tr["mood/scale/onsets"]))

        amount = float(tr["mood/baseline/amount"])
        b_rise, b_fall = float(tr["mood/baseline/rise_s"]), float(tr["mood/baseline/fall_s"])
        for k in PARTS:
            b = self._base[k] = _approach(self._base[k], raw[k], dt, b_rise, b_fall)
            sub = amount * b
            target = _clamp01((raw[k] - sub) / (1.0 - sub)) if sub < 1.0 else 0.0
            self._part[k] = _clamp01(_approach(self._part[k], target, dt,
                                               float(tr[f"mood/attack/{k}"]), float(tr[f"mood/release/{k}"])))

        ba, br = float(tr["mood/attack/bands"]), float(tr["mood/release/bands"])
        for k in BANDS:
            x = _clamp01(float(getattr(audio, k))) if audio is not None else 0.0
            self._band[k] = _clamp01(_approach(self._band[k], x, dt, ba, br))

        breath = self.breath()
        sensed = [k for k in PARTS if (k in ("presence", "motion") and camera is not None)
                  or (k in ("sound", "excitement") and audio is not None)]
        wsum = sum(float(tr[f"mood/weight/{k}"]) for k in sensed)
        if sensed and wsum > 0:
            fused = sum(float(tr[f"mood/weight/{k}"]) * self._part[k] for k in sensed) / wsum
            # The drift fills what the room leaves: full in an empty room (times live_mix), none in a full one.
            target = _clamp01(fused + (1.0 - fused) * float(tr["mood/breath/live_mix"]) * breath)
        else:
            target = breath
        if self._intensity is None:
            self._intensity = target
        else:
            self._intensity = _clamp01(_approach(self._intensity, target, dt, float(tr["mood/attack/intensity"]),
                                                 float(tr["mood/release/intensity"])))
        return Mood(self._intensity, self._part["presence"], self._part["motion"], self._part["sound"],
                    self._part["excitement"], camera.people if camera is not None else (), tuple(live),
                    self._band["bass"], self._band["voice"], self._band["air"])
