"""Find, #include, compile and hot-reload GLSL programs, keeping the last good one.

A program is one file in ``shaders/``.  Compute programs are a single
compute stage; draw programs hold both stages split by
``#if defined VERTEX_SHADER`` / ``#if defined FRAGMENT_SHADER`` (the
moderngl-window habit).  ``#include "lib/x.glsl"`` is resolved recursively
(depth-limited) and every file gets its own block of ``#line`` numbers, so
a compile error is reported as ``shaders/lib/noise.glsl:12: <message>``.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import moderngl

from .dispatch import ComputeDispatch

log = logging.getLogger(__name__)

MAX_INCLUDE_DEPTH = 8
LINE_BLOCK = 10000  # line numbers of file k of a program start at k * LINE_BLOCK
_INCLUDE = re.compile(r'^\s*#include\s+"([^"]+)"\s*$')
_VERSION = re.compile(r"^\s*#version\b")
# Mesa: "0:12(5): error: ..."; NVIDIA: "0(12) : error C0000: ..."; AMD/Intel: "ERROR: 0:12: ..."
_ERROR_LOCATIONS = (
    re.compile(r"(?P<src>\d+):(?P<line>\d+)\(\d+\):\s*(?P<msg>.*)"),
    re.compile(r"(?P<src>\d+)\((?P<line>\d+)\)\s*:\s*(?P<msg>.*)"),
    re.compile(r"ERROR:\s*(?P<src>\d+):(?P<line>\d+):\s*(?P<msg>.*)"),
)


class ShaderError(RuntimeError):
    """A shader that could not be read or compiled; ``str()`` names file and line."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        self.file = file
        self.line = line
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(where + message)


@dataclass
class _Source:
    text: str
    files: list[Path]  # index = #line source-string number


