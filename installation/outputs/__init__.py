"""LED outputs: Art-Net 4, sACN E1.31, DDP, OSC and Enttec DMX USB Pro behind one `Output` contract."""

from __future__ import annotations

from typing import Mapping, Sequence

from .artnet import ArtNetOutput
from .base import Output, OutputConfig, OutputError, Span, parse_output_config
from .ddp import DdpOutput
from .enttec import EnttecOutput
from .osc import OscOutput
from .sacn import SacnOutput

OUTPUT_CLASSES: Mapping[str, type[Output]] = {
    "artnet": ArtNetOutput,
    "sacn": SacnOutput,
    "ddp": DdpOutput,
    "osc": OscOutput,
    "enttec": EnttecOutput,
}


def create_output(config: OutputConfig, spans: Sequence[Span]) -> Output:
    """Build the output for `config.protocol` (raises OutputError for an unknown protocol or bad spans)."""
    cls = OUTPUT_CLASSES.get(config.protocol)
    if cls is None:
        raise OutputError(f"output '{config.name}': unknown protocol {config.protocol!r} "
                          f"(one of {', '.join(OUTPUT_CLASSES)})")
    return cls(config, spans)


__all__ = ["Output", "OutputConfig", "OutputError", "Span", "create_output", "parse_output_config",
           "OUTPUT_CLASSES"]
