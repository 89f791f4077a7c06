#!/usr/bin/env python3
"""Hardware test for the installer on the ladder: light the real LEDs with known patterns.

    python hardware/test_leds.py --venue hardware/demo-venue.toml PATTERN [ARG]

Patterns:
  identify        each fixture in turn, its name printed (n/p to step, or every --step seconds)
  chase           a dot with a fading tail along every fixture, from its start to its end
                  (if it runs the wrong way, flip `reversed` in the layout)
  order           all red, then green, then blue (a wrong colour = wrong `order`)
  gamma           a ramp black -> white along every fixture (judge gamma: even steps?)
  white           full white at the level the power limiter allows (estimated amps printed)
  universe N      only the LEDs patched to DMX universe N
  fixture NAME    only that fixture
  off             blackout

Keys (when run in a terminal): n / space next, p previous, r R g G b B white balance
down/up, [ ] gamma down/up, - + level, w write the calibration back into the layout file
(the old file is kept as FILE.bak), q quit.  --seconds S runs non-interactively for S
seconds (scripts, tests).  It drives the show's own LED pipeline (installation.leds): the same
colour correction, power limit and photosensitive flash limiter as the show, so a fast --step
can never strobe the people in the room (the limiter slows it to at most 3 flashes a second).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import select
import shutil
import sys
import time
import tomllib
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from installation.color import PARAMS  # noqa: E402
from installation.fixtures.layout import DMX_SIZE, Calibration, Layout  # noqa: E402
from installation.leds import LedPipeline  # noqa: E402
from installation.outputs.claim import ControllersBusy  # noqa: E402
from installation.params import ParamTree  # noqa: E402
from installation.venue import VenueError, load_venue  # noqa: E402

PATTERNS = ("identify", "chase", "order", "gamma", "white", "universe", "fixture", "off")
ORDER_STEPS = (("RED", (1.0, 0.0, 0.0)), ("GREEN", (0.0, 1.0, 0.0)), ("BLUE", (0.0, 0.0, 1.0)))


class Patterns:
    """Frames (N, 3) display-referred 0..1 for each test pattern; ``step`` advances discrete ones."""

    def __init__(self, leds: LedPipeline, level: float):
        self.leds = leds
        self.layout: Layout = leds.layout
        self.level = level
        self.n = self.layout.count
        self.frame = np.zeros((self.n, 3), np.float32)
        self.universe_of = led_universes(leds)

    def fixture_slice(self, i: int) -> slice:
        return self.layout.led_range(i % len(self.layout.fixtures))

    def describe_fixture(self, i: int) -> str:
        f = self.layout.fixtures[i % len(self.layout.fixtures)]
        p = f.patch
        where = (f"universe {p.universe} channel {p.channel}" if p.universe is not None else
                 f"offset {p.offset}" if p.offset is not None else p.address or "auto-patched")
        return f"{f.name}: {f.count} LEDs on {p.controller} {where}, {p.order}{' reversed' if p.reversed else ''}"

    def make(self, pattern: str, arg: str | None, step: int, t: float) -> tuple[np.ndarray, str]:
        """This frame of ``pattern`` and a label for the current step."""
        fr = self.frame
        fr[:] = 0.0
        lv = self.level
        if pattern == "identify":
            fr[self.fixture_slice(step)] = lv
            return fr, "identify " + self.describe_fixture(step)
        if pattern == "order":
            name, rgb = ORDER_STEPS[step % 3]
            fr[:] = np.array(rgb, np.float32) * lv
            return fr, f"order: {name}"
        if pattern == "chase":
            for i, f in enumerate(self.layout.fixtures):
                sl = self.fixture_slice(i)
                k = np.arange(f.count)
                head = (t * 30.0) % f.count  # 30 LEDs per second
                behind = (head - k) % f.count
                tail = np.clip(1.0 - behind / 8.0, 0.0, 1.0) * (behind <= 8)
                fr[sl] = (tail * lv)[:, None]
            return fr, "chase: dot runs from each fixture's start to its end (tail behind it)"
        if pattern == "gamma":
            for i, f in enumerate(self.layout.fixtures):
                fr[self.fixture_slice(i)] = (np.linspace(0.0, 1.0, f.count, dtype=np.float32) * lv)[:, None]
            return fr, "gamma: ramp from black at each fixture's start to white at its end"
        if pattern == "white":
            fr[:] = lv
            return fr, "white: full white (power-limited)"
        if pattern == "universe":
            fr[self.universe_of == int(arg)] = lv
            return fr, f"universe {arg}: {int(np.sum(self.universe_of == int(arg)))} LEDs"
        if pattern == "fixture":
            i = self.layout.fixture(arg)
            fr[self.fixture_slice(i)] = lv
            return fr, "fixture " + self.describe_fixture(i)
        return fr, "off: blackout"


def led_universes(leds: LedPipeline) -> np.ndarray:
    """(N,) DMX universe of each LED's first channel (-1 for DDP/OSC fixtures)."""
    pm = leds.venue.patch
    out = np.full(leds.layout.count, -1, np.int64)
    first = pm.dest[:, :3].min(axis=1)
    for base, c in zip(pm.base, pm.controllers):
        if not c.universes:
            continue
        m = (first >= base) & (first < base + c.size)
        out[m] = np.asarray(c.universes)[(first[m] - base) // DMX_SIZE]
    return out


# ------------------------------------------------------------------------------ write-back

_FMT = {"gamma": lambda v: f"{v:.3g}", "brightness": lambda v: f"{v:.3g}",
        "white": lambda v: "[" + ", ".join(f"{c:.3g}" for c in v) + "]"}


def _cal_values(c: Calibration) -> dict:
    out = {"white": list(c.white), "brightness": c.brightness}
    if c.gamma is not None:
        out["gamma"] = c.gamma
    return out


def write_calibration(path: Path, cals: dict[str, Calibration]) -> Path:
    """Write fixtures' calibrations into their layout file, keeping comments; the old file becomes FILE.bak.

    TOML is edited as text (only the `[fixtures.calibration]` tables of the named
    fixtures change); JSON is rewritten.  The result is re-read and checked
    before anything is replaced.  Returns the backup path.
    """
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        for f in data.get("fixtures", []):
            if f.get("name") in cals:
                f["calibration"] = _cal_values(cals[f["name"]])
        new = json.dumps(data, indent=2) + "\n"
        check = json.loads(new)
    else:
        new = _edit_toml(text, cals, path)
        check = tomllib.loads(new)
    got = {f.get("name"): f.get("calibration", {}) for f in check.get("fixtures", [])}
    for name, c in cals.items():
        want = _cal_values(c)
        for k, v in want.items():
            have = got.get(name, {}).get(k)
            if have is None or not np.allclose(np.asarray(have, float), np.asarray(v, float), atol=5e-3):
                raise ValueError(f"{path}: could not write {name}.calibration.{k} (got {have!r}); file unchanged")
    backup = path.with_name(path.name + ".bak")
    shutil.copy2(path, backup)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)
    return backup


