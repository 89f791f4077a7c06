"""No reflection or amplification: a sender whose address is not believed (outside osc.trusted, not verified)
never gets more bytes back than it sent; after the /tapestry/verify handshake it gets full replies."""

import queue
import socket

from installation.control.osc import OscConfig, OscServer
from tests.control.conftest import Client, Engine, Target, make_tree, wait_for


class CountingClient(Client):
    """A real UDP client that counts the bytes it sends and receives."""

    def __init__(self, server_addr):
        super().__init__(server_addr)
        self.sent = self.received = 0

    def send(self, address, *args, types=None):
        from pythonosc.osc_message_builder import OscMessageBuilder
        b = OscMessageBuilder(address)
        for i, a in enumerate(args):
            b.add_arg(a, types[i] if types else None)
        self.send_raw(b.build().dgram)

    def send_raw(self, data):
        self.sent += len(data)
        super().send_raw(data)

    def drain(self) -> None:
        self.sock.settimeout(0.3)
        try:
            while True:
                data, _ = self.sock.recvfrom(65536)
                self.received += len(data)
                from pythonosc.osc_packet import OscPacket
                for tm in OscPacket(data).messages:
                    self.inbox.append((tm.message.address, list(tm.message.params)))
        except socket.timeout:
            pass
        finally:
            self.sock.settimeout(0.05)


def untrusted_rig():
    tree = make_tree()
    commands: queue.Queue = queue.Queue(maxsize=256)
    # loopback is not trusted here, so this test's client stands for a LAN sender whose address may be forged
    server = OscServer(tree, commands, OscConfig(port=0, trusted=())).start()
    engine = Engine(Target(tree), commands).start()
    return tree, server, engine


def _settle(server, engine, c, expected):
    try:
        wait_for(lambda: server.stats()["datagrams"] == expected, what="every datagram read")
    except AssertionError:
        raise AssertionError(f"server stats: {server.stats()}") from None
    wait_for(lambda: engine.commands.empty() and not server._out, what="every reply handled")
    c.drain()


def test_an_unverified_sender_never_gets_more_bytes_than_it_sent():
    import time
    tree, server, engine = untrusted_rig()
    c = CountingClient(server.address)
    try:
        for _ in range(20):  # small requests whose honest replies are far bigger than they are
            c.send("/tapestry/list")                      # ~5 KiB of paths for 20 bytes, were it answered
            c.send("/tapestry/preset/list")
            c.send("/tapestry/get", "field/flow/speed")
            c.send("/tapestry/status")
            c.send("/tapestry/field/*", 1.0)              # an error quoting the address
            c.send("/tapestry/subscribe", c.port)         # only a small token, no snapshot, no feedback
            c.send("/tapestry/field/flow/speed", 2.0)
            time.sleep(0.002)  # pacing, so the kernel's socket buffer does not drop any
        _settle(server, engine, c, 140)
        assert 0 < c.received <= c.sent
        assert server.stats()["withheld"] > 0
        assert not server._subscribers  # nothing streams to an address that has not proved itself
        for _ in range(5):  # big junk earns credit, but never more than it brought
            c.send_raw(b"/x\x00\x00,s\x00\x00" + b"a" * 5000 + b"\x00\x00\x00\x00")  # oversize: error reply
            c.send("/tapestry/list")
            time.sleep(0.002)
        _settle(server, engine, c, 150)
        assert 0 < c.received <= c.sent
    finally:
        engine.stop()
        server.stop()
        c.close()


def test_verify_handshake_then_full_replies_and_feedback():
    tree, server, engine = untrusted_rig()
    c = Client(server.address)
    try:
        c.send("/tapestry/subscribe", c.port)
        token = c.wait("/tapestry/token")[0]
        c.send("/tapestry/verify", token + 1)  # refused (its error is longer than the request: withheld)
        wait_for(lambda: server.stats()["refused"] == 1, what="wrong token refused")
        assert not server._verified
        c.send("/tapestry/verify", token)
        assert c.wait("/tapestry/verified") == [3600.0]
        assert c.wait("/tapestry/subscribed")[0] == c.port
        c.wait("/tapestry/field/palette", pred=lambda a: a == ["moss"])  # the snapshot
        c.send("/tapestry/list")
        assert "field/flow/speed" in c.wait("/tapestry/paths")
        assert c.wait("/tapestry/paths/end") == [5]
    finally:
        engine.stop()
        server.stop()
        c.close()


def test_trusted_network_gets_replies_of_any_size(rig):
    c = rig.client()  # loopback is trusted by default
    c.send("/tapestry/list")
    assert c.wait("/tapestry/paths/end") == [5]


def test_trusted_must_be_networks():
    import pytest
    with pytest.raises(ValueError, match="osc.trusted: '10.0.0.0/33' is not a network"):
        OscConfig(trusted=("10.0.0.0/33",))
    with pytest.raises(ValueError, match="osc.trusted"):
        OscConfig(trusted="10.0.0.0/8")
