"""Entry point of the paired-folders data set (``segsynth`` entry-point group, ``folders``)."""

from __future__ import annotations

import segsynth
from segsynth_folders.adapter import PairedFolders

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """The generic folders-of-files adapter."""
    return [PairedFolders]
