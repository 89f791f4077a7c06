"""The OSC server driven by liblo's oscsend, its replies and feedback read by liblo's oscdump."""

import queue
import subprocess

import pytest

from installation.control.osc import OscConfig, OscServer
from tests.control.conftest import Engine, OscDump, Target, make_tree, needs_liblo, wait_for
from tests.support.udp import free_port

pytestmark = needs_liblo


@pytest.fixture
def liblo_rig():
    """Server whose replies go to an oscdump (oscsend's own port is gone once it exits)."""
    dump_port = free_port()
    dump = OscDump(dump_port)
    tree = make_tree()
    commands: queue.Queue = queue.Queue(maxsize=256)
    server = OscServer(tree, commands, OscConfig(port=0, reply_port=dump_port))
    target = Target(tree)
    engine = Engine(target, commands).start()
    tree.listen(server.publish_change)
    server.start()
    wait_for(dump.ready, what="oscdump to bind")

    def send(address, types="", *args):
        subprocess.run(["oscsend", "127.0.0.1", str(server.address[1]), address, types, *map(str, args)],
                       check=True, timeout=10, capture_output=True)

    yield tree, target, server, dump, send
    engine.stop()
    server.stop()
    dump.close()


def test_oscsend_sets_params_of_every_kind(liblo_rig):
    tree, target, server, dump, send = liblo_rig
    send("/tapestry/field/flow/speed", "f", 2.5)
    send("/tapestry/field/particles", "i", 4000)
    send("/tapestry/show/blackout", "T")
    send("/tapestry/field/palette", "s", "ember")
    send("/tapestry/show/master/norm", "f", 0.5)
    wait_for(lambda: tree.base("show/master") == 0.5, what="norm set")
    assert (tree.base("field/flow/speed"), tree.base("field/particles"), tree.base("show/blackout"),
            tree.base("field/palette")) == (2.5, 4000, True, "ember")


def test_oscdump_receives_get_list_and_errors(liblo_rig):
    tree, target, server, dump, send = liblo_rig
    send("/tapestry/get", "s", "field/flow/speed")
    line = dump.wait_line("/tapestry/value")
    assert 'sf "field/flow/speed" 1.0' in line
    send("/tapestry/list")
    assert '"field/flow/speed"' in dump.wait_line("/tapestry/paths ")
    assert "/tapestry/paths/end i 5" in dump.wait_line("/tapestry/paths/end")
    send("/tapestry/field/flow/speed", "f", "nan")
    assert "not a finite number" in dump.wait_line("/tapestry/error")
    send("/tapestry/field/*", "f", 1.0)
    assert "pattern addresses" in dump.wait_line("pattern")


def test_oscdump_subscriber_gets_changes_and_heartbeat(liblo_rig):
    tree, target, server, dump, send = liblo_rig
    send("/tapestry/subscribe", "i", dump.port)
    assert "/tapestry/subscribed" in dump.wait_line("/tapestry/subscribed")
    dump.wait_line('/tapestry/field/palette s "moss"')  # the snapshot
    send("/tapestry/field/palette", "s", "tide")
    dump.wait_line('/tapestry/field/palette s "tide"')
    dump.wait_line("/tapestry/field/palette/norm f 1.0")
    send("/tapestry/preset/load", "sf", "storm", 1.5)
    dump.wait_line('/tapestry/preset/loaded s "storm"')
    dump.wait_line("/tapestry/field/flow/speed f 3.5")
    server.heartbeat(target.status())
    assert "/tapestry/heartbeat fff 60.0" in dump.wait_line("/tapestry/heartbeat")


def test_preset_commands_from_oscsend_reach_the_target(liblo_rig):
    tree, target, server, dump, send = liblo_rig
    send("/tapestry/preset/save", "s", "storm")
    assert "shipped" in dump.wait_line("/tapestry/error")
    send("/tapestry/preset/save", "s", "evening")
    dump.wait_line('/tapestry/preset/saved s "evening"')
    assert "evening" in target.presets
    send("/tapestry/scene/go", "s", "restoration")
    dump.wait_line('/tapestry/scene/current s "restoration"')
    assert target.scene == "restoration"


class PresetTarget(Target):
    """The small target, but its presets are the shipped files, loaded through the real PresetLibrary."""

    def __init__(self, tree):
        super().__init__(tree)
        from installation.engine import EngineOptions
        from installation.presets import PresetLibrary
        self.library = PresetLibrary(EngineOptions().presets, tree)

    def load_preset(self, name, fade_s):
        self.params.update_bases(self.library.load(name).params)
        self.preset = name
        self.fades.append((name, fade_s))


def test_docs_first_example_works_as_written():
    """The first code block of docs/osc.md, run line by line with the real oscsend/oscdump (ports substituted),
    against the full parameter tree and the shipped presets, with reply_port as the docs say."""
    import re
    import shlex
    from pathlib import Path

    from installation import app
    from installation.engine import declare_all

    doc = (Path(__file__).resolve().parents[2] / "docs" / "osc.md").read_text()
    block = re.search(r"```sh\n(.*?)```", doc, re.S).group(1)
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    assert lines[0].startswith("oscdump -L 9001")
    dump_port = free_port()
    dump = OscDump(dump_port)
    tree = declare_all(extra=app._sensing_params())
    commands: queue.Queue = queue.Queue(maxsize=256)
    server = OscServer(tree, commands, OscConfig(port=0, reply_port=dump_port)).start()
    tree.listen(server.publish_change)
    engine = Engine(PresetTarget(tree), commands).start()
    try:
        wait_for(dump.ready, what="oscdump to bind")
        for line in lines[1:]:
            if not line:
                continue
            argv = shlex.split(line.replace(" 9000 ", f" {server.address[1]} ").replace("9001", str(dump_port)))
            assert argv[0] == "oscsend"
            subprocess.run(argv, check=True, timeout=10, capture_output=True)
        dump.wait_line("/tapestry/subscribed")
        dump.wait_line('/tapestry/preset/loaded s "harmony"')
        assert 'sf "field/flow/speed" 0.2' in dump.wait_line("/tapestry/value")  # harmony's speed, after the set
        assert tree.base("show/master") == 0.5
        dump.wait_line("/tapestry/show/master f 0.5")  # feedback of the fader
    finally:
        engine.stop()
        server.stop()
        dump.close()


def test_verify_handshake_with_oscsend_and_oscdump():
    """docs/osc.md 'Replies to other networks': a sender outside osc.trusted subscribes, reads the token in
    oscdump, answers it with oscsend, and then gets the snapshot and full replies."""
    dump_port = free_port()
    dump = OscDump(dump_port)
    tree = make_tree()
    commands: queue.Queue = queue.Queue(maxsize=256)
    server = OscServer(tree, commands, OscConfig(port=0, trusted=())).start()
    engine = Engine(Target(tree), commands).start()
    try:
        wait_for(dump.ready, what="oscdump to bind")
        port = str(server.address[1])
        subprocess.run(["oscsend", "127.0.0.1", port, "/tapestry/subscribe", "i", str(dump_port)], check=True,
                       timeout=10)
        token = dump.wait_line("/tapestry/token").split()[-1]
        subprocess.run(["oscsend", "127.0.0.1", port, "/tapestry/verify", "i", token], check=True, timeout=10)
        dump.wait_line("/tapestry/verified")
        dump.wait_line("/tapestry/subscribed")
        dump.wait_line('/tapestry/field/palette s "moss"')  # the snapshot arrives only now
    finally:
        engine.stop()
        server.stop()
        dump.close()
