"""The status line never blocks the frame loop, even when the console stops reading."""

import os
import threading
import time

from installation.console import StatusLine
from tests.support.pipes import StuckPipe


def test_show_returns_at_once_when_the_console_is_stuck_and_the_newest_line_wins():
    pipe = StuckPipe()  # a terminal paused with Ctrl-S: the status line's writes block
    status = StatusLine(pipe.stream)
    status.show("first")
    end = time.monotonic() + 5
    while status.pending and time.monotonic() < end:  # the writer thread takes it, and blocks on it
        time.sleep(0.01)
    offer = threading.Thread(target=lambda: [status.show(f"frame {i}") for i in range(1000)], daemon=True)
    offer.start()
    offer.join(5)
    assert not offer.is_alive()                  # 1000 lines offered while the console is stuck
    assert status.dropped == 999                 # all but the newest were replaced, none queued up
    assert status.close(timeout_s=0.2) is False  # still stuck: close gives up instead of hanging

    # The console reads again: the blocked line, then only the newest one.
    got = pipe.read_until(b"frame 999")
    assert b"frame 998" not in got and 0 <= got.find(b"first\n") < got.find(b"frame 999\n")
    pipe.close()


def test_a_terminal_gets_the_line_redrawn_in_place_and_a_newline_at_the_end(tmp_path):
    class Tty:
        def __init__(self):
            self.text = ""

        def isatty(self):
            return True

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    tty = Tty()
    status = StatusLine(tty)
    status.show("60.0 fps")
    assert status.close() is True
    assert tty.text == "\r60.0 fps\x1b[K\n"


def test_a_closed_console_is_ignored():
    r, w = os.pipe()
    os.close(r)
    stream = os.fdopen(w, "w")
    status = StatusLine(stream)
    status.show("nobody reads this")  # EPIPE / broken pipe: dropped, the show goes on
    assert status.close() is True


def test_status_line_names_failing_configured_sensors():
    """It said `sensors none (breathing on its own)` while a configured camera and microphone failed."""
    from installation.app import status_line
    st = {"fps": 60.0, "frame_ms": 5.0, "particles": 1000, "preset": "harmony", "scene": None, "sensors": [],
          "mood": {"intensity": 0.1, "presence": 0.0, "motion": 0.0, "sound": 0.0}}
    line = status_line(st, {"camera": {"state": "reconnecting"}, "audio": {"state": "error"}})
    assert "sensors none live (camera reconnecting, audio error)" in line
    assert "breathing on its own" in status_line(st, None)
