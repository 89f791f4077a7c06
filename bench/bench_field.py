#!/usr/bin/env python3
"""Field benchmark: ms per stage and whole-frame fps for 100k .. 4M particles, splat vs GL_POINTS.

Stages, each timed with ctx.finish() around it (median of --frames frames, after warm-up):
  simulate   the flow grid + the particle step with the splat switched off
  splat      the fused step+splat minus simulate: what drawing the particles costs
  resolve    trail, palette, tone-map, glow  (the "post")
  readback   the tapestry to CPU memory (what the video writer and tests read)
Baseline in the same run: the same particles drawn the naive way, one GL_POINT each with additive
blending into a float framebuffer; ratio = points ms / splat ms.

    python bench/bench_field.py [--size 640x360] [--counts 100000,250000,1000000,4000000] [--frames 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import moderngl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from installation.engine import declare_all  # noqa: E402
from installation.field.renderer import TapestryRenderer  # noqa: E402
from installation.field.simulation import ParticleField, SplatTarget  # noqa: E402
from installation.gfx.context import headless_context  # noqa: E402
from installation.gfx.shaders import ShaderLibrary  # noqa: E402


def timed(ctx, fn) -> float:
    ctx.finish()
    t0 = time.perf_counter()
    fn()
    ctx.finish()
    return (time.perf_counter() - t0) * 1e3


def bench(ctx, count: int, size: tuple[int, int], frames: int, preset: dict) -> dict:
    tree = declare_all()
    tree.set_base("field/particles", count)
    for k, v in preset.items():
        tree.set_base(k, v)
    lib = ShaderLibrary(ctx, ROOT / "shaders")
    field = ParticleField(ctx, lib, tree, size[0] / size[1], 1)
    ren = TapestryRenderer(ctx, lib, tree, size)
    splat = ren.splat_target(count)
    dark = SplatTarget(splat.buffer, splat.size, 0.0)  # gain 0: no light, no atomics
    dt = 1 / 60
    for _ in range(10):
        field.step(dt, splat)
        ren.render(dt)
    # The naive baseline: points into an RG32F framebuffer with additive blending.
    prog = lib.program("bench_points.glsl")
    fbo_tex = ctx.texture(size, 2, dtype="f4")
    fbo = ctx.framebuffer(color_attachments=[fbo_tex])
    vao = ctx.vertex_array(prog, [])

    def points():
        fbo.use()
        ctx.viewport = (0, 0, *size)
        fbo.clear()
        ctx.enable(moderngl.BLEND)
        ctx.blend_func = moderngl.ONE, moderngl.ONE
        ctx.enable(moderngl.PROGRAM_POINT_SIZE)
        field.bind_network(prog)
        field.particles.bind_to_storage_buffer(0)
        vao.render(moderngl.POINTS, vertices=count)
        ctx.disable(moderngl.BLEND)

    rows = {k: [] for k in ("simulate", "step_splat", "resolve", "readback", "points", "frame")}
    for _ in range(frames):
        rows["simulate"].append(timed(ctx, lambda: field.step(dt, dark)))
        rows["step_splat"].append(timed(ctx, lambda: field.step(dt, splat)))
        rows["resolve"].append(timed(ctx, lambda: ren.render(dt)))
        rows["readback"].append(timed(ctx, ren.read))
        rows["points"].append(timed(ctx, points))
        rows["frame"].append(timed(ctx, lambda: (field.step(dt, splat), ren.render(dt))))
    med = {k: statistics.median(v) for k, v in rows.items()}
    med["splat"] = max(med["step_splat"] - med["simulate"], 0.01)
    for obj in (fbo, fbo_tex, vao):
        obj.release()
    field.release()
    ren.release()
    lib.release()
    return med


def bench_engine(frames: int, particles: int) -> dict:
    """The whole live frame as `python run.py` runs it on the demo venue: engine + LEDs, unpaced,
    with the live defaults for this GL (tapestry size, field/sim_every)."""
    from installation.app import live_defaults
    from installation.clock import FixedStepClock
    from installation.engine import Engine, EngineOptions
    from installation.leds import LedPipeline
    from installation.venue import load_venue
    ctx = headless_context()
    size, every = live_defaults(ctx)
    eng = Engine(ctx, EngineOptions(size=size, particles=particles), tree=declare_all())
    eng.params.set_base("field/sim_every", every)
    eng.attach_leds(LedPipeline(ctx, load_venue(ROOT / "hardware" / "demo-venue.toml"), eng.params))
    clock = FixedStepClock(60)
    for _ in range(10):
        eng.frame(clock.next_frame())
    ms = []
    for _ in range(frames):
        ms.append(timed(ctx, lambda: eng.frame(clock.next_frame())))
    eng.close()
    eng.release()
    ms.sort()
    return {"median": statistics.median(ms), "p95": ms[int(len(ms) * 0.95) - 1], "size": size, "every": every}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="640x360", help="internal tapestry size (live default 640x360)")
    ap.add_argument("--counts", default="100000,250000,1000000,4000000")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--preset", default="harmony")
    ap.add_argument("--engine", action="store_true",
                    help="also time whole live frames (engine + demo-venue LEDs) at 250k particles")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    import tomllib
    preset = tomllib.loads((ROOT / "presets" / f"{args.preset}.toml").read_text())["params"]
    ctx = headless_context()
    print(f"# {ctx.info['GL_RENDERER']} | {ctx.info['GL_VERSION']} | internal {size[0]}x{size[1]} | "
          f"preset {args.preset} | median of {args.frames} frames")
    print(f"{'particles':>10} {'simulate':>9} {'splat':>7} {'resolve':>8} {'readback':>9} {'frame ms':>9} "
          f"{'fps':>6} | {'points':>8} {'pts frame':>9} {'pts fps':>7} {'points/splat':>12} {'frame ratio':>11}")
    for count in (int(c) for c in args.counts.split(",")):
        m = bench(ctx, count, size, args.frames, preset)
        frame = m["frame"]
        naive = m["simulate"] + m["points"] + m["resolve"]
        print(f"{count:>10,} {m['simulate']:>9.2f} {m['splat']:>7.2f} {m['resolve']:>8.2f} {m['readback']:>9.2f} "
              f"{frame:>9.2f} {1e3 / frame:>6.1f} | {m['points']:>8.2f} {naive:>9.2f} {1e3 / naive:>7.1f} "
              f"{m['points'] / m['splat']:>11.1f}x {naive / frame:>10.2f}x", flush=True)
    if args.engine:
        e = bench_engine(max(args.frames, 60), 262_144)
        print(f"# live frame (engine + mood + LEDs of the demo venue, 262,144 particles, {e['size'][0]}x"
              f"{e['size'][1]}, sim_every {e['every']}): median {e['median']:.2f} ms "
              f"({1e3 / e['median']:.1f} fps), p95 {e['p95']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
