"""Venue-file validation: clear errors naming where, the key and the problem."""

from __future__ import annotations

import os

import pytest

from installation.outputs import OutputConfig, OutputError, Span, create_output, parse_output_config
from installation.outputs.base import OPTIONS, default_cid

W = "venue.toml [[outputs]] #1"


def parse(**d):
    d.setdefault("name", "wall")
    return parse_output_config(d, W)


def test_defaults_filled():
    c = parse(protocol="sacn")
    assert (c.host, c.port, c.fps, c.enabled) == ("127.0.0.1", None, 44.0, True)
    assert c.options["priority"] == 100 and c.options["multicast"] is False and c.options["cid"] == default_cid("wall")
    assert parse(protocol="artnet").options["sync"] is False
    assert parse(protocol="osc").options["type"] == "blob"
    assert parse(protocol="ddp").options["dest_id"] == 1


@pytest.mark.parametrize("d, key, problem", [
    ({"protocol": "dmx"}, "protocol", "must be one of"),
    ({"protocol": "sacn", "port": 70000}, "port", "1..65535"),
    ({"protocol": "sacn", "fps": 0}, "fps", "must be in"),
    ({"protocol": "enttec", "fps": 60, "options": {"device": "/dev/x"}}, "fps", "44"),
    ({"protocol": "enttec"}, "options.device", "required"),
    ({"protocol": "sacn", "options": {"priority": 201}}, "options.priority", "0..200"),
    ({"protocol": "sacn", "options": {"priority": "high"}}, "options.priority", "integer"),
    ({"protocol": "sacn", "options": {"cid": "nope"}}, "options.cid", "UUID"),
    ({"protocol": "sacn", "options": {"source_name": "x" * 64}}, "options.source_name", "63 bytes"),
    ({"protocol": "sacn", "options": {"sync_universe": 64000}}, "options.sync_universe", "63999"),
    ({"protocol": "artnet", "options": {"sync": 1}}, "options.sync", "true or false"),
    ({"protocol": "artnet", "options": {"priority": 1}}, "priority", "unknown option"),
    ({"protocol": "osc", "options": {"type": "strings"}}, "options.type", "blob, floats, ints"),
    ({"protocol": "artnet", "universe": 1}, "universe", "unknown key"),
    ({"protocol": "artnet", "enabled": "yes"}, "enabled", "true or false"),
    ({"protocol": "artnet", "options": {"keepalive": 10}}, "options.keepalive", "0.1..4.0"),
])
def test_errors_name_where_key_problem(d, key, problem):
    with pytest.raises(OutputError) as e:
        parse(**d)
    msg = str(e.value)
    assert W in msg and key in msg and problem in msg, msg


def test_missing_name_and_not_a_table():
    with pytest.raises(OutputError, match="'name' is required"):
        parse_output_config({"protocol": "ddp"}, W)
    with pytest.raises(OutputError, match="must be a table"):
        parse_output_config(["x"], W)


@pytest.mark.parametrize("protocol, span, problem", [
    ("artnet", Span(32768, 0, 3), "0..32767"),
    ("artnet", Span(1, 0, 513), "512"),
    ("sacn", Span(0, 0, 3), "1..63999"),
    ("sacn", Span("1", 0, 3), "1..63999"),
    ("osc", Span("leds", 0, 3), "OSC address"),
    ("osc", Span("/le ds", 0, 3), "OSC address"),
    ("ddp", Span(-1, 0, 3), "DDP"),
    ("artnet", Span(1, -1, 3), "offset"),
    ("artnet", Span(1, 0, 0), "length"),
])
def test_bad_spans_rejected(protocol, span, problem):
    with pytest.raises(OutputError, match=problem):
        create_output(OutputConfig(name="x", protocol=protocol), [span])


def test_duplicate_universe_and_enttec_overflow():
    with pytest.raises(OutputError, match="patched twice"):
        create_output(OutputConfig(name="x", protocol="sacn"), [Span(1, 0, 3), Span(1, 3, 3)])
    with pytest.raises(OutputError, match="at most 512"):
        create_output(OutputConfig(name="x", protocol="enttec", options={"device": "/dev/null"}),
                      [Span(0, 0, 300), Span(0, 300, 300)])


def test_docs_list_every_option():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "outputs.md")
    text = open(path, encoding="utf-8").read()
    for protocol, specs in OPTIONS.items():
        assert f"## {protocol}" in text.lower() or protocol in text
        for s in specs:
            assert f"`{s.key}`" in text, f"docs/outputs.md does not describe {protocol} option {s.key}"


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_values = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
                    st.text(max_size=70), st.lists(st.integers(), max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["name", "protocol", "host", "port", "fps", "enabled", "options", "junk"]),
                       _values, max_size=7),
       st.dictionaries(st.sampled_from(["sync", "priority", "source_name", "cid", "multicast", "sync_universe",
                                        "interface", "dest_id", "data_type", "type", "device", "keepalive"]),
                       _values, max_size=5),
       st.sampled_from(["artnet", "sacn", "ddp", "osc", "enttec"]))
def test_junk_tables_raise_only_output_error(table, options, protocol):
    table = dict(table)
    table.setdefault("protocol", protocol)
    if "options" not in table:
        table["options"] = options
    try:
        c = parse_output_config(table, W)
    except OutputError as e:
        assert W in str(e)
    else:
        assert c.protocol in OPTIONS and set(c.options) == {s.key for s in OPTIONS[c.protocol]}
