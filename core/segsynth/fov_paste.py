"""Real fields of view pasted onto synthetic pairs (``synthesis.fields_of_view``).

Why: where the real samples have a field of view (the black surround of a fundus photograph,
an ultrasound sector), the rim of that field is a strong edge that is never foreground. A mask
generator knows nothing of it, and a translator given a mask cannot tell "no vessel here" from
"outside the camera's field" (on HRF tiles pix2pix painted grey-brown hedges). A segmenter
trained on such pairs has never seen a rim and marks it as vessel all along the border of
every real test photograph (issue 12: synthetic-only precision 0.66 against 0.81 real).

So each synthetic pair takes the field of view of a random real training sample, drawn with
the real frequency of each shape: image and mask are set to zero outside it, as the padding
and the surround of real samples are. The shapes are the acquisition's geometry (where a tile
lies on the disc), not a patient's anatomy; they are kept, deduplicated, in the run folder
(``RunFolder.fields_of_view``) and in an exported model's config so that `synth sample` and
`sample-model` draw exactly like the run.

Pairing (``synthesis.fields_of_view_pairing``). A mask generator trained on real tiles has
learnt rim tiles too: some of its masks already leave a corner empty where a real rim would
be. A shape drawn at random for each pair then cuts vessels from masks that had room for a
rim elsewhere, and rims land twice on rim-like masks: on HRF tiles the pasted masks lost a
fifth of their vessel pixels and skeleton (issue 12). ``"fit"`` keeps the shapes drawn for a
batch (so their frequencies stay the real ones) and only reorders them among the batch's
pairs, by an optimal assignment that cuts the fewest foreground pixels: a rim goes to a mask
whose empty corner it fits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import torch
from scipy.optimize import linear_sum_assignment

from segsynth.files import atomic_write_text
from segsynth.params import FovPairing

__all__ = ["FOV_PAIRINGS", "FieldsOfView", "PastedSampler", "fitting_order"]

FOV_PAIRINGS: tuple[str, ...] = get_args(FovPairing)


def _runs(flat: torch.Tensor) -> list[int]:
    """Run lengths of a flat 0/1 tensor, starting with a run of zeros (possibly empty)."""
    changes = (torch.nonzero(flat[1:] != flat[:-1]).flatten() + 1).tolist()
    runs = torch.diff(torch.tensor([0, *changes, flat.numel()])).tolist()
    return [0, *runs] if int(flat[0]) == 1 else runs


def _unruns(runs: list[int], size: int) -> torch.Tensor:
    flat = torch.zeros(size, dtype=torch.float32)
    at, value = 0, 0
    for length in runs:
        if value:
            flat[at : at + length] = 1.0
        at += length
        value = 1 - value
    if at != size:
        raise ValueError(f"fields of view: run lengths cover {at} pixels, not {size}")
    return flat


def fitting_order(masks: torch.Tensor, fovs: torch.Tensor) -> torch.Tensor:
    """The order of ``fovs`` (one per mask) that cuts the fewest foreground pixels of ``masks``.

    ``order[i]`` is the field of view mask ``i`` gets; the cost of a pairing is the mask's
    foreground (summed over channels) outside the field, minimised over the whole batch at once
    (Hungarian assignment, deterministic).
    """
    foreground = masks.detach().float().sum(1).flatten(1).cpu()
    outside = (1.0 - fovs.detach().float()).flatten(1).cpu()
    cost = (foreground @ outside.T).double().numpy()
    rows, columns = linear_sum_assignment(cost)
    order = torch.empty(len(rows), dtype=torch.long)
    order[torch.from_numpy(rows)] = torch.from_numpy(columns)
    return order


class FieldsOfView:
    """Distinct binary field-of-view shapes ``(S, 1, H, W)``, how often each occurred, and how
    drawn shapes are paired with masks (``"random"`` or ``"fit"``, see the module)."""

    def __init__(self, shapes: torch.Tensor, counts: torch.Tensor, pairing: str = "random") -> None:
        if pairing not in FOV_PAIRINGS:
            raise ValueError(f"fields of view: pairing {pairing!r} is not one of {', '.join(FOV_PAIRINGS)}")
        self.pairing = pairing
        if shapes.ndim != 4 or shapes.shape[1] != 1 or shapes.shape[0] != counts.numel() or not len(counts):
            raise ValueError(f"fields of view need (S, 1, H, W) shapes and S counts, got "
                             f"{tuple(shapes.shape)} and {counts.numel()}")
        self.shapes = (shapes > 0.5).float()
        self.counts = counts.double()

    @classmethod
    def from_fovs(cls, fovs: torch.Tensor, pairing: str = "random") -> FieldsOfView:
        """The distinct shapes of real fields of view ``(N, 1, H, W)`` with their frequencies."""
        binary = (fovs > 0.5).to(torch.uint8).flatten(1)
        unique, counts = torch.unique(binary, dim=0, return_counts=True)
        return cls(unique.float().view(-1, 1, *fovs.shape[-2:]), counts, pairing)

    def paste(
        self, masks: torch.Tensor, images: torch.Tensor, generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``masks`` and ``images`` zeroed outside a field of view drawn for each pair."""
        if masks.shape[-2:] != self.shapes.shape[-2:]:
            raise ValueError(f"fields of view are {tuple(self.shapes.shape[-2:])} but the pairs are "
                             f"{tuple(masks.shape[-2:])}")
        picks = torch.multinomial(self.counts, masks.shape[0], replacement=True, generator=generator)
        fov = self.shapes[picks]
        if self.pairing == "fit":
            fov = fov[fitting_order(masks, fov)]
        return masks * fov.to(masks), images * fov.to(images)

    def to_json(self) -> dict[str, Any]:
        """Shapes as run lengths (a rim tile is a handful of runs), with their counts."""
        height, width = self.shapes.shape[-2:]
        rows = [_runs(shape.flatten().to(torch.int64)) for shape in self.shapes]
        return {"size": [int(height), int(width)], "pairing": self.pairing,
                "shapes": [{"count": int(c), "runs": r} for c, r in zip(self.counts.tolist(), rows, strict=True)]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FieldsOfView:
        height, width = (int(v) for v in data["size"])
        shapes = torch.stack([_unruns(item["runs"], height * width).view(1, height, width)
                              for item in data["shapes"]])
        counts = torch.tensor([float(item["count"]) for item in data["shapes"]])
        return cls(shapes, counts, str(data.get("pairing", "random")))  # older runs: random

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_json()) + "\n")

    @classmethod
    def load(cls, path: Path) -> FieldsOfView:
        return cls.from_json(json.loads(Path(path).read_text()))


class PastedSampler:
    """A pair sampler whose pairs get real fields of view (after every other draw of the batch)."""

    def __init__(self, sample: Any, fields: FieldsOfView) -> None:
        self.sample = sample
        self.fields = fields

    def __call__(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        masks, images = self.sample(n, generator)
        return self.fields.paste(masks, images, generator)
