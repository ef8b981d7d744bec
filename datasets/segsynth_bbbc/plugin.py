"""Entry point of the BBBC nuclei data sets (``segsynth`` entry-point group, ``bbbc``)."""

from __future__ import annotations

import segsynth
from segsynth_bbbc.bbbc038 import Bbbc038
from segsynth_bbbc.bbbc039 import Bbbc039
from segsynth_bbbc.crops import Bbbc039Crops

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """BBBC039 and BBBC038 (user-supplied) and the built-in BBBC039 crops."""
    return [Bbbc039, Bbbc038, Bbbc039Crops]
