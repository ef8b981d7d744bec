#!/usr/bin/env python
"""Make the built-in BBBC039 crops shipped in ``datasets/segsynth_bbbc/data`` (provenance).

The ``bbbc039_crops`` data set lets segsynth train on real nuclei without any download. This
script is how its files were made; re-running it reproduces the same pixels and manifest (the
PNG bytes, and so the recorded hashes, can differ with another Pillow or zlib version):

1. Take the BBBC039 subset in ``../shared/data/BBBC039`` (see that folder's README: 40 of the
   200 images, copied from github.com/DeepTrackAI/cell_counting_dataset at commit
   d460149beb419c92785edcdef0628c5bf66f3325; CC0).
2. In each image, slide a ``--size`` window on a 16-pixel grid and keep the window whose
   foreground fraction is between 0.2 and 0.45 and that holds the most pixels where two nuclei
   touch (so the boundary channel has something to learn); ties go to the first window in
   raster order. Images without such a window (one field holds no nucleus at all) are skipped.
3. Of the images left, in sorted name order, take ``--count`` spread evenly (one crop per
   image, so a train/test split of crops never puts two pieces of one image on both sides).
4. Write the window's raw 12-bit values as a 16-bit PNG and its red-channel labels (0..3) as
   an 8-bit PNG, and record in ``crops.json`` the source files, the window, and the source
   image's 0.5th/99.5th intensity percentiles, so that a crop is normalised exactly like the
   same pixels seen by the ``bbbc039`` adapter on the whole image.

Usage: ``python tools/make_bbbc_crops.py [--source DIR] [--out DIR] [--count 24] [--size 128]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from segsynth_bbbc.labels import colour_labels, count_instances, touching_boundary

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "BBBC039"
OUT = ROOT / "datasets" / "segsynth_bbbc" / "data"
PERCENTILES = (0.5, 99.5)
MIRROR = "github.com/DeepTrackAI/cell_counting_dataset"
COMMIT = "d460149beb419c92785edcdef0628c5bf66f3325"


def crop_id(name: str) -> str:
    """``IXMtest_A02_s1_w1051DAA7C-....tif`` -> ``A02_s1`` (well and site)."""
    match = re.match(r"IXMtest_([A-P]\d{2}_s\d+)_", name)
    if match is None:
        raise SystemExit(f"unexpected BBBC039 file name {name}")
    return match.group(1)


def best_window(labels: np.ndarray, size: int, stride: int = 16) -> tuple[int, int] | None:
    """``(top, left)`` of the window chosen by the rule in the module docstring, if any."""
    foreground = labels > 0
    touching = touching_boundary(labels)
    height, width = labels.shape
    best: tuple[int, int, int] | None = None
    for top in range(0, height - size + 1, stride):
        for left in range(0, width - size + 1, stride):
            window = (slice(top, top + size), slice(left, left + size))
            if 0.2 <= float(foreground[window].mean()) <= 0.45:
                score = int(touching[window].sum())
                if best is None or score > best[0]:
                    best = (score, top, left)
    return None if best is None else (best[1], best[2])


def read_pair(source: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw uint16 image, red label channel and instance labels of one source image."""
    mask_name = Path(name).with_suffix(".png").name
    raw = np.asarray(Image.open(source / "images" / name))
    red = np.asarray(Image.open(source / "masks" / mask_name).convert("RGB"))[..., 0]
    if raw.dtype != np.uint16 or raw.shape != red.shape:
        raise SystemExit(f"{name}: expected a uint16 image the size of its mask")
    labels = colour_labels(np.repeat(red[..., None], 3, axis=-1) / 255.0, mask_name)
    return raw, red, labels


def save_png(array: np.ndarray, path: Path) -> str:
    """Write ``array`` (uint16 -> 16-bit, uint8 -> 8-bit greyscale PNG); return its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG", optimize=True)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()

    names = sorted(p.name for p in (args.source / "images").glob("*.tif"))
    usable = []
    for name in names:
        raw, red, labels = read_pair(args.source, name)
        window = best_window(labels, args.size)
        if window is not None:
            usable.append((name, window))
    if len(usable) < args.count:
        raise SystemExit(f"only {len(usable)} images of {args.source} have a usable window")
    picks = np.linspace(0, len(usable) - 1, args.count).round().astype(int)
    crops = []
    for index in picks:
        name, (top, left) = usable[int(index)]
        raw, red, labels = read_pair(args.source, name)
        window = (slice(top, top + args.size), slice(left, left + args.size))
        low, high = np.percentile(raw, PERCENTILES)
        ident = crop_id(name)
        crops.append({
            "id": ident,
            "image": f"images/{ident}.png",
            "mask": f"masks/{ident}.png",
            "image_sha256": save_png(raw[window].copy(), args.out / "images" / f"{ident}.png"),
            "mask_sha256": save_png(red[window].copy(), args.out / "masks" / f"{ident}.png"),
            "source_image": f"images/{name}",
            "source_mask": f"masks/{Path(name).with_suffix('.png').name}",
            "top": top,
            "left": left,
            "low": float(low),
            "high": float(high),
            "foreground": round(float((labels[window] > 0).mean()), 4),
            "nuclei": count_instances(labels[window]),
        })
    if len({c["id"] for c in crops}) != len(crops):
        raise SystemExit("crop ids are not unique")
    manifest = {
        "dataset": "BBBC039v1 (Caicedo et al. 2019; Broad Bioimage Benchmark Collection)",
        "licence": "CC0-1.0",
        "mirror": MIRROR,
        "commit": COMMIT,
        "made_by": "tools/make_bbbc_crops.py",
        "size": args.size,
        "percentiles": list(PERCENTILES),
        "intensity_units": "raw 16-bit values (the images hold 12-bit data)",
        "crops": crops,
    }
    (args.out / "crops.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(crops)} crops of {args.size}x{args.size} to {args.out}")


if __name__ == "__main__":
    main()
