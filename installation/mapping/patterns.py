"""The structured patterns of a mapping run: which LEDs are lit in which frame, and at what level.

A run shows ``dark``, ``white`` (every LED), ``red``, ``green``, ``blue`` (the
colour-order check) and, for each bit of the Gray-coded LED index, that bit and
its inverse: ``5 + 2 * ceil(log2 N)`` frames.  Comparing a bit with its inverse
per camera pixel needs no threshold, so the codes can be dim.

Levels are LED drive levels (after gamma, linear light).  They are chosen below
the flash limiter's transition thresholds (a general transition needs a change
of 0.1 in relative luminance, a red one 0.0625 in R-G-B), so no LED and no
region can ever make a flash whatever the cadence: the limiter has nothing to
alter, and mapping is safe with visitors in the room.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Share of the limiter's thresholds the patterns may use (headroom for rounding and dithering).
MARGIN = 0.8


@dataclass(frozen=True)
class Pattern:
    """One frame of the sequence: a name, the drive level (N, 3) and, for code frames, its bit."""

    name: str
    levels: np.ndarray
    bit: int = -1          # which Gray-code bit (-1: not a code frame)
    inverse: bool = False


def bits_for(n: int) -> int:
    """Gray-code bits needed to tell ``n`` LEDs apart (at least 1)."""
    return max(1, math.ceil(math.log2(max(n, 2))))


def gray(i: np.ndarray) -> np.ndarray:
    """Binary -> reflected Gray code (one bit changes between neighbouring indices)."""
    return i ^ (i >> 1)


def gray_to_binary(g: np.ndarray) -> np.ndarray:
    """Reflected Gray code -> binary."""
    b = g.copy()
    shift = g >> 1
    while np.any(shift):
        b ^= shift
        shift >>= 1
    return b


def safe_levels(general_delta: float, red_delta: float) -> dict[str, np.ndarray]:
    """Drive levels (R, G, B) of white and the three primaries, each below the flash thresholds.

    White: relative luminance = level (the coefficients sum to 1), kept under the general
    threshold; red: R-G-B = level, kept under the red one; green and blue by their luminance.
    """
    g = general_delta * MARGIN
    r = red_delta * MARGIN
    return {"white": np.array([g, g, g], np.float32),
            "red": np.array([r, 0.0, 0.0], np.float32),
            "green": np.array([0.0, min(g / 0.7152, 1.0), 0.0], np.float32),
            "blue": np.array([0.0, 0.0, min(g / 0.0722, 0.4)], np.float32)}


def sequence(n: int, levels: dict[str, np.ndarray]) -> list[Pattern]:
    """Every pattern of a run for ``n`` LEDs, in the order shown."""
    codes = gray(np.arange(n, dtype=np.int64))
    white = levels["white"]
    out = [Pattern("dark", np.zeros((n, 3), np.float32)),
           Pattern("white", np.tile(white, (n, 1)))]
    for c in ("red", "green", "blue"):
        out.append(Pattern(c, np.tile(levels[c], (n, 1))))
    for b in range(bits_for(n)):
        on = ((codes >> b) & 1).astype(bool)
        for inv in (False, True):
            lit = on ^ inv
            out.append(Pattern(f"bit {b}{' inverse' if inv else ''}", lit[:, None] * white[None, :], b, inv))
    return out


def pattern_count(n: int) -> int:
    """How many frames a run for ``n`` LEDs shows: 5 + 2 * ceil(log2 n)."""
    return 5 + 2 * bits_for(n)
