#!/usr/bin/env python3
"""Tapestry — the Nutrient Network made visible.  The command line: parses, builds, starts.

    python run.py                      the live installation on the demo venue (window if there is a display)
    python run.py render --out a.mp4   a headless render (see --help)
    python run.py presets | params | surface | layouts check FILE | venue check FILE | sense ... | map ... | status
    python run.py install-service
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="run.py", description="Tapestry: the Nutrient Network made visible.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--log-dir", default=None, help="write rotating logs here")
    sub = parser.add_subparsers(dest="command")

    live = sub.add_parser("run", help="run the live installation (the default)")
    _live_args(live)
    _live_args(parser)  # `python run.py --venue X` works without the word `run`

    r = sub.add_parser("render", help="render headless to an MP4 or a PNG sequence, as fast as possible")
    r.add_argument("--preset", default="harmony",
                   help="the look to render (`run.py presets` lists them; default harmony)")
    r.add_argument("--seconds", type=float, default=10.0, help="length of the video in seconds (default 10)")
    r.add_argument("--fps", type=float, default=30.0,
                   help="frames per second of the video (default 30)")
    r.add_argument("--size", default="1280x720", help="output WIDTHxHEIGHT (default 1280x720)")
    r.add_argument("--internal", default=None, help="internal tapestry WIDTHxHEIGHT (default: the output size, "
                        "at most 1080 lines)")
    r.add_argument("--draft", action="store_true", help="fast preview: internal picture at most 360 lines, scaled up")
    r.add_argument("--seed", type=int, default=1,
                   help="the same seed, preset and inputs give the same frames, byte for byte (default 1)")
    r.add_argument("--particles", type=int, default=None,
                   help="number of particles (default: the preset's field/particles, else 262,144)")
    r.add_argument("--out", required=True, help="FILE.mp4, or DIR/ for a PNG sequence")
    r.add_argument("--sensors", default=None, help="replay a sensor recording (JSONL)")
    r.add_argument("--camera", default=None, help="a video file standing in for the camera")
    r.add_argument("--audio", default=None,
                   help="a sound file standing in for the microphone (WAV, FLAC, MP3, M4A, a video's soundtrack...)")
    r.add_argument("--x264-preset", default="quick",
                   help="encoder speed: quick (default: 40%% of veryfast's CPU, 1.5-3x its file size) or "
                        "an x264 preset, ultrafast .. veryslow (slower: smaller files)")
    r.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", dest="overrides",
                   help="set a parameter after the preset, e.g. --set render/palette=aurora (repeatable; "
                        "`run.py params` lists them)")
    r.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")

    sub.add_parser("presets", help="list the presets")
    prm = sub.add_parser("params", help="print every parameter as an OSC address map (Markdown)")
    prm.add_argument("--update-docs", action="store_true", help="rewrite the address map in docs/osc.md")
    srf = sub.add_parser("surface", help="write a control-surface layout (Open Stage Control or TouchOSC)")
    srf.add_argument("--format", required=True, choices=("open-stage-control", "touchosc"),
                     help="the control app the surface is for")
    srf.add_argument("--out", required=True, help="file to write (.json for Open Stage Control, .tosc for TouchOSC)")

    lay = sub.add_parser("layouts", help="LED layouts")
    lay_sub = lay.add_subparsers(dest="layouts_command", required=True)
    chk = lay_sub.add_parser("check", help="validate a layout or venue file and count LEDs, universes, controllers")
    chk.add_argument("file")

    ven = sub.add_parser("venue", help="venue (show) files")
    ven_sub = ven.add_subparsers(dest="venue_command", required=True)
    vchk = ven_sub.add_parser("check", help="validate every section of a venue file (exit 2 on any error)")
    vchk.add_argument("file")
    vref = ven_sub.add_parser("reference", help="print the reference of every venue key (Markdown)")
    vref.add_argument("--update-docs", action="store_true", help="rewrite docs/venue-reference.md")

    s = sub.add_parser("sense", help="measure a camera/microphone (or files) into a CSV for tuning")
    s.add_argument("--camera", default=None, help="camera: device index, /dev path, video file or stream URL "
                   "(a file is read once through, as fast as the machine goes)")
    s.add_argument("--audio", default=None,
                   help="microphone: device name, 'default', or a sound file (WAV, FLAC, MP3, M4A...)")
    s.add_argument("--out", required=True, help="FILE.csv")
    s.add_argument("--preview", default=None, help="FILE.mp4 with the measurements drawn on the camera view")
    s.add_argument("--seconds", type=float, default=None, help="stop after this long (live devices)")
    s.add_argument("--roi", default=None, help="region of interest: 4 corners x0,y0,x1,y1,x2,y2,x3,y3 (0..1)")

    mp = sub.add_parser("map", help="find where the LEDs really are with a camera and write them into the layouts")
    from installation.mapping.args import add_arguments as _map_args
    _map_args(mp)

    st = sub.add_parser("status", help="ask the running piece how it is (fps, sensors, outputs, errors)")
    st.add_argument("--url", default=None, help="health endpoint (default http://127.0.0.1:9091/health)")
    st.add_argument("--json", action="store_true", help="print the /health document as JSON")

    svc = sub.add_parser("install-service", help="install the systemd unit that runs the piece unattended")
    svc.add_argument("--venue", default=None, help="venue file (default: hardware/demo-venue.toml)")
    svc.add_argument("--user", default=None, help="user to run as (default: the current one)")
    svc.add_argument("--dry-run", action="store_true", help="print the unit and the commands, change nothing")

    args = parser.parse_args(argv)
    from installation.logs import NativeStderr, setup_logging
    import logging
    if not isinstance(logging.getLevelName(str(args.log_level).upper()), int):
        print(f"tapestry: --log-level {args.log_level}: give DEBUG, INFO, WARNING, ERROR or CRITICAL", file=sys.stderr)
        return 2
    live = args.command in (None, "run")
    # PortAudio and ALSA print to fd 2 on every device probe; in the live show and `sense` that goes
    # through the log-once rule like everything else (before the handlers are made: they keep sys.stderr).
    native = NativeStderr() if args.command in (None, "run", "sense") else None
    if native is not None:
        native.start()
    # The live show logs from its frame thread: there a stuck console or disk must not stop it.
    setup_logging(args.log_dir, str(args.log_level).upper(), background=live)

    from installation.app import StartupError
    from installation.recording import RecordingError
    from installation.schema import ConfigError, one_line
    try:
        return _dispatch(args)
    except (StartupError, RecordingError, ConfigError) as exc:
        print(f"tapestry: {one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `python run.py params | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    finally:
        if native is not None:
            native.stop()


def _live_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--venue", default=None, help="venue file (default: hardware/demo-venue.toml)")
    p.add_argument("--no-leds", action="store_true", help="run without any LED outputs")
    p.add_argument("--preset", default=None, help="first preset (default: harmony)")
    p.add_argument("--headless", action="store_true", help="no preview window even if a display exists")
    p.add_argument("--size", default=None, help="internal tapestry WIDTHxHEIGHT (default: 512x288 on a "
                   "software GL, 960x540 on a GPU)")
    p.add_argument("--fps", type=float, default=60.0, help="frame rate the show aims for (default 60)")
    p.add_argument("--seed", type=int, default=None, help="network seed (default: today's date as YYYYMMDD, "
                   "logged at start; the same seed gives the same network)")
    p.add_argument("--particles", type=int, default=None,
                   help="number of particles (default: the preset's field/particles, else 262,144)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    p.add_argument("--camera", default=None, help="camera: device index, /dev path, video file or stream URL")
    p.add_argument("--audio", default=None,
                   help="microphone: device name, 'default', or a sound file (WAV, FLAC, MP3, M4A...)")
    p.add_argument("--record-sensors", default=None, help="record sensor measurements to this JSONL file")
    p.add_argument("--osc-port", type=int, default=None,
                   help="UDP port OSC control listens on (default: the venue's [osc] port, else 9000)")
    p.add_argument("--presets", default=None, help="preset folder (default: presets/), watched for edits")
    p.add_argument("--shaders", default=None, help="shader folder (default: shaders/), watched for edits")
    p.add_argument("--health-port", type=int, default=9091, help="HTTP health endpoint on 127.0.0.1 (0: off)")
    p.add_argument("--watchdog", type=float, default=5.0, help="seconds of stalled frame loop before a restart")
    p.add_argument("--status-line", action="store_true",
                   help="print the per-second status line even when stdout is not a terminal (off by default "
                        "there: under systemd it would fill the journal)")


def _dispatch(args) -> int:
    from installation import app
    cmd = args.command or "run"
    if cmd == "run":
        return app.run_live(app.LiveArgs(
            venue=Path(args.venue) if args.venue else app.DEFAULT_VENUE, preset=args.preset,
            size=app.parse_size(args.size) if args.size else None, seed=args.seed, fps=args.fps,
            particles=args.particles,
            headless=args.headless, seconds=args.seconds, camera=args.camera, audio=args.audio,
            record_sensors=args.record_sensors, osc_port=args.osc_port, no_leds=args.no_leds,
            health_port=args.health_port, watchdog_s=args.watchdog, status_line=args.status_line,
            presets=Path(args.presets) if args.presets else None,
            shaders=Path(args.shaders) if args.shaders else None))
    if cmd == "render":
        return app.render(app.RenderArgs(
            out=args.out, preset=args.preset, seconds=args.seconds, fps=args.fps,
            size=app.parse_size(args.size), seed=args.seed,
            internal=app.parse_size(args.internal) if args.internal else None, particles=args.particles,
            sensors=args.sensors, camera=args.camera, audio=args.audio, quiet=args.quiet,
            x264_preset=args.x264_preset, overrides=tuple(args.overrides), draft=args.draft))
    if cmd == "presets":
        from installation.engine import EngineOptions, declare_all
        from installation.presets import PresetLibrary
        lib = PresetLibrary(EngineOptions().presets, declare_all(extra=app._sensing_params()))
        rows = lib.describe()
        width = max((len(n) for n, _ in rows), default=0)
        for name, desc in rows:
            print(f"{name:<{width}}  {desc}")
        return 0
    if cmd == "params":
        from installation.control.docs import params_markdown, update_address_map
        from installation.engine import declare_all
        tree = declare_all(extra=app._sensing_params())
        if args.update_docs:
            changed = update_address_map(ROOT / "docs" / "osc.md", tree)
            print("docs/osc.md " + ("updated" if changed else "already up to date"))
            return 0
        print(params_markdown(tree))
        return 0
    if cmd == "surface":
        from installation.control.surface import write_surface
        from installation.engine import EngineOptions, declare_all
        from installation.presets import PresetLibrary
        tree = declare_all(extra=app._sensing_params())
        try:
            n = write_surface(args.format, tree, PresetLibrary(EngineOptions().presets, tree).names(), Path(args.out))
        except OSError as exc:
            print(f"tapestry: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"{args.out}: {args.format} layout with {n} parameters")
        return 0
    if cmd in ("layouts", "venue") and getattr(args, "venue_command", "check") == "check":
        from installation.venue import check_layout
        text = check_layout(args.file, venue=cmd == "venue")
        if text.startswith("ERROR "):
            print(f"tapestry: {text.removeprefix('ERROR ')}", file=sys.stderr)
            return 2
        print(text)
        return 0
    if cmd == "venue":
        from installation.showfile import reference
        text = reference()
        if args.update_docs:
            doc = ROOT / "docs" / "venue-reference.md"
            changed = not doc.exists() or doc.read_text(encoding="utf-8") != text
            if changed:
                doc.write_text(text, encoding="utf-8")
            print("docs/venue-reference.md " + ("updated" if changed else "already up to date"))
            return 0
        print(text, end="")
        return 0
    if cmd == "sense":
        from installation.sensing import run_sense
        return run_sense(args.camera, args.audio, args.out, args.preview, roi=args.roi, seconds=args.seconds)
    if cmd == "map":
        from installation.mapping.cli import run_from_args
        return run_from_args(args)
    if cmd == "status":
        import json
        from installation.health import DEFAULT_URL, StatusUnavailable, fetch_status, format_status, status_exit
        try:
            doc = fetch_status(args.url or DEFAULT_URL)
        except StatusUnavailable as exc:
            print(f"tapestry: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(doc, indent=2) if args.json else format_status(doc))
        return status_exit(doc)
    if cmd == "install-service":
        from installation.service import ServiceError, install_service
        try:
            install_service(str(ROOT), str(Path(args.venue).resolve() if args.venue else app.DEFAULT_VENUE),
                            args.user, args.dry_run)
        except ServiceError as exc:
            print(f"tapestry: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"tapestry: {exc}", file=sys.stderr)
            return 1
        return 0
    raise app.StartupError(f"unknown command {cmd}")


if __name__ == "__main__":
    sys.exit(main())
