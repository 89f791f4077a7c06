"""mDNS / DNS-SD advertisement, so OSCQuery clients (TouchDesigner, Chataigne, Vezér) find the piece.

:class:`Advertiser` registers ``_oscjson._tcp`` (the OSCQuery HTTP server) and ``_osc._udp`` (the OSC port)
with ``zeroconf`` on the address the web server listens on.  A loopback address is not advertised (nobody
else could reach it); a wildcard address advertises on every interface.  Failures are logged and the show
goes on: discovery is a convenience, not a dependency.
"""

from __future__ import annotations

import ipaddress
import logging
import socket

log = logging.getLogger(__name__)

OSCJSON = "_oscjson._tcp.local."
OSC = "_osc._udp.local."


class Advertiser:
    """Advertise ``name`` at ``host`` (an IP; 0.0.0.0 = every interface) with the given ports."""

    def __init__(self, name: str, host: str, http_port: int, osc_port: int | None) -> None:
        self.name = name
        self.host = host
        self.http_port = http_port
        self.osc_port = osc_port
        self._zc = None
        self._infos: list = []

    def start(self) -> bool:
        """Register the services; False (logged) when there is nothing to advertise or zeroconf fails."""
        addr = ipaddress.ip_address(self.host)
        if addr.is_loopback:
            log.info("mDNS: web control listens on loopback only; not advertised")
            return False
        try:
            from zeroconf import InterfaceChoice, IPVersion, ServiceInfo, Zeroconf
        except ImportError:
            log.warning("mDNS: the zeroconf package is not installed; OSCQuery is not advertised")
            return False
        try:
            if addr.is_unspecified:
                self._zc = Zeroconf(interfaces=InterfaceChoice.All, ip_version=IPVersion.V4Only)
                addresses = None
            else:
                self._zc = Zeroconf(interfaces=[self.host], ip_version=IPVersion.V4Only)
                addresses = [socket.inet_aton(self.host)]
            server = f"{socket.gethostname().split('.')[0] or 'tapestry'}.local."
            services = [(OSCJSON, self.http_port, {"txtvers": "1"})]
            if self.osc_port:
                services.append((OSC, self.osc_port, {}))
            for kind, port, props in services:
                kw = {"addresses": addresses} if addresses else {}
                info = ServiceInfo(kind, f"{self.name}.{kind}", port=port, properties=props, server=server, **kw)
                self._zc.register_service(info, allow_name_change=True)
                self._infos.append(info)
        except Exception as exc:  # noqa: BLE001 - discovery must never stop the show
            log.error("mDNS: cannot advertise (%s); clients can still connect by address", exc)
            self.stop()
            return False
        log.info("mDNS: advertising %s (%s port %d%s)", self.name, OSCJSON, self.http_port,
                 f", {OSC} port {self.osc_port}" if self.osc_port else "")
        return True

    def stop(self) -> None:
        """Unregister (sends goodbyes) and close."""
        if self._zc is None:
            return
        try:
            for info in self._infos:
                self._zc.unregister_service(info)
        except Exception:  # noqa: BLE001
            pass
        self._zc.close()
        self._zc = None
        self._infos = []