_HEADER = re.compile(r"^\s*\[")
_NAME = re.compile(r'^\s*name\s*=\s*"([^"]*)"')


def _edit_toml(text: str, cals: dict[str, Calibration], path: Path) -> str:
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.strip() == "[[fixtures]]"]
    # process blocks from the end so earlier line numbers stay valid
    for bi in reversed(range(len(starts))):
        s = starts[bi]
        e = starts[bi + 1] if bi + 1 < len(starts) else len(lines)
        # a block ends at the first table header that is not a fixtures.* subtable
        for j in range(s + 1, e):
            h = lines[j].strip()
            if _HEADER.match(lines[j]) and not h.startswith("[fixtures."):
                e = j
                break
        name = None
        for j in range(s + 1, e):
            if _HEADER.match(lines[j]):
                break
            m = _NAME.match(lines[j])
            if m:
                name = m.group(1)
                break
        if name not in cals:
            continue
        values = _cal_values(cals[name])
        for j in range(s + 1, e):
            if re.match(r"^\s*calibration\s*=", lines[j]):
                raise ValueError(f"{path}: fixture {name!r} has an inline calibration table; "
                                 f"make it a [fixtures.calibration] table to write it back")
        cal_start = next((j for j in range(s + 1, e) if lines[j].strip() == "[fixtures.calibration]"), None)
        if cal_start is None:
            k = e
            while k > s + 1 and not lines[k - 1].strip():
                k -= 1
            new = ["[fixtures.calibration]"] + [f"{key} = {_FMT[key](v)}" for key, v in values.items()]
            lines[k:k] = new
            continue
        cal_end = next((j for j in range(cal_start + 1, e) if _HEADER.match(lines[j])), e)
        seen = set()
        for j in range(cal_start + 1, cal_end):
            m = re.match(r"^(\s*)(gamma|white|brightness)(\s*=\s*)([^#]*?)(\s*#.*)?$", lines[j])
            if m and m.group(2) in values:
                key = m.group(2)
                lines[j] = f"{m.group(1)}{key}{m.group(3)}{_FMT[key](values[key])}{m.group(5) or ''}"
                seen.add(key)
        missing = [f"{key} = {_FMT[key](v)}" for key, v in values.items() if key not in seen]
        lines[cal_start + 1:cal_start + 1] = missing
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


