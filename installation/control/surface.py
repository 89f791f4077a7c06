"""Control-surface layouts generated from the parameter tree: an Open Stage Control session and a TouchOSC layout.

``python run.py surface --format open-stage-control|touchosc --out FILE`` writes one, so an artist gets a
working surface in one step: one tab/page per part of the tree (field, render, mood, sensing/camera, ...), a
control per parameter, and a first "show" page with master, blackout and a button per preset.

* Open Stage Control: a session file is JSON, ``{"createdWith", "version", "type": "session", "content":
  {"type": "root", "tabs": [...]}}``; each parameter is a widget whose ``address`` is ``/tapestry/<path>`` with
  the parameter's own range (faders), ``on``/``off`` (toggles) or ``values`` (choices), so the feedback the
  server sends to a subscriber moves the same widget.
* TouchOSC (the 2022 editor's ``.tosc``): zlib-compressed XML, ``<lexml version='3'>`` holding a GROUP node with
  a PAGER and one PAGE per part; faders and toggles send ``/tapestry/<path>/norm`` 0..1 (TouchOSC values are
  0..1), which is also the feedback address.

Nothing here keeps its own list of controls: every widget comes from a :class:`ParamSpec`.
"""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
import zlib
from typing import Iterable, Sequence

from installation.control.commands import ROOT
from installation.params import BOOL, CHOICE, FLOAT, INT, ParamSpec, ParamTree

FORMATS = ("open-stage-control", "touchosc")
OSC_VERSION = "1.26.2"  # the session format written; newer than every converter Open Stage Control applies
PAGE_SIZE = 16  # controls per page/tab before it is split (a tablet screen)
SHOW_PAGE = ("show/master", "show/blackout", "show/fade")  # on the first page, with the preset buttons
_NS = uuid.UUID("6f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f")  # stable node IDs: the same tree gives the same file


def sections(tree: ParamTree) -> list[tuple[str, list[ParamSpec]]]:
    """Parameters grouped for pages: by first path part, or first two for ``sensing``; long groups split.
    The show page's parameters (:data:`SHOW_PAGE`) are not repeated."""
    groups: dict[str, list[ParamSpec]] = {}
    for spec in tree.specs():
        if spec.path in SHOW_PAGE:
            continue
        parts = spec.path.split("/")
        key = "/".join(parts[:2]) if parts[0] == "sensing" and len(parts) > 2 else parts[0]
        groups.setdefault(key, []).append(spec)
    out = []
    for key, specs in groups.items():
        chunks = [specs[i:i + PAGE_SIZE] for i in range(0, len(specs), PAGE_SIZE)]
        for n, chunk in enumerate(chunks):
            out.append((key if len(chunks) == 1 else f"{key} {n + 1}", chunk))
    return out


def _label(spec: ParamSpec) -> str:
    unit = f" ({spec.unit})" if spec.unit else ""
    scope = "" if spec.scope == "look" else f" [{spec.scope}]"
    return f"{spec.path}{unit}{scope}"


def _wid(text: str) -> str:
    return text.replace("/", "_").replace(" ", "_")


# -- Open Stage Control ---------------------------------------------------------

def _osc_widget(spec: ParamSpec) -> dict:
    base = {"id": _wid(spec.path), "address": ROOT + spec.path, "preArgs": [], "label": _label(spec),
            "comments": spec.description, "expand": False, "height": 60}
    if spec.kind in (FLOAT, INT):
        w = {"type": "fader", "horizontal": True, "range": {"min": spec.lo, "max": spec.hi},
             "value": spec.default, "default": spec.default, "unit": spec.unit, "typeTags": "f",
             "decimals": 3, "html": ""}
        if spec.kind == INT:
            w.update(typeTags="i", decimals=0)
        return {**base, **w}
    if spec.kind == BOOL:
        return {**base, "type": "button", "mode": "toggle", "on": True, "off": False, "value": spec.default,
                "default": spec.default}
    return {**base, "type": "dropdown", "values": list(spec.choices), "typeTags": "s", "value": spec.default,
            "default": spec.default}


