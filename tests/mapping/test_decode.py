"""Decoding the camera frames of a mapping run, on frames drawn exactly (no camera, no network)."""

from __future__ import annotations

import numpy as np

from installation.mapping.decode import decode
from installation.mapping.patterns import bits_for, gray, gray_to_binary

SIZE = (160, 120)          # width, height
PEAK = 130.0               # grey levels an LED adds at its centre
ROOM = 40.0


def _frames(n: int, pos: np.ndarray, shown: np.ndarray, room_change=None) -> dict:
    """Exact frames of a run for LEDs at ``pos`` (only ``shown`` ones visible to the camera);
    ``room_change(bit, inverse) -> image`` adds room light that differs between frames."""
    w, h = SIZE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    spots = [PEAK * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.6 ** 2)) for x, y in pos]

    def image(lit: np.ndarray, extra=0.0) -> np.ndarray:
        g = np.full((h, w), ROOM) + extra + sum(s for s, on, vis in zip(spots, lit, shown) if on and vis)
        return np.repeat(np.clip(g, 0, 255)[:, :, None], 3, axis=2).astype(np.float32)

    allon = np.ones(n, bool)
    frames = {"dark": image(~allon), "white": image(allon)}
    for c in ("red", "green", "blue"):
        frames[c] = image(allon)
    codes = gray(np.arange(n))
    for b in range(bits_for(n)):
        on = ((codes >> b) & 1).astype(bool)
        for inv in (False, True):
            extra = room_change(b, inv) if room_change else 0.0
            frames[("bit", b, inv)] = image(on ^ inv, extra)
    return frames


def test_a_person_passing_behind_an_led_does_not_make_its_rim_a_second_led():
    """A light coat passing behind LED 5 brightens the room beside it by 150 grey levels in the code frame
    where LED 5 is off: that bit flips on the LED's dimmer side, which then reads as LED j (one code bit
    away), an LED the camera cannot see. j must be reported missing, and LED 5 still found where it is."""
    n = 32
    pos = np.array([(12.0 + 16 * (i % 8), 14.0 + 28 * (i // 8)) for i in range(n)])
    bit = 2
    j = int(gray_to_binary(np.array(gray(5) ^ (1 << bit))))
    shown = np.ones(n, bool)
    shown[j] = False                    # hidden from the camera
    lit5 = bool((gray(5) >> bit) & 1)   # True: LED 5 is on in this bit's frame, off in its inverse
    w, h = SIZE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    coat = 150.0 * ((xx - pos[5, 0] >= 1) & (np.hypot(xx - pos[5, 0], yy - pos[5, 1]) <= 8.0))

    def room_change(b, inv):
        return coat if b == bit and (not inv) != lit5 else 0.0

    det = decode(_frames(n, pos, shown, room_change), n)
    found = det.found_mask()
    assert not found[j], "the rim of LED 5 was taken for the hidden LED"
    assert found[5]
    assert np.hypot(*(det.position_of()[5] - pos[5])) < 1.5     # half its light was misread: a little off
    assert found[shown].all()


def test_two_leds_side_by_side_one_code_bit_apart_are_both_found():
    """Neighbouring LEDs on a strip differ in one Gray-code bit; seen 5 px apart and equally bright,
    both are LEDs, not one LED and its echo."""
    n = 16
    pos = np.array([(20.0 + 5 * i, 60.0) for i in range(n)])
    det = decode(_frames(n, pos, np.ones(n, bool)), n)
    assert det.found_mask().all()
    assert np.abs(det.position_of() - pos).max() < 0.5
