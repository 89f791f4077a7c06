"""The live status line on the console, written so that a console never stops the show.

The frame loop hands each new line to :class:`StatusLine`, which returns at once; a daemon thread
writes it.  A terminal paused with Ctrl-S, a pipe whose reader hung or a full log pipe then blocks
only that thread (the newest line waits in a one-line slot, older ones are dropped), and the
frames, the LEDs and the watchdog's pings go on.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO


class StatusLine:
    """Shows the newest status line on ``stream`` from its own thread; :meth:`show` never blocks.

    On a terminal the line is redrawn in place (``\\r`` + erase to end of line); elsewhere (a log
    pipe, the journal) each line is a line of its own.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError, OSError):
            self.tty = False
        self._slot: str | None = None
        self._wake = threading.Condition()
        self._closing = False
        self.shown = 0    # lines written
        self.dropped = 0  # lines replaced by a newer one before they could be written
        self._thread = threading.Thread(target=self._run, name="status-line", daemon=True)
        self._thread.start()

    def show(self, line: str) -> None:
        """Queue ``line`` (the newest wins); returns immediately."""
        with self._wake:
            if self._slot is not None:
                self.dropped += 1
            self._slot = line
            self._wake.notify()

    @property
    def pending(self) -> bool:
        """True while a line waits for the writer thread (a stuck console keeps it waiting)."""
        with self._wake:
            return self._slot is not None

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._slot is None and not self._closing:
                    self._wake.wait()
                line, self._slot = self._slot, None
                closing = self._closing
            if line is not None:
                self._write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
                self.shown += 1
            if closing:
                if self.tty and self.shown:
                    self._write("\n")
                return

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken console: the show does not need it
            pass

    def close(self, timeout_s: float = 1.0) -> bool:
        """Write what is pending (and end the terminal's line); wait at most ``timeout_s``.

        Returns False if the console is still blocked: the daemon thread is then left behind.
        """
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
