"""Loopback helpers shared by the output tests (a module name no other test folder uses)."""

from __future__ import annotations

import socket
import threading
import time


class Receiver:
    """A UDP socket (127.0.0.1 unless told) collecting datagrams in a thread."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((host, port))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.packets: list[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                self.packets.append(self.sock.recv(65536))
            except socket.timeout:
                pass
            except OSError:
                return

    def wait_for(self, pred, timeout: float = 3.0) -> bool:
        """Poll until pred(packets) is true (bounded)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred(self.packets):
                return True
            time.sleep(0.005)
        return pred(self.packets)

    def close(self) -> None:
        self._stop = True
        self._thread.join(1)
        self.sock.close()
