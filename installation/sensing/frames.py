"""Immutable measurement records that sensing hands to the mood model.

Everything here is a plain frozen dataclass so a record can cross threads
through a latest-value slot, be written to a recording and be read back
unchanged.  Positions are in canvas coordinates: x 0..1 left to right,
y 0..1 top to bottom.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Person:
    """One tracked visitor: canvas position, linear size and velocity.

    ``size`` is the square root of the blob's share of the watched area, so a
    person covering a quarter of the view has size 0.5.  ``vx``/``vy`` are in
    canvas units per second.
    """

    x: float
    y: float
    size: float
    vx: float
    vy: float


@dataclass(frozen=True)
class CameraFrame:
    """What the camera saw at time ``t`` (seconds).

    ``presence`` is the fraction (0..1) of the watched area occupied by
    people, ``motion`` the fraction of it that changed since the previous
    frame, ``speed`` the mean speed of tracked people (canvas units per
    second) and ``people`` the tracked people, oldest track first.
    """

    t: float
    presence: float
    motion: float
    speed: float
    people: tuple[Person, ...] = ()

    def to_dict(self) -> dict:
        """Plain dict for JSON recordings (people as lists of floats)."""
        d = asdict(self)
        d["people"] = [[p.x, p.y, p.size, p.vx, p.vy] for p in self.people]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CameraFrame":
        """Inverse of :meth:`to_dict`; raises ``KeyError``/``TypeError`` on a malformed record."""
        people = tuple(Person(*map(float, p)) for p in d.get("people", ()))
        return cls(float(d["t"]), float(d["presence"]), float(d["motion"]), float(d["speed"]), people)


@dataclass(frozen=True)
class AudioFrame:
    """What the microphone heard up to time ``t`` (seconds).

    ``level_dbfs`` is the recent level, ``floor_dbfs`` the tracked noise floor
    of the room, ``loudness`` how far the level is above that floor (0..1, a
    quiet room reads 0).  ``bass``/``voice``/``air`` are band energies above
    their own floors (0..1); ``onset_rate`` counts claps, shouts and other
    sharp attacks per second.
    """

    t: float
    level_dbfs: float
    floor_dbfs: float
    loudness: float
    bass: float
    voice: float
    air: float
    onset_rate: float

    def to_dict(self) -> dict:
        """Plain dict for JSON recordings."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AudioFrame":
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: float(d[k]) for k in ("t", "level_dbfs", "floor_dbfs", "loudness", "bass",
                                               "voice", "air", "onset_rate")})
