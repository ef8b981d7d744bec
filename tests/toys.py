"""Toy components: real (tiny) implementations of every interface, for fast framework tests.

They let the tests of registration, validation, resume, files and report run in seconds
without waiting for GANs; the real plugins have their own tests in tests/plugins/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import Field

import segsynth


def train_toy(trainer: segsynth.Trainer, state: dict[str, Any], steps: int, task: str,
              loss: Callable[[], torch.Tensor], *opts: torch.optim.Optimizer) -> None:
    """The loop every trainable toy runs: resume, then per step backward, step each optimiser,
    log and checkpoint; then finish. ``loss()`` computes one step's loss."""
    start = trainer.resume(state)
    for step in trainer.steps(start, steps, task):
        value = loss()
        trainer.backward(value)
        for opt in opts:
            trainer.step(opt)
        trainer.log(step, loss=value)
        trainer.checkpoint(step, state)
    trainer.finish(state, steps)


class ToySteps(segsynth.Params):
    """The setting every trainable toy has: how many steps it trains."""

    steps: int = Field(10, ge=1)


class OneConvToy:
    """A trainable toy whose whole model is one 1x1 convolution, trained by Adam."""

    net: torch.nn.Conv2d
    opt: torch.optim.Adam

    def build(self, in_channels: int, out_channels: int, lr: float) -> None:
        self.net = torch.nn.Conv2d(in_channels, out_channels, 1)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)

    def state(self) -> dict[str, Any]:
        return {"net": self.net, "opt": self.opt}


