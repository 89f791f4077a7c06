"""Built-in receivers for a venue's loopback outputs: the demo runs on a machine with no LEDs.

An output sent to ``127.0.0.1`` with nothing listening gets ICMP "port unreachable" back; the
output then reports ``Connection refused`` and backs off, and the show looks broken although
nothing is wrong.  A venue with ``loopback_receivers = true`` (the demo venue) gets one UDP socket
per loopback output port that takes the packets and counts them, so the outputs show as working
and ``run.py status`` says OK.  A port something else already listens on (a real receiver, a
visualiser) is left to it.
"""

from __future__ import annotations

import ipaddress
import logging
import selectors
import socket
import threading

from .outputs.base import DEFAULT_PORTS

log = logging.getLogger(__name__)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoopbackReceivers:
    """Drains UDP packets sent to the loopback outputs of a venue (on its own daemon thread)."""

    def __init__(self, outputs) -> None:
        self.packets: dict[int, int] = {}
        self._socks: list[socket.socket] = []
        self._sel = selectors.DefaultSelector()
        self._stop = threading.Event()
        ports = sorted({o.port if o.port is not None else DEFAULT_PORTS.get(o.protocol)
                        for o in outputs if o.enabled and o.protocol != "enttec" and _is_loopback(o.host)} - {None})
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError as exc:
                s.close()
                log.info("loopback receiver: port %d already taken (%s); a receiver is there already", port,
                         exc.strerror or exc)
                continue
            s.setblocking(False)
            self._socks.append(s)
            self._sel.register(s, selectors.EVENT_READ, port)
            self.packets[port] = 0
        self._thread = threading.Thread(target=self._run, name="loopback-receivers", daemon=True)

    @property
    def ports(self) -> list[int]:
        """The ports received on."""
        return sorted(self.packets)

    def start(self) -> "LoopbackReceivers":
        """Start draining; logs which ports are taken."""
        if self._socks:
            self._thread.start()
            log.info("built-in loopback receivers on 127.0.0.1 ports %s (no LEDs needed)",
                     ", ".join(map(str, self.ports)))
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.2):
                try:
                    while True:
                        key.fileobj.recv(65536)
                        self.packets[key.data] += 1
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    pass

    def stop(self) -> None:
        """Stop and close the sockets."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        for s in self._socks:
            self._sel.unregister(s)
            s.close()
        self._socks = []