@dataclass
class ShaderLibrary:
    """Loads programs from a shader directory for one GL context (engine thread only).

    ``compute(name)`` / ``program(name)`` compile and cache; ``reload()``
    recompiles what changed on disk and keeps the last good program for any
    file that fails, returning the errors for the caller to report.
    ``dispatch(prog, x, y, z)`` runs a compute program with the GIL released
    (:class:`~installation.gfx.dispatch.ComputeDispatch`).
    """

    ctx: moderngl.Context
    root: Path
    defines: dict[str, str] = field(default_factory=dict)
    _cache: dict[tuple, tuple[object, dict[Path, float]]] = field(default_factory=dict)
    dispatch: ComputeDispatch = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.dispatch = ComputeDispatch(self.ctx)

    # -- source --------------------------------------------------------
    def source(self, name: str, stage_define: str | None = None, defines: Mapping[str, object] | None = None) -> _Source:
        """The full source of program ``name`` with includes resolved, ``defines`` and ``#line`` markers."""
        files: list[Path] = []
        body = self._expand(self.root / name, files, 0, None)
        version, rest = "#version 430\n", body
        lines = body.split("\n")
        for i, ln in enumerate(lines):
            if _VERSION.match(ln):
                version = ln + "\n"
                rest = "\n".join(lines[:i] + [""] + lines[i + 1:])  # keep line numbers
                break
        head = "".join(f"#define {k} {v}\n" for k, v in {**self.defines, **(defines or {})}.items())
        if stage_define:
            head += f"#define {stage_define}\n"
        return _Source(version + head + "#line 1 0\n" + rest, files)

    def _expand(self, path: Path, files: list[Path], depth: int, parent: tuple[Path, int] | None) -> str:
        if depth > MAX_INCLUDE_DEPTH:
            raise ShaderError(f"#include nested deeper than {MAX_INCLUDE_DEPTH} (a cycle?)",
                              self._rel(parent[0]) if parent else None, parent[1] if parent else None)
        # Stamp the file before reading it: a missing include that comes back later counts as a change.
        files.append(path)
        index = len(files) - 1
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            if parent:
                raise ShaderError(f"cannot read included file {self._rel(path)}: {exc}",
                                  self._rel(parent[0]), parent[1]) from exc
            raise ShaderError(f"cannot read shader: {exc}", self._rel(path)) from exc
        # Each file gets its own block of line numbers (file index x LINE_BLOCK): drivers do not
        # reliably report #line source-string numbers, but they all report line numbers.
        out = [f"#line {index * LINE_BLOCK + 1} 0"] if index else []
        for number, ln in enumerate(text.split("\n"), start=1):
            m = _INCLUDE.match(ln)
            if m:
                target = (self.root / m.group(1)).resolve()
                if self.root.resolve() not in target.parents:
                    raise ShaderError(f"#include outside the shader directory: {m.group(1)}",
                                      self._rel(path), number)
                out.append(self._expand(target, files, depth + 1, (path, number)))
                out.append(f"#line {index * LINE_BLOCK + number + 1} 0")
            else:
                out.append(ln)
        return "\n".join(out)

    def _rel(self, path: Path) -> str:
        try:
            return os.path.relpath(path, self.root.parent)
        except ValueError:
            return str(path)

    # -- compile -------------------------------------------------------
    def compute(self, name: str, defines: Mapping[str, object] | None = None) -> moderngl.ComputeShader:
        """The compute program in ``shaders/name`` (cached per set of ``defines``: variants of one file)."""
        return self._get(name, compute=True, defines=defines)

    def program(self, name: str) -> moderngl.Program:
        """The vertex+fragment program in ``shaders/name`` (cached)."""
        return self._get(name, compute=False)

    def _get(self, name: str, compute: bool, defines: Mapping[str, object] | None = None):
        key = (name, tuple(sorted((defines or {}).items())))
        entry = self._cache.get(key)
        if entry is None:
            entry = self._cache[key] = (self._compile(name, compute, defines), self._mtimes(name))
        return entry[0]

    def _compile(self, name: str, compute: bool, defines: Mapping[str, object] | None = None):
        if compute:
            src = self.source(name, defines=defines)
            return self._guard(src, lambda: self.ctx.compute_shader(src.text))
        vs = self.source(name, "VERTEX_SHADER")
        fs = self.source(name, "FRAGMENT_SHADER")
        return self._guard(vs, lambda: self.ctx.program(vertex_shader=vs.text, fragment_shader=fs.text))

    def _guard(self, src: _Source, build):
        try:
            return build()
        except Exception as exc:  # moderngl.Error carries the driver's log as text
            raise self._explain(str(exc), src) from None

    def _explain(self, log_text: str, src: _Source) -> ShaderError:
        for raw in log_text.splitlines():
            for pattern in _ERROR_LOCATIONS:
                m = pattern.search(raw)
                if m:
                    index, line = divmod(int(m.group("line")), LINE_BLOCK)
                    if index < len(src.files):
                        return ShaderError(m.group("msg").strip(), self._rel(src.files[index]), line)
        first = next((ln.strip() for ln in log_text.splitlines() if "error" in ln.lower()), log_text.strip())
        return ShaderError(first[:500], self._rel(src.files[0]) if src.files else None)

    def _mtimes(self, name: str) -> dict[Path, float]:
        files: list[Path] = []
        try:
            self._expand(self.root / name, files, 0, None)
        except ShaderError:
            pass
        return {f: _mtime(f) for f in files}

    def reload(self) -> list[ShaderError]:
        """Recompile every cached program whose files changed; keep the last good one on failure."""
        errors = []
        for key, (prog, stamps) in list(self._cache.items()):
            if all(_mtime(f) == t for f, t in stamps.items()):
                continue
            name, defines = key[0], dict(key[1])
            compute = isinstance(prog, moderngl.ComputeShader)
            try:
                new = self._compile(name, compute, defines)
            except ShaderError as exc:
                log.error("shader %s failed to compile, keeping the last good one: %s", name, exc)
                errors.append(exc)
                self._cache[key] = (prog, self._mtimes(name))  # do not retry until it changes again
                continue
            prog.release()
            self._cache[key] = (new, self._mtimes(name))
            log.info("shader %s reloaded", name)
        return errors

    def release(self) -> None:
        """Free every compiled program."""
        for prog, _ in self._cache.values():
            prog.release()
        self._cache.clear()


def _mtime(path: Path) -> float:
    try:
        st = path.stat()
        return st.st_mtime_ns + st.st_size
    except OSError:
        return -1.0
