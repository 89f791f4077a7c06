"""A console that stopped reading: a real pipe, filled to the brim, that can be drained later."""

from __future__ import annotations

import os
import threading
import time


class StuckPipe:
    """A pipe whose reader is away: ``stream`` (text, for the code under test) blocks on write.

    The pipe is filled by a filler thread (200 kB of ``#``; the kernel holds 64 kB), so any further
    write blocks until :meth:`read_until` drains it.  The filler's bytes and the writes under test
    may interleave: writes that large are not atomic.
    """

    def __init__(self) -> None:
        self._r, w = os.pipe()
        self.stream = os.fdopen(w, "w")
        threading.Thread(target=lambda: os.write(w, b"#" * 200_000), daemon=True).start()
        time.sleep(0.2)  # the filler has filled it and is blocked
        os.set_blocking(self._r, False)

    def read_until(self, needle: bytes, timeout: float = 5.0) -> bytes:
        """Drain the pipe until ``needle`` has come (or ``timeout``); returns all bytes read."""
        got = b""
        end = time.monotonic() + timeout
        while needle not in got and time.monotonic() < end:
            try:
                got += os.read(self._r, 1 << 16)
            except BlockingIOError:
                time.sleep(0.01)
        return got

    def close(self) -> None:
        """Close the reading end (the writer's next write then fails with a broken pipe)."""
        os.close(self._r)
