"""Per-channel intensity histograms of real train, real test and synthetic images in one picture.

The KL number says *that* the distributions differ; the curves show *how* (a missing dark
background, a shifted mode, clipped highlights).
"""

from __future__ import annotations

from pathlib import Path

import torch

from segsynth.files import finish_figure, pyplot


def histogram_figure(path: Path, histograms: dict[str, torch.Tensor], region: str) -> Path:
    """Write one panel per channel, one step curve per image set; ``histograms`` are ``(C, bins)``."""
    plt = pyplot()

    channels = next(iter(histograms.values())).shape[0]
    fig, axes = plt.subplots(1, channels, figsize=(4.0 * channels, 3.0), squeeze=False)
    for c in range(channels):
        ax = axes[0][c]
        for label, hist in histograms.items():
            bins = hist.shape[1]
            edges = torch.linspace(0.0, 1.0, bins + 1).numpy()
            ax.stairs(hist[c].numpy(), edges, label=label)
        ax.set_title(f"channel {c} ({region})", fontsize=9)
        ax.set_xlabel("intensity")
        ax.set_ylabel("fraction of pixels")
        ax.set_yscale("log")
    axes[0][0].legend(fontsize=8)
    return finish_figure(fig, path, dpi=100)
