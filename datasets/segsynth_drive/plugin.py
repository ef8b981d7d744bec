"""Entry point of the DRIVE data set (``segsynth`` entry-point group, ``drive``)."""

from __future__ import annotations

import segsynth
from segsynth_drive.adapter import Drive

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """The DRIVE adapter (the user supplies the data)."""
    return [Drive]
