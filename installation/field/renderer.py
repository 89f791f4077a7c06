"""Rendering the field into the tapestry texture: splat, trails, glow, tone-map.

Particles are splatted by the step's compute shader into an integer light
buffer (atomic adds, order independent and so deterministic) instead of
rasterised as GL_POINTS: on Mesa llvmpipe that measured several times faster
(see ``bench/bench_field.py``).  With ``field/sim_every`` N one slice of the
particles steps each frame into its own light buffer, and the resolve sums
the N most recent ones, so every particle shines in every frame.  The
resolve folds that light into a decaying trail, colours it through a palette
lookup, adds the glow and writes the **tapestry**: the one RGBA8 texture that
the preview, the video writer and the LED sampler all read.  Row 0 of the
tapestry is the top of the canvas.
"""

from __future__ import annotations

import math

import moderngl
import numpy as np

from ..gfx.shaders import ShaderLibrary
from ..params import CHOICE, LOOK, ParamSpec, ParamTree, floats
from ..presets import ease
from .simulation import SplatTarget, _set

# Cosine palettes (a, b, c, d): bioluminescent looks for the network, a hot fever for malfunction.
PALETTES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "bioluminescent": ((0.10, 0.45, 0.50), (0.10, 0.40, 0.45), (1.0, 1.0, 1.0), (0.55, 0.30, 0.20)),
    "abyssal": ((0.15, 0.20, 0.55), (0.15, 0.25, 0.45), (1.0, 1.0, 0.5), (0.80, 0.90, 0.30)),
    "mycelium": ((0.55, 0.45, 0.30), (0.40, 0.35, 0.30), (1.0, 1.0, 1.0), (0.00, 0.10, 0.20)),
    "aurora": ((0.20, 0.50, 0.40), (0.30, 0.45, 0.40), (1.0, 0.7, 0.4), (0.00, 0.15, 0.20)),
    "symbiosis": ((0.45, 0.45, 0.45), (0.40, 0.40, 0.40), (1.0, 1.0, 1.0), (0.00, 0.33, 0.67)),
}
FEVER = ((0.70, 0.20, 0.30), (0.45, 0.25, 0.25), (1.0, 1.0, 1.0), (0.95, 0.05, 0.15))
GLOW_DIVISOR = 4
HUE_DIVISOR = 4  # the sparse colour grid is a quarter of the tapestry's resolution
GAIN = 64.0  # fixed-point steps per unit of light from one particle at the reference density
REFERENCE_FPS = 60.0  # the look is tuned at this frame rate; other rates are weighted to match it
PALETTE_BLEND_S = 2.0  # a palette change blends the old colour table into the new one over this long

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("render/palette", CHOICE, "bioluminescent", "Colour palette of the network", choices=tuple(PALETTES),
              scope=LOOK),
    *floats("render", [
        ("exposure", 1.0, 0.0, 8.0, "ratio", "Overall brightness of the light before tone-mapping"),
        ("trail", 0.35, 0.0, 5.0, "s", "How long light lingers behind moving particles (time to fade to 1/e)"),
        ("saturation", 1.0, 0.0, 2.0, "ratio", "Colour saturation (0 = greyscale)"),
        ("hue_shift", 0.0, 0.0, 1.0, "turns", "Rotate the palette"),
        ("ambient", 0.0, 0.0, 0.2, "ratio", "Faint background light so the piece never reads as off"),
    ], scope=LOOK),
    *floats("render/glow", [
        ("amount", 0.6, 0.0, 4.0, "ratio", "Strength of the bioluminescent glow around dense light"),
        ("radius", 1.6, 0.5, 4.0, "texels", "Spread of the glow (in glow-buffer texels)"),
    ], scope=LOOK),
)


