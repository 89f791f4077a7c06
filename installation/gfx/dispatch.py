"""Compute dispatches that let the other Python threads run meanwhile.

moderngl's ``ComputeShader.run`` holds the GIL through ``glDispatchCompute``,
and Mesa llvmpipe runs a dispatch to completion inside that call (the field's
step is ~14 ms of the frame).  So while the engine thread dispatched, no other
thread of the piece could run a line of Python: the video writer fell idle
between frames, and the OSC server, the sensors and the LED senders waited.
Measured on a 1280x720 render: with the GIL held the engine spent 10.7 ms a
frame waiting for the writer; released, 0.1 ms (the render went 1.05-1.10x
faster, bench/RESULTS.md).

:class:`ComputeDispatch` makes the same two GL calls that moderngl makes
(``glUseProgram``, ``glDispatchCompute``), through the context's own function
loader and ctypes, which releases the GIL for every foreign call.  Where the
loader cannot be reached (a moderngl that changed its internals), it falls back
to ``prog.run`` and says so once: slower for the other threads, the same image.
"""

from __future__ import annotations

import ctypes
import logging

import moderngl

log = logging.getLogger(__name__)

_USE_PROGRAM = ctypes.CFUNCTYPE(None, ctypes.c_uint)
_DISPATCH = ctypes.CFUNCTYPE(None, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint)


class ComputeDispatch:
    """``dispatch(prog, x, y, z)`` runs a compute program like ``prog.run(x, y, z)``, GIL released.

    One per GL context, called on the engine thread only (the thread whose context is current).
    """

    def __init__(self, ctx: moderngl.Context) -> None:
        self._use = self._dispatch = None
        try:
            # The loader moderngl got its own GL functions from: glcontext's for EGL, moderngl's
            # DefaultLoader for a pyglet window's context; both have load_opengl_function.
            load = ctx.mglo._context.load_opengl_function
            use, dispatch = load("glUseProgram"), load("glDispatchCompute")
        except Exception as exc:  # noqa: BLE001 - any change of moderngl's internals lands here
            log.info("compute dispatches hold the Python GIL (no GL function loader: %s)", exc)
            return
        if use and dispatch:
            self._use, self._dispatch = _USE_PROGRAM(use), _DISPATCH(dispatch)
        else:
            log.info("compute dispatches hold the Python GIL (glDispatchCompute not found)")

    @property
    def releases_gil(self) -> bool:
        """True when dispatches let other Python threads run (the GL functions were found)."""
        return self._dispatch is not None

    def __call__(self, prog: moderngl.ComputeShader, x: int = 1, y: int = 1, z: int = 1) -> None:
        if self._dispatch is None:
            prog.run(x, y, z)
            return
        if isinstance(prog.mglo, moderngl.InvalidObject):  # released: its GL name may be reused by now
            raise moderngl.Error("dispatch of a released compute program")
        self._use(prog.glo)
        self._dispatch(x, y, z)
