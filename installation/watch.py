"""Hot reload: watch the presets/ and shaders/ folders and tell the engine which files changed.

A poller thread scans the folders every ``interval_s`` (mtime, size and
inode of every file; no inotify, so it works on any filesystem).  A change is
reported only once the file has looked the same in two scans at least
``settle_s`` apart, so an editor or a copy still writing it is never read
half-way.  Events go to the engine as :class:`FileChanged` objects on its
command queue; the engine reloads and keeps the last good version when the
new one is broken.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol

log = logging.getLogger(__name__)

_IGNORED_SUFFIXES = ("~", ".swp", ".swx", ".tmp", ".part", ".crdownload")


class ReloadTarget(Protocol):
    """What the engine implements to hear about changed files."""

    def file_changed(self, event: "FileChanged") -> None:
        """Reload ``event.path`` (or forget it if ``event.removed``); keep the last good version on errors."""


@dataclass(frozen=True)
class FileChanged:
    """A watched file was created, changed (and has settled) or removed.  ``root`` is the watched folder."""

    path: Path
    root: Path
    removed: bool = False

    def apply(self, target: ReloadTarget) -> None:
        """Engine thread: hand the event to ``target.file_changed`` (so it can share the command queue)."""
        try:
            target.file_changed(self)
        except Exception:  # a reload bug must not stop the frame loop
            log.exception("reloading %s failed", self.path)


Signature = tuple[int, int, int]  # (mtime_ns, size, inode)


class FileWatcher:
    """Polls ``roots`` (recursively) and sends settled changes to ``sink``.

    ``sink`` is a ``queue.Queue`` (``put_nowait``; when full the event is
    retried at the next scan) or a callable.  ``suffixes`` limits the files
    watched (e.g. ``(".toml", ".json", ".glsl")``); hidden files and editor
    temporaries are always ignored.  Files present at the first scan are the
    baseline and produce no event.  :meth:`poll` runs one scan (tests call it
    with their own ``clock``); :meth:`start` runs it on a thread.
    """

    def __init__(self, roots: Iterable[str | Path], sink: queue.Queue | Callable[[FileChanged], None],
                 interval_s: float = 0.5, settle_s: float | None = None, suffixes: Iterable[str] | None = None,
                 clock: Callable[[], float] = time.monotonic, max_files: int = 10000, max_depth: int = 8) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        self.roots = [Path(r) for r in roots]
        self.interval_s = interval_s
        self.settle_s = interval_s if settle_s is None else settle_s
        self.suffixes = tuple(s.lower() for s in suffixes) if suffixes else None
        self._sink = sink
        self._clock = clock
        self.max_files, self.max_depth = max_files, max_depth
        self._known: dict[Path, Signature] = {}
        self._root_of: dict[Path, Path] = {}
        self._pending: dict[Path, tuple[Signature | None, float]] = {}
        self._baseline = False
        self._warned: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- thread ----------------------------------------------------------
    def start(self) -> "FileWatcher":
        """Take the baseline now and poll every ``interval_s`` on a daemon thread; returns self."""
        if self._thread is None:
            self.poll()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="file-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling (returns within one interval)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> "FileWatcher":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception:  # keep watching whatever a filesystem does
                log.exception("file watcher scan failed")

    # -- one scan --------------------------------------------------------
    def poll(self) -> list[FileChanged]:
        """Scan once; send and return the events that settled in this scan."""
        now = self._clock()
        current = self._scan()
        if not self._baseline:
            self._known = current
            self._baseline = True
            return []
        events = []
        for path in set(current) | set(self._known):
            sig = current.get(path)
            if sig == self._known.get(path):
                self._pending.pop(path, None)
                continue
            seen = self._pending.get(path)
            if seen is None or seen[0] != sig:
                self._pending[path] = (sig, now)  # first sight of this state: wait for it to settle
                continue
            if now - seen[1] < self.settle_s:
                continue
            event = FileChanged(path, self._root_of.get(path, path.parent), removed=sig is None)
            if not self._send(event):
                continue  # queue full: try again next scan
            events.append(event)
            self._pending.pop(path, None)
            if sig is None:
                self._known.pop(path, None)
                self._root_of.pop(path, None)
            else:
                self._known[path] = sig
        return events

    def _send(self, event: FileChanged) -> bool:
        if isinstance(self._sink, queue.Queue):
            try:
                self._sink.put_nowait(event)
            except queue.Full:
                self._warn("queue full", "command queue full: file change events wait for the next scan")
                return False
            return True
        self._sink(event)
        return True

    def _scan(self) -> dict[Path, Signature]:
        found: dict[Path, Signature] = {}
        for root in self.roots:
            if not root.is_dir():
                self._warn(str(root), f"watched folder {root} does not exist (yet); watching for it")
                continue
            self._walk(root, root, 0, found)
        return found

    def _walk(self, folder: Path, root: Path, depth: int, found: dict[Path, Signature]) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            self._warn(str(folder), f"cannot list {folder}: {exc.strerror or exc}")
            return
        for entry in entries:
            name = entry.name
            if name.startswith((".", "#")) or name.endswith(_IGNORED_SUFFIXES):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth < self.max_depth:
                        self._walk(Path(entry.path), root, depth + 1, found)
                    continue
                if not entry.is_file():
                    continue
                if self.suffixes is not None and not name.lower().endswith(self.suffixes):
                    continue
                st = entry.stat()
            except OSError:  # vanished between listing and stat: the next scan sees it gone
                continue
            if len(found) >= self.max_files:
                self._warn("max_files", f"more than {self.max_files} files under the watched folders; "
                                        "the rest are not watched")
                return
            path = Path(entry.path)
            found[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
            self._root_of[path] = root

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)