def _osc_show_widgets(tree: ParamTree, presets: Sequence[str]) -> list[dict]:
    widgets = []
    for path in SHOW_PAGE:
        if path in tree:
            widgets.append(_osc_widget(tree.spec(path)))
    for name in presets:
        widgets.append({"type": "button", "id": f"preset_{_wid(name)}", "label": f"load {name}", "mode": "tap",
                        "on": name, "off": name, "address": ROOT + "preset/load", "preArgs": [], "typeTags": "s",
                        "height": 60, "expand": False})
    return widgets


def open_stage_control_session(tree: ParamTree, presets: Sequence[str] = ()) -> str:
    """An Open Stage Control session (JSON text) for ``tree``, with a load button per name in ``presets``."""
    def tab(label: str, widgets: list[dict]) -> dict:
        return {"type": "tab", "id": f"tab_{_wid(label)}", "label": label, "layout": "vertical", "scroll": True,
                "widgets": widgets, "tabs": []}
    tabs = [tab("show", _osc_show_widgets(tree, presets))]
    tabs += [tab(label, [_osc_widget(s) for s in specs]) for label, specs in sections(tree)]
    session = {"createdWith": "Open Stage Control", "version": OSC_VERSION, "type": "session",
               "content": {"type": "root", "id": "root", "widgets": [], "tabs": tabs}}
    return json.dumps(session, indent=2, ensure_ascii=False) + "\n"


# -- TouchOSC ---------------------------------------------------------------------

def _prop(props: ET.Element, kind: str, key: str, value: object) -> None:
    p = ET.SubElement(props, "property", type=kind)
    ET.SubElement(p, "key").text = key
    v = ET.SubElement(p, "value")
    if kind == "r":
        for k, x in zip("xywh", value):  # type: ignore[arg-type]
            ET.SubElement(v, k).text = str(int(round(x)))  # TouchOSC frames are whole pixels
    elif kind == "c":
        for k, x in zip("rgba", value):  # type: ignore[arg-type]
            ET.SubElement(v, k).text = str(x)
    else:
        v.text = str(int(value)) if isinstance(value, bool) else str(value)


def _node(parent: ET.Element, kind: str, name: str, frame: tuple, extra: Iterable[tuple] = ()) -> ET.Element:
    node = ET.SubElement(parent, "node", ID=str(uuid.uuid5(_NS, f"{kind}:{name}")), type=kind)
    props = ET.SubElement(node, "properties")
    _prop(props, "s", "name", name)
    _prop(props, "r", "frame", frame)
    for kind_, key, value in extra:
        _prop(props, kind_, key, value)
    return node


def _value(node: ET.Element, key: str, default: object) -> None:
    values = node.find("values")
    if values is None:
        values = ET.SubElement(node, "values")
    v = ET.SubElement(values, "value")
    ET.SubElement(v, "key").text = key
    ET.SubElement(v, "locked").text = "0"
    ET.SubElement(v, "lockedDefaultCurrent").text = "0"
    ET.SubElement(v, "default").text = str(default)
    ET.SubElement(v, "defaultPull").text = "0"


def _partial(parent: ET.Element, kind: str, conversion: str, value: str) -> None:
    p = ET.SubElement(parent, "partial")
    for tag, text in (("type", kind), ("conversion", conversion), ("value", value), ("scaleMin", "0"),
                      ("scaleMax", "1")):
        ET.SubElement(p, tag).text = text


def _osc_message(node: ET.Element, address: str, argument: tuple[str, str, str], condition: str = "ANY",
                 feedback: bool = True) -> None:
    msgs = ET.SubElement(node, "messages")
    osc = ET.SubElement(msgs, "osc")
    for tag, text in (("enabled", "1"), ("send", "1"), ("receive", "1" if feedback else "0"), ("feedback", "0"),
                      ("connections", "00001")):
        ET.SubElement(osc, tag).text = text
    trig = ET.SubElement(ET.SubElement(osc, "triggers"), "trigger")
    ET.SubElement(trig, "var").text = "x"
    ET.SubElement(trig, "condition").text = condition
    _partial(ET.SubElement(osc, "path"), "CONSTANT", "STRING", address)
    _partial(ET.SubElement(osc, "arguments"), *argument)


