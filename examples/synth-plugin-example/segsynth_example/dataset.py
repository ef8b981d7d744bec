"""``example_shapes``: procedural (mask, image) pairs of textured ellipses and rectangles.

Every sample is rendered from its own random generator, derived from ``(seed, split, index)``
only: sample ``train_0007`` is the same whether the split holds 10 or 10 000 samples, the
train and test splits never share a sample, and a "data set" is just a few parameters that
reproduce on every machine. It needs no download, so the plugin can be tried (and tested)
anywhere.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from pydantic import Field, field_validator
from scipy import ndimage

import segsynth
from segsynth_example.shapes import SHAPE_KINDS, ShapeKind, random_shape, rasterize
from segsynth_example.texture import background, fill

#: Split name -> number mixed into each sample's seed. Fixed forever: changing one would
#: silently change every data set made with this plugin.
SPLIT_CODES: dict[str, int] = {"train": 0, "test": 1}
#: Keeps this data set's random streams apart from any other that seeds from (seed, split, index).
_DATASET_CODE = 5311


class ShapesDataset(segsynth.DatasetAdapter):
    """Ellipses and rectangles (binary mask) on textured backgrounds (1- or 3-channel image)."""

    name: ClassVar[str] = "example_shapes"
    description: ClassVar[str] = (
        "Example plugin: procedural textured ellipses and rectangles on striped, blotchy backgrounds."
    )

    class Params(segsynth.Params):
        """Recipe parameters of ``example_shapes``."""

        size: int = Field(
            64, ge=8, le=1024, description="Height and width of every (square) sample, in pixels."
        )
        channels: int = Field(1, description="Image channels: 1 (grey) or 3 (RGB).")
        n_train: int = Field(16, ge=1, le=100_000, description="Number of samples in the 'train' split.")
        n_test: int = Field(8, ge=1, le=100_000, description="Number of samples in the 'test' split.")
        seed: int = Field(
            0, ge=0, le=2**63 - 1,
            description="Master seed; each sample's seed is derived from (seed, split, index).",
        )
        shapes_per_image: tuple[int, int] = Field(
            (1, 4), description="Inclusive range [min, max] of shapes drawn per image (1..50)."
        )
        shape_size: tuple[float, float] = Field(
            (0.08, 0.25),
            description="Range [min, max] of a shape's semi-axes as a fraction of the side "
            "(0 < min <= max <= 0.5).",
        )
        kinds: list[ShapeKind] = Field(
            default_factory=lambda: list(SHAPE_KINDS),
            description="Which shapes to draw: any of 'ellipse', 'rectangle'.",
        )
        texture: float = Field(
            0.08, ge=0.0, le=0.5, description="Amplitude of the background and fill textures."
        )
        blur: float = Field(
            0.7, ge=0.0, le=5.0, description="Std in pixels of the edge blur of the image (the mask stays sharp)."
        )
        noise: float = Field(0.02, ge=0.0, le=0.2, description="Std of the Gaussian pixel noise.")

        @field_validator("channels")
        @classmethod
        def _grey_or_rgb(cls, value: int) -> int:
            if value not in (1, 3):
                raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {value}")
            return value

        @field_validator("shapes_per_image")
        @classmethod
        def _count_range(cls, value: tuple[int, int]) -> tuple[int, int]:
            low, high = value
            if not 1 <= low <= high <= 50:
                raise ValueError(
                    f"shapes_per_image must be [min, max] with 1 <= min <= max <= 50, got [{low}, {high}]"
                )
            return value

        @field_validator("shape_size")
        @classmethod
        def _size_range(cls, value: tuple[float, float]) -> tuple[float, float]:
            low, high = value
            if not 0.0 < low <= high <= 0.5:
                raise ValueError(
                    "shape_size must be [min, max] fractions of the side with 0 < min <= max <= 0.5, "
                    f"got [{low}, {high}]"
                )
            return value

        @field_validator("kinds")
        @classmethod
        def _kinds(cls, value: list[ShapeKind]) -> list[ShapeKind]:
            if not value:
                raise ValueError(f"kinds must name at least one of {', '.join(SHAPE_KINDS)}")
            if len(set(value)) != len(value):
                raise ValueError(f"kinds lists a shape twice: {value}; name each kind once")
            return value

    params: Params

    def info(self) -> segsynth.DatasetInfo:
        """Channels and size straight from the params: nothing is rendered."""
        p = self.params
        return segsynth.DatasetInfo(
            image_channels=p.channels,
            mask_channels=1,
            size=(p.size, p.size),
            has_fov=False,
            description=self.description,
            splits=tuple(SPLIT_CODES),
        )

    def load(self, split: str) -> segsynth.PairSet:
        """Render every sample of ``split`` into one in-memory ``PairSet``."""
        if split not in SPLIT_CODES:
            valid = ", ".join(repr(s) for s in SPLIT_CODES)
            raise segsynth.UserError(
                f"dataset {self.name!r} has no split {split!r}; valid splits are {valid}."
            )
        n = self.params.n_train if split == "train" else self.params.n_test
        samples = [self.render(self.sample_rng(split, i)) for i in range(n)]
        return segsynth.PairSet(
            images=torch.from_numpy(np.stack([image for image, _ in samples])),
            masks=torch.from_numpy(np.stack([mask for _, mask in samples])),
            ids=[f"{split}_{i:04d}" for i in range(n)],
        )

    def sample_rng(self, split: str, index: int) -> np.random.Generator:
        """The generator of one sample: a pure function of (seed, split, index)."""
        entropy = [_DATASET_CODE, self.params.seed, SPLIT_CODES[split], index]
        return np.random.default_rng(np.random.SeedSequence(entropy))

    def render(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One sample from ``rng``: float32 image ``(C, H, W)`` in [0, 1] and mask ``(1, H, W)`` in {0, 1}.

        Shapes are painted back to front; each one's soft (blurred) edge blends its fill over
        what is already there, while the mask is the sharp union of all shapes.
        """
        p = self.params
        image = background(rng, p.size, p.channels, p.texture)
        mask = np.zeros((p.size, p.size), dtype=bool)
        count = int(rng.integers(p.shapes_per_image[0], p.shapes_per_image[1] + 1))
        for _ in range(count):
            inside = rasterize(random_shape(rng, p.size, p.kinds, p.shape_size), p.size)
            alpha = inside.astype(np.float64)
            if p.blur > 0:
                alpha = ndimage.gaussian_filter(alpha, p.blur)
            image = image * (1 - alpha) + fill(rng, p.size, p.channels, p.texture) * alpha
            mask |= inside
        image = image + p.noise * rng.standard_normal(image.shape)
        return (
            np.clip(image, 0.0, 1.0).astype(np.float32),
            mask[None].astype(np.float32),
        )