# ------------------------------------------------------------------------------ keys


class Keys:
    """Single key presses from a terminal (cbreak mode), or nothing when not interactive."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stdin.isatty()
        self.saved = None
        if self.enabled:
            import termios
            import tty
            self.saved = termios.tcgetattr(sys.stdin)
            tty.setcbreak(sys.stdin.fileno())

    def poll(self, timeout: float) -> str | None:
        if not self.enabled:
            time.sleep(max(timeout, 0.0))
            return None
        r, _, _ = select.select([sys.stdin], [], [], max(timeout, 0.0))
        return sys.stdin.read(1) if r else None

    def restore(self) -> None:
        if self.saved is not None:
            import termios
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, self.saved)


# ------------------------------------------------------------------------------ main


def run(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    """Entry point; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--venue", required=True, help="venue file (its layouts and outputs are used)")
    ap.add_argument("pattern", choices=PATTERNS)
    ap.add_argument("arg", nargs="?", help="universe number or fixture name")
    ap.add_argument("--seconds", type=float, default=None, help="run this long without keys, then stop")
    ap.add_argument("--step", type=float, default=2.0, help="seconds per step of identify/order when not "
                                                            "stepping by hand (default 2)")
    ap.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    ap.add_argument("--level", type=float, default=1.0, help="pattern level 0..1 (default 1)")
    ap.add_argument("--hold", action="store_true", help="leave the last frame on at exit (default: blackout)")
    ap.add_argument("--set-white", type=float, nargs=3, metavar=("R", "G", "B"),
                    help="white balance for the fixture given (fixture NAME) or every fixture")
    ap.add_argument("--set-gamma", type=float, help="gamma for the fixture given (fixture NAME) or every fixture")
    ap.add_argument("--write", action="store_true", help="write the calibration into the layout file(s) at "
                                                         "exit (keeps FILE.bak)")
    a = ap.parse_args(argv)
    bad = _bad_numbers(a)
    if bad:
        ap.error(bad)
    if a.pattern in ("universe", "fixture") and a.arg is None:
        ap.error(f"{a.pattern} needs an argument")
    if a.pattern == "universe" and not (a.arg or "").lstrip("-").isdigit():
        ap.error("universe needs a number")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        venue = load_venue(a.venue)
    except VenueError as exc:
        out(f"ERROR {exc}")
        return 2
    if a.pattern == "fixture":
        try:
            venue.layout.fixture(a.arg)
        except KeyError as exc:
            out(f"ERROR {exc.args[0]}")
            return 2
    tree = ParamTree.from_specs(PARAMS)
    try:
        leds = LedPipeline(None, venue, tree, fps=max(a.fps, 1.0))
    except ValueError as exc:   # the venue's [safety] section
        out(f"ERROR {venue.name}: {exc}")
        return 2
    except ControllersBusy as exc:   # the show, or another test, is driving these LEDs
        out(f"ERROR {venue.name}: {exc}")
        return 2
    pats = Patterns(leds, min(max(a.level, 0.0), 1.0))
    chosen = [venue.layout.fixture(a.arg)] if a.pattern == "fixture" else range(len(venue.layout.fixtures))
    for fi in chosen:
        if a.set_white is not None:
            leds.color.set_calibration(fi, white=a.set_white)
        if a.set_gamma is not None:
            leds.color.set_calibration(fi, gamma=a.set_gamma)
    keys = Keys(a.seconds is None)
    interactive = keys.enabled
    nfix = len(venue.layout.fixtures)
    step, label = 0, ""
    t0 = time.monotonic()
    period = 1.0 / max(a.fps, 1.0)
    next_frame = t0
    last = None
    out(f"venue {venue.name}: {venue.layout.count} LEDs, {nfix} fixtures; pattern {a.pattern}"
        + (" (keys: n/p step, rRgGbB white, [ ] gamma, - + level, w write, q quit)" if interactive else ""))
    try:
        while True:
            now = time.monotonic()
            t = now - t0
            if a.seconds is not None and t >= a.seconds:
                break
            if not interactive and a.step > 0:
                step = int(t / a.step)
            frame, new_label = pats.make(a.pattern, a.arg, step, t)
            leds.process_colors(frame, None if last is None else now - last)  # real time: the limiter counts it
            last = now
            if new_label != label:
                out(new_label)
                label = new_label
                if a.pattern == "white":
                    p = leds.color.status()
                    out("power: " + (", ".join(f"{k} {v['amps']} A of {v['budget']} A (scale {v['scale']})"
                                               for k, v in p.items()) or "no supplies in the venue"))
            next_frame += period
            key = keys.poll(next_frame - time.monotonic())
            if key is None:
                continue
            if key == "q":
                break
            if key in ("n", " "):
                step += 1
            elif key == "p":
                step -= 1
            elif key in "-+=":
                pats.level = float(np.clip(pats.level + (0.05 if key in "+=" else -0.05), 0.0, 1.0))
                out(f"level {pats.level:.2f}")
            elif key in "rRgGbB[]":
                targets = [step % nfix] if a.pattern == "identify" else (
                    [venue.layout.fixture(a.arg)] if a.pattern == "fixture" else list(range(nfix)))
                for fi in targets:
                    c = leds.color.calibrations[fi]
                    if key in "rRgGbB":
                        ch = "rgb".index(key.lower())
                        w = list(c.white)
                        w[ch] += 0.02 if key.isupper() else -0.02
                        c = leds.color.set_calibration(fi, white=w)
                    else:
                        g = (c.gamma if c.gamma is not None else float(tree["leds/gamma"]))
                        c = leds.color.set_calibration(fi, gamma=g + (0.1 if key == "]" else -0.1))
                    out(f"{venue.layout.fixtures[fi].name}: white {[round(v, 3) for v in c.white]} "
                        f"gamma {c.gamma if c.gamma is not None else 'default'}")
            elif key == "w":
                write_back(leds, out)
    finally:
        keys.restore()
        leds.close("hold" if a.hold else "blackout")
        leds.release()
    if a.write and not write_back(leds, out):
        return 1
    return 0


