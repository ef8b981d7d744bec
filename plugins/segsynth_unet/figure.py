"""The prediction grid: image | truth | one column per trained segmenter, for a few test images.

Numbers say how well each segmenter did; the grid shows *how* it failed (missed thin vessels,
speckle in the background), which is what a person checks first.
"""

from __future__ import annotations

from pathlib import Path

import torch

from segsynth.files import finish_figure, pyplot


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
) -> Path:
    """Write a PNG grid with one row per image; masks with several channels show their union."""
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
