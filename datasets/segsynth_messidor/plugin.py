"""Entry point of the MESSIDOR data set (``segsynth`` entry-point group, ``messidor``)."""

from __future__ import annotations

import segsynth
from segsynth_messidor.adapter import Messidor

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """The MESSIDOR reader (the user supplies the photographs)."""
    return [Messidor]
