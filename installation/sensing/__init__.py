"""Sensing: camera and microphone measurements for the mood model.

Live: :class:`SensorHub` (capture threads, non-blocking ``latest()``).
Offline and replay: :class:`OfflineSensors`.  The ``sense`` command:
:func:`run_sense`.  ``PARAMS`` declares every ``sensing/*`` parameter.
"""

from __future__ import annotations

from installation.params import ParamSpec

from .camera import PARAMS as CAMERA_PARAMS
from .frames import AudioFrame, CameraFrame, Person
from .microphone import PARAMS as AUDIO_PARAMS

PARAMS: tuple[ParamSpec, ...] = CAMERA_PARAMS + AUDIO_PARAMS

from .hub import SensorHub  # noqa: E402  (needs PARAMS)
from .sense import run_sense  # noqa: E402
from .sources import OfflineSensors  # noqa: E402

__all__ = ["PARAMS", "Person", "CameraFrame", "AudioFrame", "SensorHub", "OfflineSensors", "run_sense"]
