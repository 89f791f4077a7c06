"""The colour pipeline's CPU half, vectorised over every LED at once.

An LED frame goes through these stages (:class:`installation.leds.LedPipeline` owns the list):

1. sample + correct, on the GPU in one dispatch (``LedSampler.sample_linear``, or
   ``LedSampler.correct_colors`` for per-LED colours): per-fixture gamma, white balance x fixture
   brightness x ``leds/master`` x the venue's cap.  This is the ONE place gamma and white balance
   are applied; :meth:`ColorPipeline.gpu_correction` gives the shader what it needs;
2. the POWER LIMITER (:meth:`ColorPipeline.limit_power`): current per supply from a per-channel
   mA model (FastLED's R 16, G 11, B 15 mA + 1 mA idle per LED by default), scaled so that no
   supply's estimate exceeds its budget, including the worst case temporal dithering can add;
3. :meth:`ColorPipeline.quantize`: RGBW white extraction (W = min(r, g, b), subtracted from r, g, b),
   temporal dithering (error diffusion over frames) and quantisation to 8 bits; the levels then
   hold the light those bytes make, so the flash limiter measures what goes on the wire;
4. the flash limiter (``installation.safety``), on the light the bytes make (LEDs it changes are
   quantised again: :meth:`ColorPipeline.requantize`);
5. :meth:`ColorPipeline.pack`: every controller's buffer in its colour order, by one prebuilt
   gather index.

All arrays are built once; the CPU part of a frame is a few numpy passes over N x 3 floats.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from installation.fixtures.layout import Calibration, Layout, PatchMap
from installation.params import BOOL, FLOAT, VENUE, ParamSpec, ParamTree

log = logging.getLogger(__name__)

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("leds/master", FLOAT, 1.0, "master brightness of every LED (after gamma, before the power limit)",
              0.0, 1.0, "ratio", scope=VENUE),
    ParamSpec("leds/gamma", FLOAT, 2.2, "gamma of fixtures whose calibration gives none", 1.0, 3.5, scope=VENUE),
    ParamSpec("leds/dither", BOOL, True, "temporal dithering: smooth fades at low brightness", scope=VENUE),
)


@dataclass(frozen=True)
class CurrentModel:
    """Current drawn at full level per channel and idle per LED, milliamps at 5 V (FastLED's model)."""

    r: float = 16.0
    g: float = 11.0
    b: float = 15.0
    w: float = 20.0
    idle: float = 1.0


@dataclass(frozen=True)
class Supply:
    """A power supply: its budget in amps at 5 V and the fixtures it feeds (names)."""

    name: str
    amps: float
    fixtures: tuple[str, ...]


class ColorPipeline:
    """Power-limits, quantises and packs LED frames for one layout and patch; holds the calibration.

    The frame lives in :attr:`levels` ((N, 3) float32 LED drive levels, written by the GPU);
    :meth:`limit_power` scales it in place, :meth:`quantize_pack` returns a new uint8 array of
    ``patch.total`` bytes: every controller's buffer end to end (controller i at
    ``patch.base[i]``).  Engine thread only (it keeps the dithering error between frames).
    """

    def __init__(self, layout: Layout, patch: PatchMap, tree: ParamTree, supplies: Sequence[Supply] = (),
                 current: CurrentModel = CurrentModel(), max_brightness: float = 1.0):
        self.layout = layout
        self.patch = patch
        self.tree = tree
        self.current = current
        self.max_brightness = float(max_brightness)
        n = self.n = layout.count
        self.calibrations = [f.calibration for f in layout.fixtures]
        self.counts = np.array([f.count for f in layout.fixtures], dtype=np.int64)
        self.fixture_of = layout.fixture_index()

        # W channels: LEDs with a W byte, in LED order; their values live after the N*3 RGB values.
        self.rgbw_idx = np.flatnonzero(patch.rgbw)
        m = len(self.rgbw_idx)
        self.flat = np.zeros(3 * n + m, dtype=np.float32)
        self.rgb = self.flat[:3 * n].reshape(n, 3)
        self.w = self.flat[3 * n:]
        self.err = np.full_like(self.flat, 0.5)  # dithering error + 0.5 (the rounding offset folded in)
        self.q8_all = np.zeros(len(self.flat) + 1, dtype=np.uint8)  # + a slot that stays 0 for unused bytes
        self.q8 = self.q8_all[:-1]
        self.led_ma = np.zeros(n, dtype=np.float32)
        # The limiter estimates from R, G, B before white extraction.  After it an RGBW LED draws
        # (r-w)R + (g-w)G + (b-w)B + wW with w = min(r, g, b) <= (r+g+b)/3: an upper bound whenever
        # W <= R+G+B; when the W die draws more, spread the excess over the channels to stay a bound.
        extra = max(0.0, current.w - (current.r + current.g + current.b)) / 3.0 if m else 0.0
        self.ma_vec = np.array([current.r + extra, current.g + extra, current.b + extra], dtype=np.float32)

        gather = np.full(patch.total, len(self.flat), dtype=np.int64)
        for c in range(3):
            ok = patch.dest[:, c] >= 0
            gather[patch.dest[ok, c]] = np.flatnonzero(ok) * 3 + c
        if m:
            gather[patch.dest[self.rgbw_idx, 3]] = 3 * n + np.arange(m)
        self.gather = gather

        # supplies -> per fixture
        names = {f.name: i for i, f in enumerate(layout.fixtures)}
        self.supplies = list(supplies)
        self.fixture_supply = np.full(len(layout.fixtures), -1, dtype=np.int64)
        for s_i, s in enumerate(self.supplies):
            for fname in s.fixtures:
                fi = names[fname]
                if self.fixture_supply[fi] >= 0:
                    raise ValueError(f"fixture {fname!r} is fed by two supplies")
                self.fixture_supply[fi] = s_i
        nsup = len(self.supplies)
        self.supply_leds = np.array([self.counts[self.fixture_supply == s].sum() for s in range(nsup)],
                                    dtype=np.float64)
        self.supply_budget_ma = np.array([s.amps * 1000.0 for s in self.supplies], dtype=np.float64)
        # fixture -> supply one-hot (F, S) to turn fixture sums into supply sums with one matmul
        self.fs_matrix = np.zeros((len(layout.fixtures), nsup))
        fed = self.fixture_supply >= 0
        self.fs_matrix[np.flatnonzero(fed), self.fixture_supply[fed]] = 1.0
        self.limited = bool(nsup)
        # each supply's LEDs as contiguous runs (fixtures are contiguous; neighbours on one supply merge),
        # so scaling a supply is a few slice multiplies instead of a per-LED gather
        self.supply_runs: list[list[tuple[int, int]]] = [[] for _ in range(nsup)]
        for fi, s_i in enumerate(self.fixture_supply.tolist()):
            if s_i < 0:
                continue
            a = int(layout.first[fi])
            b = a + int(self.counts[fi])
            runs = self.supply_runs[s_i]
            if runs and runs[-1][1] == a:
                runs[-1] = (runs[-1][0], b)
            else:
                runs.append((a, b))
        self.last_ma = np.zeros(nsup)
        self.last_scale = np.ones(nsup)
        self._supply_fixtures = [np.flatnonzero(self.fixture_supply == s_i).tolist() for s_i in range(nsup)]
        self._supply_leds = self.supply_leds.tolist()
        self._supply_budget = self.supply_budget_ma.tolist()
        unfed = [f.name for f, s_i in zip(layout.fixtures, self.fixture_supply.tolist()) if s_i < 0]
        if unfed:
            log.warning("no [[power]] supply feeds %s: the power limit cannot cover %s",
                        ", ".join(unfed[:5]) + (" ..." if len(unfed) > 5 else ""),
                        "them" if len(unfed) > 1 else "it")
        self.tables_version = 0
        self._rebuild_tables()

    # ------------------------------------------------------------------ tables
    def _rebuild_tables(self) -> None:
        """Per-LED gamma and white x brightness for the GPU; called when a calibration changes."""
        fixture_scale = np.array([np.array(c.white) * c.brightness for c in self.calibrations], dtype=np.float32)
        self.base_scale = np.repeat(fixture_scale, self.counts, axis=0).reshape(self.n, 3)
        # gamma 0 = the live leds/gamma
        fixture_gamma = np.array([0.0 if c.gamma is None else c.gamma for c in self.calibrations], dtype=np.float32)
        self.led_gamma = np.repeat(fixture_gamma, self.counts)
        self.tables_version += 1

    def set_calibration(self, fixture: int, gamma: float | None | type(...) = ..., white=None,
                        brightness: float | None = None) -> Calibration:
        """Change one fixture's calibration live (the hardware test script's keys); returns the new one."""
        c = self.calibrations[fixture]
        if gamma is not ...:
            c = replace(c, gamma=None if gamma is None else float(min(max(gamma, 0.5), 4.0)))
        if white is not None:
            c = replace(c, white=tuple(float(min(max(v, 0.0), 1.0)) for v in white))
        if brightness is not None:
            c = replace(c, brightness=float(min(max(brightness, 0.0), 1.0)))
        self.calibrations[fixture] = c
        self._rebuild_tables()
        return c

    # ------------------------------------------------------------------ frame
    def master(self) -> float:
        """The level every LED is scaled by this frame: ``leds/master`` x the venue's cap."""
        return float(self.tree["leds/master"]) * self.max_brightness

    def gpu_correction(self) -> tuple[np.ndarray, np.ndarray, float, float, int]:
        """What the GPU needs to do steps 1-2 itself (``LedSampler.sample_linear``):
        (per-LED gamma with 0 = default, per-LED white x brightness (N, 3), default gamma, master,
        a key that changes whenever the per-LED arrays do)."""
        return self.led_gamma, self.base_scale, float(self.tree["leds/gamma"]), self.master(), self.tables_version

    @property
    def levels(self) -> np.ndarray:
        """The (N, 3) float32 array :meth:`process_levels` works on: read the GPU's result straight into it."""
        return self.rgb

    def limit_power(self) -> np.ndarray:
        """The power stage: scale :attr:`levels` in place so no supply's estimate exceeds its budget
        (:attr:`last_scale` says what each supply got)."""
        if self.limited:
            self._limit_power(bool(self.tree["leds/dither"]))
        return self.rgb

    def _limit_power(self, dither: bool) -> None:
        cm = self.current
        np.dot(self.rgb, self.ma_vec, out=self.led_ma)
        per_fixture = np.add.reduceat(self.led_ma, self.layout.first, dtype=np.float64).tolist()
        # a handful of supplies: plain Python floats (float64) beat a dozen numpy calls on tiny arrays
        # quantising can add up to 1/2 step (rounding) or 1 step (dithering) per channel: keep room for it
        headroom = (cm.r + cm.g + cm.b + (cm.w if len(self.rgbw_idx) else 0.0)) / 255.0 * (1.0 if dither else 0.5)
        ma_all, scales = [], []
        for s_i, fixtures in enumerate(self._supply_fixtures):
            ma = math.fsum(per_fixture[f] for f in fixtures)
            leds = self._supply_leds[s_i]
            target = self._supply_budget[s_i] - leds * (cm.idle + headroom)
            k = 1.0
            if ma > target:
                # (a supply whose budget its idle current and rounding headroom already use up goes dark)
                k = min(max(target / max(ma, 1e-9), 0.0), 1.0) * (1.0 - 1e-6)
                k32 = np.float32(k)
                for a, b in self.supply_runs[s_i]:
                    self.rgb[a:b] *= k32
            ma_all.append(min(ma, ma * k) + leds * cm.idle)
            scales.append(k)
        self.last_ma = np.array(ma_all)
        self.last_scale = np.array(scales)

    def quantize(self) -> np.ndarray:
        """Quantise :attr:`levels` to the bytes that will be sent (RGBW extraction, dithering) and turn
        :attr:`levels` into the light those bytes make (code / 255, W added back to R, G and B), so the
        flash limiter measures what goes on the wire.  Returns :attr:`levels`."""
        rgb, flat = self.rgb, self.flat
        if len(self.rgbw_idx):
            sub = rgb[self.rgbw_idx]
            w = sub.min(axis=1)
            sub -= w[:, None]
            rgb[self.rgbw_idx] = sub
            self.w[:] = w
        np.multiply(flat, np.float32(255.0), out=flat)
        # the cast to uint8 truncates, which is floor here: every value is >= 0
        if self.tree["leds/dither"]:
            # error diffusion over frames, q = floor(v + err + 0.5) with self.err holding err + 0.5:
            # err stays in [-0.5, 0.5), so 0 stays 0 and 1.0 stays 255
            np.add(flat, self.err, out=flat)
            np.copyto(self.q8, flat, casting="unsafe")
            np.subtract(flat, self.q8, out=self.err)
        else:
            np.add(flat, np.float32(0.5), out=flat)
            np.copyto(self.q8, flat, casting="unsafe")
        np.multiply(self.q8, np.float32(1.0 / 255.0), out=flat)
        if len(self.rgbw_idx):
            rgb[self.rgbw_idx] = np.minimum(rgb[self.rgbw_idx] + self.w[:, None], 1.0)
        return rgb

    def snap(self, rows: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """The light (k, 3) that :meth:`requantize` would make LEDs ``rows`` show for ``levels``."""
        q_rgb, q_w, _, _ = self._codes(rows, levels)
        return np.minimum((q_rgb + q_w[:, None]) * np.float32(1.0 / 255.0), 1.0).astype(np.float32)

    def _codes(self, rows: np.ndarray, levels: np.ndarray):
        """8-bit codes (rounded, no dithering) of LEDs ``rows`` at (k, 3) light ``levels``:
        (RGB codes (k, 3), W codes (k,), which rows have W, their index among the W channels)."""
        lv = np.clip(np.asarray(levels, np.float32), 0.0, 1.0)
        q_w = np.zeros(len(rows), np.float32)
        has_w = np.zeros(len(rows), bool)
        pos = np.zeros(len(rows), np.int64)
        if len(self.rgbw_idx):
            pos = np.minimum(np.searchsorted(self.rgbw_idx, rows), len(self.rgbw_idx) - 1)
            has_w = self.rgbw_idx[pos] == rows
            w = np.where(has_w, lv.min(axis=1), 0.0).astype(np.float32)
            lv = lv - w[:, None]
            q_w = np.floor(w * 255.0 + 0.5)
        return np.floor(lv * 255.0 + 0.5), q_w, has_w, pos

    def requantize(self, rows: np.ndarray, levels: np.ndarray) -> None:
        """Set the bytes of LEDs ``rows`` to (k, 3) light ``levels`` (rounded, their dithering error
        reset): for the few LEDs a later stage changed after :meth:`quantize`."""
        q_rgb, q_w, has_w, pos = self._codes(rows, levels)
        self.rgb[rows] = self.snap(rows, levels)
        if has_w.any():
            wi = 3 * self.n + pos[has_w]
            self.q8[wi] = q_w[has_w].astype(np.uint8)
            self.err[wi] = 0.5
        ch = (3 * rows[:, None] + np.arange(3)).reshape(-1)
        self.q8[ch] = q_rgb.reshape(-1).astype(np.uint8)
        self.err[ch] = 0.5

    def pack(self) -> np.ndarray:
        """Every controller's buffer from the bytes of :meth:`quantize`: a new uint8 array."""
        return self.q8_all.take(self.gather)

    def quantize_pack(self) -> np.ndarray:
        """:meth:`quantize` then :meth:`pack` (no flash stage in between: tests of this module)."""
        self.quantize()
        return self.pack()

    def reset_dither(self) -> None:
        """Forget the carried dithering error (after a blackout or a pattern change)."""
        self.err[:] = 0.5

    def blackout(self) -> np.ndarray:
        """All controller buffers zero."""
        return np.zeros(self.patch.total, dtype=np.uint8)

    # ------------------------------------------------------------------ inspection
    def unpack(self, buffer: np.ndarray) -> np.ndarray:
        """(N, 4) uint8 R, G, B, W per LED read back out of a packed buffer (W 0 where absent)."""
        out = np.zeros((self.n, 4), dtype=np.uint8)
        for c in range(4):
            ok = self.patch.dest[:, c] >= 0
            out[ok, c] = buffer[self.patch.dest[ok, c]]
        return out

    def estimate_amps(self, buffer: np.ndarray) -> np.ndarray:
        """Current per supply (amps) of a packed frame, by the same model the limiter uses."""
        v = self.unpack(buffer).astype(np.float64) / 255.0
        cm = self.current
        led = v @ np.array([cm.r, cm.g, cm.b, cm.w]) + cm.idle
        per_fixture = np.add.reduceat(led, self.layout.first)
        return (per_fixture @ self.fs_matrix) / 1000.0

    def status(self) -> dict:
        """Per supply: estimated amps (after limiting), budget, and the scale applied last frame."""
        return {s.name: {"amps": round(float(self.last_ma[i]) / 1000.0, 3), "budget": s.amps,
                         "scale": round(float(self.last_scale[i]), 4)}
                for i, s in enumerate(self.supplies)}
