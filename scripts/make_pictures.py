#!/usr/bin/env python3
"""Make the documentation pictures from real renders (``python3 run.py render ...``), so anyone can remake them.

    python3 scripts/make_pictures.py            # docs/img/presets.png and docs/img/param-*.png

Each picture is the last frame of a short PNG render (fixed seed: byte-identical every time), tiled
with OpenCV into a labelled sheet.  Kept small (well under 400 KB a file).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("harmony", "tension", "breakdown", "restoration", "symbiosis")
# (file, preset, parameter, values): what one parameter does, everything else as the preset has it.
PARAMS = (
    ("param-malfunction.png", "harmony", "field/malfunction", (0.0, 0.5, 1.0)),
    ("param-harmony.png", "tension", "field/harmony", (0.1, 0.5, 0.95)),
    ("param-nodes.png", "harmony", "field/nodes/count", (4, 9, 20)),
)


def render_frame(preset: str, size: str, seconds: float, sets: tuple[str, ...] = ()) -> np.ndarray:
    """The last frame of a real ``run.py render`` of ``preset`` (BGR)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(ROOT / "run.py"), "render", "--preset", preset, "--seconds", str(seconds),
               "--size", size, "--out", tmp + "/", "--quiet"]
        for s in sets:
            cmd += ["--set", s]
        subprocess.run(cmd, check=True)
        last = sorted(Path(tmp).glob("*.png"))[-1]
        return cv2.imread(str(last), cv2.IMREAD_COLOR)


def label(img: np.ndarray, text: str) -> np.ndarray:
    """The frame with ``text`` in its top-left corner, on a dark plate (readable on any colour; a dark
    outline stroked under the text read as doubled letters with OpenCV 5's font)."""
    out = img.copy()
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.55
    (w, h), base = cv2.getTextSize(text, font, scale, 1)
    x0, y0, x1, y1 = 4, 4, min(out.shape[1], 12 + w), min(out.shape[0], 12 + h + base)
    out[y0:y1, x0:x1] = (out[y0:y1, x0:x1].astype(np.float32) * 0.35).astype(np.uint8)
    cv2.putText(out, text, (8, 8 + h), font, scale, (245, 245, 245), 1, cv2.LINE_AA)
    return out


def sheet(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    """Tiles in rows of ``cols`` (missing ones black), 2 px apart."""
    h, w = tiles[0].shape[:2]
    rows = (len(tiles) + cols - 1) // cols
    out = np.zeros((rows * (h + 2) - 2, cols * (w + 2) - 2, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = t
    return out


def write_small(path: Path, img: np.ndarray, limit: int = 390_000) -> None:
    """Write a PNG, scaled down in 15 % steps until it is under ``limit`` bytes (particle noise compresses badly)."""
    while True:
        ok, data = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if len(data) <= limit or img.shape[1] < 320:
            path.write_bytes(data.tobytes())
            return
        img = cv2.resize(img, None, fx=0.85, fy=0.85, interpolation=cv2.INTER_AREA)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="384x216", help="size of each tile (a real render at this size)")
    ap.add_argument("--seconds", type=float, default=3.0, help="render length; the last frame is used")
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tiles = [label(render_frame(p, args.size, args.seconds), p) for p in PRESETS]
    write_small(out / "presets.png", sheet(tiles, 3))
    for name, preset, path, values in PARAMS:
        tiles = [label(render_frame(preset, args.size, args.seconds, (f"{path}={v}",)), f"{preset}: {path} = {v}")
                 for v in values]
        write_small(out / name, sheet(tiles, len(tiles)))
    for f in sorted(out.glob("*.png")):
        print(f"{f.relative_to(ROOT) if f.is_relative_to(ROOT) else f}: {f.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
