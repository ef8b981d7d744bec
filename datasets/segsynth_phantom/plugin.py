"""Entry point of the built-in phantom data sets (``segsynth`` entry-point group, ``phantom``)."""

from __future__ import annotations

import segsynth
from segsynth_phantom.cells import CellsPhantom
from segsynth_phantom.retina import RetinaPhantom

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """The procedural retina (default data of segsynth) and nuclei data sets."""
    return [RetinaPhantom, CellsPhantom]