class ToyData(segsynth.DatasetAdapter):
    """Discs of random radius; the image is a blurred, noisy copy of the mask."""

    name = "toy_discs"
    description = "Bright discs on dark noise (tests only)."

    class Params(segsynth.Params):
        size: int = Field(16, ge=8)
        n_train: int = Field(6, ge=0)
        n_test: int = Field(4, ge=0)
        #: the field of view: every pixel, a centred disc (a fundus-like black surround), or none
        fov: Literal["all", "disc", "none"] = "all"

    def info(self) -> segsynth.DatasetInfo:
        s = self.params.size
        return segsynth.DatasetInfo(image_channels=1, mask_channels=1, size=(s, s),
                                    has_fov=self.params.fov != "none")

    def load(self, split: str) -> segsynth.PairSet:
        if split not in ("train", "test"):
            raise segsynth.UserError(f"no split {split!r}")
        n = self.params.n_train if split == "train" else self.params.n_test
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        s = self.params.size
        yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
        masks = []
        for _ in range(n):
            cy, cx = torch.randint(s // 4, 3 * s // 4, (2,), generator=g)
            r = torch.randint(2, s // 4 + 1, (1,), generator=g)
            masks.append((((yy - cy) ** 2 + (xx - cx) ** 2) <= r**2).float())
        m = torch.stack(masks)[:, None] if masks else torch.zeros(0, 1, s, s)
        images = (0.2 + 0.6 * m + 0.05 * torch.rand(m.shape, generator=g)).clamp(0, 1)
        fov: torch.Tensor | None = torch.ones_like(m)
        if self.params.fov == "disc":
            fov = ((yy - s / 2 + 0.5) ** 2 + (xx - s / 2 + 0.5) ** 2 <= (s / 2) ** 2).float().expand_as(m)
            m, images = m * fov, images * fov
        elif self.params.fov == "none":
            fov = None
        return segsynth.PairSet(images=images, masks=m, fovs=fov,
                                ids=[f"{split}_{i}" for i in range(n)])


class ToyClasses(ToyData):
    """The K = 3 shapes of tests/multiclass_data.py (disc, horizontal bar, vertical bar), with
    the size and split counts of ``ToyData``."""

    name = "toy_classes"
    description = "Three classes of shapes on noise (tests only)."

    def info(self) -> segsynth.DatasetInfo:
        from multiclass_data import toy_info

        return toy_info(self.params.size)

    def load(self, split: str) -> segsynth.PairSet:
        from multiclass_data import toy_pairs

        train = split == "train"
        return toy_pairs(self.params.n_train if train else self.params.n_test, self.params.size,
                         seed=0 if train else 1)


class ToyMasks(segsynth.MaskGenerator):
    """Learns the mean mask by gradient descent; samples by thresholding mean + noise."""

    name = "toy_masks"
    description = "Mean-mask sampler (tests only)."

    Params = ToySteps

    def __init__(self, params: Any, info: segsynth.DatasetInfo) -> None:
        super().__init__(params, info)
        self.logits = torch.nn.Parameter(torch.zeros(info.mask_channels, *info.size))
        self.holder = torch.nn.ParameterList([self.logits])
        self.opt = torch.optim.Adam(self.holder.parameters(), lr=0.1)

    def state(self) -> dict[str, Any]:
        return {"net": self.holder, "opt": self.opt}

    def fit(self, masks: torch.Tensor, trainer: segsynth.Trainer) -> None:
        target = masks.mean(0)

        def loss() -> torch.Tensor:
            noise = 0.01 * torch.randn(())
            return ((torch.sigmoid(self.holder[0]) - target) ** 2).mean() + 0 * noise

        train_toy(trainer, self.state(), self.params.steps, "toy stage1", loss, self.opt)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        p = torch.sigmoid(self.holder[0].detach().cpu())
        u = torch.rand((n, *p.shape), generator=generator)
        return (u < p).float()


class ToyTranslator(OneConvToy, segsynth.Translator):
    """image = sigmoid(a * mask + b), a per-pixel-free 2-parameter model."""

    name = "toy_translator"
    description = "Affine mask-to-image model (tests only)."

    class Params(ToySteps):
        lr: float = Field(0.1, gt=0)

    def __init__(self, params: Any, info: segsynth.DatasetInfo) -> None:
        super().__init__(params, info)
        self.build(info.mask_channels, info.image_channels, params.lr)

    def fit(self, pairs: segsynth.PairSet, trainer: segsynth.Trainer) -> None:
        def loss() -> torch.Tensor:
            idx = torch.randint(len(pairs), (4,))
            pred = torch.sigmoid(self.net(trainer.to_device(pairs.masks[idx])))
            return ((pred - trainer.to_device(pairs.images[idx])) ** 2).mean()

        train_toy(trainer, self.state(), self.params.steps, "toy stage2", loss, self.opt)

    def translate(self, masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        device = next(self.net.parameters()).device
        with torch.no_grad():
            return torch.sigmoid(self.net(masks.to(device))).cpu()


class ToyEvaluator(segsynth.Evaluator):
    """Mean absolute intensity difference between synthetic and real images."""

    name = "toy_eval"
    description = "Mean intensity gap (tests only)."

    def evaluate(self, real_train, real_test, synthetic, trainer):  # type: ignore[no-untyped-def]
        gap = float((real_train.images.mean() - synthetic.images.mean()).abs())
        return segsynth.EvaluationResult(
            metrics={"toy.gap": gap, "toy.count": float(len(synthetic))},
            tables={"Toy": [{"what": "gap", "value": gap}]},
        )


class ToyPairs(segsynth.PairGenerator):
    """Single stage: the toy mask sampler plus a 1x1 conv rendering, trained together."""

    name = "toy_pairs"
    description = "Joint mask+image toy generator (tests only)."

    Params = ToySteps

    def __init__(self, params: Any, info: segsynth.DatasetInfo) -> None:
        super().__init__(params, info)
        self.masks = ToyMasks(ToyMasks.Params(steps=params.steps), info)
        self.render = ToyTranslator(ToyTranslator.Params(steps=params.steps), info)

    def state(self) -> dict[str, Any]:
        return {"masks": self.masks.holder, "render": self.render.net,
                "opt_m": self.masks.opt, "opt_r": self.render.opt}

    def fit(self, pairs: segsynth.PairSet, trainer: segsynth.Trainer) -> None:
        target = pairs.masks.mean(0)

        def loss() -> torch.Tensor:
            mask_loss = ((torch.sigmoid(self.masks.holder[0]) - target) ** 2).mean()
            image_loss = ((torch.sigmoid(self.render.net(pairs.masks)) - pairs.images) ** 2).mean()
            return mask_loss + image_loss

        train_toy(trainer, self.state(), self.params.steps, "toy pairs", loss,
                  self.masks.opt, self.render.opt)

    def sample_pairs(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        masks = self.masks.sample(n, generator)
        return masks, self.render.translate(masks, generator)


class ToyPrivacy(segsynth.Evaluator):
    """Reports a privacy gate result chosen by its params (to test the gate's plumbing)."""

    name = "toy_privacy"
    description = "Fixed privacy verdict (tests only)."

    class Params(segsynth.Params):
        near_copy_fraction: float = 0.0
        gate: float = 0.1

    def evaluate(self, real_train, real_test, synthetic, trainer):  # type: ignore[no-untyped-def]
        fraction = self.params.near_copy_fraction
        return segsynth.EvaluationResult(metrics={
            "privacy.near_copy_fraction": fraction,
            "privacy.gate": self.params.gate,
            "privacy.gate_failed": float(fraction > self.params.gate),
        })


class ToySegmenter(OneConvToy, segsynth.Segmenter):
    """Per-pixel logistic regression on intensity: learns that bright means foreground."""

    name = "toy_segmenter"
    description = "Intensity threshold learner (tests only)."

    class Params(ToySteps):
        steps: int = Field(30, ge=1)

    def __init__(self, params: Any, info: segsynth.DatasetInfo) -> None:
        super().__init__(params, info)
        self.build(info.image_channels, info.mask_channels, 0.2)

    def fit(self, pairs: segsynth.PairSet, trainer: segsynth.Trainer) -> None:
        def loss() -> torch.Tensor:
            logits = self.net(trainer.to_device(pairs.images))
            return torch.nn.functional.binary_cross_entropy_with_logits(
                logits, trainer.to_device(pairs.masks))

        train_toy(trainer, self.state(), self.params.steps, "toy segmenter", loss, self.opt)

    def predict(self, images: torch.Tensor, trainer: segsynth.Trainer) -> torch.Tensor:
        with torch.no_grad():
            return torch.sigmoid(self.net(trainer.to_device(images))).cpu()


class ToyLogger(segsynth.Logger):
    """Keeps every logged row in memory (class-wide, so a test can read what a run logged)."""

    name = "toy_logger"
    description = "Logs into a list (tests)."
    rows: list[tuple[Any, ...]] = []
    closed = 0

    class Params(segsynth.Params):
        prefix: str = Field("", description="Put before every task name.")

    def log_scalars(self, task: str, step: int, values: dict[str, float]) -> None:
        ToyLogger.rows.append((self.params.prefix + task, step, dict(values)))  # type: ignore[attr-defined]

    def close(self) -> None:
        ToyLogger.closed += 1


class ToyPlugin:
    """A plugin object (not a module) with hook implementations, as a test would write one."""

    @segsynth.hookimpl
    def segsynth_register_components(self):  # type: ignore[no-untyped-def]
        return [ToyLogger, ToyData, ToyClasses, ToyMasks, ToyTranslator, ToyEvaluator, ToyPrivacy, ToySegmenter,
                ToyPairs]


TOY_RECIPE: dict[str, Any] = {
    "name": "toy",
    "seed": 3,
    "device": "cpu",
    "data": {"name": "toy_discs", "params": {"size": 16}},
    "stage1": {"name": "toy_masks", "params": {"steps": 12}},
    "stage2": {"name": "toy_translator", "params": {"steps": 12}},
    "synthesis": {"count": 10, "batch_size": 4},
    "evaluation": [{"name": "toy_eval"}],
    "trainer": {"checkpoint_every": 5},
    "report": {"samples": 4},
}


