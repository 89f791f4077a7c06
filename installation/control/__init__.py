"""Live control: the OSC server, the commands it enqueues for the engine, and the address-map docs."""

from installation.control.commands import (
    Command, ControlTarget, GetStatus, GetValue, GoScene, ListPresets, LoadPreset, SavePreset, SendSnapshot, SetParam,
)
from installation.control.docs import params_markdown
from installation.control.osc import OscConfig, OscServer

__all__ = ["Command", "ControlTarget", "GetStatus", "GetValue", "GoScene", "ListPresets", "LoadPreset",
           "OscConfig", "OscServer", "SavePreset", "SendSnapshot", "SetParam", "params_markdown"]
