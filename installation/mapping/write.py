"""Writing a mapping: the layouts (refitted in place, comments kept), the views file, the venue's camera section.

Every file written is kept first as ``FILE.<time>.bak``; TOML is edited as text
(only the keys that change), JSON is rewritten.  After writing, the venue is
loaded again; if it no longer loads, every file is restored from its backup.

The views file (``VENUE.map.json``) holds what each camera view saw: image
positions, canvas positions, lens and homography.  A second view is appended,
never replaces the first, so views can be merged later (3D).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import tomllib
from pathlib import Path

import numpy as np

from installation.fixtures.layout import Layout, _read_csv
from installation.venue import Venue, VenueError, load_venue

from .fit import FixtureResult

# a table header, not the continuation line of a multi-line array such as "   [2.0, 1.5],"
_HEADER = re.compile(r'^\s*\[\[?\s*[A-Za-z_"][A-Za-z0-9_."\- ]*\]\]?\s*(#.*)?$')
#: a strip or matrix whose LEDs sit further than this from its fitted shape (rms, canvas heights) is not rewritten
MAX_SHAPE_RMS = 0.01
_NAME = re.compile(r'^\s*name\s*=\s*"([^"]*)"')


def _num(v: float) -> str:
    return f"{v:.5g}" if abs(v) >= 1e-4 or v == 0 else "0"


def _vec(v) -> str:
    return "[" + ", ".join(_num(float(x)) for x in v) + "]"


def _fixture_blocks(lines: list[str]) -> dict[str, tuple[int, int]]:
    """name -> (first line after [[fixtures]], end of the fixture's own keys) for every fixture."""
    starts = [i for i, ln in enumerate(lines) if ln.strip() == "[[fixtures]]"]
    out = {}
    for bi, s in enumerate(starts):
        e = starts[bi + 1] if bi + 1 < len(starts) else len(lines)
        for j in range(s + 1, e):
            if _HEADER.match(lines[j]):
                e = j
                break
        for j in range(s + 1, e):
            m = _NAME.match(lines[j])
            if m:
                out[m.group(1)] = (s + 1, e)
                break
    return out


def _value_end(lines: list[str], i: int) -> int:
    """Index after the last line of the value starting on line ``i`` (multi-line arrays)."""
    depth = 0
    j = i
    while j < len(lines):
        text = lines[j].split("#", 1)[0]
        depth += text.count("[") - text.count("]")
        j += 1
        if depth <= 0:
            break
    return j


def _set_keys(lines: list[str], block: tuple[int, int], values: dict[str, str | None]) -> list[str]:
    """Set (or with None remove) keys in one fixture's block; new keys go after its last key."""
    s, e = block
    body = lines[s:e]
    done = set()
    out: list[str] = []
    i = 0
    while i < len(body):
        m = re.match(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)\s*=", body[i])
        if m and m.group(2) in values:
            key = m.group(2)
            end = _value_end(body, i)
            if values[key] is not None:
                out.append(f"{m.group(1)}{key} = {values[key]}")
            done.add(key)
            i = end
            continue
        out.append(body[i])
        i += 1
    last = max((k for k, ln in enumerate(out) if ln.strip() and not ln.lstrip().startswith("#")), default=len(out) - 1)
    new = [f"{k} = {v}" for k, v in values.items() if k not in done and v is not None]
    out = out[:last + 1] + new + out[last + 1:]
    return lines[:s] + out + lines[e:]


def _file_units(top: dict) -> np.ndarray:
    canvas = top.get("canvas", {}) or {}
    if canvas.get("units", "canvas") == "canvas":
        return np.array([1.0, 1.0])
    return np.array([float(canvas["width"]), float(canvas["height"])])


def backup(path: Path, stamp: str) -> Path:
    """Copy ``path`` to ``path.<stamp>.bak`` (returned)."""
    b = path.with_name(f"{path.name}.{stamp}.bak")
    shutil.copy2(path, b)
    return b


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _fixture_values(r: FixtureResult, table: dict, units: np.ndarray, layout_path: Path, layout: Layout,
                    fi: int, stamp: str, written: list, notes: list[str]) -> dict[str, str | None] | None:
    """The new key values of one fixture, or None to leave it as it is."""
    if r.kind in ("strip", "matrix") and r.rms > MAX_SHAPE_RMS:
        notes.append(f"{r.name}: the LEDs seen do not lie on its {r.kind}'s shape ({100 * r.rms:.1f} % of the canvas "
                     f"height off); not rewritten -- check its wiring (start_corner, direction, serpentine)")
        return None
    if r.kind == "strip" and r.start is not None:
        old_s, old_e = table.get("start", []), table.get("end", [])
        s = list(r.start * units) + list(old_s[2:3])   # a z the camera cannot see is kept
        e = list(r.end * units) + list(old_e[2:3])
        vals: dict[str, str | None] = {"start": _vec(s), "end": _vec(e)}
        if "spacing" in table:   # the count must not change with the length: it is the patch
            vals["spacing"] = None
            vals["count"] = str(r.count)
        return vals
    if r.kind == "matrix" and r.origin is not None:
        gx, gy = r.grid
        cols, rows = int(gx.max()) + 1, int(gy.max()) + 1
        sx, sy = float(r.spacing[0]), float(r.spacing[1])
        ox = r.origin[0] + min(0.0, (cols - 1) * sx)
        oy = r.origin[1] + min(0.0, (rows - 1) * sy)
        old_o = table.get("origin", [])
        vals = {"origin": _vec([ox * units[0], oy * units[1]] + list(old_o[2:3]))}
        dx, dy = abs(sx) * units[0], abs(sy) * units[1]
        if "size" in table:
            vals["size"] = _vec([dx * (cols - 1), dy * (rows - 1)])
        else:
            vals["spacing"] = _vec([dx if cols > 1 else dy, dy if rows > 1 else dx])
        mx, my = r.mirrored
        if mx or my:
            corner = str(table.get("start_corner", "top-left"))
            v, h = corner.split("-")
            if my:
                v = "bottom" if v == "top" else "top"
            if mx:
                h = "right" if h == "left" else "left"
            vals["start_corner"] = f'"{v}-{h}"'
        return vals
    if r.kind == "points":
        if "csv" in table:
            csv_path = (layout_path.parent / str(table["csv"])).resolve()
            old = _read_csv(csv_path, str(csv_path))
        else:
            csv_path = layout_path.parent / f"{layout_path.stem}-{r.name}.csv"
            old = np.array([list(p) + [0.0] * (3 - len(p)) for p in table.get("points", [])], np.float64)
        if old.shape[0] != r.count:
            notes.append(f"{r.name}: its point list has {old.shape[0]} rows for {r.count} LEDs; not rewritten")
            return None
        pos = old.copy()
        seen = np.isfinite(r.positions).all(axis=1)
        pos[seen, :2] = r.positions[seen] * units
        rows = [f"# mapped by `run.py map` {stamp}: x,y from the camera; seen=0: not seen, the old "
                f"position kept (not guessed); z kept", "x,y,z,seen"]
        rows += [f"{p[0]:.5g},{p[1]:.5g},{p[2]:.5g},{int(s)}" for p, s in zip(pos, seen)]
        if csv_path.exists():
            written.append((csv_path, backup(csv_path, stamp)))
        else:
            written.append((csv_path, None))
        _atomic_write(csv_path, "\n".join(rows) + "\n")
        if "csv" not in table:
            return {"points": None, "csv": json.dumps(csv_path.name)}
        return {}
    if r.kind == "polyline" and "points" in table:
        return _polyline_values(r, table, units, notes)
    return None


def _polyline_values(r: FixtureResult, table: dict, units: np.ndarray, notes: list[str]) -> dict | None:
    """New vertices of a polyline: each LED lies a fixed share of the way along its segment, so its
    position is linear in the two vertices around it; least squares over the LEDs seen (a vertex no LED
    pins down stays where it was)."""
    old = np.array([list(map(float, p)) for p in table["points"]], np.float64)
    n, k = r.count, len(old)
    seg = np.linalg.norm(np.diff(old, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.linspace(0.0, cum[-1], n) if n > 1 else np.zeros(1)
    j = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, k - 2)
    u = np.where(seg[j] > 0, (s - cum[j]) / np.where(seg[j] > 0, seg[j], 1.0), 0.0)
    seen = np.isfinite(r.positions).all(axis=1)
    if seen.sum() < 2:
        return None
    A = np.zeros((n, k))
    A[np.arange(n), j] = 1.0 - u
    A[np.arange(n), j + 1] += u
    lam = 1e-3
    M = np.vstack([A[seen], lam * np.eye(k)])
    b = np.vstack([r.positions[seen] * units, lam * old[:, :2]])
    V, *_ = np.linalg.lstsq(M, b, rcond=None)
    pts = [list(v) + list(o[2:3]) for v, o in zip(V, old)]
    vals: dict[str, str | None] = {"points": "[" + ", ".join(_vec(p) for p in pts) + "]"}
    if "spacing" in table:   # the count must not change with the length: it is the patch
        vals["spacing"] = None
        vals["count"] = str(n)
    notes.append(f"{r.name}: polyline vertices refitted to the LEDs seen")
    return vals


def write_layouts(venue: Venue, results: list[FixtureResult], stamp: str) -> tuple[list, list[str]]:
    """Write the refitted fixtures into their layout files; returns ([(file, backup or None)], notes).

    Restores every file and raises :class:`VenueError` if the venue no longer loads afterwards.
    """
    layout = venue.layout
    by_file: dict[Path, list[int]] = {}
    for fi, f in enumerate(layout.fixtures):
        if f.file is not None:
            by_file.setdefault(Path(f.file), []).append(fi)
    written: list = []
    notes: list[str] = []
    try:
        for path, fis in by_file.items():
            text = path.read_text(encoding="utf-8")
            top = tomllib.loads(text) if path.suffix.lower() != ".json" else json.loads(text)
            if "projection" in top:
                notes.append(f"{path.name}: has a 3D projection; one camera view gives no depth, so its "
                             f"fixtures are not rewritten (positions are in the views file)")
                continue
            units = _file_units(top)
            tables = {t.get("name"): t for t in top.get("fixtures", [])}
            changes = {}
            for fi in fis:
                r = results[fi]
                if r.found == 0:
                    notes.append(f"{r.name}: not seen at all; left as it was")
                    continue
                vals = _fixture_values(r, tables.get(r.name, {}), units, path, layout, fi, stamp, written, notes)
                if vals:
                    changes[r.name] = vals
            if not changes:
                continue
            if path.suffix.lower() == ".json":
                for t in top.get("fixtures", []):
                    for k, v in changes.get(t.get("name"), {}).items():
                        if v is None:
                            t.pop(k, None)
                        else:
                            t[k] = tomllib.loads(f"v = {v}")["v"]
                new = json.dumps(top, indent=2) + "\n"
            else:
                lines = text.splitlines()
                for name, vals in changes.items():
                    blocks = _fixture_blocks(lines)
                    if name not in blocks:
                        notes.append(f"{path.name}: fixture {name!r} not found as a [[fixtures]] table; not rewritten")
                        continue
                    lines = _set_keys(lines, blocks[name], vals)
                new = "\n".join(lines) + ("\n" if text.endswith("\n") else "")
                tomllib.loads(new)
            written.append((path, backup(path, stamp)))
            _atomic_write(path, new)
        load_venue(venue.path)
    except (VenueError, tomllib.TOMLDecodeError, OSError, ValueError) as exc:
        restore(written)
        raise VenueError(f"writing the mapped layouts failed, every file restored: {exc}") from None
    return written, notes


def restore(written: list) -> None:
    """Put back every (file, backup) written (a file that did not exist before is removed)."""
    for path, bak in reversed(written):
        try:
            if bak is None:
                Path(path).unlink(missing_ok=True)
            else:
                shutil.copy2(bak, path)
        except OSError:
            pass


def views_path(venue: Venue) -> Path:
    """Where the views of ``venue`` are kept: next to the venue file, ``NAME.map.json``."""
    return venue.path.with_name(venue.path.stem + ".map.json")


def append_view(venue: Venue, view: dict) -> tuple[Path, int]:
    """Add one camera view to the views file (made if missing); returns (path, number of views now).

    A file made for a different set of fixtures is kept as a backup and a new one started.
    """
    path = views_path(venue)
    fixtures = [{"name": f.name, "first": int(venue.layout.first[i]), "count": f.count}
                for i, f in enumerate(venue.layout.fixtures)]
    data = None
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("fixtures") != fixtures:
                backup(path, time.strftime("%Y%m%d-%H%M%S"))
                data = None
        except (OSError, ValueError):
            backup(path, time.strftime("%Y%m%d-%H%M%S"))
            data = None
    if data is None:
        data = {"format": "tapestry-led-map", "version": 1, "venue": venue.name, "leds": venue.layout.count,
                "fixtures": fixtures, "views": []}
    view = dict(view, id=len(data["views"]) + 1)
    data["views"].append(view)
    _atomic_write(path, json.dumps(data, indent=1) + "\n")
    return path, len(data["views"])


def write_camera_section(venue: Venue, roi: list[float], k1: float, size: tuple[int, int], stamp: str) -> Path:
    """Write ``[camera]`` roi / lens_k1 / image_size into the venue file (backup kept); returns the backup.

    ``roi`` is ``sensing/camera/roi/x0, y0, ..., x3, y3`` (canvas corners TL, TR, BR, BL in 0..1 of the image).
    """
    path = venue.path
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    vals = {"roi": _vec(roi), "lens_k1": _num(k1), "image_size": f"[{size[0]}, {size[1]}]",
            "mapped": json.dumps(stamp)}
    head = next((i for i, ln in enumerate(lines) if ln.strip() == "[camera]"), None)
    if head is None:
        lines += ["", "# written by `run.py map`: where the canvas corners (TL, TR, BR, BL) are in the camera",
                  "# image (0..1), for sensing/camera/roi/*, and the lens's radial distortion", "[camera]"]
        lines += [f"{k} = {v}" for k, v in vals.items()]
    else:
        end = next((j for j in range(head + 1, len(lines)) if _HEADER.match(lines[j])), len(lines))
        lines = _set_keys(lines, (head + 1, end), vals)
    new = "\n".join(lines) + "\n"
    tomllib.loads(new)
    b = backup(path, stamp)
    _atomic_write(path, new)
    try:
        load_venue(path)
    except VenueError:
        shutil.copy2(b, path)
        raise
    return b


def camera_roi(sections: dict) -> str | None:
    """The ``[camera] roi`` a mapping wrote into a venue (``Venue.sections``), as the text
    ``sensing.camera.set_roi`` takes, or None when there is none.  For the show's start-up:
    ``roi = camera_roi(venue.sections); if roi: set_roi(tree, roi)``."""
    cam = sections.get("camera")
    roi = cam.get("roi") if isinstance(cam, dict) else None
    if not isinstance(roi, list) or len(roi) != 8:
        return None
    return ",".join(str(float(v)) for v in roi)