def touchosc_layout(tree: ParamTree, presets: Sequence[str] = (), size: tuple[int, int] = (1024, 768)) -> bytes:
    """A TouchOSC layout (.tosc bytes: zlib-compressed XML) for ``tree``, with a load button per preset."""
    w, h = size
    root = ET.Element("lexml", version="3")
    top = _node(root, "GROUP", "tapestry", (0, 0, w, h), [("b", "background", True), ("b", "interactive", False)])
    _value(top, "touch", "false")
    pager = _node(ET.SubElement(top, "children"), "PAGER", "pages", (0, 0, w, h),
                  [("b", "tabbar", True), ("i", "tabbarSize", 40)])
    _value(pager, "page", 0)
    pages = ET.SubElement(pager, "children")
    row_h = (h - 40) // (PAGE_SIZE + 1)

    def page(label: str) -> ET.Element:
        p = _node(pages, "GROUP", f"page {label}", (0, 40, w, h - 40), [("s", "tabLabel", label)])
        return ET.SubElement(p, "children")

    def control(children: ET.Element, spec: ParamSpec, row: int) -> None:
        y = 8 + row * row_h
        label = _node(children, "LABEL", f"label {spec.path}", (8, y, w * 0.4, row_h - 6),
                      [("s", "text", _label(spec)), ("i", "textSize", 14), ("i", "textAlignH", 1)])
        _value(label, "text", _label(spec))
        frame = (w * 0.42, y, w * 0.56, row_h - 6)
        x = spec.normalize(spec.default)
        address = ROOT + spec.path + "/norm"
        if spec.kind == BOOL:
            node = _node(children, "BUTTON", spec.path, (frame[0], y, row_h * 2, row_h - 6), [("i", "buttonType", 1)])
        else:
            node = _node(children, "FADER", spec.path, frame, [("i", "orientation", 1), ("b", "cursor", True)])
        _value(node, "x", x)
        _osc_message(node, address, ("VALUE", "FLOAT", "x"))

    show = page("show")
    row = 0
    for path in SHOW_PAGE:
        if path in tree:
            control(show, tree.spec(path), row)
            row += 1
    for i, name in enumerate(presets[:PAGE_SIZE * 2]):
        col, r = divmod(i, PAGE_SIZE + 1 - row)
        y = 8 + (row + r) * row_h
        node = _node(show, "BUTTON", f"preset {name}", (8 + col * w * 0.5, y, w * 0.45, row_h - 6),
                     [("i", "buttonType", 0)])
        _value(node, "x", 0)
        _osc_message(node, ROOT + "preset/load", ("CONSTANT", "STRING", name), condition="RISE", feedback=False)
        lab = _node(show, "LABEL", f"preset label {name}", (8 + col * w * 0.5, y, w * 0.45, row_h - 6),
                    [("s", "text", f"load {name}"), ("b", "interactive", False)])
        _value(lab, "text", f"load {name}")
    for label, specs in sections(tree):
        children = page(label)
        for row, spec in enumerate(specs):
            control(children, spec, row)
    xml = b"<?xml version='1.0' encoding='UTF-8'?>\n" + ET.tostring(root, encoding="utf-8")
    return zlib.compress(xml, 9)


def write_surface(fmt: str, tree: ParamTree, presets: Sequence[str], out) -> int:
    """Write the layout in ``fmt`` to the path ``out``; returns the number of parameter controls."""
    if fmt == "open-stage-control":
        out.write_text(open_stage_control_session(tree, presets), encoding="utf-8")
    elif fmt == "touchosc":
        out.write_bytes(touchosc_layout(tree, presets))
    else:
        raise ValueError(f"unknown surface format {fmt!r} (expected one of {', '.join(FORMATS)})")
    return len(tree)
