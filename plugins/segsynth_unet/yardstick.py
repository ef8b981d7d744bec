"""A yardstick U-Net read from a checkpoint file instead of trained on this run's real pairs.

The measures of ``reference`` are only as good as the segmenter they look through, and the one
``unet_segmentation`` trains itself has seen only this run's (often few) real pairs. When a
better one exists on disk (trained on a larger labelled set, or by another run) the user points
``reference_checkpoint`` at it. It is read with the framework's checkpoint machinery
(``CheckpointStore.read``: SHA-256 sidecar checked when present, ``torch.load(weights_only=True)``,
so a file carrying pickled code is refused, never run) and must hold a U-Net of exactly the shape
this evaluator builds; the file's name and SHA-256 travel with every number measured with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import segsynth
from segsynth.checkpoint import CheckpointStore, sha256_file, unpack_state
from segsynth_unet.segmenter import Segmenter

PARAM = "unet_segmentation reference_checkpoint"
SHA_SHOWN = 12  # hex digits of the SHA-256 shown in titles: enough to tell two files apart


@dataclass(frozen=True)
class Shape:
    """What a U-Net's weights are made for: channels in and out, poolings, first-level filters.

    ``exclusive``: the masks are ``mask_channels`` one-hot classes and the net has one more
    output (the background). A checkpoint's weights cannot say which kind they are, so shapes
    compare by their outputs (``matches``), and a file read back is described by its outputs.
    """

    image_channels: int
    mask_channels: int
    depth: int
    base_filters: int
    exclusive: bool = field(default=False, compare=False)

    @property
    def outputs(self) -> int:
        """Logits of the net's head."""
        return self.mask_channels + 1 if self.exclusive else self.mask_channels

    def matches(self, other: Shape) -> bool:
        """Whether weights of ``other`` load into a net of this shape."""
        return ((self.image_channels, self.outputs, self.depth, self.base_filters)
                == (other.image_channels, other.outputs, other.depth, other.base_filters))

    def __str__(self) -> str:
        masks = (f"{self.mask_channels} classes plus the background ({self.outputs} outputs)"
                 if self.exclusive else f"{self.mask_channels}-channel masks")
        return (f"depth {self.depth} with base_filters {self.base_filters}, for "
                f"{self.image_channels}-channel images and {masks}")


@dataclass(frozen=True)
class LoadedYardstick:
    """The frozen segmenter of ``reference_checkpoint`` plus where it came from."""

    path: Path
    sha256: str
    segmenter: Segmenter

    @property
    def origin(self) -> str:
        """A few words for titles: the file's name and the start of its SHA-256."""
        return f"loaded from {self.path.name}, sha256 {self.sha256[:SHA_SHOWN]}"

    @property
    def note(self) -> str:
        return (
            f"The yardstick of mask fidelity, KID and precision/recall (and the published "
            f"'segmenter' feature space) is the U-Net loaded from reference_checkpoint {self.path} "
            f"(sha256 {self.sha256}), not one trained on this run's real pairs. The floor "
            "kid.real_train_vs_test / prd.real_train_vs_test.* is biased low only if that network "
            "was trained on these real training images."
        )


def checkpoint_shape(net_state: dict[str, Any]) -> Shape | None:
    """The shape of the ``UNet`` whose ``state_dict`` is ``net_state``; ``None`` if it is not one.

    Its ``mask_channels`` are the head's outputs (one per channel, as a sigmoid net has).
    """
    stem, head = net_state.get("stem.0.weight"), net_state.get("head.weight")
    if not isinstance(stem, torch.Tensor) or not isinstance(head, torch.Tensor):
        return None
    if stem.dim() != 4 or head.dim() != 4:
        return None
    levels = {key.split(".")[1] for key in net_state if key.startswith("down.")}
    return Shape(int(stem.shape[1]), int(head.shape[0]), len(levels), int(stem.shape[0]))


def load_yardstick(path: Path, wanted: Shape, lr: float) -> LoadedYardstick:
    """Read ``path`` into a new ``Segmenter`` of shape ``wanted`` on the CPU; ``UserError`` if it cannot be.

    Refused, each with a message naming the file: a missing file, one that does not match its
    checksum or cannot be loaded without running code, one that is not a segsynth checkpoint or
    holds no U-Net, and a U-Net of another shape (the message says which params would fit it).
    """
    if not path.is_file():
        raise segsynth.UserError(
            f"{PARAM} {path} does not exist (or is not a file). Point it at a segsynth U-Net "
            "checkpoint, e.g. another run's evaluation/unet_segmentation/real/seed0/checkpoints/"
            "final.pt or runs/<name>/derived/segmenter/checkpoints/final.pt (a relative path is "
            "read from the recipe's folder), or remove it to train the yardstick on this run's "
            "real pairs."
        )
    payload = CheckpointStore(path.parent).read(path)  # checksum + weights_only, UserError otherwise
    state = payload.get("state")
    net_state = state.get("net") if isinstance(state, dict) else None
    found = checkpoint_shape(net_state) if isinstance(net_state, dict) else None
    if found is None:
        held = ", ".join(sorted(map(str, state))) if isinstance(state, dict) else "nothing"
        raise segsynth.UserError(
            f"{PARAM} {path} holds no U-Net weights (its state holds: {held or 'nothing'}); it "
            "was not written by the `unet` segmenter or by unet_segmentation. Point it at one of "
            "their final.pt checkpoints."
        )
    if not wanted.matches(found):
        raise segsynth.UserError(_mismatch(path, found, wanted))
    with torch.random.fork_rng(devices=[]):  # the init is overwritten: leave the global RNG alone
        segmenter = Segmenter(wanted.image_channels, wanted.mask_channels, wanted.depth,
                              wanted.base_filters, lr, exclusive=wanted.exclusive)
    try:
        unpack_state({"net": segmenter.net}, {"net": net_state}, torch.device("cpu"))
    except (KeyError, RuntimeError) as exc:
        raise segsynth.UserError(
            f"{PARAM} {path} does not fit the U-Net this evaluator builds ({wanted}): "
            f"{str(exc).splitlines()[0]}. It was made by another version of the network."
        ) from exc
    return LoadedYardstick(path, sha256_file(path), segmenter)


def _mismatch(path: Path, found: Shape, wanted: Shape) -> str:
    """Say how the file's U-Net differs from the one built here, and what to change."""
    head = (f"{PARAM} {path} holds a U-Net of {found}, but this evaluator builds one of {wanted} "
            "(depth and base_filters from its params, channels from the dataset).")
    if (found.image_channels, found.outputs) != (wanted.image_channels, wanted.outputs):
        classes = ""
        if wanted.exclusive or found.outputs == wanted.outputs + 1:
            classes = (" A segmenter of K exclusive classes (data labels with K > 1 classes) has "
                       "K + 1 outputs, the background's included, and reads as K + 1-channel here.")
        return (f"{head} The channels cannot be changed by unet_segmentation's params: use a "
                "checkpoint trained on images and masks with this dataset's channels, or make the "
                f"dataset yield the checkpoint's (its preprocessing params).{classes}")
    return (f"{head} Set unet_segmentation params depth: {found.depth} and base_filters: "
            f"{found.base_filters} to match the file (depth {found.depth} must also suit the image "
            "size), or point reference_checkpoint at a checkpoint of the current shape.")
