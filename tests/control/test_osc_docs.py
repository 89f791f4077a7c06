"""The generated address map names every address the server answers."""

import queue

from installation.control.docs import COMMANDS, params_markdown
from installation.control.osc import OscServer
from installation.params import ParamSpec
from tests.control.conftest import make_tree


def test_markdown_lists_every_param_alias_and_command():
    tree = make_tree()
    md = params_markdown(tree)
    for path in tree.paths():
        assert f"`/tapestry/{path}`" in md
    assert ("| `/tapestry/master`, `/tapestry/master/norm` | `/tapestry/show/master`, `/tapestry/show/master/norm` |"
            in md)
    assert "one of moss, ember, tide" in md
    assert "(takes effect on restart)" in md
    server = OscServer(tree, queue.Queue())
    # every command the server routes is documented, and nothing else is claimed
    routed = {a for a, r in server._routes.items() if r.kind not in ("set", "norm")}
    assert routed == {a for a, _, _ in COMMANDS}


def test_pipes_in_descriptions_do_not_break_the_table():
    tree = make_tree()
    tree.declare([ParamSpec("x/mode", "choice", "a|b", "either a|b or c", choices=("a|b", "c"))])
    row = next(line for line in params_markdown(tree).splitlines() if "/tapestry/x/mode" in line)
    assert row.count(" | ") == 5  # six columns: address, type, range, default, scope, description


def test_documented_osc_section_is_a_valid_config():
    import re
    import tomllib
    from pathlib import Path

    from installation.control.osc import OscConfig

    doc = (Path(__file__).resolve().parents[2] / "docs" / "osc.md").read_text()
    table = tomllib.loads(re.search(r"```toml\n(.*?)```", doc, re.S).group(1))["osc"]
    cfg = OscConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in table.items()})
    assert cfg.reply_port == 9001 and "192.168.10.0/24" in cfg.allow


def test_markdown_without_commands():
    md = params_markdown(make_tree(), include_commands=False)
    assert "## Commands" not in md and "`/tapestry/field/palette`" in md