def _bad_numbers(a: argparse.Namespace) -> str | None:
    """What is wrong with the numeric options, in one line, or None.  The layout file's own ranges hold for
    --set-white (0..1) and --set-gamma (0.5..4): a value outside was clamped and written, a NaN lit the LEDs
    with garbage; --seconds nan ran forever; --level 5 or --fps 0 were quietly changed."""
    fin = math.isfinite
    if a.seconds is not None and not (fin(a.seconds) and a.seconds > 0):
        return f"--seconds {a.seconds:g}: give a length above 0 (or leave it out to use the keys)"
    if not (fin(a.fps) and a.fps > 0):
        return f"--fps {a.fps:g}: give frames per second above 0"
    if not (fin(a.step) and a.step >= 0):
        return f"--step {a.step:g}: give seconds per step, 0 or more (0: step with the keys)"
    if not (fin(a.level) and 0 <= a.level <= 1):
        return f"--level {a.level:g}: give a level in 0..1"
    if a.set_white is not None and not all(fin(v) and 0 <= v <= 1 for v in a.set_white):
        return f"--set-white {' '.join(f'{v:g}' for v in a.set_white)}: give R G B each in 0..1"
    if a.set_gamma is not None and not (fin(a.set_gamma) and 0.5 <= a.set_gamma <= 4.0):
        return f"--set-gamma {a.set_gamma:g}: give a gamma in 0.5..4"
    return None


def write_back(leds: LedPipeline, out: Callable[[str], None] = print) -> bool:
    """Write every changed fixture calibration into its layout file (with a .bak backup); False if any
    file could not be written (each said in an ERROR line)."""
    ok = True
    by_file: dict[Path, dict[str, Calibration]] = {}
    for f, c in zip(leds.layout.fixtures, leds.color.calibrations):
        if c != f.calibration and f.file is not None:
            by_file.setdefault(f.file, {})[f.name] = c
    if not by_file:
        out("nothing changed")
    for path, cals in by_file.items():
        try:
            backup = write_calibration(path, cals)
            out(f"wrote {', '.join(cals)} to {path} (previous version: {backup})")
        except (OSError, ValueError) as exc:
            out(f"ERROR {exc}")
            ok = False
    return ok


if __name__ == "__main__":
    sys.exit(run())
