"""The ``run.py map`` options (argparse only: building the parser must not import OpenCV or numpy)."""

from __future__ import annotations


def add_arguments(p) -> None:
    """The ``run.py map`` options."""
    p.add_argument("--venue", default=None, help="venue file (default: hardware/demo-venue.toml)")
    p.add_argument("--camera", default=None, help="camera device index (0) or /dev path, or a recorded clip of "
                   "`map --dry-run`")
    p.add_argument("--dry-run", action="store_true", help="show the patterns on the LEDs, no camera, write nothing; "
                   "draws them into VENUE-patterns.png")
    p.add_argument("--preview", action="store_true", help="with --dry-run: also show the patterns in a window, each "
                   "LED at its layout position as it goes out (needs a screen; Esc stops)")
    p.add_argument("--corners", default=None, help="the canvas corners TL, TR, BR, BL in the camera image: "
                   "'x,y x,y x,y x,y' in pixels (or 0..1 of the image), or 'pick' to click them on the camera's "
                   "view in a browser")
    p.add_argument("--pick-listen", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="where --corners pick serves its page (default 127.0.0.1 on a free port; 0.0.0.0:8080 "
                        "for a tablet on the venue network)")
    p.add_argument("--anchor", action="append", default=[], metavar="FIXTURE[:INDEX[=X,Y]]",
                   help="an LED whose place is known (the layout's, or X,Y in the layout's units), or a bare "
                        "FIXTURE for its corner LEDs as the layout places them; 4 LEDs or more instead of --corners")
    p.add_argument("--k1", type=float, default=None, help="lens distortion (default: measured on straight fixtures)")
    p.add_argument("--hold", type=float, default=0.4, help="seconds each pattern is shown before the camera "
                   "looks (default 0.4)")
    p.add_argument("--average", type=int, default=2, help="camera frames averaged per pattern (default 2)")
    p.add_argument("--no-write", action="store_true", help="report only; leave the layouts as they are")
    p.add_argument("--write-roi", action="store_true", help="also write the canvas corners into the venue's "
                   "[camera] roi, for the presence camera (same camera, same place)")
    p.add_argument("--png-dir", default=None, help="where the PNGs go (default: next to the venue file)")
    p.add_argument("--snapshot", default=None, metavar="FILE.png", help="only light every LED dimly and save one "
                   "camera frame with a pixel grid, to read the canvas corners off for --corners")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
