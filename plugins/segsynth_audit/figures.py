"""The audit's pictures: statistic histograms, distance-to-closest-record histograms, nearest pairs.

A number says *that* something is off; these show *what*: which statistic has a missing mode,
where the synthetic distances sit against the held-out ones, and whether the closest pairs are
visibly the same picture (memorisation) or merely similar anatomy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from segsynth.files import finish_figure, pyplot
from segsynth.labels import class_index, colourise

#: an RGB display colour (``segsynth.labels.LabelTable.display_colours``)
Colour = tuple[int, int, int]


def statistics_figure(
    path: Path,
    real: dict[str, np.ndarray],
    synthetic: dict[str, np.ndarray],
    units: dict[str, str],
    bins: int,
) -> Path:
    """One panel per statistic: density histograms of real and synthetic values on shared bins."""
    plt = pyplot()
    names = list(units)
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        r = real[name][~np.isnan(real[name])]
        s = synthetic[name][~np.isnan(synthetic[name])]
        pooled = np.concatenate([r, s])
        if pooled.size:
            low, high = float(pooled.min()), float(pooled.max())
            edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
            for values, label in ((r, "real train"), (s, "synthetic")):
                if values.size:
                    ax.hist(values, bins=edges, density=True, histtype="step", label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(units[name], fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes[0][0].legend(fontsize=8)
    return finish_figure(fig, path, dpi=100)


def coverage_figure(
    path: Path,
    sets: dict[str, dict[str, np.ndarray]],
    statistics: dict[str, str],
    shares: dict[str, dict[str, float]],
    thresholds: dict[str, float],
    bins: int,
) -> Path:
    """Per-mask distributions of several sets overlaid, and their shares of empty / sparse masks.

    ``sets`` maps a set label (real train, real test, synthetic) to its statistics;
    ``statistics`` names the panels (statistic -> unit); ``shares`` maps a set label to its
    ``{"empty": share, "sparse": share}`` and ``thresholds`` gives the foreground fraction below
    which a mask is ``empty`` / ``sparse`` (drawn as lines on the foreground-fraction panel).
    Histograms are densities on shared bins, so sets of different sizes compare.
    """
    plt = pyplot()
    names = list(statistics)
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(4.0 * (len(names) + 1), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=False):
        values = {label: v[name][~np.isnan(v[name])] for label, v in sets.items()}
        pooled = np.concatenate(list(values.values()))
        if pooled.size:
            low, high = float(pooled.min()), float(pooled.max())
            edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
            for k, (label, v) in enumerate(values.items()):
                if v.size:  # dashes keep a set visible where it coincides with another
                    ax.hist(v, bins=edges, density=True, histtype="step", label=label,
                            linestyle=("-", "--", "-.")[k % 3])
        if name == "foreground_fraction":
            for kind, limit in thresholds.items():
                ax.axvline(limit, color="grey", linestyle=":", linewidth=1)
                ax.annotate(kind, (limit, 1.0), xycoords=("data", "axes fraction"), fontsize=7,
                            rotation=90, va="top", ha="right", color="grey")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(statistics[name], fontsize=8)
    axes[0][0].legend(fontsize=8)
    ax = axes[0][-1]
    kinds = list(thresholds)
    width = 0.8 / max(len(shares), 1)
    for k, (label, share) in enumerate(shares.items()):
        xs = np.arange(len(kinds)) + (k - (len(shares) - 1) / 2) * width
        bars = ax.bar(xs, [100.0 * share[kind] for kind in kinds], width=width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(np.arange(len(kinds)),
                  [f"{kind} (fg < {thresholds[kind]:.1%})" for kind in kinds], fontsize=8)
    ax.set_ylabel("% of masks", fontsize=8)
    ax.set_title("empty and sparse masks", fontsize=9)
    ax.legend(fontsize=8)
    return finish_figure(fig, path, dpi=100)


def dcr_figure(
    path: Path,
    spaces: dict[str, tuple[np.ndarray, np.ndarray | None, float | None]],
    bins: int = 30,
) -> Path:
    """One panel per space: DCR of synthetic vs held-out samples, with the near-copy threshold.

    ``spaces`` maps a space name to ``(synthetic DCR, held-out DCR or None, threshold or None)``.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, len(spaces), figsize=(4.5 * len(spaces), 3.2), squeeze=False)
    for ax, (space, (synthetic, holdout, threshold)) in zip(axes[0], spaces.items(), strict=True):
        pooled = synthetic if holdout is None else np.concatenate([synthetic, holdout])
        high = float(pooled.max()) if pooled.size else 1.0
        edges = np.linspace(0.0, high if high > 0 else 1.0, bins + 1)
        ax.hist(synthetic, bins=edges, density=True, histtype="step", label="synthetic")
        if holdout is not None:
            ax.hist(holdout, bins=edges, density=True, histtype="step", label="real held-out")
        if threshold is not None:
            ax.axvline(threshold, color="red", linestyle="--", label="near-copy threshold")
        ax.set_title(f"{space}: distance to closest training record", fontsize=9)
        ax.set_xlabel("distance", fontsize=8)
        ax.legend(fontsize=7)
    return finish_figure(fig, path, dpi=100)


def _picture(
    tensor: torch.Tensor, is_mask: bool, colours: Sequence[Colour] | None = None
) -> tuple[np.ndarray, str | None]:
    """``(C, H, W)`` as ``imshow`` input: a mask's channel union (with ``colours``, K one-hot
    classes: its class map in those colours), an RGB image, else channel 0, in grey."""
    if is_mask and colours is not None:
        return colourise(class_index(tensor), colours), None
    if is_mask:
        return tensor.max(dim=0).values.numpy(), "gray"
    if tensor.shape[0] == 3:
        return tensor.permute(1, 2, 0).clamp(0, 1).numpy(), None
    return tensor[0].numpy(), "gray"


def nearest_pairs_figure(
    path: Path,
    rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]],
    colours: Sequence[Colour] | None = None,
) -> Path:
    """One row per pair: synthetic mask | synthetic image | nearest train image | nearest train mask.

    ``rows`` hold ``(synthetic mask, synthetic image, train image, train mask, caption)``; masks
    with several channels show their union (K one-hot classes with ``colours``: class maps in
    those colours), images other than RGB their first channel.
    """
    plt = pyplot()
    titles = ("synthetic mask", "synthetic image", "nearest train image", "nearest train mask")
    fig, axes = plt.subplots(len(rows), 4, figsize=(9.0, 2.4 * len(rows)), squeeze=False)
    for r, (s_mask, s_image, t_image, t_mask, caption) in enumerate(rows):
        for c, tensor in enumerate((s_mask, s_image, t_image, t_mask)):
            picture, cmap = _picture(tensor, c in (0, 3), colours)
            ax = axes[r][c]
            ax.imshow(picture, cmap=cmap, vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
        axes[r][0].set_ylabel(caption, fontsize=7)
    return finish_figure(fig, path, dpi=100)
