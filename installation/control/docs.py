"""The OSC address map as Markdown (for ``python run.py params`` and docs/osc.md)."""

from __future__ import annotations

from pathlib import Path

from installation.control.commands import ROOT
from installation.control.osc import ALIASES
from installation.params import ParamTree

COMMANDS: tuple[tuple[str, str, str], ...] = (
    (ROOT + "preset/load", "s [f]", "Load preset NAME, crossfading over FADE_S seconds (default: show/fade). "
                                    "Replies /tapestry/preset/loaded NAME."),
    (ROOT + "preset/save", "s", "Save the look (look-scope parameters only) as preset NAME ([A-Za-z0-9_-], "
                                "1-64 characters), written off the frame thread. Refuses to overwrite a shipped "
                                "preset. Replies /tapestry/preset/saved NAME once written."),
    (ROOT + "preset/save/force", "s", "Same as preset/save (kept for old clients): shipped presets are never "
                                      "overwritten over the network."),
    (ROOT + "venue/save", "", "Save the venue-scope parameters (the calibration) to the venue's params file "
                              "(<venue>.params.toml). Replies /tapestry/venue/saved."),
    (ROOT + "preset/list", "", "Replies /tapestry/presets NAME... (several messages if long), "
                               "then /tapestry/presets/end COUNT."),
    (ROOT + "scene/go", "s", "Jump to scene NAME. Replies /tapestry/scene/current NAME."),
    (ROOT + "get", "s", "Replies /tapestry/value PATH VALUE (the value set, before modulation)."),
    (ROOT + "list", "", "Replies /tapestry/paths PATH... (several messages if long), then /tapestry/paths/end COUNT."),
    (ROOT + "subscribe", "[i]", "Send feedback to PORT on your IP (default: where replies go): every change as "
                                "/tapestry/<path> VALUE and "
                              "/tapestry/<path>/norm 0..1, a snapshot of all values now, and "
                              "/tapestry/heartbeat FPS FRAME_MS INTENSITY about once a second. "
                              "Expires after 60 s: send it again to renew."),
    (ROOT + "unsubscribe", "[i]", "Stop feedback to PORT (or to every port of your IP)."),
    (ROOT + "verify", "i", "Prove your address: answer the /tapestry/token TOKEN that /tapestry/subscribe sent "
                           "to a sender outside osc.trusted. Replies /tapestry/verified TTL_S, then the "
                           "subscription starts; replies of any size then reach you."),
    (ROOT + "status", "", "Replies /tapestry/status FPS FRAME_MS INTENSITY SCENE PRESET."),
)

_OSC_TYPE = {"float": "f (i accepted)", "int": "i (f rounded)", "bool": "T/F or i 0/1", "choice": "s (or i index)"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def params_markdown(tree: ParamTree, include_commands: bool = True) -> str:
    """A TouchOSC-friendly address map of ``tree``: parameters, fader addresses, aliases and (optionally) commands."""
    lines = [
        "## Parameters",
        "",
        f"Every parameter is addressable at `{ROOT}<path>` with one argument of its type, and at "
        f"`{ROOT}<path>/norm` with a float 0..1 (for faders). Out-of-range numbers are clamped "
        "(with a `/tapestry/warning` reply); wrong types, NaN and infinities are refused with a "
        "`/tapestry/error` reply.",
        "",
        "Scope: *look* values are saved in presets and crossfade when one loads; *venue* values (the "
        "technician's calibration) are saved with `/tapestry/venue/save` in the venue's params file and no "
        "preset changes them; *machine* values are quality settings for this computer, never saved in a look.",
        "",
        "| Address | OSC type | Range | Default | Scope | Description |",
        "|---|---|---|---|---|---|",
    ]
    for spec, (address, kind, rng, default, desc) in zip(tree.specs(), tree.table(ROOT)):
        lines.append(f"| `{address}` | {_OSC_TYPE.get(kind, kind)} | {_cell(rng)} | {_cell(default)} | "
                     f"{spec.scope} | {_cell(desc)} |")
    aliases = [(a, p) for a, p in ALIASES.items() if p in tree]
    if aliases:
        lines += ["", "## Shortcuts", "", "| Address | Same as |", "|---|---|"]
        lines += [f"| `{ROOT}{a}`, `{ROOT}{a}/norm` | `{ROOT}{p}`, `{ROOT}{p}/norm` |" for a, p in aliases]
    if include_commands:
        lines += ["", "## Commands", "", "| Address | Arguments | What it does |", "|---|---|---|"]
        lines += [f"| `{a}` | {args or '-'} | {_cell(desc)} |" for a, args, desc in COMMANDS]
        lines += ["", "Errors come back to the sender as `/tapestry/error MESSAGE`; pattern addresses "
                      "(`* ? [ ] { }`) are refused."]
    lines.append("")
    return "\n".join(lines)


def update_address_map(doc: Path, tree: ParamTree) -> bool:
    """Rewrite the generated parameter table between the ``params:begin``/``params:end`` markers of ``doc``.

    Returns True if the file changed.
    """
    text = doc.read_text(encoding="utf-8")
    begin = text.index("<!-- params:begin")
    begin = text.index("\n", begin) + 1
    end = text.index("<!-- params:end")
    new = text[:begin] + params_markdown(tree, include_commands=False).rstrip() + "\n" + text[end:]
    if new != text:
        doc.write_text(new, encoding="utf-8")
    return new != text
