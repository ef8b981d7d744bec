"""DRIVE's official file names, and which files make up each sample.

The layout (the same inside the zip, possibly below a ``DRIVE/`` folder)::

    training/images/NN_training.tif        21..40, RGB 565 x 584
    training/1st_manual/NN_manual1.gif     vessel masks, observer 1
    training/mask/NN_training_mask.gif     field of view
    test/images/NN_test.tif                01..20
    test/1st_manual/NN_manual1.gif
    test/2nd_manual/NN_manual2.gif         observer 2 (test only)
    test/mask/NN_test_mask.gif

Ids are read from the image names, not assumed to be 21..40 and 01..20, so a trimmed copy
works; names are matched without regard to case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import segsynth
from segsynth_drive.source import Source, member

Folder = Literal["training", "test"]

LAYOUT = """\
  training/images/NN_training.tif      (NN = 21..40)
  training/1st_manual/NN_manual1.gif
  training/mask/NN_training_mask.gif
  test/images/NN_test.tif              (NN = 01..20)
  test/1st_manual/NN_manual1.gif
  test/2nd_manual/NN_manual2.gif
  test/mask/NN_test_mask.gif"""


@dataclass(frozen=True)
class DriveSample:
    """Layout paths of one sample's image, vessel mask and field of view."""

    id: str
    image: str
    manual: str
    fov: str


def manual_folder(annotator: int) -> str:
    return "1st_manual" if annotator == 1 else "2nd_manual"


def _by_lower_name(source: Source, folder: str) -> dict[str, str]:
    return {name.lower(): name for name in source.names(folder)}


def find_samples(source: Source, folder: Folder, annotator: int) -> list[DriveSample]:
    """Every sample of ``folder`` with the masks of ``annotator``; missing files are errors."""
    image_pattern = re.compile(rf"^(\d+)_{folder}\.tif$", re.IGNORECASE)
    images = {
        m.group(1): name
        for name in source.names(f"{folder}/images")
        if (m := image_pattern.match(name))
    }
    if not images:
        raise segsynth.UserError(
            f"DRIVE at {source.where} has no images in {folder}/images/ (named NN_{folder}.tif). "
            f"Expected layout:\n{LAYOUT}"
        )
    manual_dir = f"{folder}/{manual_folder(annotator)}"
    manuals = _by_lower_name(source, manual_dir)
    fovs = _by_lower_name(source, f"{folder}/mask")
    samples = []
    for sample_id in sorted(images, key=int):
        manual = manuals.get(f"{sample_id}_manual{annotator}.gif")
        fov = fovs.get(f"{sample_id}_{folder}_mask.gif")
        for found, where, expected in (
            (manual, manual_dir, f"{sample_id}_manual{annotator}.gif"),
            (fov, f"{folder}/mask", f"{sample_id}_{folder}_mask.gif"),
        ):
            if found is None:
                raise segsynth.UserError(
                    f"DRIVE at {source.where}: image {folder}/images/{images[sample_id]} has no "
                    f"{where}/{expected}. The copy is incomplete; download DRIVE again."
                )
        samples.append(
            DriveSample(
                id=sample_id,
                image=member(f"{folder}/images", images[sample_id]),
                manual=member(manual_dir, manual),  # type: ignore[arg-type]
                fov=member(f"{folder}/mask", fov),  # type: ignore[arg-type]
            )
        )
    return samples
