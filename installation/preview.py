"""The preview window: the tapestry and the LEDs as they will look (pyglet, engine thread).

What it shows passes through the same photosensitive flash limiter as the lights and the
video (a preview may be a projector in the room).

Keys: L toggles the LED dots, F fullscreen, B blackout, 1-9 load the presets
in order, Esc or closing the window stops the piece.
"""

from __future__ import annotations

import logging

import moderngl
import numpy as np

from .gfx.context import window_context
from .safety import FrameFlashLimiter

log = logging.getLogger(__name__)


class PreviewWindow:
    """A pyglet window that draws the engine's tapestry and LED dots each frame (a frame sink)."""

    def __init__(self, size: tuple[int, int], title: str = "Tapestry") -> None:
        import pyglet
        self._pyglet = pyglet
        config = pyglet.gl.Config(major_version=4, minor_version=3, forward_compatible=True, double_buffer=True)
        try:
            self.window = pyglet.window.Window(*size, caption=title, resizable=True, config=config, vsync=False)
        except pyglet.window.NoSuchConfigException:
            self.window = pyglet.window.Window(*size, caption=title, resizable=True, vsync=False)
        self.ctx = window_context()
        self.closed = False
        self.show_leds = True
        self._engine = None
        self._alone = None        # an LED pipeline shown without an engine (attach_leds)
        self._shaders = None
        self._prog = None
        self._quad = None
        self._leds_vao = None
        self._leds_vbo = None
        self._leds_n = 0
        self.window.push_handlers(on_close=self._on_close, on_key_press=self._on_key)
        self._safety = None       # the photosensitive flash limiter, as on the lights and the video
        self._limited = None      # texture holding a frame the limiter changed

    def attach(self, engine) -> None:
        """Bind to the engine: compile the preview program and prepare the LED dots."""
        self._engine = engine
        self._bind(engine.shaders, engine.leds)

    def attach_leds(self, leds, shaders) -> None:
        """Bind to an LED pipeline alone, built on :attr:`ctx` (``run.py map --dry-run --preview``):
        :meth:`draw_led_frame` then draws its LEDs as they were last sent, on black."""
        self._alone = leds
        self._bind(shaders, leds)

    def _bind(self, shaders, leds) -> None:
        self._shaders = shaders
        prog = self._prog = shaders.program("preview.glsl")
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], np.float32)
        self._quad_vbo = self.ctx.buffer(quad.tobytes())
        self._quad = self.ctx.vertex_array(prog, [(self._quad_vbo, "2f", "in_pos")])
        if leds is not None:
            pos = np.asarray(leds.layout.positions, np.float32)
            self._leds_n = len(pos)
            data = np.zeros((self._leds_n, 5), np.float32)
            data[:, :2] = pos
            self._leds_vbo = self.ctx.buffer(data.tobytes())
            self._leds_data = data
            self._leds_vao = self.ctx.vertex_array(prog, [(self._leds_vbo, "2f 3f", "in_pos", "in_color")])

    def _on_close(self) -> bool:
        self.closed = True
        return True

    def _on_key(self, symbol, modifiers) -> None:
        key = self._pyglet.window.key
        eng = self._engine
        if symbol == key.ESCAPE:
            self.closed = True
        elif symbol == key.L:
            self.show_leds = not self.show_leds
        elif symbol == key.F:
            self.window.set_fullscreen(not self.window.fullscreen)
        elif eng is not None and symbol == key.B:
            eng.params.set_base("show/blackout", not eng.params.base("show/blackout"))
        elif eng is not None and key._1 <= symbol <= key._9:
            names = eng.preset_names()
            i = symbol - key._1
            if i < len(names):
                try:
                    eng.load_preset(names[i])
                except ValueError as exc:
                    log.error("%s", exc)
        return self._pyglet.event.EVENT_HANDLED if symbol == key.ESCAPE else None

    def _begin(self) -> int:
        """Make the window current, handle its events and target its whole framebuffer; returns its width."""
        self.window.switch_to()
        self.window.dispatch_events()
        w, h = self.window.get_framebuffer_size()
        self.ctx.screen.use()
        self.ctx.viewport = (0, 0, w, h)
        return w

    def consume(self, engine, tapestry: moderngl.Texture) -> None:
        """Frame sink: draw the tapestry and the LEDs, then show the frame."""
        if self.closed:
            return
        w = self._begin()
        prog = engine.shaders.program("preview.glsl")
        leds = engine.leds if self.show_leds else None
        tapestry = self._flash_limited(engine, tapestry)
        prog["u_mode"].value = 0
        prog["u_tapestry"].value = 0
        if "u_dim" in prog:
            prog["u_dim"].value = 0.55 if (leds is not None and self._leds_n) else 1.0
        tapestry.use(0)
        self._quad.render(moderngl.TRIANGLE_STRIP)
        if leds is not None:
            self._draw_leds(prog, leds, w)
        self.window.flip()

    def draw_led_frame(self) -> None:
        """Draw the LEDs of the pipeline given to :meth:`attach_leds` as last sent, on black, and show them."""
        if self.closed:
            return
        try:
            w = self._begin()
            self.ctx.clear(0.0, 0.0, 0.0)
            self._draw_leds(self._shaders.program("preview.glsl"), self._alone, w)
            self.window.flip()
        except Exception as exc:   # the window was taken away from outside (its display, the window manager)
            log.warning("preview window gone (%s); closing it", exc)
            self.closed = True

    def _draw_leds(self, prog, leds, w: int) -> None:
        if self._leds_vao is None:
            return
        levels = leds.color.unpack(leds.last).astype(np.float32) / 255.0
        rgb = levels[:, :3] + (levels[:, 3:4] if levels.shape[1] > 3 else 0.0)  # RGBW: white adds to all
        np.clip(rgb, 0.0, 1.0, out=rgb)
        self._leds_data[:, 2:] = np.power(rgb, 1 / 2.2)  # LED drive levels back to display light
        self._leds_vbo.write(self._leds_data.tobytes())
        prog["u_mode"].value = 1
        if "u_dot" in prog:
            prog["u_dot"].value = float(max(2.0, min(9.0, 0.9 * w / max(np.sqrt(self._leds_n) * 3, 1))))
        self.ctx.enable(moderngl.PROGRAM_POINT_SIZE)
        self._leds_vao.render(moderngl.POINTS)

    def _flash_limited(self, engine, tapestry: moderngl.Texture) -> moderngl.Texture:
        """The tapestry as the public may see it: through the same flash limiter as the video."""
        if self._safety is None:
            self._safety = FrameFlashLimiter(60.0)
        w, h = tapestry.size
        rgba = np.frombuffer(tapestry.read(), np.uint8).reshape(h, w, 4)
        limited = self._safety.limit(rgba, engine.last_dt)
        if limited is rgba:
            return tapestry
        if self._limited is None or self._limited.size != (w, h):
            self._limited = self.ctx.texture((w, h), 4)
            self._limited.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self._limited.write(np.ascontiguousarray(limited).tobytes())
        return self._limited

    def close(self) -> None:
        """Close the window."""
        try:
            self.window.close()
        except Exception:
            pass
