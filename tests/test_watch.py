"""The hot-reload watcher on real files in a temporary folder."""

import os
import queue
from pathlib import Path

import pytest

from installation.watch import FileChanged, FileWatcher


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def touch(path: Path, text: str, mtime_s: float | None = None) -> None:
    path.write_text(text)
    if mtime_s is not None:
        os.utime(path, ns=(int(mtime_s * 1e9), int(mtime_s * 1e9)))


@pytest.fixture
def folders(tmp_path):
    presets, shaders = tmp_path / "presets", tmp_path / "shaders"
    presets.mkdir()
    (shaders / "lib").mkdir(parents=True)
    touch(presets / "calm.toml", "a = 1\n", 1000)
    touch(shaders / "field.glsl", "void main(){}\n", 1000)
    return presets, shaders


def scan(w, clock, step=0.5):
    clock.t += step
    return w.poll()


def test_baseline_then_a_change_is_reported_once_it_settles(folders):
    presets, shaders = folders
    clock, q = Clock(), queue.Queue()
    w = FileWatcher([presets, shaders], q, interval_s=0.5, clock=clock)
    assert w.poll() == []                       # baseline
    touch(presets / "calm.toml", "a = 2\n", 2000)
    assert scan(w, clock) == []                 # first sight: not settled yet
    (ev,) = scan(w, clock)                      # same signature half a second later: settled
    assert ev == FileChanged(presets / "calm.toml", presets) and not ev.removed
    assert q.get_nowait() == ev
    assert scan(w, clock) == [] and q.empty()   # reported once


def test_a_file_still_being_written_is_not_reported_until_it_stops_changing(folders):
    presets, shaders = folders
    clock = Clock()
    w = FileWatcher([presets, shaders], queue.Queue(), clock=clock)
    w.poll()
    p = shaders / "lib" / "noise.glsl"
    for i in range(5):  # grows between every scan
        touch(p, "x" * (100 * (i + 1)), 3000 + i)
        assert scan(w, clock) == []
    (ev,) = scan(w, clock)
    assert ev.path == p and ev.root == shaders


def test_removal_and_recreation(folders):
    presets, shaders = folders
    clock = Clock()
    w = FileWatcher([presets], queue.Queue(), clock=clock)
    w.poll()
    (presets / "calm.toml").unlink()
    scan(w, clock)
    (ev,) = scan(w, clock)
    assert ev.removed and ev.path == presets / "calm.toml"
    touch(presets / "calm.toml", "b = 1\n", 5000)
    scan(w, clock)
    (ev,) = scan(w, clock)
    assert not ev.removed


def test_ignores_hidden_temporary_and_other_suffixes(folders):
    presets, shaders = folders
    clock = Clock()
    w = FileWatcher([presets, shaders], queue.Queue(), clock=clock, suffixes=(".toml", ".glsl"))
    w.poll()
    for name in (".calm.toml.swp", "calm.toml~", "#calm.toml#", "notes.txt", "x.tmp"):
        touch(presets / name, "junk")
    scan(w, clock)
    assert scan(w, clock) == []


def test_full_queue_retries_at_the_next_scan(folders):
    presets, shaders = folders
    clock, q = Clock(), queue.Queue(maxsize=1)
    w = FileWatcher([presets, shaders], q, clock=clock)
    w.poll()
    q.put("engine busy")
    touch(presets / "calm.toml", "a = 3\n", 6000)
    scan(w, clock)
    assert scan(w, clock) == []
    q.get_nowait()
    (ev,) = scan(w, clock)
    assert q.get_nowait() == ev


def test_missing_folder_is_watched_for_creation(tmp_path):
    clock, events = Clock(), []
    w = FileWatcher([tmp_path / "presets"], events.append, clock=clock)
    w.poll()
    (tmp_path / "presets").mkdir()
    touch(tmp_path / "presets" / "new.toml", "a = 1\n")
    scan(w, clock)
    scan(w, clock)
    assert [e.path.name for e in events] == ["new.toml"]


def test_apply_hands_the_event_to_the_engine_and_contains_its_errors(folders):
    presets, _ = folders
    seen = []

    class Engine:
        def file_changed(self, event):
            seen.append(event)
            raise RuntimeError("bad shader")

    FileChanged(presets / "calm.toml", presets).apply(Engine())
    assert seen[0].path.name == "calm.toml"


def test_thread_reports_a_real_change(folders):
    presets, shaders = folders
    q = queue.Queue()
    with FileWatcher([presets, shaders], q, interval_s=0.05):
        touch(shaders / "field.glsl", "void main(){ }\n", 9000)
        ev = q.get(timeout=10)  # a bound for a broken watcher, not a speed check
    assert ev.path == shaders / "field.glsl"
