"""Generated control surfaces: `run.py surface` writes an Open Stage Control session (JSON) and a TouchOSC layout
(zlib-compressed XML) from the parameter tree; every control's message, sent to the real OSC server, moves the
parameter it is labelled with."""

import json
import queue
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from installation import app
from installation.control.osc import OscConfig, OscServer
from installation.control.surface import open_stage_control_session, touchosc_layout
from installation.control.wire import encode_message
from installation.engine import declare_all
from installation.params import ParamTree

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ["breakdown", "harmony"]


@pytest.fixture(scope="module")
def tree() -> ParamTree:
    return declare_all(extra=app._sensing_params())


def apply(tree: ParamTree, data: bytes) -> None:
    """Send one datagram through a real OscServer's validation and apply what it enqueues."""
    q: queue.Queue = queue.Queue()
    server = OscServer(tree, q, OscConfig(port=0))
    server.handle_datagram(data, ("127.0.0.1", 5000))
    while not q.empty():
        cmd = q.get_nowait()
        cmd.apply(Loader(tree))


class Loader:
    def __init__(self, tree):
        self.params, self.loaded = tree, []

    def load_preset(self, name, fade_s):
        Loader.last = name


def osc_widgets(session: dict) -> list[dict]:
    out = []

    def walk(node):
        for w in node.get("widgets", []):
            out.append(w)
            walk(w)
        for t in node.get("tabs", []):
            walk(t)
    walk(session["content"])
    return out


def test_open_stage_control_session_covers_every_parameter_with_its_range(tree):
    session = json.loads(open_stage_control_session(tree, PRESETS))
    assert (session["createdWith"], session["type"], session["content"]["type"]) == \
        ("Open Stage Control", "session", "root")
    assert all(t["type"] == "tab" for t in session["content"]["tabs"])
    widgets = osc_widgets(session)
    ids = [w["id"] for w in widgets]
    assert len(ids) == len(set(ids))  # Open Stage Control needs unique ids
    by_address = {w["address"]: w for w in widgets if w["address"] != "/tapestry/preset/load"}
    assert set(by_address) == {"/tapestry/" + p for p in tree.paths()}
    for spec in tree.specs():
        w = by_address["/tapestry/" + spec.path]
        if spec.kind in ("float", "int"):
            assert w["type"] == "fader" and w["range"] == {"min": spec.lo, "max": spec.hi}
            assert w["typeTags"] == ("i" if spec.kind == "int" else "f")
        elif spec.kind == "bool":
            assert w["type"] == "button" and w["mode"] == "toggle"
        else:
            assert w["type"] == "dropdown" and w["values"] == list(spec.choices)
    assert [w["on"] for w in widgets if w["address"] == "/tapestry/preset/load"] == PRESETS


def test_open_stage_control_messages_move_the_parameters(tree):
    """What each widget sends (its address, typeTags and the top of its range / its last choice / on)."""
    t = declare_all(extra=app._sensing_params())
    for w in osc_widgets(json.loads(open_stage_control_session(t, PRESETS))):
        if w["type"] == "fader":
            value = w["range"]["max"]
            apply(t, encode_message(w["address"], int(value) if w["typeTags"] == "i" else float(value)))
        elif w["type"] == "button" and w["mode"] == "toggle":
            apply(t, encode_message(w["address"], True))
        elif w["type"] == "dropdown":
            apply(t, encode_message(w["address"], w["values"][-1]))
        else:
            apply(t, encode_message(w["address"], w["on"]))
            assert Loader.last == w["on"]
    for spec in t.specs():
        want = spec.hi if spec.kind in ("float", "int") else True if spec.kind == "bool" else spec.choices[-1]
        assert t.base(spec.path) == (pytest.approx(want, rel=1e-6) if spec.kind == "float" else want), spec.path


def test_touchosc_layout_is_zlib_xml_whose_faders_drive_norm_addresses(tree):
    raw = touchosc_layout(tree, PRESETS)
    root = ET.fromstring(zlib.decompress(raw))
    assert root.tag == "lexml" and root.get("version") == "3"
    top = root.find("node")
    assert top.get("type") == "GROUP" and top.find("children/node").get("type") == "PAGER"
    controls = [n for n in root.iter("node") if n.get("type") in ("FADER", "BUTTON")]
    for prop in root.iter("property"):
        if prop.get("type") == "r":  # frames are whole pixels, as the editor writes them
            assert all(c.text.lstrip("-").isdigit() for c in prop.find("value")), prop.find("key").text
    assert len({n.get("ID") for n in root.iter("node")}) == len(list(root.iter("node")))
    t = declare_all(extra=app._sensing_params())
    seen = set()
    for node in controls:
        osc = node.find("messages/osc")
        address = osc.find("path/partial/value").text
        arg = osc.find("arguments/partial")
        if address == "/tapestry/preset/load":
            assert arg.find("type").text == "CONSTANT" and arg.find("value").text in PRESETS
            continue
        assert arg.find("type").text == "VALUE" and arg.find("value").text == "x"
        assert address.endswith("/norm")
        seen.add(address[len("/tapestry/"):-len("/norm")])
        apply(t, encode_message(address, 1.0))  # the control at its top
    assert seen == set(tree.paths())
    for spec in t.specs():
        assert t.base(spec.path) == spec.denormalize(1.0), spec.path


def test_run_py_surface_writes_both_formats_and_refuses_bad_input(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "run.py", "surface", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
    r = run("--format", "open-stage-control", "--out", str(tmp_path / "t.json"))
    assert r.returncode == 0 and "parameters" in r.stdout
    assert json.loads((tmp_path / "t.json").read_text())["type"] == "session"
    r = run("--format", "touchosc", "--out", str(tmp_path / "t.tosc"))
    assert r.returncode == 0 and zlib.decompress((tmp_path / "t.tosc").read_bytes()).startswith(b"<?xml")
    r = run("--format", "lemur", "--out", str(tmp_path / "x"))
    assert r.returncode != 0 and "invalid choice" in r.stderr
    r = run("--format", "touchosc", "--out", str(tmp_path / "missing" / "t.tosc"))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "cannot write" in r.stderr
