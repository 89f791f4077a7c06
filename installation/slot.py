"""A one-slot, newest-wins hand-off from a thread that must never wait to a worker thread of its own.

Used where the consumer may be slower than the producer and only the latest item matters: the LED
stages and output hand-off (installation/leds.py), the camera's person detector
(installation/sensing/second_opinion.py).  Subclasses implement :meth:`NewestSlot._handle`.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class NewestSlot:
    """A one-slot hand-off to a thread of its own: :meth:`put` never waits, and an item the thread has
    not taken yet is replaced by the newer one (newest wins, counted in ``replaced``).  The thread
    handles one item at a time until :meth:`stop`; it is started on the first :meth:`put`, and again
    if it ever ended (logged)."""

    thread_name = "slot"

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._pending = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self.replaced = 0

    def put(self, item) -> None:
        """Make ``item`` the next one the thread takes (after :meth:`stop`: ignored)."""
        with self._cv:
            if self._stop:
                return
            if self._thread is None or not self._thread.is_alive():
                if self._thread is not None:
                    log.error("%s thread had ended; starting it again", self.thread_name)
                self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
                self._thread.start()
            if self._pending is not None:
                self.replaced += 1
                item = self._merge(self._pending, item)
            self._pending = item
            self._cv.notify()

    def _merge(self, older, newer):
        """What replaces ``older`` when ``newer`` arrives before the thread took it."""
        return newer

    def _taken(self, item) -> None:
        """Called under the slot's lock as the thread takes ``item``."""

    def _handle(self, item) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                item, self._pending = self._pending, None
                self._taken(item)
            self._handle(item)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop after the item in hand (a pending one is dropped); False if the thread did not end."""
        with self._cv:
            self._stop = True
            self._pending = None
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.alive
