"""The prediction grid (image | truth | one column per trained segmenter, for a few test images)
and, for K classes, the confusion matrices.

Numbers say how well each segmenter did; the grid shows *how* it failed (missed thin vessels,
speckle in the background), which is what a person checks first. With K classes the confusion
matrix shows which classes are taken for which (arteries read as veins, boundary as interior).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from segsynth import measures
from segsynth.files import finish_figure, pyplot
from segsynth.labels import class_index, colourise

#: an RGB display colour (``segsynth.labels.LabelTable.display_colours``)
Colour = tuple[int, int, int]


def _as_picture(image: torch.Tensor) -> tuple[torch.Tensor, str | None]:
    """A ``(C, H, W)`` tensor as something ``imshow`` draws: RGB as is, else the first channel in grey."""
    if image.shape[0] == 3:
        return image.permute(1, 2, 0).clamp(0, 1), None
    return image[0], "gray"


def prediction_grid(
    path: Path,
    images: torch.Tensor,
    truth: torch.Tensor,
    predictions: dict[str, torch.Tensor],
    ids: list[str],
    colours: Sequence[Colour] | None = None,
) -> Path:
    """Write a PNG grid with one row per image; masks with several channels show their union.

    ``colours`` (K one-hot classes: the display colour of each class index, background first):
    masks are drawn as class maps in those colours instead.
    """
    plt = pyplot()

    columns = {"image": images, "truth": truth} | {f"trained on {k}": v for k, v in predictions.items()}
    rows = images.shape[0]
    fig, axes = plt.subplots(
        rows, len(columns), figsize=(2.2 * len(columns), 2.2 * rows), squeeze=False
    )
    for row in range(rows):
        for col, (title, tensor) in enumerate(columns.items()):
            ax = axes[row][col]
            if title == "image":
                picture, cmap = _as_picture(tensor[row])
            elif colours is not None:
                picture = torch.from_numpy(colourise(class_index(tensor[row]), colours))
                cmap = None
            else:
                picture, cmap = tensor[row].amax(dim=0), "gray"
            ax.imshow(picture.numpy(), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
            if col == 0:
                ax.set_ylabel(ids[row], fontsize=8)
    return finish_figure(fig, path, dpi=100)


def confusion_figure(
    path: Path, confusions: dict[str, measures.ClassConfusion], names: Sequence[str], region: str
) -> Path:
    """One heat map per training set: the share of each true class (row) given each predicted
    class (column), with the share written in each cell; rows sum to 1 (a class absent from the
    truth is an empty row)."""
    plt = pyplot()
    panels = len(confusions)
    size = 1.2 + 0.55 * len(names)
    fig, axes = plt.subplots(1, panels, figsize=(size * panels, size), squeeze=False)
    for ax, (label, counts) in zip(axes[0], confusions.items(), strict=True):
        matrix = torch.tensor(counts.counts, dtype=torch.float64)
        shares = matrix / matrix.sum(dim=1, keepdim=True).clamp_min(1.0)
        ax.imshow(shares.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
        for t in range(len(names)):
            for p in range(len(names)):
                value = float(shares[t, p])
                ax.text(p, t, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if value > 0.6 else "black")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel("predicted class", fontsize=8)
        ax.set_ylabel("true class", fontsize=8)
        ax.set_title(f"trained on {label}\n(share of true row, {region})", fontsize=8)
    return finish_figure(fig, path, dpi=100)