def palette_lut(name: str, fever: float, hue_shift: float, saturation: float, n: int = 256) -> np.ndarray:
    """The palette as an (n, 4) float32 lookup: hue 0..1 -> colour, with fever, shift and saturation baked in."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / n + hue_shift

    def cospal(pal):
        a, b, c, d = (np.array(v)[None, :] for v in pal)
        return np.clip(a + b * np.cos(2 * np.pi * (c * t[:, None] + d)), 0.0, 4.0)

    rgb = (1 - fever) * cospal(PALETTES[name]) + fever * cospal(FEVER)
    luma = rgb @ np.array([0.2126, 0.7152, 0.0722])
    rgb = np.maximum(luma[:, None] + saturation * (rgb - luma[:, None]), 0.0)
    out = np.ones((n, 4), np.float32)
    out[:, :3] = rgb
    return out


class TapestryRenderer:
    """Turns the particle field's light into the tapestry texture at an internal resolution.

    Owns the light buffers (one uint a pixel, one buffer per slice of the
    particles), the decaying trail of light and light x hue, the sparse
    quarter-resolution hue grid, the low-resolution glow and the tapestry.
    """

    def __init__(self, ctx: moderngl.Context, shaders: ShaderLibrary, tree: ParamTree,
                 size: tuple[int, int]) -> None:
        self.ctx = ctx
        self.shaders = shaders
        self.tree = tree
        self.size = (int(size[0]), int(size[1]))
        w, h = self.size
        self.lights: list[moderngl.Buffer] = []   # ring of per-slice light buffers (see splat_target)
        self._slot = 0                            # the one this frame's slice splats into
        self.trail = ctx.buffer(reserve=w * h * 8)  # per pixel: light, light*hue (floats)
        self.trail.clear()
        self.grid_size = (max(1, w // HUE_DIVISOR), max(1, h // HUE_DIVISOR))
        self.hue_grid = ctx.buffer(reserve=self.grid_size[0] * self.grid_size[1] * 8)
        self.hue_grid.clear()
        self.hue = self._texture(self.grid_size, 2, "f2")
        gsize = (max(1, w // GLOW_DIVISOR), max(1, h // GLOW_DIVISOR))
        self.glow = [self._texture(gsize, 2, "f2") for _ in range(2)]
        self.lut = self._texture((256, 1), 4, "f4")
        self._lut_key: tuple | None = None
        self._lut_shown: np.ndarray | None = None  # the table on screen now (blending toward _lut_target)
        self._lut_from: np.ndarray | None = None
        self._lut_target: np.ndarray | None = None
        self._lut_blend = 1.0                      # 0..1 along a palette blend (1: arrived)
        self._blend_s = PALETTE_BLEND_S            # the length of the blend under way
        self._next_blend: tuple | None = None      # (palette, seconds, malfunction ends): a fade's change to it
        self._blend_ends: tuple | None = None      # (old palette or None, malfunction from, to) of the blend
        self.tapestry = self._texture(self.size, 4, "f1")

    def _texture(self, size, components, dtype) -> moderngl.Texture:
        tex = self.ctx.texture(size, components, dtype=dtype)
        tex.write(bytes(size[0] * size[1] * components * int(dtype[1])))
        tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        tex.repeat_x = tex.repeat_y = False
        return tex

    def splat_target(self, particles: int, slices: int = 1) -> SplatTarget:
        """Where this frame's step adds light, when the particles step in ``slices`` slices.

        The gain keeps the look steady across particle counts.  A change in the number of slices
        clears the light of the old ones (one frame shows only the slice that stepped).
        """
        slices = max(1, int(slices))
        if len(self.lights) != slices:
            for buf in self.lights:
                buf.release()
            w, h = self.size
            self.lights = [self.ctx.buffer(reserve=w * h * 4) for _ in range(slices)]
            for buf in self.lights:
                buf.clear()
            self._slot = 0
        w, h = self.size
        return SplatTarget(self.lights[self._slot], self.size, GAIN * (w * h) / max(particles, 1),
                           self.hue_grid, self.grid_size, slices)

    def render(self, dt: float, master: float = 1.0, full: bool = True) -> moderngl.Texture:
        """Resolve this frame's splats into the tapestry and return it.

        ``full=False`` (a frame inside a round of slices, see ``field/sim_every``) keeps the
        colour grid and glow of the round's first frame, which change slowly, and only resolves
        the light.
        """
        tree = self.tree
        w, h = self.size
        self._update_lut(dt)
        trail_s = tree["render/trail"]
        decay = math.exp(-dt / trail_s) if trail_s > 1e-3 else 0.0
        # Weight this frame's light by how much of the trail it replaces, relative to a frame at the
        # reference rate: the trail's steady brightness then does not depend on the frame rate
        # (a 30 fps render measured 20% darker than the live piece at 60 without it).
        ref = math.exp(-1.0 / REFERENCE_FPS / trail_s) if trail_s > 1e-3 else 0.0
        weight = (1.0 - decay) / (1.0 - ref) if ref > 0.0 else 1.0
        amb = tree["render/ambient"]
        if full:
            gw, gh = self.grid_size
            hue = self.shaders.compute("field_hue_resolve.glsl")
            _set(hue, u_grid=self.grid_size)
            self.hue_grid.bind_to_storage_buffer(2)
            self.hue.bind_to_image(0, read=False, write=True)
            self.shaders.dispatch(hue, (gw + 15) // 16, (gh + 7) // 8)
            self.ctx.memory_barrier()
        if not self.lights:
            self.splat_target(1)
        slices = len(self.lights)
        resolve = self.shaders.compute("field_resolve.glsl", {"SLICES": slices} if slices > 1 else None)
        _set(resolve, u_decay=decay, u_inv_gain=weight / GAIN, u_exposure=tree["render/exposure"] * 0.1,
             u_glow_amount=tree["render/glow/amount"], u_master=float(master),
             u_ambient=(amb * 0.3, amb * 0.6, amb), u_glow=0, u_lut=1, u_hue=2, u_size=self.size)
        # Binding 1 is read and cleared: the oldest light, where the next frame's slice splats.
        nxt = (self._slot + 1) % slices
        self.lights[nxt].bind_to_storage_buffer(1)
        for k, buf in enumerate(b for i, b in enumerate(self.lights) if i != nxt):
            buf.bind_to_storage_buffer(4 + k)
        self.trail.bind_to_storage_buffer(3)
        self.hue.use(2)
        self.tapestry.bind_to_image(1, read=False, write=True)
        self.glow[0].use(0)
        self.lut.use(1)
        self.shaders.dispatch(resolve, (w + 15) // 16, (h + 7) // 8)
        self.ctx.memory_barrier()
        self._slot = nxt
        if full:
            self._glow()
        return self.tapestry

    @property
    def palette_blend(self) -> float:
        """How far the colour table is along a change of palette: 0 just changed .. 1 arrived."""
        return self._lut_blend

    def blend_next_palette(self, palette: str, seconds: float | None,
                           malfunction: tuple[float, float] | None = None) -> None:
        """Blend a change to ``palette`` over ``seconds`` (a crossfade's length) instead of
        ``PALETTE_BLEND_S``; None forgets an earlier request (a later fade replaced it).

        ``malfunction``: the fade's (from, to) ``field/malfunction`` bases.  The blend then runs between
        the two palettes each at its own end's fever (plus the mood's live offset), so the colour
        moves evenly; blending while the fever moves too multiplied the two, and the new palette
        arrived as the square of the progress (breakdown -> symbiosis changed fastest at its end)."""
        if (seconds is not None and malfunction is not None and self._lut_blend < 1.0
                and self._lut_key is not None and str(palette) == self._lut_key[0]):
            # a new fade while a blend to this palette is under way: go on from the colours on screen,
            # toward this fade's end, over this fade's time (no jump now, none when it ends)
            self._restart_blend(seconds, (None, 0.0, float(malfunction[1])))
            self._next_blend = None
            return
        if seconds is None:   # a cut: whatever the blend under way aimed at no longer holds
            self.follow_live_fever(PALETTE_BLEND_S)
        self._next_blend = None if seconds is None else (str(palette), max(float(seconds), 1e-3), malfunction)

    def follow_live_fever(self, seconds: float | None = None) -> None:
        """The fade's ``field/malfunction`` ends no longer hold (a cut, or an artist took the value over):
        carry on from the colours on screen toward the live ones, over ``seconds`` (default: what was
        left of the blend), so nothing jumps now or when the blend ends."""
        if self._blend_ends is None or self._lut_blend >= 1.0 or self._lut_shown is None:
            return
        self._restart_blend((1.0 - self._lut_blend) * self._blend_s if seconds is None else seconds, None)
        self._lut_key = None   # rebuild the target from the live values on the next frame

    def _restart_blend(self, seconds: float, ends: tuple | None) -> None:
        """A blend from the table on screen, over ``seconds``, toward ``ends`` (None: the live values)."""
        self._lut_from, self._lut_blend, self._blend_s = self._lut_shown, 0.0, max(float(seconds), 1e-3)
        self._blend_ends = ends

    @staticmethod
    def _table(palette: str, malfunction: float, key: tuple) -> np.ndarray:
        """``palette`` at the fever of ``malfunction``, with the hue shift and saturation in ``key``."""
        return palette_lut(palette, min(1.0, max(0.0, malfunction) * 1.2), key[2], key[3])

    def _update_lut(self, dt: float = 0.0) -> None:
        """Keep the colour table in step with the parameters.

        A change of palette does not switch the colours in one frame: the old table blends into the
        new one, across the whole crossfade that changed it (the crossfade switches the choice at its
        start, :meth:`blend_next_palette`), else over ``PALETTE_BLEND_S`` (a palette set directly).
        Continuous changes (fever, hue shift, saturation) follow at once, as they are already smooth.
        """
        tree = self.tree
        # (the base of field/malfunction too: the blend's ends follow it while the live value may sit still)
        key = (tree["render/palette"], round(tree["field/malfunction"], 3), round(tree["render/hue_shift"], 4),
               round(tree["render/saturation"], 3), round(float(tree.base("field/malfunction")), 3))
        if key != self._lut_key:
            if self._lut_key is not None and key[0] != self._lut_key[0] and self._lut_shown is not None:  # a new palette
                nb = self._next_blend if self._next_blend is not None and self._next_blend[0] == key[0] else None
                ends = ((self._lut_key[0],) + tuple(nb[2])
                        if nb is not None and nb[2] is not None and self._lut_blend >= 1.0 else None)
                self._restart_blend(nb[1] if nb is not None else PALETTE_BLEND_S, ends)
                self._next_blend = None
            if self._lut_blend < 1.0 and self._blend_ends is not None:
                old, m0, m1 = self._blend_ends   # old None: from the mix that was on screen, held
                off = float(tree["field/malfunction"]) - float(tree.base("field/malfunction"))  # the mood's part
                if old is not None:
                    self._lut_from = self._table(old, m0 + off, key)
                target = self._table(key[0], m1 + off, key)
            else:
                target = self._table(key[0], key[1], key)
            self._lut_target, self._lut_key = target, key
        elif self._lut_blend >= 1.0:
            return
        if self._lut_blend < 1.0:
            self._lut_blend = min(1.0, self._lut_blend + dt / self._blend_s)
            e = ease(self._lut_blend)
            shown = (self._lut_from * (1.0 - e) + self._lut_target * e).astype(np.float32)
        else:
            shown = self._lut_target
        self._lut_shown = shown
        self.lut.write(shown.tobytes())

    def _glow(self) -> None:
        gw, gh = self.glow[0].size
        groups = ((gw + 15) // 16, (gh + 7) // 8)
        down = self.shaders.compute("field_glow_down.glsl")
        _set(down, u_full=self.size)
        self.trail.bind_to_storage_buffer(3)
        self.glow[1].bind_to_image(0, read=False, write=True)
        self.shaders.dispatch(down, *groups)
        self.ctx.memory_barrier()
        blur = self.shaders.compute("field_glow.glsl")
        radius = self.tree["render/glow/radius"]
        # glow[1] -> glow[0] along x, glow[0] -> glow[1] along y
        for direction, src, dst in (((1.0, 0.0), self.glow[1], self.glow[0]), ((0.0, 1.0), self.glow[0], self.glow[1])):
            _set(blur, u_src=0, u_dir=direction, u_radius=radius)
            src.use(0)
            dst.bind_to_image(0, read=False, write=True)
            self.shaders.dispatch(blur, *groups)
            self.ctx.memory_barrier()
        self.glow.reverse()  # the fully blurred one is now glow[0], read by the next resolve

    def read(self) -> bytes:
        """The tapestry's RGBA8 pixels, top row first."""
        return self.tapestry.read()

    def release(self) -> None:
        """Free GPU memory."""
        for obj in (*self.lights, self.trail, self.hue_grid, self.hue, self.tapestry, self.lut, *self.glow):
            obj.release()
