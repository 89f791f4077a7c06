"""The one place that makes a GL context: headless EGL, or a pyglet window's.

Only the engine thread calls these.  An EGL standalone context has no
default framebuffer: everything draws into framebuffers the caller makes.
"""

from __future__ import annotations

import os

import moderngl

REQUIRE = 430  # compute shaders and SSBOs


class ContextError(RuntimeError):
    """No usable GL 4.3 context could be made; the message says what to install or set."""


def headless_context() -> moderngl.Context:
    """A standalone GL 4.3+ context through EGL (no display needed)."""
    try:
        return moderngl.create_standalone_context(backend="egl", require=REQUIRE)
    except Exception as exc:  # moderngl raises plain Exception subclasses here
        raise ContextError(
            "could not create a headless OpenGL 4.3 context through EGL "
            f"({exc}). Install Mesa's EGL (Debian: libegl1 libegl-mesa0 libgl1-mesa-dri) "
            "or a GPU driver with EGL support.") from exc


def display_available() -> bool:
    """True if a window can be opened (an X11 or Wayland display is set)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def window_context() -> moderngl.Context:
    """Attach moderngl to the current pyglet window's context (call after the window exists)."""
    try:
        return moderngl.create_context(require=REQUIRE)
    except Exception as exc:
        raise ContextError(f"the preview window's OpenGL context is older than 4.3 or unusable ({exc})") from exc
