"""``example_residual``: a small residual net trained with L1 (+ optional SSIM) to render masks.

Unlike pix2pix there is no discriminator and no noise: the net learns the per-pixel median
image of a mask (L1) and, with ``ssim_weight > 0``, local contrast and structure (SSIM, Wang et
al. 2004, from kornia). It is a fast, deterministic baseline for Stage II and, above all, a
readable example of a translator written against segsynth's public API only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import kornia
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor

import segsynth
from segsynth import DatasetInfo, PairSet, Trainer, UserError
from segsynth_example.network import ResidualNet, init_weights

# Offset from the run seed for the initial weights (any constant; fixed so runs reproduce).
_INIT_SEED_OFFSET = 301


class ResidualTranslator(segsynth.Translator):
    """Residual conv net (mask -> image) trained with L1 + optional SSIM loss."""

    name: ClassVar[str] = "example_residual"
    description: ClassVar[str] = (
        "Example plugin: small dilated residual conv net, mask -> image, L1 + optional SSIM "
        "loss, deterministic"
    )

    class Params(segsynth.Params):
        """Recipe parameters of ``example_residual``."""

        steps: int = Field(400, ge=1, description="Training steps (one Adam update each).")
        batch_size: int = Field(4, ge=1, description="Pairs per step, drawn at random with replacement.")
        width: int = Field(32, ge=4, le=512, description="Feature channels of every layer.")
        blocks: int = Field(4, ge=1, le=32, description="Residual blocks between the stem and the head.")
        max_dilation: int = Field(
            8, ge=1, le=64,
            description="Largest dilation; blocks cycle through 1, 2, 4, ... up to it (a power of two).",
        )
        lr: float = Field(1e-3, gt=0.0, le=1.0, description="Adam learning rate.")
        ssim_weight: float = Field(
            0.2, ge=0.0, le=10.0, description="Weight of the SSIM loss next to L1 (0 turns it off)."
        )
        ssim_window: int = Field(7, ge=3, le=31, description="Side of SSIM's Gaussian window (odd).")
        flip: bool = Field(True, description="Mirror training pairs left-right at random (augmentation).")
        log_every: int = Field(10, ge=1, description="Log the losses every this many steps.")
        translate_batch_size: int = Field(16, ge=1, description="Masks rendered per forward pass.")

        @field_validator("max_dilation")
        @classmethod
        def _power_of_two(cls, value: int) -> int:
            """The dilation cycle doubles from 1, so only powers of two can be its top."""
            if value & (value - 1):
                raise ValueError(f"max_dilation must be a power of two (1, 2, 4, 8, ...), got {value}")
            return value

        @field_validator("ssim_window")
        @classmethod
        def _odd_window(cls, value: int) -> int:
            """An even window has no centre pixel; kornia would reject it mid-training."""
            if value % 2 == 0:
                raise ValueError(f"ssim_window must be odd (e.g. 5, 7, 11), got {value}")
            return value

    params: Params

    def __init__(self, params: Params, info: DatasetInfo) -> None:
        super().__init__(params, info)
        p = params
        self.net = ResidualNet(
            info.mask_channels, info.image_channels, p.width, p.blocks, p.max_dilation
        )
        init_weights(self.net, torch.Generator().manual_seed(_INIT_SEED_OFFSET))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=p.lr)

    def state(self) -> dict[str, Any]:
        """The net and its optimizer: all a resume (or a reload for rendering) needs."""
        return {"net": self.net, "opt": self.opt}

    # ------------------------------------------------------------------ training
    def fit(self, pairs: PairSet, trainer: Trainer) -> None:
        """Train for ``steps`` steps on random real pairs, resumable through ``trainer``."""
        p = self.params
        self._check(pairs.masks, pairs.images)
        trainer.setup(self.net)
        state = self.state()
        start = trainer.resume(state)
        if start == 0:
            # Weights depend on the run seed only, not on what ran before fit().
            init_weights(self.net, trainer.generator(_INIT_SEED_OFFSET))
        # Data sets are small: keep every pair on the device for the whole run.
        masks = trainer.to_device(pairs.masks.float())
        images = trainer.to_device(pairs.images.float())
        self.net.train()
        for step in trainer.steps(start, p.steps, f"stage2 {self.name}"):
            mask, image = self._batch(masks, images)
            with trainer.autocast():
                pred = self.net(mask)
            losses = self._losses(pred.float(), image)
            trainer.backward(losses["loss"])
            trainer.step(self.opt)
            if step % p.log_every == 0 or step == p.steps:
                trainer.log(step, **{k: v.detach() for k, v in losses.items()})
            trainer.checkpoint(step, state)
        trainer.finish(state, p.steps)

    def _batch(self, masks: Tensor, images: Tensor) -> tuple[Tensor, Tensor]:
        """Random pairs, mirrored at random, drawn from torch's global CPU RNG.

        The trainer seeds that RNG and saves it in checkpoints, and drawing on the CPU makes
        the sequence the same on every device, so a resumed run sees the same batches.
        """
        index = torch.randint(masks.shape[0], (self.params.batch_size,))
        # Drawn even with flip off, so that switch does not change which pairs are picked.
        flip = torch.rand(self.params.batch_size) < 0.5
        index = index.to(masks.device)
        mask, image = masks[index], images[index]
        if self.params.flip:
            where = flip.to(masks.device).view(-1, 1, 1, 1)
            mask = torch.where(where, mask.flip(-1), mask)
            image = torch.where(where, image.flip(-1), image)
        return mask, image

    def _losses(self, pred: Tensor, image: Tensor) -> dict[str, Tensor]:
        """L1, optionally SSIM, and their weighted sum ``loss`` (all float32)."""
        l1 = F.l1_loss(pred, image)
        out = {"loss": l1, "l1": l1}
        if self.params.ssim_weight > 0:
            # kornia's ssim_loss is (1 - SSIM) / 2, i.e. 0 for identical images.
            ssim = kornia.losses.ssim_loss(pred, image, window_size=self.params.ssim_window, max_val=1.0)
            out["ssim"] = ssim
            out["loss"] = l1 + self.params.ssim_weight * ssim
        return out

    # ------------------------------------------------------------------ rendering
    @torch.inference_mode()
    def translate(self, masks: Tensor, generator: torch.Generator) -> Tensor:
        """Render images in ``[0, 1]`` for 0/1 masks of any size.

        The net has no noise source, so ``generator`` is not used: one mask always gives the
        same image, whatever the seed or the batch it comes in.
        """
        self._check(masks, None)
        if masks.shape[0] == 0:
            return torch.empty(0, self.info.image_channels, *masks.shape[-2:])
        device = next(self.net.parameters()).device
        was_training = self.net.training
        self.net.eval()
        try:
            outputs = [
                self.net(chunk.to(device, torch.float32)).float().clamp_(0, 1).cpu()
                for chunk in masks.split(self.params.translate_batch_size)
            ]
        finally:
            self.net.train(was_training)
        return torch.cat(outputs)

    def _check(self, masks: Tensor, images: Tensor | None) -> None:
        """Fail with a readable message when data do not match the channels the net was built for."""
        info = self.info
        if masks.dim() != 4 or masks.shape[1] != info.mask_channels:
            raise UserError(
                f"{self.name} was built for masks shaped (N, {info.mask_channels}, H, W) but got "
                f"{tuple(masks.shape)}; the masks must have the data set's mask channels."
            )
        if images is None:
            return
        if images.dim() != 4 or images.shape[1] != info.image_channels:
            raise UserError(
                f"{self.name} was built for images shaped (N, {info.image_channels}, H, W) but got "
                f"{tuple(images.shape)}; the images must have the data set's image channels."
            )
        if masks.shape[0] == 0:
            raise UserError(f"{self.name} cannot train on an empty set of pairs.")
