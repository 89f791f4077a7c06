"""Assembling and running the piece: the live show and the headless render.

``run.py`` parses the command line and calls these; they build the parts
(GL context, engine, LEDs, sensors, OSC, watcher, sinks), run the frame loop
and tear everything down in order, whatever happened.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .clock import FixedStepClock, RealtimeClock
from .console import StatusLine
from .engine import Engine, EngineOptions, declare_all
from .gfx.context import ContextError, display_available, headless_context
from .gfx.shaders import ShaderError
from .params import ParamError
from .presets import PresetError
from .recording import PngSequenceWriter, Progress, RecordingError, VideoWriter

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENUE = ROOT / "hardware" / "demo-venue.toml"
DRAFT_LINES = 360  # ``render --draft``: internal picture height (a fast preview on software GL)


class StartupError(RuntimeError):
    """Something the user must fix before the piece can start; the message says what."""


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> (1280, 720), with a clear error."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise StartupError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise StartupError(f"size {text!r}: each side must be 16..8192 pixels")
    return w, h


def date_seed(day=None) -> int:
    """The live show's default seed: the date as YYYYMMDD, so each day grows a different network and
    the same day always the same one (a problem seen on Tuesday can be reproduced with ``--seed``)."""
    import datetime as _dt
    day = day or _dt.date.today()
    return day.year * 10000 + day.month * 100 + day.day


def internal_size(out: tuple[int, int], max_height: int = 360) -> tuple[int, int]:
    """Internal tapestry size for an output size: the same aspect, at most ``max_height`` tall."""
    w, h = out
    if h <= max_height:
        return w, h
    return max(16, round(w * max_height / h)), max_height


# -- render ----------------------------------------------------------------
@dataclass
class RenderArgs:
    """What ``run.py render`` asks for."""

    out: str  # FILE.mp4, or a directory ending in "/" for PNGs (a str: Path would drop the slash)
    preset: str = "harmony"
    seconds: float = 10.0
    fps: float = 30.0
    size: tuple[int, int] = (1280, 720)
    seed: int = 1
    internal: tuple[int, int] | None = None
    particles: int | None = None
    sensors: str | None = None
    camera: str | None = None
    audio: str | None = None
    quiet: bool = False
    x264_preset: str = "quick"
    draft: bool = False  # internal picture at most DRAFT_LINES tall: a fast preview
    overrides: tuple[str, ...] = ()  # "PATH=VALUE", applied after the preset (run.py render --set)


def check_seed(seed: int | None) -> None:
    """:class:`StartupError` for a negative ``--seed`` (numpy's generators refuse one: it was a traceback)."""
    if seed is not None and seed < 0:
        raise StartupError(f"--seed {seed}: give a whole number 0 or more")


def check_particles(particles: int | None) -> None:
    """:class:`StartupError` unless ``--particles`` is absent or within ``field/particles``'s declared range
    (the parameter model would otherwise clamp it silently: ``--particles 0`` ran the default 262,144)."""
    if particles is None:
        return
    from .field.simulation import PARAMS as FIELD_PARAMS
    spec = next(p for p in FIELD_PARAMS if p.path == "field/particles")
    if not spec.lo <= particles <= spec.hi:
        raise StartupError(f"--particles {particles}: give a number of particles in {int(spec.lo):,}..{int(spec.hi):,}")


def render(args: RenderArgs) -> int:
    """Render headless, as fast as the machine allows, to an MP4 or a PNG sequence; returns exit status."""
    if not (math.isfinite(args.fps) and 0 < args.fps <= 240):
        raise StartupError(f"--fps {args.fps:g}: give frames per second in (0, 240]")
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        raise StartupError(f"--seconds {args.seconds:g}: give a length above 0")
    check_particles(args.particles)
    check_seed(args.seed)
    frames = max(1, round(args.seconds * args.fps))
    sensors = None
    tree = declare_all(extra=_sensing_params())
    if args.sensors or args.camera or args.audio:
        from .sensing import OfflineSensors
        try:
            off = OfflineSensors(camera_file=args.camera, audio_file=args.audio, sensors_file=args.sensors,
                                 fps=args.fps, tree=tree)
        except (OSError, ValueError) as exc:
            raise StartupError(f"cannot read the sensor inputs: {exc}") from None
        sensors = off.at
    out = str(args.out)
    out_path = Path(out)
    png = out.endswith(("/", "\\")) or out_path.is_dir()
    if not png and (args.size[0] % 2 or args.size[1] % 2):
        raise StartupError(f"--size {args.size[0]}x{args.size[1]}: the video encoder needs even sides "
                           f"(try {args.size[0] + args.size[0] % 2}x{args.size[1] + args.size[1] % 2})")
    if png and out_path.is_dir() and any(out_path.iterdir()):
        raise StartupError(f"--out {out}: the folder is not empty (give a new or empty folder)")
    if not png and out_path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise StartupError(f"--out {out}: give a .mp4 file or a directory ending in / for PNGs")
    ctx = _context()
    internal = args.internal or render_internal_size(ctx, args.size, args.draft)
    # The engine first: a bad preset or shader is reported before any output file is created.
    engine = _build_engine(ctx, EngineOptions(size=internal, seed=args.seed, preset=args.preset,
                                              particles=args.particles, overrides=parse_overrides(args.overrides)),
                           tree, sensors=sensors)
    try:
        sink = (PngSequenceWriter(out_path, args.size, args.fps) if png
                else VideoWriter(out_path, args.size, args.fps, preset=args.x264_preset))
    except RecordingError:
        engine.release()
        raise
    engine.sinks.append(sink)
    progress = None if args.quiet else Progress(frames, label=f"render {out_path.name}")
    clock = FixedStepClock(args.fps)
    t0 = time.perf_counter()
    done = 0
    try:
        for i in range(frames):
            engine.frame(clock.next_frame())
            done = i + 1
            if engine.last_errors and any(e.startswith("VideoWriter") or e.startswith("PngSequenceWriter")
                                          for e in engine.last_errors):
                raise RecordingError(engine.last_errors[-1])
            if progress:
                progress.update(i + 1)
    except KeyboardInterrupt:  # Ctrl-C: finish the file with the frames made so far (a playable partial)
        interrupted = True
    else:
        interrupted = False
    finally:
        engine.close()
        engine.release()
    if interrupted:
        print(f"\ninterrupted: wrote {out} with the first {done} of {frames} frames "
              f"({done / args.fps:.1f} s)", file=sys.stderr)
        return 130
    took = time.perf_counter() - t0
    if not args.quiet:
        print(f"wrote {out}: {frames} frames {args.size[0]}x{args.size[1]} @ {args.fps:g} fps "
              f"(internal {internal[0]}x{internal[1]}, {engine.field.count} particles) in {took:.1f} s "
              f"= {frames / args.fps / took:.2f}x real time", file=sys.stderr)
    return 0


def parse_overrides(items: tuple[str, ...] | list[str]) -> dict[str, object]:
    """``["field/sim_every=2", "/tapestry/render/palette=aurora"]`` -> {path: value}.

    Values are read as TOML literals (numbers, true/false, "strings"); a bare word is a string, so
    palette names need no quotes.  The parameter model checks them when the engine is built.
    """
    out: dict[str, object] = {}
    for item in items:
        path, sep, text = str(item).partition("=")
        path = path.strip().removeprefix("/tapestry/").strip("/")
        if not sep or not path or not text.strip():
            raise StartupError(f"--set {item!r}: write it as PATH=VALUE, e.g. --set field/sim_every=2")
        try:
            out[path] = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[path] = text.strip()
    return out


def _build_engine(ctx, options: EngineOptions, tree, **kw) -> Engine:
    try:
        return Engine(ctx, options, tree=tree, **kw)
    except ParamError as exc:
        raise StartupError(f"--set: {exc}") from None
    except PresetError as exc:
        raise StartupError(f"preset: {exc}") from None
    except ShaderError as exc:
        raise StartupError(f"shader: {exc}") from None


def _context():
    try:
        return headless_context()
    except ContextError as exc:
        raise StartupError(str(exc)) from None


def _sensing_params():
    from .sensing import PARAMS
    return PARAMS


# -- live ------------------------------------------------------------------
@dataclass
class LiveArgs:
    """What ``run.py`` (the live show) asks for."""

    venue: Path | None = DEFAULT_VENUE
    preset: str | None = None
    size: tuple[int, int] | None = None   # None: chosen for the GL at hand (see live_defaults)
    seed: int | None = None   # None: today's date (see date_seed)
    fps: float = 60.0
    particles: int | None = None
    headless: bool = False
    window: tuple[int, int] = (1280, 720)
    seconds: float | None = None
    camera: str | None = None
    audio: str | None = None
    record_sensors: str | None = None
    osc_port: int | None = None
    no_leds: bool = False
    status_every: float = 1.0
    summary_every: float = 300.0  # a status line in the log this often
    status_line: bool = False     # the per-second line even when stdout is not a terminal
    health_port: int = 9091
    watchdog_s: float = 5.0
    presets: Path | None = None
    shaders: Path | None = None


def apply_venue_calibration(tree, venue_path, show) -> None:
    """Set a venue's calibration on ``tree``: the venue-scope values saved beside the venue file (by
    /tapestry/venue/save) and the camera ROI and lens of its ``[camera]`` section (``run.py map
    --write-roi``: the presence camera and the LEDs share one calibrated canvas).  Nothing without a venue.
    :class:`StartupError` naming the file and key on a bad value."""
    if venue_path is not None:
        from .presets import load_venue_params, venue_params_path
        try:
            tree.update_bases(load_venue_params(venue_params_path(venue_path), tree))
        except PresetError as exc:
            raise StartupError(f"venue params: {exc}") from None
    cam = (show.sections.get("camera") or {}) if show is not None else {}
    roi = cam.get("roi")
    if roi:
        from .sensing.camera import set_roi
        try:
            set_roi(tree, [(roi[2 * i], roi[2 * i + 1]) for i in range(4)])
        except (ValueError, IndexError) as exc:
            raise StartupError(f"{venue_path}: camera.roi: {exc}") from None
        k1 = float(cam.get("lens_k1") or 0.0)   # the schema has checked its range
        tree.update_bases({"sensing/camera/lens_k1": k1})
        log.info("camera ROI from the LED mapping: %s, lens k1 %.4f", ", ".join(f"{v:.3f}" for v in roi), k1)


def check_live_args(args: LiveArgs) -> None:
    """:class:`StartupError` naming the option for a live-show number no show can run with, before anything
    is built: a frame rate, length or watchdog that is not a positive finite number, a port outside
    0..65535, a particle count outside the parameter's range (``--seconds nan`` ran forever, ``--seconds 0``
    too, ``--watchdog 0`` and ``--osc-port 70000`` crashed with a traceback, ``--health-port 70000`` ran
    with a traceback and no health endpoint)."""
    if not (math.isfinite(args.fps) and 0 < args.fps <= 240):
        raise StartupError(f"--fps {args.fps:g}: give frames per second in (0, 240]")
    if args.seconds is not None and not (math.isfinite(args.seconds) and args.seconds > 0):
        raise StartupError(f"--seconds {args.seconds:g}: give a length above 0 (or leave it out to run until "
                           f"stopped)")
    if not (math.isfinite(args.watchdog_s) and args.watchdog_s > 0):
        raise StartupError(f"--watchdog {args.watchdog_s:g}: give the seconds of stalled frame loop above 0")
    for opt, port in (("--osc-port", args.osc_port), ("--health-port", args.health_port)):
        if port is not None and not 0 <= port <= 65535:
            raise StartupError(f"{opt} {port}: give a port in 0..65535 (0: the OS chooses)"
                               if opt == "--osc-port" else f"{opt} {port}: give a port in 1..65535 (0: off)")
    check_particles(args.particles)
    check_seed(args.seed)


def run_live(args: LiveArgs) -> int:
    """Run the installation until Ctrl-C / SIGTERM (or ``seconds``); returns exit status."""
    check_live_args(args)
    show = None
    if args.venue is not None:  # read whole, LEDs on or off: scenes, schedule, sensors and OSC come from it too
        from .showfile import load_show
        show = load_show(args.venue)
        for w in show.venue.warnings:
            log.warning("%s", w)
    if args.record_sensors:   # before anything is built: it was found late (a traceback), or never (no sensors)
        sensors_cfg = show.sensors if show is not None else {}
        if args.camera is None and args.audio is None and sensors_cfg.get("camera") is None \
                and sensors_cfg.get("audio") is None:
            raise StartupError(f"--record-sensors {args.record_sensors}: no camera or microphone to record (give "
                               f"--camera or --audio, or a venue with a [sensors] camera or audio)")
        from .sensing.hub import check_record_path
        try:
            check_record_path(args.record_sensors)
        except ValueError as exc:
            raise StartupError(f"--record-sensors: {exc}") from None
    venue = show.venue if show is not None and not args.no_leds else None

    stack = contextlib.ExitStack()  # a failed start tears down what was built, in reverse
    try:
        if venue is not None and venue.loopback_receivers:  # first in, last out: they hear the final frame too
            from .loopback import LoopbackReceivers
            stack.callback(LoopbackReceivers(venue.outputs).start().stop)
        return _run_live(args, show, venue, stack)
    finally:
        stack.close()


def _run_live(args: LiveArgs, show, venue, stack: contextlib.ExitStack) -> int:
    from .control.osc import OscConfig, OscServer
    from .watch import FileWatcher
    from .alerts import AlertConfig, start_alerts
    from .outputs.discovery import DiscoveryConfig, start_discovery
    alert_cfg = (show.sections.get("alerts") if show else None) or AlertConfig()
    discovery_cfg = (show.sections.get("discovery") if show else None) or DiscoveryConfig()

    stop = threading.Event()
    # Ctrl-C, the service manager, and a closed terminal or ssh session all end the show cleanly
    # (final frame, sACN goodbye), never mid-frame.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        stack.callback(signal.signal, sig, signal.signal(sig, lambda *_: stop.set()))

    preview = None
    if not args.headless and display_available():
        from .preview import PreviewWindow
        preview = PreviewWindow(args.window, title="Tapestry — Nutrient Network")
        ctx = preview.ctx
    else:
        ctx = _context()

    size, sim_every = live_defaults(ctx)
    size = args.size or size
    log.info("GL: %s; internal tapestry %dx%d, each particle stepped every %s", ctx.info.get("GL_RENDERER"),
             size[0], size[1], "frame" if sim_every == 1 else f"{sim_every} frames (1/{sim_every} of them a frame)")

    sensors_cfg = show.sensors if show is not None else {}
    camera = args.camera if args.camera is not None else sensors_cfg.get("camera")
    audio = args.audio if args.audio is not None else sensors_cfg.get("audio")
    tree = declare_all(extra=_sensing_params())
    hub = None
    if camera is not None or audio is not None:
        from .sensing import SensorHub
        try:
            hub = SensorHub(camera, audio, tree=tree, record_to=args.record_sensors)
        except ValueError as exc:
            raise StartupError(f"sensors: {exc}") from None

    scenes = schedule = None
    if show is not None:
        from .scenes import SceneRunner
        scenes = (SceneRunner(show.scenes, keep_first_preset=bool(args.preset))
                  if show.scenes is not None else None)
        schedule = show.schedule
    if scenes is not None and args.preset:
        # An explicit --preset wins over the venue's first cue: the scene list waits until its first cue ends.
        log.info("--preset %s given: it wins over the venue's first cue; the venue's scenes take over when "
                 "that cue ends", args.preset)
    end_state = show.end_state if show is not None else "blackout"
    first = args.preset or "harmony"  # a scene list, if any, fades to its first cue's preset at once
    try:
        seed = date_seed() if args.seed is None else args.seed
        log.info("seed %d%s", seed, " (today's date; --seed %d reproduces it)" % seed if args.seed is None else "")
        options = EngineOptions(size=size, seed=seed, preset=first, particles=args.particles,
                                end_state=end_state)
        if args.presets:
            options.presets = Path(args.presets)
        if args.shaders:
            options.shaders = Path(args.shaders)
        engine = Engine(ctx, options,
                        tree=tree, sensors=(lambda t: hub.latest()) if hub else None,
                        scenes=scenes, schedule=schedule)
    except (PresetError, ShaderError) as exc:
        raise StartupError(str(exc)) from None
    stack.callback(engine.release)
    stack.callback(engine.close)

    engine.params.set_base("field/sim_every", sim_every)
    if args.venue is not None:
        from .presets import venue_params_path
        engine.venue_params = venue_params_path(args.venue)
    apply_venue_calibration(engine.params, args.venue, show)
    if venue is not None:
        from .leds import LedPipeline
        from .outputs.claim import ControllersBusy
        try:
            leds = LedPipeline(ctx, venue, tree, fps=args.fps, shaders=engine.shaders, worker=True)
        except ShaderError as exc:
            raise StartupError(f"shader: {exc}") from None
        except ValueError as exc:  # the venue's [safety] section
            raise StartupError(f"venue {venue.name}: {exc}") from None
        except ControllersBusy as exc:
            raise StartupError(f"venue {venue.name}: {exc}") from None
        engine.attach_leds(leds, fps=args.fps)
    if preview is not None:
        preview.attach(engine)
        engine.sinks.append(preview)

    cfg = show.osc if show is not None else OscConfig()
    if args.osc_port is not None:
        cfg = OscConfig(**{**cfg.__dict__, "port": args.osc_port})
    from .control.web import WebConfig
    web_cfg = (show.sections.get("web") if show else None) or WebConfig.from_venue({})
    osc = OscServer(tree, engine.commands, cfg)
    try:
        osc.start()
        stack.callback(osc.stop)
        tree.listen(osc.publish_change)
    except OSError as exc:
        log.error("OSC control is off: cannot listen on %s:%s (%s)", cfg.host, cfg.port, exc)
        osc = None
    watcher = FileWatcher([engine.options.presets, engine.options.shaders], engine.commands,
                          suffixes=(".toml", ".glsl"))
    watcher.start()
    stack.callback(watcher.stop)
    if hub:
        hub.start()
        stack.callback(hub.stop)
    from .health import HEALTHY_STATES, HealthBoard, HealthServer
    from .service import FrameWatchdog, Notifier, default_on_stall
    board = HealthBoard()
    health = HealthServer(board, port=args.health_port)
    if args.health_port and not health.start():
        health = None
    if health is not None:
        stack.callback(health.stop)
    # Oversight off the frame thread: which controllers answer, and a webhook when the show degrades.
    discovery = start_discovery(venue, discovery_cfg, lambda d: board.set_section("controllers", d)) if venue else None
    if discovery is not None:
        stack.callback(discovery.stop)
    alerts = start_alerts(alert_cfg, board.report, args.fps, venue.name if venue else "",
                          lambda d: board.set_section("alerts", d))
    if alerts is not None:
        stack.callback(alerts.stop)
    web = _start_web(web_cfg, engine, tree, board, osc.address[1] if osc is not None else None)
    if web is not None:
        stack.callback(web.stop)
    notifier = Notifier()
    # A stalled frame loop (a hung driver, a blocked call): blackout, then exit for systemd to restart us.
    watchdog = FrameWatchdog(args.watchdog_s, default_on_stall(
        blackout=lambda: engine.leds.close("blackout") if engine.leds else None), notifier=notifier).start()
    stack.callback(watchdog.stop)
    stack.callback(notifier.stopping)
    notifier.ready()

    clock = RealtimeClock(args.fps)
    last_status = time.monotonic()
    deadline = time.monotonic() + args.seconds if args.seconds else None
    # The per-second line is for a person at a terminal; under systemd or a pipe the state goes to
    # STATUS=, /health and `run.py status`, and the log gets a line per change and a periodic summary.
    console = StatusLine() if preview is None and (_stdout_is_tty() or args.status_line) else None  # own thread: never blocks a frame
    last_summary = time.monotonic()
    try:
        while not stop.is_set():
            engine.frame(clock.next_frame())
            watchdog.beat()
            board.record_frame(engine._frame_ms[-1])
            now = time.monotonic()
            if preview is not None and preview.closed:
                break
            if now - last_status >= args.status_every:
                last_status = now
                st = engine.status()
                snap = {**st, "sensors": hub.status() if hub else {}, "live_sensors": st["sensors"]}
                board.update(snap)
                for change in board.note_states(snap):
                    healthy = change.split(" -> ", 1)[1].split(" ")[0].lower() in HEALTHY_STATES
                    log.log(logging.INFO if healthy else logging.WARNING, "%s", change)
                if now - last_summary >= args.summary_every:
                    last_summary = now
                    log.info("summary: %s", status_line(st, hub.status() if hub else None))
                notifier.status(status_line(st))
                if osc is not None:
                    osc.heartbeat(st)
                if console is not None:
                    console.show(status_line(st, hub.status() if hub else None))
            if deadline and now >= deadline:
                break
    finally:
        if console is not None:
            console.close()
    return 0


def _stdout_is_tty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _start_web(web_cfg, engine, tree, board, osc_port):
    """The phone page + OSCQuery server of the venue's ``[web]`` table (None when disabled or not bindable)."""
    from .control.bridge import EngineBridge
    from .control.web import WebControl
    from .health import HealthServer
    if not web_cfg.enabled:
        return None
    bridge = EngineBridge()
    bridge.attach(engine)
    web = WebControl(web_cfg, tree, engine.commands, bridge, HealthServer(board).routes(), osc_port)
    return web if web.start() else None


def software_gl(ctx) -> bool:
    """True when the GL is a software rasteriser (Mesa llvmpipe & co: the CPU does the GPU's work)."""
    renderer = str(ctx.info.get("GL_RENDERER", "")).lower()
    return any(name in renderer for name in ("llvmpipe", "softpipe", "swrast", "lavapipe"))


def render_internal_size(ctx, out: tuple[int, int], draft: bool = False) -> tuple[int, int]:
    """Default internal tapestry size for a render of ``out``: the output size, up to 1080 lines, on any GL.

    Documentation renders should look their best wherever they are made (a 360-line picture scaled
    to 720p is grainy, with colour seams in the glow); ``draft`` renders at most ``DRAFT_LINES``
    lines for a fast preview.  ``run.py render --internal`` chooses outright.  (``ctx`` is kept for
    callers; the choice no longer depends on the GL.)
    """
    return internal_size(out, max_height=DRAFT_LINES if draft else 1080)


def live_defaults(ctx) -> tuple[tuple[int, int], int]:
    """Internal tapestry size and ``field/sim_every`` for a live show on this GL.

    On a software rasteriser (Mesa llvmpipe: two CPU cores doing the GPU's work) a smaller
    tapestry and each particle stepped every other frame (half of them each frame, all of them
    drawn every frame) keep the default preset at 60 fps; a real GPU gets a sharper tapestry and
    every particle stepped every frame.
    """
    if software_gl(ctx):
        return (512, 288), 2
    return (960, 540), 1


def status_line(st: dict, sensors: dict | None = None) -> str:
    """One line for a terminal: fps, frame ms, particles, mood, sensors, LEDs."""
    m = st["mood"]
    live = ",".join(st.get("sensors") or [])
    if not live:
        failing = [f"{n} {e.get('state')}" for n, e in (sensors or {}).items() if isinstance(e, dict)]
        live = f"none live ({', '.join(failing)})" if failing else "none (breathing on its own)"
    leds = st.get("leds")
    led_txt = ""
    if isinstance(leds, dict) and "leds" in leds:
        outs = leds.get("outputs", [])
        ok = sum(1 for o in outs if o.get("state") == "ok")
        led_txt = f" | LEDs {leds['leds']} via {ok}/{len(outs)} outputs ok"
    return (f"{st['fps']:5.1f} fps | frame {st['frame_ms']:5.1f} ms | {st['particles']:,} particles | "
            f"preset {st['preset']}{' (scene ' + st['scene'] + ')' if st.get('scene') else ''} | mood {m['intensity']:.2f} (presence {m['presence']:.2f} motion "
            f"{m['motion']:.2f} sound {m['sound']:.2f}) | sensors {live}{led_txt}")
